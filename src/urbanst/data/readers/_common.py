"""Small helpers shared by more than one reader."""

from __future__ import annotations

import numpy as np
import pandas as pd
from einops import rearrange

from urbanst.data.container import STData
from urbanst.errors import UrbanstError


def on_regular_axis(times, values: np.ndarray, freq: str, start=None, end=None) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Place ``values[k]`` (observed at ``times[k]``, unique) on the regular range ``start..end`` with step ``freq``.

    Steps absent from ``times`` become all-NaN rows, so a gap stays in the series as masked steps.
    """
    times = pd.DatetimeIndex(times)
    full = pd.date_range(times.min() if start is None else start, times.max() if end is None else end, freq=freq)
    pos = full.get_indexer(times)
    if (pos < 0).any() or len(np.unique(pos)) != len(pos):
        raise UrbanstError(f"time stamps are duplicated or off the {freq} grid {full[0]}..{full[-1]}")
    out = np.full((len(full),) + values.shape[1:], np.nan, dtype=np.float32)
    out[pos] = values
    return full, out


def crime_cube(name: str, cube: np.ndarray, start: str, categories: list[str], city: str, **fields) -> STData:
    """STData from an ST-SHN/STHSL crime cube laid out (row, col, day, category); unit = row * W + col."""
    H, W, T, C = cube.shape
    values = rearrange(cube.astype(np.float32), "h w t c -> t (h w) c")
    return STData(
        name=name,
        values=values,
        observed_mask=np.ones(values.shape, dtype=bool),  # counts: every cell-day is a real (possibly zero) count
        timestamps=pd.date_range(start, periods=T, freq="D"),
        attributes=list(categories),
        units=["crimes/day"] * C,
        city=city,
        grid_shape=(H, W),
        **fields,
    )
