"""``urbanst report``: the suites as data, and a tiny report whose tables are ``urbanst benchmark``'s."""

from __future__ import annotations

import json

import pytest

from urbanst.cli import main
from urbanst.data.registry import builtin_datasets
from urbanst.engine.runs import check_task
from urbanst.engine.report import run_report
from urbanst.engine.suites import (CLASSIFY_BASELINES, FORECAST_BASELINES, FULL, IMPUTE_BASELINES, QUICK, SUITES,
                                   Entry)
from urbanst.models.registry import model_class

BASELINES = {"forecast": FORECAST_BASELINES, "classify": CLASSIFY_BASELINES, "impute": IMPUTE_BASELINES}


@pytest.mark.parametrize("name", sorted(SUITES))
def test_suite_entries_name_real_datasets_and_models_for_their_task(name):
    entries = SUITES[name]
    assert len({e.key for e in entries}) == len(entries), "two entries would share one folder"
    for entry in entries:
        for dataset in (entry.dataset, *entry.sources):
            assert dataset in builtin_datasets()
        for model in entry.models:
            check_task(model_class(model), entry.task)
        if entry.shots == "full":  # every baseline of the task stands in a full-shot table
            assert set(BASELINES[entry.task]) <= set(entry.models), entry.key
        else:
            assert entry.sources if entry.shots == "zero" else entry.few_ratio
            assert any(model_class(m).family == "baseline" for m in entry.models)
            assert entry.trained_models()


def test_quick_suite_is_what_it_promises():
    by_key = {e.key: e for e in QUICK}
    assert {"stid", "unist", "st_llm"} <= set(by_key["synthetic_grid-forecast-full"].models)
    assert "stid" in by_key["nyc_bike-forecast-full"].models
    assert "stid" in by_key["nyc_taxi-forecast-zero-from-nyc_bike"].models
    assert by_key["chi_crime-classify-full"].models == CLASSIFY_BASELINES
    assert by_key["aqi36-impute-full"].models == IMPUTE_BASELINES
    assert sum(e.expected_seconds() for e in QUICK) < 600  # 10 minutes on 2 cores


def test_full_suite_holds_the_transfer_pairs():
    pairs = {(e.sources, e.dataset) for e in FULL if e.shots == "zero"}
    assert {(("nyc_bike",), "nyc_taxi"), (("nyc_taxi_grid",), "nyc_bike_grid"), (("nyc_crime",), "chi_crime")} <= pairs
    trained = {m for e in FULL for m in e.trained_models()}
    assert {"stid", "unist", "promptst", "st_llm", "urbangpt", "llm4hrs", "airgpt"} <= trained


def _table(markdown: str, header: str) -> dict[str, list[str]]:
    """Rows of the first table after ``header`` by model, without the wall-time columns (train s, infer s)."""
    lines = markdown[markdown.index(header):].splitlines()
    rows = {}
    for line in lines[lines.index(next(x for x in lines if x.startswith("| model"))) + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:-3] + cells[-1:]
    return rows


def test_tiny_report_tables_equal_the_benchmark_command(tmp_path, capsys):
    entry = Entry("synthetic_grid", ("ha", "last", "ridge", "stid"), history=6, horizon=3, time_budget=None,
                  max_epochs=1)
    lines = []
    run_report([entry], tmp_path / "report", suite="tiny", echo=lines.append)
    code = main(["benchmark", "--dataset", "synthetic_grid", "--models", "ha,last,ridge,stid", "--history", "6",
                 "--horizon", "3", "--max-epochs", "1", "--output", str(tmp_path / "bench")])
    assert code == 0
    capsys.readouterr()

    report = (tmp_path / "report" / "report.md").read_text()
    bench = (tmp_path / "bench" / "results.md").read_text()
    assert _table(report, "## 1. synthetic_grid") == _table(bench, "# Benchmark")
    assert set(_table(report, "## 1.")) == {"ha (b)", "last (b)", "ridge (b)", "stid"}
    records = json.loads((tmp_path / "report" / "results.json").read_text())
    direct = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert [r["metrics"] for r in records] == [r["metrics"] for r in direct]
    assert [r["per_step"] for r in records] == [r["per_step"] for r in direct]

    folder = tmp_path / "report" / entry.key
    for png in ("error_per_step.png", "forecasts.png", "error_map.png", "training_curves.png"):
        assert (folder / png).read_bytes()[:4] == b"\x89PNG"
        assert f"]({entry.key}/{png})" in report
    assert not list(folder.glob("runs/*/checkpoints")), "the report keeps logs, not weights"
    assert "Protocol: dataset synthetic_grid" in report and "Missing:" in report
    assert "Against the best baseline on MAE" in report
    assert lines[0].startswith("urbanst report, suite tiny: 1 benchmark runs, expected about")
    assert lines[1].startswith("[1/1] synthetic_grid: forecast, full-shot")


def test_absent_datasets_are_skipped_with_a_line(tmp_path):
    entries = [Entry("nyc_taxi", ("last", "stid"), shots="zero", sources=("nyc_bike",)),
               Entry("synthetic_region", ("last", "seasonal_day"), history=6, horizon=3)]
    lines = []
    results = run_report(entries, tmp_path / "out", data_dir=str(tmp_path / "empty"), echo=lines.append)
    assert "skipped, dataset nyc_taxi not found" in lines[1] and "dataset nyc_bike not found" in lines[1]
    assert [bool(r.records) for r in results] == [False, True]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Skipped (data absent):" in report and "## 1. synthetic_region" in report
    assert len(json.loads((tmp_path / "out" / "results.json").read_text())) == 2


def test_transfer_entry_draws_its_bars(tmp_path):
    entry = Entry("synthetic_region", ("last", "stid"), history=6, horizon=3, shots="few", few_ratio=0.2,
                  time_budget=None, max_epochs=1)
    run_report([entry], tmp_path, echo=lambda line: None)
    assert (tmp_path / entry.key / "transfer.png").read_bytes()[:4] == b"\x89PNG"
    report = (tmp_path / "report.md").read_text()
    assert "Shots: few; the trained models learn from the most recent 0.2" in report
    assert "| stid | few |" in report.replace("**", "")


def test_unknown_suite_is_a_one_line_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:
        main(["report", "--suite", "huge", "--output", str(tmp_path)])
    assert stop.value.code == 2
    assert "invalid choice: 'huge'" in capsys.readouterr().err


def test_channel_table_marks_the_best_model_of_each_channel():
    from urbanst.evaluation.tables import channel_table

    records = [{"model": "last", "family": "baseline", "metrics": {"mae": 2.0}, "per_channel": {"mae": [1.0, 3.0]},
                "channels": ["PM2.5", "CO"]},
               {"model": "airgpt", "family": "deep", "metrics": {"mae": 1.5}, "per_channel": {"mae": [2.0, 1.0]},
                "channels": ["PM2.5", "CO"]}]
    lines = channel_table(records).splitlines()
    assert lines[2] == "| model | PM2.5 | CO |"
    assert lines[4] == "| last (b) | **1.000** | 3.000 |" and lines[5] == "| airgpt | 2.000 | **1.000** |"
    assert channel_table([dict(records[0], channels=["only"], per_channel={"mae": [1.0]})]) == ""
