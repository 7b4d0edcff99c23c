"""Baselines: hand-checked forecasts, closed-form fits, save/load round trips, refused model folders,
and the published-protocol numbers on real data."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from urbanst.data.container import STData
from urbanst.data.registry import load_dataset
from urbanst.data.splits import SplitRule
from urbanst.data.synthetic import make_city
from urbanst.engine.benchmark import BenchmarkConfig, run_benchmark
from urbanst.errors import UrbanstError
from urbanst.evaluation.tables import row_label
from urbanst.models.base import STModel
from urbanst.models.registry import model_class
from urbanst.models.baselines.ha import HistoricalAverage
from urbanst.models.baselines.naive import LastValue, NaiveConfig
from urbanst.models.baselines.ridge import Ridge
from urbanst.tasks.forecast import ForecastTask

BASELINES = ["ha", "last", "seasonal_day", "seasonal_week", "ridge"]


def series(values: np.ndarray, start: str = "2024-01-01", freq: str = "1h") -> STData:
    """STData from ``values [T, N, C]`` with NaN as missing."""
    values = np.asarray(values, dtype=np.float32)
    C = values.shape[2]
    return STData("tiny", values, np.isfinite(values), pd.date_range(start, periods=len(values), freq=freq),
                  [f"a{i}" for i in range(C)], ["u"] * C, "Test City")


def ramp(T: int, N: int = 2, missing=(), **kw) -> STData:
    """values[t, n, 0] = 100 * n + t + 1."""
    values = (100 * np.arange(N)[None, :] + np.arange(T)[:, None] + 1.0)[:, :, None]
    for idx in missing:
        values[idx] = np.nan
    return series(values, **kw)


def all_windows(windows) -> dict:
    return windows.__getitems__(list(range(len(windows))))


def predict(model, windows) -> torch.Tensor:
    """Forecast of every window in original units."""
    model.eval()
    with torch.no_grad():
        return model.scaler.inverse(model(all_windows(windows)).prediction)


def fitted(name: str, task: ForecastTask, data: STData, **options):
    scaler = task.fit_scaler(data)
    windows = task.windows(data, scaler)
    model = model_class(name).build(task.data_spec(data), **options)
    model.scaler = scaler
    model.fit_closed_form(windows["train"])
    return model, windows


@pytest.fixture(scope="module")
def small_city():
    data = make_city("grid", grid=(4, 4), weeks=4, seed=5)
    task = ForecastTask(history=12, horizon=6)
    scaler = task.fit_scaler(data)
    return data, task, scaler, task.windows(data, scaler)


# ----------------------------------------------------------------------------------------
# last value and seasonal naive
# ----------------------------------------------------------------------------------------
def test_last_value_is_the_last_observed_value_by_hand():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1, 1).repeat(1, 1, 3, 1)  # [B=1, H=4, N=3, C=1]
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[0, 3, 0, 0] = False  # unit 0: last step missing -> 3
    mask[0, 1:, 1, 0] = False  # unit 1: only the first step observed -> 1
    mask[0, :, 2, 0] = False  # unit 2: nothing observed -> 0, the scaled mean
    model = LastValue(NaiveConfig(horizon=2))
    out = model({"x": x, "input_mask": mask}).prediction
    assert out.shape == (1, 2, 3, 1)
    assert out[0, :, :, 0].tolist() == [[3.0, 1.0, 0.0], [3.0, 1.0, 0.0]]


def test_last_value_through_the_task_skips_missing_inputs():
    # unit 0 misses steps 22 and 23; unit 1 misses step 23
    data = ramp(30, missing=[(22, 0, 0), (23, 0, 0), (23, 1, 0)])
    task = ForecastTask(history=4, horizon=3, split=SplitRule(0.6, 0.2))  # test = [24, 30)
    model, w = fitted("last", task, data)
    pred = predict(model, w["test"])
    assert w["test"].origins.tolist() == [24, 25, 26, 27]
    # origin 24: inputs 20..23 -> unit 0 last observed is step 21 (value 22), unit 1 is step 22 (value 123)
    torch.testing.assert_close(pred[0, :, :, 0], torch.tensor([[22.0, 123.0]] * 3))
    # origin 25: inputs 21..24 -> both units observed at step 24
    torch.testing.assert_close(pred[1, :, :, 0], torch.tensor([[25.0, 125.0]] * 3))


@pytest.mark.parametrize("name, lag", [("seasonal_day", 24), ("seasonal_week", 168)])
def test_seasonal_naive_copies_one_period_back_and_falls_back_to_last(name, lag):
    T = 168 * 2 + 72
    missing = [(150, 0, 0), (151, 0, 0), (300, 1, 0), (320, 0, 0), (321, 0, 0)]
    data = ramp(T, missing=missing)
    task = ForecastTask(history=4, horizon=3, split=SplitRule(0.6, 0.2))
    model, windows = fitted(name, task, data)
    observed = data.observed_mask[:, :, 0]
    checked = {"seasonal": 0, "before start": 0, "missing": 0}
    for split in ("train", "val", "test"):
        pred = predict(model, windows[split])
        for i, o in enumerate(windows[split].origins.tolist()):
            for n in range(2):
                seen = [t for t in range(o - 4, o) if observed[t, n]]
                for p in range(3):
                    src = o + p - lag
                    if src >= 0 and observed[src, n]:
                        expected = 100 * n + src + 1
                        checked["seasonal"] += 1
                    else:
                        expected = 100 * n + seen[-1] + 1
                        checked["before start" if src < 0 else "missing"] += 1
                    assert pred[i, p, n, 0].item() == pytest.approx(expected, rel=1e-5), (split, o, p, n)
    assert all(checked.values()), checked


def test_seasonal_naive_needs_a_step_that_divides_the_period():
    data = ramp(80, freq="11min")
    spec = ForecastTask(history=3, horizon=2).data_spec(data)
    assert spec.lags == []
    for name in ("seasonal_day", "seasonal_week"):
        with pytest.raises(UrbanstError, match="divides"):
            model_class(name).build(spec)


# ----------------------------------------------------------------------------------------
# historical average
# ----------------------------------------------------------------------------------------
def test_historical_average_is_the_mean_per_slot_of_the_week_by_hand():
    # daily from Monday 2024-01-01; unit 0 = day index, unit 1 = twice the day index; day 14 missing for unit 0
    T = 40
    values = np.stack([np.arange(T), 2 * np.arange(T)], 1)[:, :, None].astype(float)
    values[14, 0, 0] = np.nan
    data = series(values, freq="D")
    task = ForecastTask(history=2, horizon=1, split=SplitRule(0.7, 0.1))  # train = days 0..27, four weeks
    model, w = fitted("ha", task, data)
    assert model.config.steps_per_day == 1
    # unit 0: Monday 0, 7, (14 missing), 21 -> 28/3; Tuesday 1, 8, 15, 22 -> 11.5; ... Sunday 6, 13, 20, 27 -> 16.5
    unit0 = [28 / 3, 11.5, 12.5, 13.5, 14.5, 15.5, 16.5]
    unit1 = [21.0, 23.0, 25.0, 27.0, 29.0, 31.0, 33.0]  # Monday 2 * (0 + 7 + 14 + 21) / 4 = 21, ...
    profile = model.scaler.inverse(model.profile)[:, :, 0]
    torch.testing.assert_close(profile, torch.tensor([unit0, unit1]).T)
    pred = predict(model, w["test"])  # test days 32..39
    for i, o in enumerate(w["test"].origins.tolist()):
        assert pred[i, 0, :, 0].tolist() == pytest.approx([unit0[o % 7], unit1[o % 7]], rel=1e-6)


def test_historical_average_falls_back_to_the_unit_mean_for_unseen_slots():
    # hourly from Monday 0h, train = steps 0..139 (to Saturday 19h): Sunday slots never seen in training
    data = ramp(200)
    task = ForecastTask(history=2, horizon=1, split=SplitRule(0.7, 0.1))
    model, w = fitted("ha", task, data)
    pred = predict(model, w["test"])  # steps 160..199: Sunday 16h..23h, then Monday 0h..7h of week 2
    for i, o in enumerate(w["test"].origins.tolist()):
        for n in range(2):
            expected = 100 * n + (70.5 if o < 168 else o - 168 + 1)  # unit mean of steps 0..139, or Monday's value
            assert pred[i, 0, n, 0].item() == pytest.approx(expected, rel=1e-5), (o, n)


# ----------------------------------------------------------------------------------------
# ridge
# ----------------------------------------------------------------------------------------
def test_ridge_recovers_a_known_linear_relation_exactly():
    # y_t = 2 cos(w) y_{t-1} - y_{t-2} + 10 (2 - 2 cos(w)) holds exactly for y_t = 10 + A sin(w t + phi);
    # the 11-minute step divides neither a day nor a week, so the features are the two lags and a bias.
    T, N, w = 400, 6, 2 * math.pi / 10.3
    rng = np.random.default_rng(0)
    amp, phase = rng.uniform(1, 5, N), rng.uniform(0, 2 * math.pi, N)
    t = np.arange(T)[:, None]
    values = (10 + amp * np.sin(w * t + phase))[:, :, None]
    data = series(values, freq="11min")
    task = ForecastTask(history=2, horizon=3)
    model, windows = fitted("ridge", task, data, alpha=0.0)
    assert model.num_features == 3
    a, b, k = 2 * math.cos(w), -1.0, 10 * (2 - 2 * math.cos(w))
    m, s = float(model.scaler.mean[0]), float(model.scaler.std[0])
    # in scaled units z = (y - m) / s the relation keeps its slopes and moves the bias
    expected = torch.tensor([b, a, (k + (a + b - 1) * m) / s], dtype=torch.float32)
    torch.testing.assert_close(model.weight[0], expected, atol=1e-4, rtol=1e-4)
    for split in ("val", "test"):
        batch = all_windows(windows[split])
        torch.testing.assert_close(predict(model, windows[split]), batch["y"], atol=1e-3, rtol=0)


def test_ridge_periodic_reads_the_day_before_the_inputs():
    # A random profile that repeats every 25 hours: y_t = y_{t-25}, the value one day before the last input step,
    # is in ridge_periodic's features; no linear rule over ridge's (the lags, one day before the target, the
    # calendar) gives it. Training keeps the windows whose day-before values all lie inside the series.
    rng = np.random.default_rng(1)
    T, N = 6 * 7 * 24, 4
    t = np.arange(T)[:, None]
    values = (rng.uniform(50, 100, (25, N))[t[:, 0] % 25])[:, :, None]
    data = series(values)
    task = ForecastTask(history=2, horizon=1, periodic_lags=("1d",))
    scaler = task.fit_scaler(data)
    windows = task.windows(data, scaler)
    windows["train"].origins = windows["train"].origins[windows["train"].origins >= 2 + 24]
    errors = {}
    for name in ("ridge", "ridge_periodic"):
        model = model_class(name).build(task.data_spec(data), alpha=1e-6)
        model.scaler = scaler
        model.fit_closed_form(windows["train"])
        errors[name] = float((predict(model, windows["test"]) - all_windows(windows["test"])["y"]).abs().max())
    assert model.num_features == 2 + (1 + 2) + 24 + 7 + 1  # lags, the day before the window's 3 steps, calendar, bias
    assert errors["ridge_periodic"] < 1e-2 < 1.0 < errors["ridge"], errors


def test_ridge_beats_last_value_on_the_synthetic_city(small_city):
    data, task, scaler, windows = small_city
    mae = {}
    for name in ("ridge", "last"):
        model = model_class(name).build(task.data_spec(data))
        model.scaler = scaler
        model.fit_closed_form(windows["train"])
        mae[name] = task.evaluate(model, windows["test"], batch_size=256, progress=False).metrics["mae"]
    assert mae["ridge"] < 0.8 * mae["last"], mae


def test_last_value_mae_matches_a_brute_force_computation(small_city):
    data, task, scaler, windows = small_city
    model = LastValue(NaiveConfig(horizon=task.horizon))
    model.scaler = scaler
    metrics = task.evaluate(model, windows["test"], batch_size=100, progress=False).metrics
    values, observed = data.values, data.observed_mask
    abs_err, count = 0.0, 0
    for o in windows["test"].origins.tolist():
        for n in range(data.num_units):
            for c in range(data.num_channels):
                past = [t for t in range(o - task.history, o) if observed[t, n, c]]
                guess = values[past[-1], n, c] if past else scaler.mean[c]
                for t in range(o, o + task.horizon):
                    if observed[t, n, c]:
                        abs_err += abs(float(values[t, n, c]) - float(guess))
                        count += 1
    assert metrics["count"] == count
    assert metrics["mae"] == pytest.approx(abs_err / count, rel=1e-5)


# ----------------------------------------------------------------------------------------
# save_pretrained / from_pretrained
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BASELINES)
def test_save_and_load_round_trip(name, small_city, tmp_path):
    data, task, scaler, windows = small_city
    model = model_class(name).build(task.data_spec(data))
    model.scaler = scaler
    model.fit_closed_form(windows["train"])
    folder = model.save_pretrained(tmp_path / name)
    assert {"config.json", "model.safetensors", "scaler.json"} <= {p.name for p in folder.iterdir()}
    meta = json.loads((folder / "config.json").read_text())
    assert meta["model"] == name and "urbanst_version" in meta
    assert not any(p.suffix in {".bin", ".pt", ".pkl"} for p in folder.iterdir())

    loaded = STModel.from_pretrained(folder)
    assert type(loaded) is type(model)
    assert dataclasses.asdict(loaded.config) == dataclasses.asdict(model.config)
    np.testing.assert_array_equal(loaded.scaler.mean, scaler.mean)
    np.testing.assert_array_equal(loaded.scaler.std, scaler.std)
    for key, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key
    assert torch.equal(predict(loaded, windows["test"]), predict(model, windows["test"]))
    # the concrete class loads its own kind and refuses another's
    assert type(type(model).from_pretrained(folder)) is type(model)
    other = Ridge if name != "ridge" else HistoricalAverage
    with pytest.raises(UrbanstError, match="not a"):
        other.from_pretrained(folder)


class _Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture
def saved_ha(small_city, tmp_path):
    data, task, scaler, windows = small_city
    model = model_class("ha").build(task.data_spec(data))
    model.scaler = scaler
    model.fit_closed_form(windows["train"])
    return model.save_pretrained(tmp_path / "ha")


def test_pickled_weights_are_refused(saved_ha, tmp_path):
    marker = tmp_path / "pwned"
    (saved_ha / "model.safetensors").unlink()
    (saved_ha / "pytorch_model.bin").write_bytes(pickle.dumps(_Hostile(marker)))
    with pytest.raises(UrbanstError, match=r"no model\.safetensors.*pytorch_model\.bin.*never from pickles"):
        STModel.from_pretrained(saved_ha)
    assert not marker.exists()


def test_missing_folder_is_refused(tmp_path):
    with pytest.raises(UrbanstError, match="not found"):
        STModel.from_pretrained(tmp_path / "nothing")


@pytest.mark.parametrize(
    "text, match",
    [
        ("{not json", "malformed JSON"),
        ("[1, 2, 3]", "malformed"),
        ('{"model": "ha"}', "malformed"),
        ('{"model": 3, "config": {}}', "malformed"),
        ('{"model": "no_such_model", "config": {}}', "unknown model"),
        ('{"model": "ha", "config": {"num_units": 16}}', "does not fit"),
        ('{"model": "ha", "config": {"num_units": 16, "num_channels": 2, "horizon": 6, "history": 12, "bogus": 1}}',
         "does not fit"),
    ],
)
def test_malformed_config_is_refused(saved_ha, text, match):
    (saved_ha / "config.json").write_text(text)
    with pytest.raises(UrbanstError, match=match):
        STModel.from_pretrained(saved_ha)


def test_missing_config_is_refused(saved_ha):
    (saved_ha / "config.json").unlink()
    with pytest.raises(UrbanstError, match="not found"):
        STModel.from_pretrained(saved_ha)


@pytest.mark.parametrize("damage", ["truncate", "random", "empty", "header"])
def test_corrupted_safetensors_are_refused(saved_ha, damage):
    path = saved_ha / "model.safetensors"
    good = path.read_bytes()
    bad = {
        "truncate": good[: len(good) // 2],
        "random": np.random.default_rng(0).bytes(len(good)),
        "empty": b"",
        "header": good[:8] + b"{" * 20 + good[28:],
    }[damage]
    path.write_bytes(bad)
    with pytest.raises(UrbanstError, match="corrupted or unreadable"):
        STModel.from_pretrained(saved_ha)


def test_weights_of_another_shape_or_name_are_refused(saved_ha, tmp_path):
    from safetensors.torch import save_file

    path = saved_ha / "model.safetensors"
    save_file({"profile": torch.zeros(3, 3, 3)}, str(path))
    with pytest.raises(UrbanstError, match="shape"):
        STModel.from_pretrained(saved_ha)
    save_file({"something_else": torch.zeros(1)}, str(path))
    with pytest.raises(UrbanstError, match="do not match"):
        STModel.from_pretrained(saved_ha)


def test_a_bad_scaler_file_is_refused(saved_ha):
    (saved_ha / "scaler.json").write_text('{"kind": "minmax"}')
    with pytest.raises(UrbanstError, match="scaler"):
        STModel.from_pretrained(saved_ha)


# ----------------------------------------------------------------------------------------
# real data: the published protocol, 12 steps in, 12 out, 70/10/20
# ----------------------------------------------------------------------------------------
def test_naive_baselines_reproduce_independent_numbers_on_nyc_bike(data_root):
    records = run_benchmark(BenchmarkConfig(dataset="nyc_bike", models=["ha", "last", "seasonal"],
                                            data_dir=str(data_root), batch_size=1024, progress=False))
    got = {r["model"]: (r["metrics"]["mae"], r["metrics"]["rmse"]) for r in records}
    expected = {
        "ha": (14.02, 25.37),
        "last": (27.88, 46.35),
        "seasonal_day": (10.84, 21.10),
        "seasonal_week": (10.68, 20.66),
    }
    assert set(got) == set(expected)
    for name, (mae, rmse) in expected.items():
        assert got[name][0] == pytest.approx(mae, abs=0.005), name
        assert got[name][1] == pytest.approx(rmse, abs=0.005), name
    assert {r["history"] for r in records} == {12} and {r["horizon"] for r in records} == {12}


def test_ridge_beats_last_value_on_five_weeks_of_nyc_bike(data_root):
    full = load_dataset("nyc_bike", data_root)
    T = 168 * 5
    assert full.exogenous is None and full.eval_mask is None
    data = dataclasses.replace(full, values=full.values[:T].copy(), observed_mask=full.observed_mask[:T].copy(),
                               timestamps=full.timestamps[:T])
    task = ForecastTask(history=12, horizon=12)
    scaler = task.fit_scaler(data)
    windows = task.windows(data, scaler)
    metrics = {}
    for name in ("ridge", "last"):
        model = model_class(name).build(task.data_spec(data))
        model.scaler = scaler
        model.fit_closed_form(windows["train"])
        metrics[name] = task.evaluate(model, windows["test"], batch_size=1024, progress=False).metrics
    assert metrics["ridge"]["mae"] < 0.6 * metrics["last"]["mae"], metrics
    assert metrics["ridge"]["rmse"] < metrics["last"]["rmse"], metrics



def test_seasonal_naive_says_how_often_its_lag_was_missing():
    # five days of hourly data: one week back is before the series start for every window, one day back for none
    # of the scored ones
    values = np.arange(5 * 24, dtype=np.float64)[:, None, None] % 24 + 1.0
    data = series(values)
    task = ForecastTask(history=24, horizon=3)
    shares = {}
    for name in ("seasonal_day", "seasonal_week", "last"):
        model, windows = fitted(name, task, data)
        shares[name] = task.evaluate(model, windows["test"], progress=False).metrics.get("fallback_share")
    assert shares == {"seasonal_day": 0.0, "seasonal_week": 1.0, "last": None}
    record = {"model": "seasonal_week", "family": "baseline", "metrics": {"mae": 1.0, "fallback_share": 1.0}}
    assert row_label(record) == "seasonal_week (b) (lag missing: last value for 100%)"
    assert row_label({**record, "metrics": {"mae": 1.0, "fallback_share": 0.0}}) == "seasonal_week (b)"


def test_fracast_reads_its_context_and_falls_back_where_it_has_too_little():
    # a daily cycle: the foundation model, reading a week before the origin, follows it; a unit observed only in
    # the last 6 steps has too little context and gets its last value, marked as fallback
    T = 3 * 7 * 24
    hours = np.arange(T)[:, None, None]
    values = np.repeat(10 + 5 * np.sin(2 * np.pi * hours / 24), 2, axis=1).astype(np.float64)
    values[: T - 6, 1] = np.nan
    data = series(values)
    task = ForecastTask(history=12, horizon=6)
    model = model_class("fracast").build(task.data_spec(data), context=168)
    model.scaler = task.fit_scaler(data)
    test = task.windows(data, model.scaler)["test"]
    batch = test.with_context(168).__getitems__([len(test) - 1])
    assert batch["context"].shape == (1, 168, 2, 1)
    output = model(batch)
    truth = (torch.as_tensor(values[T - 6:, 0, 0]) - float(model.scaler.mean[0])) / float(model.scaler.std[0])
    assert not output.fallback[0, :, 0].any() and output.fallback[0, :, 1].all()
    assert float((output.prediction[0, :, 0, 0] - truth).abs().max()) < 0.2  # scaled units; the cycle's range is ~2


def test_chronos_reads_a_local_checkpoint_and_its_forecast_follows_the_series_scale(tiny_chronos):
    # Chronos normalises each series itself: shifting and stretching a unit's values shifts and stretches its
    # forecast the same way, even with random weights; a unit with too little context falls back to its last value
    pytest.importorskip("chronos")
    T = 3 * 7 * 24
    hours = np.arange(T)[:, None, None]
    base = 10 + 5 * np.sin(2 * np.pi * hours[:, 0, 0] / 24)
    values = np.stack([base, 3 * base + 40, base], axis=1)[..., None].astype(np.float64)
    values[: T - 10, 2] = np.nan  # 4 observed inputs before the last origin
    data = series(values)
    task = ForecastTask(history=12, horizon=6)
    model = model_class("chronos").build(task.data_spec(data), context=48, path=tiny_chronos)
    model.scaler = task.fit_scaler(data)
    test = task.windows(data, model.scaler)["test"]
    batch = test.with_context(48).__getitems__([len(test) - 1])
    output = model(batch)
    forecast = output.prediction[0, :, :, 0] * float(model.scaler.std[0]) + float(model.scaler.mean[0])
    torch.testing.assert_close(forecast[:, 1], 3 * forecast[:, 0] + 40, rtol=1e-3, atol=1e-2)
    assert not output.fallback[0, :, :2].any() and output.fallback[0, :, 2].all()
    last = (values[T - 7, 2, 0] - float(model.scaler.mean[0])) / float(model.scaler.std[0])
    torch.testing.assert_close(output.prediction[0, :, 2, 0], torch.full((6,), last, dtype=output.prediction.dtype))


def test_chronos_without_a_checkpoint_folder_says_what_to_give(tmp_path):
    pytest.importorskip("chronos")
    spec = ForecastTask(history=12, horizon=6).data_spec(series(np.ones((400, 2, 1))))
    with pytest.raises(UrbanstError, match="chronos needs --option path=FOLDER"):
        model_class("chronos").build(spec, path=str(tmp_path / "absent"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(UrbanstError, match="not a readable Chronos checkpoint"):
        model_class("chronos").build(spec, path=str(tmp_path / "broken"))


def test_ridge_reads_any_number_of_channels_with_one_set_of_weights():
    # fit on a two-channel city, it forecasts each channel of another city as that channel alone: what lets it be
    # fit on a checkpoint's mixed corpus and scored on a target of other channels
    city = make_city("region", num_units=5, weeks=3, seed=4)
    task = ForecastTask(history=12, horizon=3)
    model = model_class("ridge_periodic").build(task.data_spec(city))
    model.scaler = task.fit_scaler(city)
    model.fit_closed_form(task.windows(city, model.scaler)["train"])
    assert model.channel_agnostic
    batch = task.windows(city, model.scaler)["test"].__getitems__([0, 4])
    both = model(batch).prediction
    for c in range(2):
        alone = {k: (v[..., c : c + 1] if torch.is_tensor(v) and v.dim() >= 4 and v.shape[-1] == 2 else v)
                 for k, v in batch.items()}
        torch.testing.assert_close(model(alone).prediction, both[..., c : c + 1])
