"""The per-channel standard scaler: fit on observed training values only, round trips, no test leakage."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from urbanst.data.container import STData
from urbanst.data.scalers import StandardScaler
from urbanst.data.splits import SplitRule
from urbanst.errors import UrbanstError
from urbanst.models.registry import model_class
from urbanst.tasks.forecast import ForecastTask


def test_fit_ignores_masked_values_hand_computed():
    # channel 0: observed 1, 2, 3 (the 1000 is masked) -> mean 2, std sqrt(2/3)
    # channel 1: observed 10, 20 (the NaN and the -500 are masked) -> mean 15, std 5
    values = np.array(
        [
            [[1.0, 10.0], [2.0, np.nan]],
            [[1000.0, 20.0], [3.0, -500.0]],
        ]
    )  # [T=2, N=2, C=2]
    mask = np.array(
        [
            [[True, True], [True, False]],
            [[False, True], [True, False]],
        ]
    )
    s = StandardScaler.fit(values, mask)
    assert s.mean.dtype == np.float32 and s.std.dtype == np.float32
    np.testing.assert_allclose(s.mean, [2.0, 15.0], rtol=1e-7)
    np.testing.assert_allclose(s.std, [math.sqrt(2 / 3), 5.0], rtol=1e-6)


def test_fit_treats_nan_as_missing_even_when_the_mask_says_observed():
    values = np.array([[[1.0]], [[np.nan]], [[3.0]], [[np.inf]]])
    s = StandardScaler.fit(values, np.ones(values.shape, dtype=bool))
    np.testing.assert_allclose(s.mean, [2.0])
    np.testing.assert_allclose(s.std, [1.0])


def test_a_channel_without_observations_is_refused():
    values = np.ones((4, 2, 2))
    mask = np.ones((4, 2, 2), dtype=bool)
    mask[..., 1] = False
    with pytest.raises(UrbanstError, match=r"\[1\]"):
        StandardScaler.fit(values, mask)


def test_constant_channel_is_shifted_not_blown_up():
    values = np.full((5, 3, 2), 7.0)
    values[..., 1] = np.arange(15).reshape(5, 3)
    s = StandardScaler.fit(values, np.ones(values.shape, dtype=bool))
    assert s.mean[0] == 7.0 and s.std[0] == 1.0
    z = s.transform(values)
    assert np.isfinite(z).all()
    assert (z[..., 0] == 0).all()
    np.testing.assert_allclose(s.inverse(z), values, rtol=1e-6)


def test_round_trip_numpy_and_torch():
    rng = np.random.default_rng(0)
    values = rng.normal(50, 20, size=(30, 4, 3))
    s = StandardScaler.fit(values, np.ones(values.shape, dtype=bool))
    # numpy, float32 and float64
    for arr in (values.astype(np.float32), values):
        z = s.transform(arr)
        assert z.dtype == arr.dtype
        np.testing.assert_allclose(s.inverse(z), arr, rtol=1e-5)
        np.testing.assert_allclose(z.mean((0, 1)), 0, atol=1e-5)
        np.testing.assert_allclose(z.std((0, 1)), 1, atol=1e-5)
    # torch keeps dtype (and device)
    for dtype in (torch.float32, torch.float64):
        t = torch.tensor(values, dtype=dtype)
        z = s.transform(t)
        assert isinstance(z, torch.Tensor) and z.dtype == dtype
        torch.testing.assert_close(s.inverse(z), t, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(z.numpy(), s.transform(values), rtol=1e-5, atol=1e-5)


def test_to_dict_from_dict_is_exact_and_json_safe():
    s = StandardScaler(np.array([1.5, -3.25, 1e-3], np.float32), np.array([0.1, 2.0, 1e4], np.float32))
    d = json.loads(json.dumps(s.to_dict()))
    assert d["kind"] == "standard"
    back = StandardScaler.from_dict(d)
    assert back.mean.dtype == np.float32 and back.std.dtype == np.float32
    np.testing.assert_array_equal(back.mean, s.mean)
    np.testing.assert_array_equal(back.std, s.std)
    with pytest.raises(UrbanstError):
        StandardScaler.from_dict({**d, "kind": "minmax"})


# ----------------------------------------------------------------------------------------
# a scaler that never sees a poisoned test split
# ----------------------------------------------------------------------------------------
def poisoned(test_value: float, T: int = 24 * 10) -> STData:
    """Hourly series: train and validation hold small numbers, the test part holds ``test_value``."""
    rng = np.random.default_rng(1)
    values = rng.integers(0, 10, size=(T, 3, 2)).astype(np.float32)
    values[1, 0, 0] = np.nan  # a missing training value
    t2 = SplitRule().boundaries(T)[1]
    values[t2:] = test_value
    return STData("poison", values, np.isfinite(values), pd.date_range("2024-01-01", periods=T, freq="h"),
                  ["a", "b"], ["u", "u"], "Test City")


def test_fit_scaler_uses_training_statistics_exactly():
    data = poisoned(1e6)
    task = ForecastTask(history=6, horizon=3)
    t1 = task.boundaries(data)["train"][1]
    assert t1 == 168  # round(240 * 0.7)
    s = task.fit_scaler(data)
    train = data.values[:t1].reshape(-1, 2).astype(np.float64)
    np.testing.assert_allclose(s.mean, np.nanmean(train, 0), rtol=1e-6)
    np.testing.assert_allclose(s.std, np.nanstd(train, 0), rtol=1e-6)
    assert (s.mean < 10).all() and (s.std < 10).all()


def test_changing_the_test_split_changes_neither_the_scaler_nor_any_training_window():
    task = ForecastTask(history=6, horizon=3)
    a, b = poisoned(1e6), poisoned(-3.0)
    b.values[-5:] = np.nan  # test data may also go missing: still no effect on training
    b.observed_mask[-5:] = False
    sa, sb = task.fit_scaler(a), task.fit_scaler(b)
    np.testing.assert_array_equal(sa.mean, sb.mean)
    np.testing.assert_array_equal(sa.std, sb.std)
    wa, wb = task.windows(a, sa)["train"], task.windows(b, sb)["train"]
    assert torch.equal(wa.origins, wb.origins)
    ba = wa.__getitems__(list(range(len(wa))))
    bb = wb.__getitems__(list(range(len(wb))))
    assert ba.keys() == bb.keys()
    for key in ba:
        assert torch.equal(ba[key], bb[key]), key
    assert ba["y"].abs().max() < 10 and ba["x"].abs().max() < 10  # no test value inside a training window
    # models fit in closed form see nothing of the test split either
    spec = task.data_spec(a)
    for name in ("ha", "ridge"):
        ma, mb = model_class(name).build(spec), model_class(name).build(spec)
        ma.fit_closed_form(wa)
        mb.fit_closed_form(wb)
        for (ka, ta), (kb, tb) in zip(ma.state_dict().items(), mb.state_dict().items()):
            assert ka == kb and torch.equal(ta, tb), (name, ka)
