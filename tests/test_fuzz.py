"""Fuzzing (issue 8): random, often hostile, inputs end in a correct result or ONE UrbanstError.

Targets: the STData container, the CSV and NPZ importers, windowing + scaler + forecast task,
the masked metrics and ``STModel.from_pretrained`` on junk model folders. Every example is
checked against an oracle written from the documented behaviour: a valid input must give a
correct result (every finite value kept exactly, every missing value masked and counted, no
NaN in a metric), an invalid one must give an UrbanstError with a one-line message, and no
other exception type may escape.

Runs are bounded and reproducible (``derandomize=True``, no example database): each target
runs a fixed number of examples (``fuzz(n)`` below); ``pytest tests/test_fuzz.py
--hypothesis-show-statistics`` prints how many ran and the outcome mix (``event`` lines).
For a longer hunt, ``URBANST_FUZZ_SCALE=20 URBANST_FUZZ_RANDOM=1 pytest tests/test_fuzz.py``.
"""

from __future__ import annotations

import json
import os
import pickle
import warnings
from contextlib import contextmanager
from itertools import count
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from urbanst.data.container import STData
from urbanst.data.importers import import_file, read_import_meta, read_imported
from urbanst.data.splits import SplitRule
from urbanst.errors import UrbanstError
from urbanst.evaluation import ClassificationMetrics, RegressionMetrics
from urbanst.tasks.forecast import ForecastTask


# A deeper local hunt: URBANST_FUZZ_SCALE=20 runs 20x the examples; URBANST_FUZZ_RANDOM=1 draws new ones each run.
SCALE = float(os.environ.get("URBANST_FUZZ_SCALE", "1"))
RANDOM = os.environ.get("URBANST_FUZZ_RANDOM") == "1"


def fuzz(examples: int):
    """Bounded, reproducible hypothesis settings for one target."""
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        derandomize=not RANDOM,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


