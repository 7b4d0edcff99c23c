"""The regular time axis of an import: steps and start dates given as text, and the file's times placed on it.

An imported dataset's axis runs from the first to the last time at one step, given or inferred
as the most common gap. A time between steps is refused; a step the file skips becomes masked.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from urbanst.errors import UrbanstError

DEFAULT_START = "2000-01-01 00:00"
DEFAULT_STEP = "1h"
MAX_VALUES = 1_000_000_000  # cells of the regular [T, N, C] grid; ~5 GB of memory


def parse_step(step) -> pd.Timedelta:
    if isinstance(step, (int, float, np.number)) and not isinstance(step, bool):
        raise UrbanstError(f"step {step!r}: give the step as text such as '1h', '15min' or '1D'")
    try:
        td = pd.Timedelta(step)
    except (ValueError, TypeError) as err:
        raise UrbanstError(
            f"step {step!r} is not a fixed time length ({err}); use text such as '5min', '1h' or '1D' "
            "(calendar months and years are not regular steps)"
        ) from None
    if pd.isna(td) or td <= pd.Timedelta(0):
        raise UrbanstError(f"step {step!r} must be a positive time length such as '1h'")
    return td


def parse_start(start) -> pd.Timestamp | None:
    if start is None:
        return None
    try:
        ts = pd.Timestamp(start)
    except (ValueError, TypeError) as err:
        raise UrbanstError(f"start {start!r} is not a date/time ({err}); use text such as '2020-01-01 00:00'") from None
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def step_text(td: pd.Timedelta) -> str:
    """Short text for a step: '1h', '15min', '1D', '30s'."""
    ns = int(td.value)
    for unit, size in (("D", 86_400 * 10**9), ("h", 3_600 * 10**9), ("min", 60 * 10**9), ("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"


def to_ns(index: pd.DatetimeIndex, source: Path) -> np.ndarray:
    try:
        return np.asarray(index.as_unit("ns").asi8, dtype=np.int64)
    except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime) as err:
        raise UrbanstError(f"{source}: timestamps outside the years 1678..2261 are not supported ({err})") from None


def parse_dates(text: pd.Series) -> pd.DatetimeIndex:
    """Dates from text: one inferred format first (fast), element by element when formats are mixed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "could not infer format": we fall back on purpose
        try:
            return pd.DatetimeIndex(pd.to_datetime(text))
        except (ValueError, TypeError):
            return pd.DatetimeIndex(pd.to_datetime(text, format="mixed"))


def naive_utc(index: pd.DatetimeIndex, notes: list[str]) -> pd.DatetimeIndex:
    if index.tz is not None:
        notes.append(f"timestamps converted from time zone {index.tz} to UTC.")
        index = index.tz_convert("UTC").tz_localize(None)
    return index


def regular_axis(
    ns: np.ndarray, step: pd.Timedelta | None, source: Path, space: tuple[int, int], notes: list[str]
) -> tuple[pd.DatetimeIndex, np.ndarray, pd.Timedelta]:
    """Map sorted, distinct ``ns`` onto the regular axis ``ns[0] + k * step`` for ``space`` = (units, attributes).

    Returns the full axis, the position of each input time and the step (inferred when None).
    """
    if len(ns) < 2:
        raise UrbanstError(f"{source}: needs at least 2 distinct timestamps, found {len(ns)}")
    inferred = step is None
    if step is None:
        gaps, counts = np.unique(np.diff(ns), return_counts=True)
        step = pd.Timedelta(int(gaps[np.argmax(counts)]), unit="ns")  # most common gap; ties: the smallest
    step_ns = int(step.value)
    offsets = ns - ns[0]
    off_grid = np.flatnonzero(offsets % step_ns != 0)
    if off_grid.size:
        shown = ", ".join(str(pd.Timestamp(int(ns[i]))) for i in off_grid[:3])
        how = "the most common gap, inferred" if inferred else "given"
        raise UrbanstError(
            f"{source}: {off_grid.size} of the timestamps fall between steps of {step_text(step)} ({how}) counted from "
            f"{pd.Timestamp(int(ns[0]))}, e.g. {shown}; pass the right step= (e.g. step='30min') or resample the "
            "data onto a regular axis first"
        )
    positions = offsets // step_ns
    T = int(positions[-1]) + 1
    axis = pd.DatetimeIndex((ns[0] + np.arange(T, dtype=np.int64) * step_ns).astype("datetime64[ns]"))
    N, C = space
    if T * N * C > MAX_VALUES:
        raise UrbanstError(
            f"{source}: the regular axis from {axis[0]} at step {step_text(step)} has {T} steps; with {N} units and "
            f"{C} attributes that is {T * N * C:,} values (limit {MAX_VALUES:,}); check the step (pass step=) "
            "or split the file"
        )
    if inferred:
        notes.append(f"step {step_text(step)} inferred from the timestamps.")
    return axis, positions, step


def place_on_axis(ts: pd.DatetimeIndex, values, observed, step, path: Path, notes: list[str]):
    """Sort the steps, refuse duplicates, insert skipped steps as masked; returns (axis, values, observed, absent)."""
    ns = to_ns(ts, path)
    order = np.argsort(ns, kind="stable")
    if (order != np.arange(len(ns))).any():
        notes.append("time steps sorted by timestamp.")
    ns = ns[order]
    dup = np.flatnonzero(np.diff(ns) == 0)
    if dup.size:
        shown = ", ".join(str(pd.Timestamp(int(ns[i]))) for i in dup[:3])
        raise UrbanstError(f"{path}: {dup.size} duplicate timestamp(s), e.g. {shown}; keep one step each")
    _, N, C = values.shape
    axis, positions, step = regular_axis(ns, step, path, (N, C), notes)
    T_full = len(axis)
    if T_full == len(ns):
        return axis, values[order], observed[order], 0
    full_v = np.full((T_full, N, C), np.nan, dtype=values.dtype)
    full_m = np.zeros((T_full, N, C), dtype=bool)
    full_v[positions] = values[order]
    full_m[positions] = observed[order]
    skipped = T_full - len(ns)
    notes.append(f"{skipped} time step(s) missing from the file were inserted as masked.")
    return axis, full_v, full_m, skipped * N * C


def assumed_axis(T: int, start: pd.Timestamp | None, step: pd.Timedelta | None, lacking: str, notes: list[str]):
    """The axis of a file without dates: ``start`` (or the default) at ``step`` (or the default)."""
    t0 = start if start is not None else pd.Timestamp(DEFAULT_START)
    st = step if step is not None else pd.Timedelta(DEFAULT_STEP)
    notes.append(
        f"{lacking}: assumed start {t0} and step {step_text(st)}"
        f"{' (defaults; pass start= and step= to set them)' if start is None or step is None else ''}."
    )
    return pd.date_range(t0, periods=T, freq=st)

