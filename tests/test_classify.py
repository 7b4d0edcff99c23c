"""The classify task: event windows, the event baselines, classification metrics through records and tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from urbanst.cli import main
from urbanst.data.container import STData
from urbanst.data.splits import SplitRule
from urbanst.data.synthetic import make_city
from urbanst.engine.benchmark import BenchmarkConfig, run_benchmark
from urbanst.engine.experiment import ExperimentConfig, prepare
from urbanst.engine.runs import build_model
from urbanst.errors import UrbanstError
from urbanst.evaluation.tables import results_table
from urbanst.models.registry import model_class
from urbanst.tasks import TASKS, make_task

SPLIT = SplitRule.parse("70/10/20")


def tiny_counts(seed: int = 0, T: int = 84, N: int = 3) -> STData:
    """Daily Poisson counts with a low rate (events = count >= 1 about half the time), one value missing."""
    rng = np.random.default_rng(seed)
    values = rng.poisson(0.7, size=(T, N, 1)).astype(np.float32)
    values[5, 1, 0] = np.nan
    return STData("tiny_counts", values, np.isfinite(values), pd.date_range("2024-01-01", periods=T, freq="D"),
                  ["crime"], ["crimes/day"], "Testville")


def event_windows(data: STData, horizon: int = 1, threshold: float = 1.0):
    task = make_task("classify", 7, horizon, SPLIT, threshold=threshold)
    return task, task.windows(data, task.fit_scaler(data))


def test_classify_is_a_task_and_its_windows_carry_events():
    assert "classify" in TASKS
    data = tiny_counts()
    task, windows = event_windows(data, horizon=2, threshold=2)
    assert task.objective == "classification" and "macro_f1" in task.metric_keys and "recall" in task.metric_keys
    batch = windows["test"].__getitems__([0, 1, 2])
    assert batch["y_event"].dtype == torch.bool
    assert torch.equal(batch["y_event"], batch["target_mask"] & (batch["y"] >= 2))
    origin = int(batch["origin"][0])
    raw = torch.from_numpy(np.nan_to_num(data.values[origin - 7 : origin]))
    assert torch.equal(batch["x_event"][0], torch.from_numpy(data.observed_mask[origin - 7 : origin]) & (raw >= 2))
    spec = task.data_spec(data)
    assert spec.task == "classify" and spec.city == "Testville"
    with pytest.raises(UrbanstError, match="threshold"):
        make_task("classify", 7, 1, SPLIT, no_such_field=1)


def test_history_rate_by_hand():
    data = tiny_counts()
    task, windows = event_windows(data)
    train = windows["train"]
    first, last = int(train.origins.min()) - 7, int(train.origins.max()) + 1
    observed = data.observed_mask[first:last, :, 0]
    events = observed & (np.nan_to_num(data.values[first:last, :, 0]) >= 1)
    spec = task.data_spec(data)
    for per_weekday in (False, True):
        model = model_class("history_rate").build(spec, per_weekday=per_weekday)
        model.fit_closed_form(train)
        batch = windows["test"].__getitems__([0, 1])
        prob = torch.sigmoid(model(batch).prediction)
        assert prob.shape == (2, 1, 3, 1)
        for b in range(2):
            day = int(batch["day_of_week"][b, 7])
            rows = np.ones(last - first, bool) if not per_weekday else (data.timestamps[first:last].dayofweek == day)
            expected = (events[rows].sum(0) / observed[rows].sum(0)).clip(1e-4, 1 - 1e-4)
            np.testing.assert_allclose(prob[b, 0, :, 0].numpy(), expected, rtol=1e-4)


def test_logistic_reaches_its_optimum_and_ranks_events():
    data = make_city("grid", grid=(3, 3), weeks=3, missing=0.0, events=False, seed=1)
    threshold = float(np.nanmedian(data.values))
    task = make_task("classify", 6, 2, SPLIT, threshold=threshold)
    windows = task.windows(data, task.fit_scaler(data))
    model = model_class("logistic").build(task.data_spec(data), alpha=1.0)
    model.fit_closed_form(windows["train"])
    # first-order optimality of the penalised likelihood: gradient sum (p - y) f + alpha w = 0 (no penalty on the bias)
    w = model.weight.double()
    grad = w * 1.0
    grad[:, -1] = 0
    for feats, label, keep in model._rows(windows["train"]):
        prob = torch.sigmoid(torch.einsum("pmf,pf->pm", feats, w))
        grad += torch.einsum("pm,pmf->pf", (prob - label) * keep, feats)
    assert grad.abs().max() < 1e-3
    result = task.evaluate(model, windows["test"], progress=False)
    assert result.metrics["auroc"] > 0.7 and result.metrics["macro_f1"] > 0.6
    assert len(result.metrics["per_step"]["recall"]) == 2
    assert result.mape_policy == f"event = count >= {threshold:g}; predicted when p > 0.5"


def test_last_value_copies_the_last_event():
    data = tiny_counts()
    task, windows = event_windows(data, horizon=3)
    model = model_class("last").build(task.data_spec(data))
    assert model.config.task == "classify"
    batch = windows["test"].__getitems__(list(range(4)))
    batch["input_mask"][0, :, 2] = False  # nothing observed: probability 1/2
    prob = torch.sigmoid(model(batch).prediction)
    assert prob.shape == (4, 3, 3, 1)
    last_event = batch["x_event"][:, -1].float()
    expected = torch.where(last_event > 0, 0.9999, 0.0001)
    torch.testing.assert_close(prob[1:, 0], expected[1:], atol=1e-4, rtol=0)
    assert torch.allclose(prob[0, :, 2], torch.tensor(0.5))
    assert torch.equal(prob[:, 0], prob[:, 2])  # the whole horizon


def test_forecast_only_models_refuse_classify_naming_their_tasks():
    cfg = ExperimentConfig(dataset="synthetic_grid", task="classify", horizon=1, task_options={"threshold": 20})
    prepared = prepare(cfg)
    for name in ("ha", "seasonal_week", "stid"):
        with pytest.raises(UrbanstError, match=rf"{name}.*classify.*supports: forecast"):
            build_model(name, prepared)
    with pytest.raises(UrbanstError, match="ridge.*supports: forecast"):
        run_benchmark(BenchmarkConfig(dataset="synthetic_grid", models=["last", "ridge"], task="classify", progress=False))


def test_benchmark_records_table_and_plots_for_classification(tmp_path):
    cfg = BenchmarkConfig(dataset="synthetic_grid", models=["history_rate", "last"], task="classify",
                          horizon=2, output=tmp_path, progress=False, task_options={"threshold": 20})
    records = run_benchmark(cfg)
    assert [r["model"] for r in records] == ["history_rate", "last"]
    for r in records:
        assert r["task"] == "classify"
        assert set(r["metrics"]) == {"recall", "precision", "macro_f1", "auroc", "accuracy", "positive_rate", "count"}
        assert 0 <= r["metrics"]["macro_f1"] <= 1 and len(r["per_step"]["macro_f1"]) == 2
        assert len(r["per_channel"]["recall"]) == 2
        assert r["metric_policy"] == "event = count >= 20; predicted when p > 0.5"
    table = results_table(records)
    assert "macro-F1" in table and "recall" in table and "MAE" not in table
    assert json.loads((tmp_path / "results.json").read_text())[0]["metrics"]["macro_f1"] == records[0]["metrics"]["macro_f1"]
    for png in ("error_per_step.png", "forecasts.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    assert "macro-F1" in (tmp_path / "results.md").read_text()


def test_cli_classify_benchmark_prints_macro_f1(capsys, tmp_path):
    code = main(["benchmark", "--task", "classify", "--dataset", "synthetic_grid", "--models", "history_rate,last",
                 "--horizon", "1", "--event-threshold", "20", "--data-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "macro-F1" in out and "recall" in out and "event = count >= 20" in out
    code = main(["benchmark", "--dataset", "synthetic_grid", "--models", "last", "--event-threshold", "3",
                 "--data-dir", str(tmp_path)])
    assert code == 2 and "--task classify" in capsys.readouterr().err
