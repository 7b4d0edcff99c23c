"""The imputation task: masks, the AQI-36 protocol on the real data, the seeded hidden share, window
tiling, and the imputation baselines against hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from urbanst.data.container import STData
from urbanst.data.impute_windows import segments, tiling
from urbanst.data.masking import seeded_share, training_hide
from urbanst.data.registry import load_dataset
from urbanst.data.splits import SplitRule
from urbanst.data.synthetic import make_city
from urbanst.engine.benchmark import BenchmarkConfig, run_benchmark
from urbanst.errors import UrbanstError
from urbanst.models.base import STModel
from urbanst.models.registry import model_class
from urbanst.contract import DataSpec
from urbanst.tasks import make_task
from urbanst.tasks.impute import ImputeTask


@pytest.fixture(scope="module")
def city() -> STData:
    return make_city("region", num_units=12, weeks=2, name="tiny_city")


@pytest.fixture(scope="module")
def aqi36(data_root):
    data = load_dataset("aqi36", str(data_root))
    task = ImputeTask()
    return data, task, task.windows(data, task.fit_scaler(data))


def everything(windows) -> dict:
    return windows.__getitems__(list(range(len(windows))))


def scored_entries(windows, T: int) -> np.ndarray:
    """``[T, N, C]`` how many times each entry is scored over all windows."""
    batch = everything(windows)
    steps = (batch["origin"][:, None] + torch.arange(windows.length)).reshape(-1)
    counts = torch.zeros(T, *batch["target_mask"].shape[2:], dtype=torch.long)
    counts.index_add_(0, steps, batch["target_mask"].flatten(0, 1).long())
    return counts.numpy()


# -- masks ------------------------------------------------------------------------------------
def test_input_and_target_masks_never_overlap_in_any_split(city):
    task = ImputeTask(history=12)
    windows = task.windows(city, task.fit_scaler(city))
    for split, w in windows.items():
        batch = everything(w)
        assert not (batch["input_mask"] & batch["target_mask"]).any(), split
        assert batch["target_mask"].any(), split
        observed = torch.from_numpy(city.observed_mask)[batch["origin"][:, None] + torch.arange(12)]
        assert not (batch["target_mask"] & ~observed).any() and not (batch["input_mask"] & ~observed).any()
        assert (batch["x"][~batch["input_mask"]] == 0).all() and (batch["y"][~batch["target_mask"]] == 0).all()
        assert batch["x"].shape == batch["y"].shape == (len(w), 12, 12, 2)
        assert batch["time_of_day"].shape == (len(w), 12)


def test_training_hides_only_visible_entries_and_scores_exactly_those(city):
    task = ImputeTask(history=12)
    train = task.windows(city, task.fit_scaler(city), splits=("train",))["train"]
    torch.manual_seed(0)
    batch = train.__getitems__(list(range(64)))
    visible = train.visible[batch["origin"][:, None] + torch.arange(12)]
    assert ((batch["input_mask"] | batch["target_mask"]) == visible).all()
    share = batch["target_mask"].sum() / visible.sum()
    assert 0.05 < share < 0.6
    again = train.__getitems__(list(range(64)))  # a fresh pattern per batch
    assert not torch.equal(again["target_mask"], batch["target_mask"])


def test_training_hide_patterns_stay_inside_the_visible_entries():
    torch.manual_seed(1)
    visible = torch.rand(32, 24, 10, 2) < 0.7
    hidden = training_hide(visible, rate=(0.2, 0.4))
    assert not (hidden & ~visible).any() and hidden.any()
    blocks = training_hide(torch.ones(32, 24, 10, 2, dtype=torch.bool), rate=(0.2, 0.4), block_share=1.0, noise=0.0)
    series = blocks.permute(0, 2, 3, 1).reshape(-1, 24).numpy()
    assert series.any(1).mean() > 0.1
    assert all(len(segments(row)) <= 1 for row in series)  # a sensor failure is one contiguous run


def test_seeded_share_is_deterministic_and_hides_only_observed_entries(city):
    a = seeded_share(city.observed_mask, 0.2, seed=3)
    b = seeded_share(city.observed_mask, 0.2, seed=3)
    assert np.array_equal(a, b)
    assert not (a & ~city.observed_mask).any()
    assert a.sum() == round(0.2 * city.observed_mask.sum())
    assert not np.array_equal(a, seeded_share(city.observed_mask, 0.2, seed=4))
    plan1, plan2 = ImputeTask(history=12).plan(city), ImputeTask(history=12, hidden_share=0.2).plan(city)
    assert np.array_equal(plan1.hidden, plan2.hidden)  # the run seed plays no part


def test_other_datasets_score_the_seeded_share_in_val_and_test_chronologically(city):
    task = ImputeTask(history=12, hidden_share=0.3)
    plan = task.plan(city)
    T = city.num_steps
    t1, t2 = SplitRule().boundaries(T)
    assert plan.steps["test"].nonzero()[0].min() == t2 and plan.steps["val"].nonzero()[0].min() == t1
    windows = task.windows(city, task.fit_scaler(city))
    for split in ("val", "test"):
        counts = scored_entries(windows[split], T)
        assert counts.max() == 1
        assert np.array_equal(counts == 1, plan.hidden & plan.steps[split][:, None, None])
    assert "seeded 30%" in task.split_description(city)


def test_a_series_too_short_for_a_chronological_split_is_split_in_sample():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(11, 30, 1)).astype(np.float32)
    values[rng.random(values.shape) < 0.3] = np.nan
    data = STData("short", values, np.isfinite(values), pd.date_range("2017-05-14", periods=11, freq="D"),
                  ["sst"], ["C"], "Sea", coords=rng.uniform(36, 37, (30, 2)))
    task = ImputeTask(history=5)
    plan = task.plan(data)
    assert "in-sample" in plan.text
    assert not (plan.scored["val"] & plan.scored["test"]).any()
    assert not ((plan.scored["val"] | plan.scored["test"]) & ~data.observed_mask).any()
    assert abs(plan.scored["test"].sum() / data.observed_mask.sum() - 0.2) < 0.01
    windows = task.windows(data, task.fit_scaler(data))
    assert len(windows["train"]) == 7
    for split in ("val", "test"):
        assert np.array_equal(scored_entries(windows[split], 11), plan.scored[split].astype(int))


def test_tiling_covers_each_step_once_and_keeps_the_last_partial_window():
    assert tiling([(0, 10)], 4, 10).tolist() == [[0, 0, 4], [4, 4, 8], [6, 8, 10]]
    assert tiling([(2, 5), (20, 28)], 4, 30).tolist() == [[1, 2, 5], [20, 20, 24], [24, 24, 28]]
    assert segments(np.array([0, 1, 1, 0, 1], dtype=bool)) == [(1, 3), (4, 5)]
    with pytest.raises(UrbanstError):
        tiling([(0, 3)], 4, 3)


def test_window_length_comes_from_history_and_horizon_must_agree():
    assert make_task("impute", None, None, SplitRule()).history == 36
    assert make_task("impute", 24, None, SplitRule()).horizon == 24
    assert make_task("impute", 24, 24, SplitRule()).history == 24
    with pytest.raises(UrbanstError, match="must equal"):
        make_task("impute", 24, 12, SplitRule())
    assert make_task("forecast", None, None, SplitRule()).history == 12


def test_forecast_models_refuse_the_impute_task_and_impute_models_the_forecast_task():
    with pytest.raises(UrbanstError, match="cannot do the impute task"):
        run_benchmark(BenchmarkConfig(dataset="synthetic_region", models=["last"], task="impute", progress=False))
    with pytest.raises(UrbanstError, match="cannot do the forecast task"):
        run_benchmark(BenchmarkConfig(dataset="synthetic_region", models=["linear"], progress=False))


def test_benchmark_writes_a_table_and_an_imputation_plot(tmp_path):
    records = run_benchmark(BenchmarkConfig(dataset="synthetic_region", models=["mean", "locf", "linear", "idw"],
                                            task="impute", history=24, output=tmp_path, progress=False))
    mae = {r["model"]: r["metrics"]["mae"] for r in records}
    assert mae["linear"] < mae["mean"] and mae["locf"] < mae["mean"]
    assert records[0]["history"] == records[0]["horizon"] == 24 and "seeded 20%" in records[0]["split"]
    assert "non-overlapping" in records[0]["metric_policy"]
    assert (tmp_path / "forecasts.png").stat().st_size > 0 and (tmp_path / "results.md").is_file()


# -- the AQI-36 protocol on the real data ---------------------------------------------------------
def test_aqi36_scores_exactly_the_eval_mask_in_the_test_months_once(aqi36):
    data, _, windows = aqi36
    counts = scored_entries(windows["test"], data.num_steps)
    test_months = np.isin(data.timestamps.month, [3, 6, 9, 12])
    assert counts.max() == 1
    assert counts.sum() == 20_434  # PROVENANCE.md
    assert np.array_equal(counts == 1, data.eval_mask & test_months[:, None, None])


def test_aqi36_validation_is_the_stretch_before_each_test_month_and_never_a_test_month(aqi36):
    data, task, windows = aqi36
    counts = scored_entries(windows["val"], data.num_steps)
    steps = task.plan(data).steps
    assert set(data.timestamps.month[steps["val"]]) == {2, 5, 8, 11}
    assert segments(steps["val"]) == [(a - 146, a) for a, _ in segments(np.isin(data.timestamps.month, [3, 6, 9, 12]))]
    assert counts.max() == 1 and not np.isin(data.timestamps.month[counts.any((1, 2))], [3, 6, 9, 12]).any()
    assert np.array_equal(counts == 1, data.eval_mask & steps["val"][:, None, None])
    assert not (steps["train"] & (steps["val"] | steps["test"])).any()
    assert (steps["train"] | steps["val"] | steps["test"]).all()


def test_no_aqi36_eval_entry_is_visible_to_a_model_in_any_split(aqi36):
    data, _, windows = aqi36
    eval_mask = torch.from_numpy(data.eval_mask)
    for split, w in windows.items():
        assert not (w.visible & eval_mask).any(), split
        torch.manual_seed(0)
        batch = everything(w)
        steps = batch["origin"][:, None] + torch.arange(36)
        assert not (batch["input_mask"] & eval_mask[steps]).any(), split
        assert (batch["x"][eval_mask[steps]] == 0).all()


def test_aqi36_scaler_sees_only_visible_training_values(aqi36):
    data, task, _ = aqi36
    train = task.plan(data).steps["train"]
    keep = data.observed_mask[train] & ~data.eval_mask[train]
    expected = data.values[train][keep]
    scaler = task.fit_scaler(data)
    assert scaler.mean[0] == pytest.approx(expected.mean(), rel=1e-5)
    assert scaler.std[0] == pytest.approx(expected.std(), rel=1e-4)


def test_aqi36_evaluation_counts_every_scored_entry(aqi36):
    data, task, windows = aqi36
    model = model_class("linear").build(task.data_spec(data))
    result = task.evaluate(model, windows["test"], 64, progress=False)
    assert result.metrics["count"] == 20_434
    assert "months 3,6,9,12" in result.mape_policy
    assert len(result.sample["origin"]) == len(set(result.sample["origin"].tolist()))


# -- baselines by hand ------------------------------------------------------------------------------
NAN = float("nan")


def window_batch(series: list[list[float]]) -> dict:
    """One window ``[1, L, N, 1]`` from per-unit lists (NaN = not visible), identity scaler."""
    values = torch.tensor(series, dtype=torch.float32).T[None, :, :, None]
    mask = ~torch.isnan(values)
    return {"x": torch.nan_to_num(values), "input_mask": mask, "y": torch.zeros_like(values), "target_mask": ~mask,
            "scale_mean": torch.zeros(1, 1), "scale_std": torch.ones(1, 1)}


def spec(N: int, L: int = 5, **kw) -> DataSpec:
    return DataSpec(dataset="hand", num_units=N, num_channels=1, history=L, horizon=L, task="impute", **kw)


def run(name: str, batch: dict, **kw) -> list[list[float]]:
    model = model_class(name).build(spec(batch["x"].shape[2], batch["x"].shape[1], **kw))
    return model(batch).prediction[0, :, :, 0].T.tolist()


def test_locf_by_hand():
    batch = window_batch([[1, NAN, 3, NAN, NAN], [NAN, 2, NAN, 4, NAN], [NAN] * 5])
    assert run("locf", batch) == [[1, 1, 3, 3, 3], [2, 2, 2, 4, 4], [0, 0, 0, 0, 0]]


def test_linear_interpolation_by_hand():
    batch = window_batch([[1, NAN, 3, NAN, NAN], [NAN, 2, NAN, 4, NAN], [0, NAN, NAN, NAN, 4], [NAN] * 5])
    assert run("linear", batch) == [[1, 2, 3, 3, 3], [2, 2, 3, 4, 4], [0, 1, 2, 3, 4], [0, 0, 0, 0, 0]]


def test_mean_is_the_training_mean_of_the_visible_entries():
    values = np.array([[1, 10], [3, np.nan], [5, 30], [7, 40]] + [[100, 100]] * 4, dtype=np.float32)[:, :, None]
    data = STData("hand", values, np.isfinite(values), pd.date_range("2024-01-01", periods=8, freq="h"), ["v"], ["u"], "X")
    task = ImputeTask(history=2, split=SplitRule(0.5, 0.25), hidden_share=0.5)  # train = steps 0..3, val 4..5, test 6..7
    scaler = task.fit_scaler(data)
    windows = task.windows(data, scaler, splits=("train",))
    model = model_class("mean").build(task.data_spec(data))
    model.fit_closed_form(windows["train"])
    hidden = task.plan(data).hidden[:4]
    assert "chronological" in task.split_description(data) and hidden.sum() >= 1  # some training values are hidden
    seen = [[v for v, h in zip(values[:4, n, 0], hidden[:, n, 0]) if np.isfinite(v) and not h] for n in range(2)]
    assert sum(map(len, seen)) == 7 - hidden.sum()
    # a unit with no visible training value gets the channel's training mean (0 in scaled units)
    expected = [np.mean(v) if v else float(scaler.mean[0]) for v in seen]
    got = scaler.inverse(model.mean.numpy()[:, 0:1]).ravel()
    assert got == pytest.approx(expected)


def test_idw_by_hand_on_the_equator_and_its_fallback():
    coords = np.array([[0.0, 0.0], [0.0, 0.01], [0.0, 0.03]])  # distances from unit 0 in the ratio 1 : 3
    batch = window_batch([[NAN, NAN], [1, NAN], [4, NAN]])
    model = model_class("idw").build(spec(3, 2, coords=coords))
    model.mean.copy_(torch.tensor([[7.0], [8.0], [9.0]]))
    out = model(batch).prediction[0, :, :, 0]
    assert out[0, 0].item() == pytest.approx((1 + 4 / 9) / (1 + 1 / 9), rel=1e-4)  # = 1.3
    assert out[1].tolist() == [7.0, 8.0, 9.0]  # nobody visible at step 1: each unit's training mean


def test_idw_from_adjacency_and_its_nearest_neighbours():
    adjacency = np.array([[0, 1, 3], [1, 0, 0], [3, 0, 0]], dtype=np.float32)
    batch = window_batch([[NAN], [2], [6]])
    out = model_class("idw").build(spec(3, 1, adjacency=adjacency))(batch).prediction[0, 0, :, 0]
    assert out[0].item() == pytest.approx((1 * 2 + 3 * 6) / 4)
    near = model_class("idw").build(spec(3, 1, adjacency=adjacency), neighbours=1)
    assert near(batch).prediction[0, 0, 0, 0].item() == pytest.approx(6.0)


def test_baselines_save_and_load(tmp_path):
    coords = np.array([[0.0, 0.0], [0.0, 0.01], [0.0, 0.03]])
    model = model_class("idw").build(spec(3, 2, coords=coords))
    model.save_pretrained(tmp_path / "idw")
    again = STModel.from_pretrained(tmp_path / "idw")
    batch = window_batch([[NAN, 2], [1, NAN], [4, 5]])
    assert torch.equal(model(batch).prediction, again(batch).prediction)


def test_a_window_longer_than_the_series_names_the_longest_that_fits():
    city = make_city("region", num_units=5, weeks=1, seed=0)
    data = STData("short", city.values[:11], city.observed_mask[:11], city.timestamps[:11], city.attributes, city.units,
                  city.city)
    with pytest.raises(UrbanstError, match="use --history 11 or shorter") as err:
        ImputeTask().windows(data, ImputeTask().fit_scaler(data))
    assert "\n" not in str(err.value)
