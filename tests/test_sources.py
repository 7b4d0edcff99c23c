"""Datasets over the same units joined as sources: aligned by timestamp, refused when they cannot be."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from urbanst.data.container import STData
from urbanst.data.sources import join_sources
from urbanst.errors import UrbanstError


def hourly(name: str, start: str, steps: int, offset: float) -> STData:
    """values[t, n, 0] = offset + the hour count since 2024-01-01 00:00, so aligned steps hold known values."""
    times = pd.date_range(start, periods=steps, freq="h")
    hours = (times - pd.Timestamp("2024-01-01")) / pd.Timedelta(hours=1)
    values = np.repeat((offset + np.asarray(hours))[:, None, None], 3, axis=1)
    return STData(name, values, np.isfinite(values), times, ["flow"], ["trips"], "Test City")


def test_sources_join_on_the_steps_they_share_by_timestamp():
    a = hourly("a", "2024-01-01 00:00", 48, 0.0)
    b = hourly("b", "2024-01-01 10:00", 48, 1000.0)  # starts ten hours later
    joined = join_sources([a, b])
    assert joined.timestamps[0] == pd.Timestamp("2024-01-01 10:00") and joined.num_steps == 38
    hours = np.arange(10, 48)
    np.testing.assert_array_equal(joined.values[:, 0, 0], hours)
    np.testing.assert_array_equal(joined.values[:, 0, 1], 1000.0 + hours)
    assert joined.attributes == ["a flow", "b flow"] and joined.observed_mask.all()


def test_sources_whose_steps_never_coincide_are_refused_in_one_line():
    a = hourly("a", "2024-01-01 00:00", 48, 0.0)
    b = hourly("b", "2024-01-01 00:30", 48, 0.0)
    with pytest.raises(UrbanstError, match="never coincide") as err:
        join_sources([a, b])
    assert "\n" not in str(err.value)