@contextmanager
def strict_numerics():
    """Silent numeric damage (a complex cast dropping the imaginary part, a float overflow) fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        yield


def attempt(fn, *args, **kwargs):
    """``(result, None)`` or ``(None, message)`` for an UrbanstError; any other exception escapes (a bug)."""
    try:
        with strict_numerics():
            return fn(*args, **kwargs), None
    except UrbanstError as err:
        message = str(err)
        assert message.strip(), "an UrbanstError without a message"
        assert "\n" not in message, f"a multi-line error message: {message!r}"
        return None, message


def check_metric_is_finite(values: np.ndarray, observed: np.ndarray) -> None:
    """Score zeros against the observed values: finite numbers, or an UrbanstError when nothing is observed."""
    target = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))[None, :, :, :]
    mask = torch.from_numpy(np.ascontiguousarray(observed))[None]
    metric = RegressionMetrics(horizon=target.shape[1])
    metric.update(torch.zeros_like(target), target, mask)
    result, error = attempt(metric.compute)
    if not observed.any():
        assert error is not None and "no valid target" in error
        return
    assert error is None, error
    for key in ("mae", "rmse", "mape", "wape"):
        assert result[key] is None or np.isfinite(result[key]), (key, result[key])
    assert result["count"] == int(observed.sum())


_dirs = count()


def fresh_dir(factory) -> Path:
    return factory.mktemp(f"fuzz{next(_dirs)}", numbered=False)


# =========================================================================================
# 1. STData construction
# =========================================================================================
STEPS = [pd.Timedelta(1, "ns"), pd.Timedelta(1, "s"), pd.Timedelta(15, "min"), pd.Timedelta(1, "h"), pd.Timedelta(1, "D")]
GOOD_FLOATS = st.floats(-1e6, 1e6, allow_nan=False, width=32)
# element strategies per dtype: numbers (NaN and inf included: they are missing values) ...
ELEMENTS = {
    "float64": st.one_of(st.floats(), st.sampled_from([0.0, 3.0, -1e30])),
    "float32": st.floats(width=32),
    "int64": st.integers(-(2**40), 2**40),
    "bool": st.booleans(),
    "object": st.one_of(GOOD_FLOATS, st.integers(-5, 5), st.none(), st.sampled_from(["1.5", "nan", "inf"])),
    "str": st.sampled_from(["1", "2.5", "nan", "inf", "-3e2"]),
}
# ... and what is not a number, or does not fit float32
BAD_ELEMENTS = {
    "float64": st.sampled_from([1e300, -1e39]),
    "object": st.sampled_from(["x", "", b"1", 1j]),
    "str": st.sampled_from(["abc", "", "1,5"]),
    "complex": st.complex_numbers(max_magnitude=10, allow_nan=False),
    "datetime64[ns]": st.integers(0, 10**12),
}
STDATA_FAULTS = ["sizes", "shape", "dtype", "mask", "timestamps", "attributes"]
MASK_KINDS = {"good": ["none", "bool", "bool", "int01"], "bad": ["int2", "float_nan", "wrong_shape", "object"]}
TS_KINDS = {
    "good": ["regular", "regular", "ints", "tz_aware"],
    "bad": ["shuffled", "duplicate", "irregular", "short", "long", "nat", "garbage", "none", "mixed_tz"],
}


def _to_float64(arr: np.ndarray) -> np.ndarray | None:
    """The values as float64 the way the container documents it, or None if they are not real numbers."""
    kind = arr.dtype.kind
    if kind in "biuf":
        return arr.astype(np.float64)
    if kind in "OUS":
        out = []
        for x in arr.ravel().tolist():
            if x is None:
                out.append(np.nan)
                continue
            try:
                out.append(float(x))
            except (TypeError, ValueError):
                return None
        return np.asarray(out, dtype=np.float64).reshape(arr.shape)
    return None  # complex, dates: not real numbers


@st.composite
def stdata_inputs(draw):
    """Mostly one fault (or none) per case, so that both valid and refused inputs are well covered."""
    fault = draw(st.sampled_from([None] * 6 + STDATA_FAULTS))
    if fault == "sizes":  # empty series, no unit or no channel
        T, N, C = draw(st.sampled_from([(0, 2, 1), (1, 2, 1), (1, 1, 1), (3, 0, 1), (3, 2, 0), (0, 0, 0)]))
    else:
        T, N, C = draw(st.integers(2, 5)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    shape = (T, N, C) if fault != "shape" else draw(st.sampled_from([(T,), (T, N), (T, N, C, 1), ()]))
    size = int(np.prod(shape))
    dtype = draw(st.sampled_from(list(ELEMENTS)))
    flat = draw(st.lists(ELEMENTS[dtype], min_size=size, max_size=size))
    if fault == "dtype":
        dtype = draw(st.sampled_from(list(BAD_ELEMENTS)))
        flat = draw(st.lists(BAD_ELEMENTS[dtype], min_size=max(size, 1), max_size=max(size, 1)))[:size]
        if size and dtype in ("float64", "object", "str"):  # one bad element among good ones
            good = draw(st.lists(ELEMENTS[dtype], min_size=size, max_size=size))
            flat = good[:-1] + flat[-1:]
    if flat and draw(st.booleans()):  # a constant series
        flat = [flat[0]] * size
    np_dtype = {"object": object, "str": str}.get(dtype, dtype)
    values = np.array(flat, dtype=np_dtype).reshape(shape)

    mask_kind = draw(st.sampled_from(MASK_KINDS["bad" if fault == "mask" else "good"]))
    bits = np.array(draw(st.lists(st.booleans(), min_size=size, max_size=size)), dtype=bool).reshape(shape)
    mask = {
        "none": np.ones(shape, dtype=bool),
        "bool": bits,
        "int01": bits.astype(np.int64),
        "int2": bits.astype(np.int64) * 2,
        "float_nan": np.where(bits, 1.0, np.nan),
        "wrong_shape": np.ones((T + 1, N, C), dtype=bool),
        "object": np.where(bits, "yes", "").astype(object),
    }[mask_kind]

    step = draw(st.sampled_from(STEPS))
    ts_kind = draw(st.sampled_from(TS_KINDS["bad" if fault == "timestamps" else "good"]))
    start = pd.Timestamp("2021-03-01")
    ts: object = [start + step * i for i in range(T)]
    if ts_kind == "shuffled":
        ts = draw(st.permutations(ts))
    elif ts_kind == "duplicate" and T >= 2:
        ts[1] = ts[0]
    elif ts_kind == "irregular" and T >= 3:
        ts[-1] = ts[-1] + step
    elif ts_kind == "short":
        ts = ts[:-1]
    elif ts_kind == "long":
        ts = ts + [start + step * T]
    elif ts_kind == "nat" and T >= 1:
        ts[draw(st.integers(0, T - 1))] = pd.NaT
    elif ts_kind == "garbage":
        ts = [f"day {i}" for i in range(T)]
    elif ts_kind == "none":
        ts = None
    elif ts_kind == "ints":
        ts = [int(t.value) for t in ts]
    elif ts_kind == "tz_aware":
        ts = [t.tz_localize("Europe/Paris") for t in ts]
    elif ts_kind == "mixed_tz" and T >= 2:
        ts[0] = ts[0].tz_localize("UTC")
    attributes = [f"a{i}" for i in range(C + (draw(st.sampled_from([-1, 1])) if fault == "attributes" else 0))]
    return values, mask, ts, attributes, mask_kind


def _expected_timestamps(ts, T: int) -> bool:
    try:
        idx = pd.DatetimeIndex(ts)
    except (TypeError, ValueError):
        return False
    if len(idx) != T or idx.isna().any() or T < 2:
        return False
    diffs = np.diff(idx.asi8)
    return bool((diffs > 0).all() and (diffs == diffs[0]).all())


@fuzz(60)
@given(stdata_inputs())
def test_fuzz_stdata_construction(case):
    values, mask, ts, attributes, mask_kind = case
    v64 = _to_float64(values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        overflow = v64 is not None and bool((np.isfinite(v64) & ~np.isfinite(v64.astype(np.float32))).any())
    valid = (
        values.ndim == 3
        and v64 is not None
        and not overflow
        and mask.shape == values.shape
        and (mask.dtype.kind == "b" or (mask.dtype.kind in "iuf" and np.isin(mask, (0, 1)).all()))
        and values.shape[1] >= 1
        and values.shape[2] >= 1
        and len(attributes) == values.shape[2]
        and _expected_timestamps(ts, values.shape[0])
    )
    C = len(attributes)
    data, error = attempt(STData, "fuzz", values, mask, ts, attributes, ["u"] * C, "city")
    event("valid STData" if data is not None else "UrbanstError")
    if not valid:
        assert error is not None, f"accepted invalid input: {values!r}, mask {mask_kind}, ts {ts!r}"
        return
    assert error is None, error
    observed = mask.astype(bool) & np.isfinite(v64)
    assert data.values.dtype == np.float32 and data.values.shape == values.shape
    assert np.array_equal(data.observed_mask, observed)
    # every finite observed value kept exactly (as float32), everything else NaN
    assert np.array_equal(data.values[observed], v64.astype(np.float32)[observed])
    assert np.isnan(data.values[~observed]).all()
    summary = data.summary()
    assert pd.Timedelta(summary["step"]) == data.step, summary["step"]
    check_metric_is_finite(data.values, data.observed_mask)


# =========================================================================================
# 2. importers: long-form CSV
# =========================================================================================
CSV_STEPS = {"1h": 3600, "15min": 900, "1D": 86400}
UNIT_LABELS = ["s1", "s2", "zone-3", "7", "12"]
ATTR_LABELS = ["pm25", "flow", "Speed"]
MISSING_TEXT = {"": "nan", "NaN": "nan", "nan": "nan", "inf": "inf", "-inf": "inf", "Inf": "inf", "-Infinity": "inf"}


def _csv_time(seconds: int, style: str) -> str:
    t = pd.Timestamp("2024-03-01") + pd.Timedelta(seconds, "s")
    if style == "unix":
        return str(int(t.value // 10**9))
    if style == "tz":  # one hour east of UTC: the importer converts to UTC
        return (t + pd.Timedelta(1, "h")).strftime("%Y-%m-%d %H:%M:%S") + "+01:00"
    return t.strftime("%Y-%m-%dT%H:%M:%S" if style == "iso_t" else "%Y-%m-%d %H:%M:%S")


@st.composite
def csv_cases(draw):
    fault = draw(st.sampled_from([None] * 6 + ["garbage value", "duplicate", "between steps", "empty file", "no rows",
                                               "missing column"]))
    step_name = draw(st.sampled_from(list(CSV_STEPS)))
    step_s = CSV_STEPS[step_name]
    give_step = draw(st.booleans())
    style = draw(st.sampled_from(["iso", "iso_t", "unix", "tz"]))
    units = draw(st.lists(st.sampled_from(UNIT_LABELS), min_size=1, max_size=3, unique=True))
    attrs = draw(st.lists(st.sampled_from(ATTR_LABELS), min_size=1, max_size=2, unique=True))
    positions = draw(st.lists(st.integers(0, 7), min_size=1, max_size=5, unique=True))
    rows = []  # (seconds from the base, unit, attribute, value text)
    for p in positions:
        for u in units:
            for a in attrs:
                kind = draw(st.sampled_from(["finite"] * 5 + ["absent", "missing"]))
                if kind == "absent":
                    continue
                if kind == "missing":
                    text = draw(st.sampled_from(list(MISSING_TEXT)))
                else:
                    x = draw(st.one_of(st.floats(-3e38, 3e38, allow_nan=False), st.integers(-1000, 1000)))
                    text = repr(float(x)) if isinstance(x, float) else str(x)
                rows.append((p * step_s, u, a, text))
    if not rows:
        fault = "no rows"
    elif fault == "garbage value":
        i = draw(st.integers(0, len(rows) - 1))
        rows[i] = (*rows[i][:3], draw(st.sampled_from(["abc", "1,5", "12..3", "--", "0x1G"])))
    elif fault == "duplicate":
        rows.append(draw(st.sampled_from(rows)))
    elif fault == "between steps":  # off the grid: refused unless the inferred step makes it fit
        extra = draw(st.sampled_from(rows))
        rows.append((extra[0] + step_s // 2 + draw(st.sampled_from([0, 1, 7])), *extra[1:]))
        fault = None  # the oracle decides
    rows = draw(st.permutations(rows))
    header = ["timestamp", "unit", "attribute", "value"]
    if draw(st.booleans()):
        header = [" Timestamp", "UNIT ", "Attribute", "Value"]
    extra_col = draw(st.booleans())
    drop = draw(st.integers(0, 3)) if fault == "missing column" else None
    if drop is not None:
        header = header[:drop] + header[drop + 1 :]
    lines = [",".join(header + (["comment"] if extra_col else []))]
    for seconds, u, a, text in rows:
        cells = [_csv_time(seconds, style), u, a, text]
        if drop is not None:
            cells = cells[:drop] + cells[drop + 1 :]
        lines.append(",".join(cells + (["note"] if extra_col else [])))
    if fault == "empty file":
        content = ""
    elif fault == "no rows":
        content = lines[0] + "\n"
    else:
        content = "\n".join(lines) + "\n"
    return content, rows, (step_name if give_step else None), step_s, [fault] if fault else []


def _csv_oracle(rows, step_s: int | None):
    """Expected regular axis (start seconds, step seconds, T) or None when the import must be refused."""
    distinct = sorted({r[0] for r in rows})
    if len(distinct) < 2:
        return None
    if step_s is None:
        gaps, counts = np.unique(np.diff(distinct), return_counts=True)
        step_s = int(gaps[np.argmax(counts)])
    if any((t - distinct[0]) % step_s for t in distinct):
        return None
    return distinct[0], step_s, (distinct[-1] - distinct[0]) // step_s + 1


@fuzz(60)
@given(csv_cases())
def test_fuzz_csv_import(tmp_path_factory, case):
    content, rows, step_name, step_s, faults = case
    root = fresh_dir(tmp_path_factory)
    path = root / "input.csv"
    path.write_text(content)
    folder, error = attempt(import_file, path, "fuzzed", root, step=step_name, overwrite=True)
    axis = None if faults else _csv_oracle(rows, step_s if step_name else None)
    event("imported" if folder is not None else f"UrbanstError: {', '.join(faults) or 'time axis'}")
    if axis is None:
        assert error is not None, f"accepted a CSV with {faults or 'an irregular or too short time axis'}"
        return
    assert error is None, error
    start, step, T = axis
    data, meta = read_imported(folder), read_import_meta(folder)
    units = sorted({r[1] for r in rows}, key=(int if all(r[1].isdigit() for r in rows) else str))
    attrs = sorted({r[2] for r in rows})
    assert data.shape == (T, len(units), len(attrs))
    assert data.unit_names == units and data.attributes == attrs
    assert data.step == pd.Timedelta(step, "s")
    assert data.timestamps[0] == pd.Timestamp("2024-03-01") + pd.Timedelta(start, "s")
    scored = np.zeros(data.shape, dtype=bool)
    nan_rows = inf_rows = 0
    for seconds, u, a, text in rows:
        t, n, c = (seconds - start) // step, units.index(u), attrs.index(a)
        expected = float(text) if text not in MISSING_TEXT else None
        if expected is None:
            nan_rows += MISSING_TEXT[text] == "nan"
            inf_rows += MISSING_TEXT[text] == "inf"
            assert not data.observed_mask[t, n, c], (text, data.values[t, n, c])
        else:  # nothing valid dropped: the exact value, observed
            assert data.observed_mask[t, n, c], text
            assert data.values[t, n, c] == np.float32(expected), (text, data.values[t, n, c])
            scored[t, n, c] = True
    assert np.array_equal(data.observed_mask, scored)  # nothing missing is observed (and so scored)
    counts = meta["counts"]
    assert counts["nan_values"] == nan_rows and counts["inf_values"] == inf_rows
    assert counts["absent_values"] == T * len(units) * len(attrs) - len(rows)
    assert counts["observed_values"] == int(scored.sum())
    check_metric_is_finite(data.values, data.observed_mask)


# =========================================================================================
# 3. importers: NPZ
# =========================================================================================
NPZ_FAULTS = ["sizes", "shape", "dtype", "mask", "timestamps", "names", "no values"]


@st.composite
def npz_cases(draw):
    """Mostly one fault (or none) per archive."""
    fault = draw(st.sampled_from([None] * 6 + NPZ_FAULTS))
    if fault == "sizes":
        T, N, C = draw(st.sampled_from([(0, 2, 1), (1, 2, 1), (3, 0, 1), (3, 2, 0)]))
    else:
        T, N, C = draw(st.integers(2, 5)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    shape = (T, N) if C == 1 and draw(st.booleans()) else (T, N, C)
    if fault == "shape":
        shape = draw(st.sampled_from([(), (T,), (T, N, C, 2)]))
    size = int(np.prod(shape))
    dtype = draw(st.sampled_from(["float64", "float64", "float32", "int32", "bool"]))
    if fault == "dtype":
        dtype = draw(st.sampled_from(["complex", "str", "object"]))
    element = {
        "float64": st.one_of(st.floats(-1e30, 1e30), st.sampled_from([np.nan, np.inf, -np.inf, 0.0])),
        "float32": st.floats(width=32),
        "int32": st.integers(-(2**31), 2**31 - 1),
        "bool": st.booleans(),
        "complex": st.complex_numbers(max_magnitude=5, allow_nan=False),
        "str": st.sampled_from(["1", "x"]),
        "object": st.sampled_from([1.0, None, "a"]),
    }[dtype]
    flat = draw(st.lists(element, min_size=size, max_size=size))
    values = np.array(flat, dtype={"object": object, "str": str}.get(dtype, dtype)).reshape(shape)
    arrays: dict[str, np.ndarray] = {}
    key = draw(st.sampled_from(["values", "values", "arr_0"]))
    if fault == "no values":
        key = "data"
        arrays["data"], arrays["other"] = values, np.zeros(3)
    else:
        arrays[key] = values
        if key == "values" and draw(st.booleans()):
            arrays["notes_for_me"] = np.arange(3)  # an unknown array: ignored, named in the notes
    mask_kind = draw(st.sampled_from(["int2", "float_nan", "wrong_shape", "str"] if fault == "mask" else
                                     ["none", "none", "bool", "int01"]))
    bits = np.array(draw(st.lists(st.booleans(), min_size=size, max_size=size)), dtype=bool).reshape(shape)
    if mask_kind != "none":
        arrays["mask"] = {
            "bool": bits,
            "int01": bits.astype(np.uint8),
            "int2": bits.astype(np.int64) * 2 + 2,
            "float_nan": np.where(bits, 1.0, np.nan),
            "wrong_shape": np.ones((T + 1,), dtype=bool),
            "str": np.where(bits, "1", "0"),
        }[mask_kind]
    ts_kind = draw(st.sampled_from(["float", "wrong_length", "nat", "duplicate"] if fault == "timestamps" else
                                   ["none", "datetime", "unix", "iso"]))
    step_s = 3600
    if draw(st.booleans()):  # regular and sorted
        t_pos = list(range(T))
    else:  # unsorted and gappy: fine as long as the inferred step fits
        t_pos = draw(st.lists(st.integers(0, 8), min_size=T, max_size=T, unique=True))
    if ts_kind == "duplicate" and T >= 2:
        t_pos[-1] = t_pos[0]
    if ts_kind != "none":
        secs = 1_700_000_000 + np.asarray(t_pos, dtype=np.int64) * step_s
        arrays["timestamps"] = {
            "datetime": secs.astype("datetime64[s]"),
            "unix": secs,
            "iso": np.asarray([str(pd.Timestamp(int(s), unit="s")) for s in secs], dtype=str),
            "duplicate": secs.astype("datetime64[s]"),
            "float": secs.astype(np.float64),
            "wrong_length": np.concatenate([secs, secs[-1:] + step_s]) if T else np.arange(2),
            "nat": np.concatenate([secs.astype("datetime64[s]")[:-1], np.array(["NaT"], dtype="datetime64[s]")])
            if T else np.zeros(0, dtype="datetime64[s]"),
        }[ts_kind]
    if draw(st.booleans()) or fault == "names":
        n_names = C + (draw(st.sampled_from([-1, 1])) if fault == "names" else 0)
        arrays["attributes"] = np.asarray([f"ch{i}" for i in range(n_names)], dtype=str)
    return arrays, key, mask_kind, ts_kind, t_pos


def _npz_oracle(arrays, key, mask_kind, ts_kind, t_pos):
    """(values float64 [T, N, C], claimed mask, axis position of each step, full length) or None if refused."""
    values = arrays["values"] if "values" in arrays else next(iter(arrays.values())) if len(arrays) == 1 else None
    if values is None or values.dtype.kind not in "biuf" or values.ndim not in (2, 3):
        return None
    mask = arrays.get("mask")
    if mask is not None and (
        mask.shape != values.shape or not (mask.dtype.kind == "b" or (mask.dtype.kind in "iuf" and np.isin(mask, (0, 1)).all()))
    ):
        return None
    v = values.astype(np.float64)
    v = v[:, :, None] if v.ndim == 2 else v
    T, N, C = v.shape
    if N == 0 or C == 0 or ("attributes" in arrays and len(arrays["attributes"]) != C):
        return None
    claimed = np.ones(v.shape, dtype=bool) if mask is None else mask.astype(bool).reshape(v.shape)
    if ts_kind == "none":
        return (v, claimed, np.arange(T), T) if T >= 2 else None
    if ts_kind in ("float", "wrong_length", "nat"):
        return None
    pos = np.asarray(t_pos)
    distinct = np.unique(pos)
    if len(distinct) != T or T < 2:
        return None
    gaps, counts = np.unique(np.diff(distinct), return_counts=True)
    step = int(gaps[np.argmax(counts)])
    if ((distinct - distinct[0]) % step).any():
        return None
    return v, claimed, (pos - distinct[0]) // step, int((distinct[-1] - distinct[0]) // step + 1)


@fuzz(60)
@given(npz_cases())
def test_fuzz_npz_import(tmp_path_factory, case):
    arrays, key, mask_kind, ts_kind, t_pos = case
    root = fresh_dir(tmp_path_factory)
    path = root / "input.npz"
    np.savez(path, **arrays)  # object arrays are pickled inside: the importer must refuse them
    folder, error = attempt(import_file, path, "fuzzed", root, overwrite=True)
    expected = _npz_oracle(arrays, key, mask_kind, ts_kind, t_pos)
    event("imported" if folder is not None else "UrbanstError" + ("" if expected is None else " (a valid archive!)"))
    if expected is None:
        assert error is not None, f"accepted a bad NPZ: {sorted(arrays)}, mask {mask_kind}, timestamps {ts_kind}"
        return
    assert error is None, error
    v, claimed, pos, T_full = expected
    data, meta = read_imported(folder), read_import_meta(folder)
    assert data.shape == (T_full, *v.shape[1:])
    want_observed = np.zeros(data.shape, dtype=bool)
    want_observed[pos] = claimed & np.isfinite(v)
    assert np.array_equal(data.observed_mask, want_observed)  # nothing missing observed, nothing valid dropped
    ok = want_observed[pos]
    assert np.array_equal(data.values[pos][ok], v.astype(np.float32)[ok])
    assert np.isnan(data.values[~data.observed_mask]).all()
    counts = meta["counts"]
    assert counts["nan_values"] == int((np.isnan(v) & claimed).sum())
    assert counts["inf_values"] == int((np.isinf(v) & claimed).sum())
    assert counts["absent_values"] == (T_full - v.shape[0]) * v.shape[1] * v.shape[2]
    check_metric_is_finite(data.values, data.observed_mask)


# =========================================================================================
# 4. windowing + scaler + forecast task
# =========================================================================================
@st.composite
def forecast_cases(draw):
    T, N, C = draw(st.one_of(st.integers(2, 6), st.integers(20, 60))), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    step = draw(st.sampled_from(["1h", "30min", "7min", "1D"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    scale = draw(st.sampled_from([1.0, 1e-3, 1e4, 1e30]))
    values = (rng.standard_normal((T, N, C)) * scale + draw(st.floats(-1e3, 1e3))).astype(np.float32)
    observed = rng.random((T, N, C)) > draw(st.sampled_from([0.0, 0.0, 0.1, 0.3, 0.9]))
    for _ in range(draw(st.integers(0, 3))):  # missing patches
        t0, t1 = sorted(draw(st.lists(st.integers(0, T), min_size=2, max_size=2)))
        n, c = draw(st.integers(0, N - 1)), draw(st.integers(0, C - 1))
        observed[t0:t1, n, c] = False
    if draw(st.booleans()):  # a constant channel
        values[..., draw(st.integers(0, C - 1))] = draw(st.floats(-10, 10, width=32))
    if draw(st.integers(0, 4)) == 0:  # NaN/inf under the mask: the container must mask them
        values[rng.random((T, N, C)) < 0.1] = draw(st.sampled_from([np.nan, np.inf]))
    train = draw(st.one_of(st.integers(5, 90), st.sampled_from([60, 70, 80]))) / 100
    val = draw(st.integers(0, 94 - int(train * 100))) / 100
    history, horizon = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    data = STData("fuzz", values, observed, pd.date_range("2022-01-03", periods=T, freq=step), [f"a{i}" for i in range(C)],
                  ["u"] * C, "city")
    return data, history, horizon, SplitRule(train, val)


def _expected_origins(data: STData, first: int, last: int, history: int, horizon: int) -> np.ndarray:
    steps = data.observed_mask.reshape(data.num_steps, -1).any(1)
    return np.array([o for o in range(max(first, history), last - horizon + 1) if steps[o : o + horizon].any()], dtype=np.int64)


@fuzz(50)
@given(forecast_cases())
def test_fuzz_forecast_windows(case):
    data, history, horizon, split = case
    task = ForecastTask(history=history, horizon=horizon, split=split)
    bounds = task.boundaries(data)
    t_train = bounds["train"][1]
    scaler, error = attempt(task.fit_scaler, data)
    if scaler is None:
        event("scaler refused")
        assert "no observed training value" in error
        assert (~data.observed_mask[:t_train].reshape(-1, data.num_channels).any(0)).any()  # a channel unseen in train
        return
    # the scaler saw only observed training values
    train_v = np.where(data.observed_mask[:t_train], data.values[:t_train], np.nan).reshape(-1, data.num_channels)
    np.testing.assert_allclose(scaler.mean, np.nanmean(train_v.astype(np.float64), 0), rtol=1e-5, atol=1e-6)
    assert np.isfinite(scaler.std).all() and (scaler.std > 0).all()
    for split_name, (first, last) in bounds.items():
        expected = _expected_origins(data, first, last, history, horizon)
        windows, error = attempt(task.windows, data, scaler, splits=(split_name,))
        if len(expected) == 0:
            event(f"{split_name}: holds no window")
            assert error is not None and "holds no window" in error and split_name in error, error
            continue
        assert error is None, error
        event(f"{split_name}: windows")
        w = windows[split_name]
        assert np.array_equal(w.origins.numpy(), expected)
        batch = w.__getitems__(list(range(len(w))))
        origin = batch["origin"].numpy()
        assert (origin - history >= 0).all() and (origin + horizon <= last).all()
        if split_name == "train":
            assert (origin + horizon <= t_train).all()  # train windows lie wholly in train
        else:
            assert (origin >= first).all()  # targets inside their split
        past = origin[:, None] + np.arange(-history, 0)
        future = origin[:, None] + np.arange(horizon)
        x, xm = batch["x"].numpy(), batch["input_mask"].numpy()
        y, ym = batch["y"].numpy(), batch["target_mask"].numpy()
        assert np.array_equal(xm, data.observed_mask[past]) and np.array_equal(ym, data.observed_mask[future])
        assert (x[~xm] == 0).all() and np.isfinite(x).all()
        np.testing.assert_allclose(x[xm], ((data.values[past] - scaler.mean) / scaler.std)[xm], rtol=1e-5, atol=1e-5)
        assert np.isfinite(y).all() and (y[~ym] == 0).all()  # never scored where unobserved
        assert np.array_equal(y[ym], data.values[future][ym])
        assert ym.reshape(len(origin), -1).any(1).all()  # each window has something to score
        if "periodic" in batch:
            pm = batch["periodic_mask"].numpy()
            assert (batch["periodic"].numpy()[~pm] == 0).all() and np.isfinite(batch["periodic"].numpy()).all()
        metric = RegressionMetrics(horizon=horizon, num_channels=data.num_channels)
        metric.update(batch["x"][:, -1:].expand(-1, horizon, -1, -1) * 0, batch["y"], batch["target_mask"])
        result = metric.compute()
        for key in ("mae", "rmse", "mape", "wape"):
            assert result[key] is None or np.isfinite(result[key])
            assert all(v is None or np.isfinite(v) for v in result["per_step"][key])


# =========================================================================================
# 5. metrics
# =========================================================================================
@st.composite
def metric_batches(draw):
    P, N, C = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    big = draw(st.sampled_from([False, False, False, True]))  # float64 far outside the float32 range
    f32 = float(np.float32(3e38))
    # float32 numbers (what models and STData hold), or any float64 (sums may overflow: refused, see the test)
    finite = st.floats(-1e300, 1e300) if big else st.floats(-f32, f32, width=32)
    batches = []
    for _ in range(draw(st.integers(1, 3))):
        B = draw(st.sampled_from([0, 1, 1, 2, 3]))
        shape = (B, P, N, C)
        size = B * P * N * C
        lists = lambda el: draw(st.lists(el, min_size=size, max_size=size))  # noqa: E731
        mask = np.array(lists(st.booleans()), dtype=bool).reshape(shape)
        if draw(st.sampled_from([False] * 5 + [True])):
            mask[:] = False
        junk = st.sampled_from([np.nan, np.inf, -np.inf, 1e308])
        pred = np.where(mask, np.array(lists(finite)).reshape(shape), np.array(lists(junk)).reshape(shape))
        target = np.where(mask, np.array(lists(finite)).reshape(shape), np.array(lists(junk)).reshape(shape))
        dtype = draw(st.sampled_from([np.float64, np.float32])) if not big else np.float64
        with np.errstate(over="ignore"):  # junk outside the mask may overflow float32 to inf: that is fine
            pred, target = pred.astype(dtype), target.astype(dtype)
        batches.append((torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(mask)))
    return P, C, batches, big


@fuzz(60)
@given(metric_batches(), st.sampled_from([1e-6, 1.0, 1e3]))
def test_fuzz_regression_metrics(case, mape_min):
    P, C, batches, big = case
    metric = RegressionMetrics(horizon=P, mape_min_target=mape_min, num_channels=C)
    copies = [(p.clone(), t.clone()) for p, t, _ in batches]
    for pred, target, mask in batches:
        metric.update(pred, target, mask)
    for (pred, target, _), (p0, t0) in zip(batches, copies):  # inputs untouched (NaN where NaN was)
        assert torch.equal(pred.nan_to_num(0.0), p0.nan_to_num(0.0)) and torch.equal(target.isnan(), t0.isnan())
    scored = sum(int(m.sum()) for _, _, m in batches)
    try:
        result, error = attempt(metric.compute)
    except ValueError as err:  # only float64 inputs far outside the float32 range may overflow
        event("float64 overflow: ValueError")
        assert big and "overflow" in str(err), err
        return
    if scored == 0:
        event("nothing scored: UrbanstError")
        assert error is not None and "no valid target" in error
        return
    assert error is None, error
    event("scored")
    assert result["count"] == scored
    for key in ("mae", "rmse", "mape", "wape"):
        assert result[key] is None or np.isfinite(result[key]), (key, result[key])
        for group in ("per_step", "per_channel"):
            assert all(v is None or np.isfinite(v) for v in result[group][key]), (group, key, result[group][key])
    errors = np.concatenate([(p.double() - t.double())[m].numpy() for p, t, m in batches])
    assert result["mae"] == pytest.approx(np.abs(errors).mean(), rel=1e-9)
    assert result["mae"] <= result["rmse"] * (1 + 1e-12) or result["mae"] < 1e-150  # (tiny errors square to 0)


@st.composite
def classification_batches(draw):
    P = draw(st.integers(1, 3))
    batches = []
    for _ in range(draw(st.integers(1, 3))):
        shape = (draw(st.integers(0, 3)), P, draw(st.integers(1, 2)))
        size = int(np.prod(shape))
        lists = lambda el: np.array(draw(st.lists(el, min_size=size, max_size=size))).reshape(shape)  # noqa: E731
        mask = lists(st.booleans()).astype(bool)
        if draw(st.integers(0, 3)) == 0:
            mask[:] = False
        prob = np.where(mask, lists(st.floats(0, 1)), lists(st.sampled_from([np.nan, -3.0, 7.0])))
        label = np.where(mask, lists(st.sampled_from([0.0, 1.0])), lists(st.sampled_from([np.nan, 5.0])))
        batches.append((torch.from_numpy(prob), torch.from_numpy(label), torch.from_numpy(mask)))
    return P, batches


@fuzz(40)
@given(classification_batches(), st.sampled_from([0.0, 0.5, 1.0]))
def test_fuzz_classification_metrics(case, threshold):
    P, batches = case
    metric = ClassificationMetrics(threshold=threshold, horizon=P)
    for prob, label, mask in batches:
        metric.update(prob, label, mask)
    scored = sum(int(m.sum()) for _, _, m in batches)
    result, error = attempt(metric.compute)
    if scored == 0:
        event("nothing scored: UrbanstError")
        assert error is not None and "no valid target" in error
        return
    assert error is None, error
    event("scored")
    assert result["count"] == scored == result["tp"] + result["fp"] + result["tn"] + result["fn"]
    for key, value in result.items():
        if key == "per_step":
            assert all(v is None or np.isfinite(v) for values in value.values() for v in values)
        else:
            assert value is None or np.isfinite(value), (key, value)
    assert result["auroc"] is None or 0 <= result["auroc"] <= 1


# =========================================================================================
# 6. STModel.from_pretrained on junk folders
# =========================================================================================
_SAVED: dict[str, bytes] = {}


def saved_model_files(tmp_path_factory) -> dict[str, bytes]:
    """config.json, model.safetensors and scaler.json of a small saved STID, built once."""
    if not _SAVED:
        from urbanst.data.scalers import StandardScaler
        from urbanst.models.registry import model_class
        from urbanst.contract import DataSpec

        spec = DataSpec(dataset="fuzz", num_units=3, num_channels=2, history=4, horizon=2, steps_per_day=24, lags=["1d"])
        model = model_class("stid").build(spec, embed_dim=8, num_layers=1)
        model.scaler = StandardScaler(np.array([1.0, 2.0], dtype=np.float32), np.array([1.0, 3.0], dtype=np.float32))
        folder = model.save_pretrained(fresh_dir(tmp_path_factory) / "model")
        _SAVED.update({p.name: p.read_bytes() for p in folder.iterdir()})
    return dict(_SAVED)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 40) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def junk_model_folders(draw, files: dict[str, bytes]):
    out: dict[str, bytes | None | str] = dict(files)
    meta = json.loads(files["config.json"])
    what = draw(st.sampled_from(["intact", "benign", "config", "weights", "scaler", "several"]))
    targets = {"several": ["config", "weights", "scaler"], "intact": [], "benign": []}.get(what, [what])
    if what == "benign":  # still a loadable model
        if draw(st.booleans()):
            out["scaler.json"] = None  # a model saved without a scaler
        else:
            new = {**meta, "config": {**meta["config"], "dropout": draw(st.floats(0, 0.9)), "use_periodic": True}}
            out["config.json"] = json.dumps(new).encode()
    for target in targets:
        if target == "config":
            how = draw(st.sampled_from(["bytes", "json", "field", "field", "drop", "extra", "model", "missing"]))
            if how == "bytes":
                out["config.json"] = draw(st.binary(max_size=64))
            elif how == "json":
                out["config.json"] = json.dumps(draw(JSON_VALUES)).encode()
            elif how == "missing":
                out["config.json"] = None
            else:
                cfg = dict(meta["config"])
                name = draw(st.sampled_from(sorted(cfg)))
                if how == "field":
                    cfg[name] = draw(JSON_VALUES)
                elif how == "drop":
                    del cfg[name]
                elif how == "extra":
                    cfg[draw(st.text(min_size=1, max_size=6))] = draw(JSON_VALUES)
                new = {**meta, "config": cfg}
                if how == "model":
                    new["model"] = draw(st.sampled_from(["ha", "last", "unist", "no_such_model", ""]))
                out["config.json"] = json.dumps(new).encode()
        elif target == "weights":
            how = draw(st.sampled_from(["truncate", "bytes", "pickle", "empty", "dir", "missing", "torch_save", "header"]))
            raw = files["model.safetensors"]
            if how == "truncate":
                out["model.safetensors"] = raw[: draw(st.integers(0, len(raw) - 1))]
            elif how == "bytes":
                out["model.safetensors"] = draw(st.binary(max_size=64))
            elif how == "pickle":
                out["model.safetensors"] = pickle.dumps({"series_embed.weight": [1.0, 2.0]})
            elif how == "torch_save":
                import io

                buffer = io.BytesIO()
                torch.save({"series_embed.weight": torch.zeros(2)}, buffer)
                out["model.safetensors"] = buffer.getvalue()
            elif how == "empty":
                out["model.safetensors"] = b""
            elif how == "dir":
                out["model.safetensors"] = "dir"
            elif how == "missing":
                out["model.safetensors"] = None
            else:  # a well-formed file whose tensors do not fit the model
                from safetensors.torch import save

                shape = tuple(draw(st.lists(st.integers(0, 3), max_size=3)))
                dtype = draw(st.sampled_from([torch.float32, torch.int64, torch.float16, torch.bool]))
                key = draw(st.sampled_from(["series_embed.weight", "unit_embed", "junk"]))
                out["model.safetensors"] = save({key: torch.zeros(shape, dtype=dtype)})
        else:
            how = draw(st.sampled_from(["bytes", "json", "dict"]))
            if how == "bytes":
                out["scaler.json"] = draw(st.binary(max_size=32))
            elif how == "json":
                out["scaler.json"] = json.dumps(draw(JSON_VALUES)).encode()
            else:
                stats = st.lists(st.one_of(st.floats(), st.text(max_size=2), st.none()), max_size=3)
                out["scaler.json"] = json.dumps(
                    {"kind": draw(st.sampled_from(["standard", "minmax"])), "mean": draw(stats), "std": draw(stats)}
                ).encode()
    return out, what


@fuzz(60)
@given(st.data())
def test_fuzz_from_pretrained_on_junk_folders(tmp_path_factory, data):
    from urbanst.models.base import STModel

    files = saved_model_files(tmp_path_factory)
    junk, what = data.draw(junk_model_folders(files))
    folder = fresh_dir(tmp_path_factory)
    for name, content in junk.items():
        if content == "dir":
            (folder / name).mkdir()
        elif content is not None:
            (folder / name).write_bytes(content)
    model, error = attempt(STModel.from_pretrained, folder)
    event(f"{what}: " + ("loaded" if model is not None else "UrbanstError"))
    if what in ("intact", "benign"):
        assert error is None, error
    if model is not None:  # whatever was loaded is a usable model of the saved kind
        assert isinstance(model, STModel)
        if model.scaler is not None:
            assert np.isfinite(model.scaler.mean).all() and (model.scaler.std > 0).all()
            assert model.scaler.mean.shape == model.scaler.std.shape == (model.config.num_channels,)
