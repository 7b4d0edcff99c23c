"""The one-bar-at-a-time progress helper."""

from __future__ import annotations

import io
import re

from urbanst import progress


def _screen(monkeypatch, terminal: bool = True) -> io.StringIO:
    """Replace stderr (inside the test: pytest restores its own capture between set-up and call)."""
    screen = io.StringIO()
    screen.isatty = lambda: terminal
    monkeypatch.setattr("sys.stderr", screen)
    return screen


def test_a_bar_passes_every_item_through_and_clears_itself(monkeypatch):
    screen = _screen(monkeypatch)
    assert list(progress.bar(range(5), "count")) == [0, 1, 2, 3, 4]
    assert "count" in screen.getvalue() and screen.getvalue().endswith("\r")


def test_a_bar_inside_another_stays_silent_and_the_next_one_shows(monkeypatch):
    screen = _screen(monkeypatch)
    outer = progress.bar(None, "outer", total=2)
    inner = progress.bar(range(3), "inner")
    assert inner.disable and list(inner) == [0, 1, 2]
    outer.close()
    assert "outer" in screen.getvalue() and "inner" not in screen.getvalue()
    assert not progress.bar(range(1), "next").disable


def test_a_bar_dropped_unfinished_frees_the_screen(monkeypatch):
    _screen(monkeypatch)
    for _ in progress.bar(range(10), "dropped"):
        break
    assert not progress.bar(range(1), "next").disable


def test_nothing_is_drawn_when_disabled_or_not_on_a_terminal(monkeypatch):
    screen = _screen(monkeypatch, terminal=False)
    assert list(progress.bar(range(3), "piped")) == [0, 1, 2]
    assert progress.bar(range(3), "off", enabled=False).disable
    assert screen.getvalue() == ""


def test_training_draws_one_line_with_epochs_and_time_left_then_leaves_a_summary(monkeypatch, capsys, tmp_path):
    from urbanst.cli import main

    screen = _screen(monkeypatch)
    assert main(["fit", "--dataset", "synthetic_grid", "--model", "stid", "--option", "embed_dim=8",
                 "--option", "num_layers=1", "--max-epochs", "2", "--batch-size", "256", "--time-budget", "600",
                 "--output", str(tmp_path / "run"), "--data-dir", str(tmp_path)]) == 0
    drawn = [frame.strip() for frame in screen.getvalue().split("\r") if frame.startswith("stid ")]
    assert drawn and all(re.fullmatch(r"stid  .{20}  epoch [12]/2.*", frame) for frame in drawn), drawn
    assert any(re.search(r"epoch [12]/2, \d+:\d\d spent, \d+:\d\d left", frame) for frame in drawn), drawn
    assert "stid: trained 2 epoch(s) in " in capsys.readouterr().out
