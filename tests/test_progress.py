"""The one-bar-at-a-time progress helper."""

from __future__ import annotations

import io

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


def test_nothing_is_drawn_when_disabled_or_not_on_a_terminal(monkeypatch):
    screen = _screen(monkeypatch, terminal=False)
    assert list(progress.bar(range(3), "piped")) == [0, 1, 2]
    assert progress.bar(range(3), "off", enabled=False).disable
    assert screen.getvalue() == ""
