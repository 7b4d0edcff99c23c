"""Chronological splits and forecast windows, checked against hand-built series.

The tiny series are ramps (value = 100 * unit + step, per channel offset), so every number a
window holds can be predicted from its position. An identity scaler (mean 0, std 1) keeps the
scaled inputs equal to the raw values where that makes the arithmetic visible.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from urbanst.data.container import STData
from urbanst.data.scalers import StandardScaler
from urbanst.data.splits import SplitRule
from urbanst.data.synthetic import make_city
from urbanst.data.windows import forecast_origins
from urbanst.errors import UrbanstError
from urbanst.tasks.forecast import ForecastTask


def ramp(T: int, N: int = 2, C: int = 1, start: str = "2024-01-01", freq: str = "1h", missing=()) -> STData:
    """values[t, n, c] = 1000 * c + 100 * n + t + 1; ``missing`` lists (t, n, c) entries to hide."""
    t, n, c = np.meshgrid(np.arange(T), np.arange(N), np.arange(C), indexing="ij")
    values = (1000 * c + 100 * n + t + 1).astype(np.float32)
    mask = np.ones(values.shape, dtype=bool)
    for idx in missing:
        mask[idx] = False
    return STData(
        name="ramp",
        values=values,
        observed_mask=mask,
        timestamps=pd.date_range(start, periods=T, freq=freq),
        attributes=[f"a{i}" for i in range(C)],
        units=["u"] * C,
        city="Ramp City",
    )


def identity(C: int = 1) -> StandardScaler:
    return StandardScaler(np.zeros(C, np.float32), np.ones(C, np.float32))


def origins_of(windows) -> list[int]:
    return windows.origins.tolist()


def batch_of(windows) -> dict:
    return windows.__getitems__(list(range(len(windows))))


# ----------------------------------------------------------------------------------------
# splits
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "T, rule, expected",
    [
        (10, SplitRule(), (7, 8)),  # 70/10/20
        (100, SplitRule(), (70, 80)),
        (20, SplitRule(0.6, 0.2), (12, 16)),
        (7, SplitRule(), (5, 6)),  # 4.9 -> 5, 5.6 -> 6
        (30, SplitRule(0.5, 0.0), (15, 15)),  # no validation split
    ],
)
def test_split_boundaries_by_hand(T, rule, expected):
    assert rule.boundaries(T) == expected
    task = ForecastTask(history=1, horizon=1, split=rule)
    t1, t2 = expected
    assert task.boundaries(ramp(T)) == {"train": (0, t1), "val": (t1, t2), "test": (t2, T)}


@pytest.mark.parametrize("text, expected", [("70/10/20", (0.7, 0.1)), ("0.6,0.2", (0.6, 0.2)), ("80/0/20", (0.8, 0.0))])
def test_split_parse(text, expected):
    rule = SplitRule.parse(text)
    assert (rule.train, rule.val) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["90/20/10", "0/10/90", "70", "abc", "70/x/20", "", "1/2/3/4"])
def test_split_parse_refuses_bad_text(text):
    with pytest.raises(UrbanstError):
        SplitRule.parse(text)


# ----------------------------------------------------------------------------------------
# which windows each split holds
# ----------------------------------------------------------------------------------------
def test_window_origins_counted_by_hand():
    # T = 20, split 60/20/20 -> train [0, 12), val [12, 16), test [16, 20); history 3, horizon 2, stride 1.
    data = ramp(20)
    task = ForecastTask(history=3, horizon=2, split=SplitRule(0.6, 0.2))
    w = task.windows(data, identity())
    # train: inputs [o-3, o) >= 0 and targets [o, o+2) <= 12  ->  o = 3..10
    assert origins_of(w["train"]) == list(range(3, 11))
    # val: targets [o, o+2) inside [12, 16)  ->  o = 12, 13, 14 (inputs reach back into train)
    assert origins_of(w["val"]) == [12, 13, 14]
    # test: targets inside [16, 20)  ->  o = 16, 17, 18
    assert origins_of(w["test"]) == [16, 17, 18]
    assert [len(w[s]) for s in ("train", "val", "test")] == [8, 3, 3]


def test_windows_without_an_observed_target_are_dropped():
    T, N = 20, 2
    # steps 18 and 19 entirely missing; step 17 missing for unit 0 only (still a scored target for unit 1)
    missing = [(18, n, 0) for n in range(N)] + [(19, n, 0) for n in range(N)] + [(17, 0, 0)]
    data = ramp(T, N, missing=missing)
    w = ForecastTask(history=3, horizon=2, split=SplitRule(0.6, 0.2)).windows(data, identity())
    # o = 18 would score steps 18, 19 only: nothing observed -> dropped; o = 17 keeps unit 1 at step 17
    assert origins_of(w["test"]) == [16, 17]
    b = batch_of(w["test"])
    assert b["target_mask"][1].tolist() == [[[False], [True]], [[False], [False]]]


def test_val_and_test_hold_exactly_the_windows_whose_targets_lie_in_the_split():
    data = make_city("grid", grid=(3, 3), weeks=2, missing=0.3, events=False, seed=3)
    task = ForecastTask(history=6, horizon=4, split=SplitRule(0.6, 0.2))
    w = task.windows(data, task.fit_scaler(data))
    observed_step = data.observed_mask.reshape(data.num_steps, -1).any(1)
    for split, (first, last) in task.boundaries(data).items():
        expected = [
            o
            for o in range(data.num_steps)
            if o - task.history >= 0
            and first <= o and o + task.horizon <= last
            and observed_step[o:o + task.horizon].any()
        ]
        assert origins_of(w[split]) == expected, split
    t1 = task.boundaries(data)["train"][1]
    train = np.asarray(origins_of(w["train"]))
    assert (train - task.history >= 0).all() and (train + task.horizon <= t1).all()


def test_train_windows_lie_wholly_in_train_even_with_long_history():
    data = ramp(50)
    task = ForecastTask(history=10, horizon=5, split=SplitRule(0.6, 0.2))  # train [0, 30), val [30, 40)
    w = task.windows(data, identity())
    assert origins_of(w["train"]) == list(range(10, 26))
    # val inputs reach back 10 steps into train: allowed, the targets are all in val
    assert origins_of(w["val"]) == list(range(30, 36))
    b = batch_of(w["train"])
    touched = b["origin"][:, None] + torch.arange(-10, 5)
    assert int(touched.min()) == 0 and int(touched.max()) == 29


def test_forecast_origins_stride():
    mask = torch.ones(30, 1, 1, dtype=torch.bool)
    assert forecast_origins(10, 30, 4, 3, mask, stride=5).tolist() == [10, 15, 20, 25]
    assert forecast_origins(0, 30, 4, 3, mask).tolist() == list(range(4, 28))


def test_a_split_with_no_window_is_an_error():
    data = ramp(20)
    # val = [14, 16): 2 steps cannot hold a 5-step horizon
    with pytest.raises(UrbanstError, match="val"):
        ForecastTask(history=3, horizon=5).windows(data, identity())
    # test targets all missing -> no window with an observed target
    missing = [(t, n, 0) for t in range(16, 20) for n in range(2)]
    with pytest.raises(UrbanstError, match="test"):
        ForecastTask(history=3, horizon=2).windows(ramp(20, missing=missing), identity())
    # only the requested splits are built
    assert list(ForecastTask(history=3, horizon=5).windows(data, identity(), splits=("train",))) == ["train"]


def test_bad_history_or_horizon_is_an_error():
    with pytest.raises(UrbanstError):
        ForecastTask(history=0, horizon=3)
    with pytest.raises(UrbanstError):
        ForecastTask(history=3, horizon=-1)


# ----------------------------------------------------------------------------------------
# what a window holds
# ----------------------------------------------------------------------------------------
def test_window_values_match_the_series():
    T, N, C = 20, 3, 2
    data = ramp(T, N, C)
    w = ForecastTask(history=4, horizon=3, split=SplitRule(0.6, 0.2)).windows(data, identity(C))["train"]
    b = batch_of(w)
    assert b["x"].shape == (len(w), 4, N, C) and b["y"].shape == (len(w), 3, N, C)
    for i, o in enumerate(origins_of(w)):
        for h in range(4):
            for n in range(N):
                for c in range(C):
                    assert b["x"][i, h, n, c].item() == 1000 * c + 100 * n + (o - 4 + h) + 1
        for p in range(3):
            for n in range(N):
                for c in range(C):
                    assert b["y"][i, p, n, c].item() == 1000 * c + 100 * n + (o + p) + 1
    assert b["input_mask"].all() and b["target_mask"].all()
    assert b["origin"].tolist() == origins_of(w)
    # one window through __getitem__ equals the same row of the batch
    one = w[2]
    for key in ("x", "y", "input_mask", "target_mask", "origin"):
        assert torch.equal(one[key], b[key][2])


def test_x_is_scaled_with_the_given_scaler_and_y_stays_in_original_units():
    data = ramp(20)
    scaler = StandardScaler(np.array([10.0], np.float32), np.array([4.0], np.float32))
    b = batch_of(ForecastTask(history=2, horizon=1, split=SplitRule(0.6, 0.2)).windows(data, scaler)["train"])
    # first window: origin 2, inputs are steps 0, 1 of unit 0 -> raw 1, 2 -> scaled (1-10)/4, (2-10)/4
    assert b["x"][0, :, 0, 0].tolist() == [-2.25, -2.0]
    assert b["y"][0, 0, 0, 0].item() == 3.0  # raw value at step 2, not scaled


def test_missing_values_are_zero_in_x_masked_and_never_scored():
    missing = [(5, 1, 0), (9, 0, 0), (10, 0, 0)]
    data = ramp(20, 2, missing=missing)
    scaler = StandardScaler(np.array([50.0], np.float32), np.array([2.0], np.float32))
    w = ForecastTask(history=3, horizon=2, split=SplitRule(0.6, 0.2)).windows(data, scaler)
    for split in ("train", "val", "test"):
        b = batch_of(w[split])
        past = b["origin"][:, None] + torch.arange(-3, 0)
        future = b["origin"][:, None] + torch.arange(2)
        for (t, n, c) in missing:
            hit = past == t
            assert not b["input_mask"][..., n, c][hit].any()
            assert (b["x"][..., n, c][hit] == 0).all()
            hit = future == t
            assert not b["target_mask"][..., n, c][hit].any()
            assert (b["y"][..., n, c][hit] == 0).all()
        # everything else is observed and carries its value
        assert torch.equal(b["input_mask"], torch.from_numpy(data.observed_mask)[past])
        assert torch.equal(b["target_mask"], torch.from_numpy(data.observed_mask)[future])
        assert torch.isfinite(b["x"]).all() and torch.isfinite(b["y"]).all()
    # the window with origin 6 sees steps 3, 4, 5: unit 1 at step 5 is missing
    b = batch_of(w["train"])
    i = origins_of(w["train"]).index(6)
    assert b["input_mask"][i, :, 1, 0].tolist() == [True, True, False]
    assert b["x"][i, :, 1, 0].tolist() == [(104 - 50) / 2, (105 - 50) / 2, 0.0]


def test_periodic_context_is_the_value_one_day_and_one_week_before_each_target():
    T = 168 * 2 + 60  # hourly: a day is 24 steps, a week 168
    missing = [(30, 0, 0), (200, 1, 0)]
    data = ramp(T, 2, missing=missing)
    task = ForecastTask(history=4, horizon=3, split=SplitRule(0.6, 0.2))
    assert task.available_lags(data) == {"1d": 24, "1w": 168}
    w = task.windows(data, identity())
    observed = data.observed_mask
    seen_masked_start = seen_masked_missing = 0
    for split in ("train", "val", "test"):
        b = batch_of(w[split])
        assert b["periodic"].shape == (len(w[split]), 2, 3, 2, 1)
        for i, o in enumerate(origins_of(w[split])):
            for k, lag in enumerate((24, 168)):
                for p in range(3):
                    src = o + p - lag
                    for n in range(2):
                        ok = src >= 0 and observed[src, n, 0]
                        assert b["periodic_mask"][i, k, p, n, 0].item() == ok
                        if ok:
                            assert b["periodic"][i, k, p, n, 0].item() == 100 * n + src + 1
                        else:
                            assert b["periodic"][i, k, p, n, 0].item() == 0.0
                            seen_masked_start += src < 0
                            seen_masked_missing += src >= 0
    assert seen_masked_start > 0 and seen_masked_missing > 0  # both cases were exercised


def test_periodic_context_never_reaches_past_the_last_input_step():
    # horizon 30 > one day: steps beyond the first day look back two days, still before the origin
    data = ramp(24 * 12)
    w = ForecastTask(history=2, horizon=30, split=SplitRule(0.6, 0.2), periodic_lags=("1d",)).windows(data, identity())
    b = batch_of(w["test"])
    src = b["periodic"][:, 0, :, 0, 0] - 1  # ramp of unit 0: value - 1 is the step
    origin = b["origin"][:, None]
    assert (src <= origin - 1).all()
    expected_back = torch.tensor([24] * 24 + [48] * 6)
    assert torch.equal(origin + torch.arange(30) - src.long(), expected_back.expand_as(src).long())


def test_no_periodic_context_when_the_step_does_not_divide_a_day():
    data = ramp(60, freq="11min")  # 11 minutes divide neither a day nor a week
    task = ForecastTask(history=3, horizon=2, split=SplitRule(0.6, 0.2))
    assert task.available_lags(data) == {}
    b = batch_of(task.windows(data, identity())["train"])
    assert "periodic" not in b and "periodic_mask" not in b


def test_time_features_for_known_timestamps():
    # Saturday 2024-01-06 22:00, hourly: Sat 22h, Sat 23h, Sun 0h ... Mon 0h is step 26
    data = ramp(60, start="2024-01-06 22:00")
    w = ForecastTask(history=2, horizon=3, split=SplitRule(0.6, 0.2)).windows(data, identity())["train"]
    b = batch_of(w)
    assert origins_of(w)[0] == 2
    assert b["time_of_day"][0].tolist() == pytest.approx([22 / 24, 23 / 24, 0.0, 1 / 24, 2 / 24])
    assert b["day_of_week"][0].tolist() == [5, 5, 6, 6, 6]
    i = origins_of(w).index(26)  # window 24..28: Sun 22h, Sun 23h | Mon 0h, 1h, 2h
    assert b["time_of_day"][i].tolist() == pytest.approx([22 / 24, 23 / 24, 0.0, 1 / 24, 2 / 24])
    assert b["day_of_week"][i].tolist() == [6, 6, 0, 0, 0]


def test_time_features_half_hourly():
    data = ramp(10, start="2024-01-07 23:00", freq="30min")  # Sunday
    tod, dow = data.time_features()
    assert tod[:4].tolist() == pytest.approx([23 / 24, 23.5 / 24, 0.0, 0.5 / 24])
    assert dow[:4].tolist() == [6, 6, 0, 0]
    assert data.steps_per("day") == 48 and data.steps_per("week") == 336


@pytest.mark.parametrize("text", ["70/10/20", "60/20/20", "80/5/15", "0.5,0.25"])
def test_split_rule_text_reads_back_as_the_same_rule(text):
    rule = SplitRule.parse(text)
    assert SplitRule.parse(rule.text()) == rule
