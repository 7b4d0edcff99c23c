"""NPZ archives, always read with ``allow_pickle=False`` (an archive holding Python objects is refused).

``values`` ``[T, N, C]`` or ``[T, N]`` (taken as C = 1); when the archive holds a single array
under another name (``arr_0``), that array is the values. Optional arrays:

- ``mask``: same shape as ``values``, bool or 0/1, **True/1 = observed** (urbanst's
  convention; some libraries use the opposite);
- ``timestamps`` ``[T]``: datetime64, ISO strings, or integers (Unix seconds). Without
  them the axis starts at ``start`` (default 2000-01-01 00:00) with ``step`` (default
  1 h), and the dataset notes say so. Timestamps may be unsorted and may skip steps
  (missing steps become masked);
- ``attributes`` ``[C]`` and ``units`` ``[C]`` (text), ``unit_names`` ``[N]`` (text),
  ``coords`` ``[N, 2]`` (lat, lon degrees; or metres with ``coord_system`` = "metres"),
  ``adjacency`` ``[N, N]``, ``grid_shape`` ``(H, W)`` with H*W = N (row-major).

Other arrays are ignored (the notes name them).
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from urbanst.data.importers.raw import Raw, select_names
from urbanst.data.importers.time_axis import assumed_axis, naive_utc, parse_dates, place_on_axis
from urbanst.errors import UrbanstError

KNOWN = {
    "values",
    "mask",
    "timestamps",
    "attributes",
    "units",
    "unit_names",
    "coords",
    "coord_system",
    "adjacency",
    "grid_shape",
}


def read_npz(path: Path, step: pd.Timedelta | None, start: pd.Timestamp | None, attribute) -> Raw:
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\x93NUMPY"):
        raise UrbanstError(
            f"{path} is a single .npy array, not an .npz archive; save it with np.savez(file, values=array)"
        )
    if not magic.startswith(b"PK"):
        raise UrbanstError(f"cannot read {path} as NPZ: it is not a zip archive (starts with {magic[:4]!r})")
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as z:
            for key in z.files:
                try:
                    arrays[key] = z[key]
                except ValueError as err:
                    if "allow_pickle" in str(err) or "Object arrays" in str(err):
                        raise UrbanstError(
                            f"{path}: array {key!r} holds Python objects (stored as a pickle); urbanst never unpickles "
                            "imported files: save numbers with a numeric dtype and text as fixed-width strings "
                            "(np.asarray(x, dtype=float) / np.asarray(names, dtype=str))"
                        ) from None
                    raise
    except UrbanstError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error, NotImplementedError) as err:
        raise UrbanstError(f"cannot read {path} as NPZ: damaged or truncated archive ({type(err).__name__}: {err})") from None
    if not arrays:
        raise UrbanstError(f"{path}: the NPZ archive holds no arrays; expected one named 'values'")
    notes: list[str] = []
    if "values" in arrays:
        values = arrays["values"]
    elif len(arrays) == 1:
        key = next(iter(arrays))
        values = arrays[key]
        notes.append(f"values taken from the only array, {key!r}.")
    else:
        raise UrbanstError(f"{path}: no array named 'values' (it has {sorted(arrays)}); name the [T, N, C] data 'values'")
    if values.dtype.kind not in "biuf":
        raise UrbanstError(f"{path}: 'values' must be numeric, got dtype {values.dtype}")
    given_shape = values.shape
    if values.ndim == 2:
        values = values[:, :, None]
        expand = True
    elif values.ndim == 3:
        expand = False
    else:
        raise UrbanstError(
            f"{path}: 'values' must be [T, N, C] or [T, N], got shape {values.shape}; grid data go in as "
            "[T, H*W, C] with grid_shape=(H, W)"
        )
    values = values.astype(np.float64)
    T, N, C = values.shape

    mask = arrays.get("mask")
    if mask is not None:
        if expand and mask.ndim == 2:
            mask = mask[:, :, None]
        if mask.shape != values.shape:
            raise UrbanstError(
                f"{path}: 'mask' has shape {arrays['mask'].shape} but 'values' has shape {given_shape}; they must match"
            )
        if mask.dtype.kind == "b":
            mask = mask.astype(bool)
        elif mask.dtype.kind in "iuf":
            if not np.isin(mask, (0, 1)).all():
                raise UrbanstError(f"{path}: 'mask' must be bool or 0/1 (1 = observed), found other values")
            mask = mask.astype(bool)
        else:
            raise UrbanstError(f"{path}: 'mask' must be bool or 0/1, got dtype {mask.dtype}")
    claimed = np.ones(values.shape, dtype=bool) if mask is None else mask

    # channel names, units, selection
    attributes = _text_list(arrays.get("attributes"), C, "attributes", path)
    units = _text_list(arrays.get("units"), C, "units", path)
    if attributes is None:
        if C == 1 and isinstance(attribute, str):
            attributes, attribute = [attribute], None
        else:
            attributes = ["value"] if C == 1 else [f"ch{i}" for i in range(C)]
    if attribute is not None:
        chosen = select_names(attributes, attribute, path, "attribute")
        idx = [attributes.index(a) for a in chosen]
        values, claimed = values[..., idx], claimed[..., idx]
        attributes = chosen
        units = None if units is None else [units[i] for i in idx]
        C = len(idx)
    units_list: list[str | None] = list(units) if units is not None else [None] * C
    nan_count = int((np.isnan(values) & claimed).sum())  # NaN/inf where the source claimed a value
    inf_count = int((np.isinf(values) & claimed).sum())
    observed = claimed & np.isfinite(values)

    # time axis
    ts_arr = arrays.get("timestamps")
    absent = 0
    if ts_arr is None:
        axis = assumed_axis(T, start, step, "the file has no timestamps", notes)
    else:
        ts = _npz_timestamps(ts_arr, T, path, notes)
        axis, values, observed, absent = place_on_axis(ts, values, observed, step, path, notes)

    unit_names = _text_list(arrays.get("unit_names"), N, "unit_names", path)
    coord_system = "latlon"
    if "coord_system" in arrays:
        coord_system = str(np.asarray(arrays["coord_system"]).reshape(-1)[0]) if arrays["coord_system"].size else ""
        if coord_system not in ("latlon", "metres"):
            raise UrbanstError(f"{path}: coord_system must be 'latlon' or 'metres', got {coord_system!r}")
    grid_shape = None
    if "grid_shape" in arrays:
        gs = np.asarray(arrays["grid_shape"]).reshape(-1)
        if gs.size != 2 or gs.dtype.kind not in "iuf" or (gs != np.round(gs)).any():
            raise UrbanstError(f"{path}: grid_shape must be two integers (H, W), got {arrays['grid_shape']!r}")
        grid_shape = (int(gs[0]), int(gs[1]))
    ignored = sorted(set(arrays) - KNOWN - ({next(iter(arrays))} if len(arrays) == 1 else set()))
    if ignored:
        notes.append(f"ignored arrays in the file: {ignored}.")
    for key in ("coords", "adjacency"):
        if key in arrays and arrays[key].dtype.kind not in "biuf":
            raise UrbanstError(f"{path}: {key!r} must be numeric, got dtype {arrays[key].dtype}")
    return Raw(
        values=values,
        observed=observed,
        timestamps=axis,
        attributes=attributes,
        units=units_list,
        unit_names=unit_names,
        coords=arrays.get("coords"),
        coord_system=coord_system,
        adjacency=arrays.get("adjacency"),
        grid_shape=grid_shape,
        nan_values=nan_count,
        inf_values=inf_count,
        absent_values=absent,
        notes=notes,
        source_details={"arrays": sorted(arrays)},
    )


def _text_list(arr, length: int, key: str, path: Path) -> list[str] | None:
    if arr is None:
        return None
    arr = np.asarray(arr)
    if arr.shape != (length,):
        raise UrbanstError(f"{path}: {key!r} must list {length} names, got shape {arr.shape}")
    if arr.dtype.kind == "S":
        arr = np.char.decode(arr, "utf-8")
    return [str(a) for a in arr]


def _npz_timestamps(arr: np.ndarray, T: int, path: Path, notes: list[str]) -> pd.DatetimeIndex:
    arr = np.asarray(arr)
    if arr.ndim != 1 or arr.shape[0] != T:
        raise UrbanstError(f"{path}: 'timestamps' has shape {arr.shape} but 'values' has {T} steps; give one per step")
    try:
        if arr.dtype.kind == "M":
            ts = pd.DatetimeIndex(arr)
        elif arr.dtype.kind in "iu":
            ts = pd.DatetimeIndex(pd.to_datetime(arr.astype(np.int64), unit="s"))
            notes.append("integer timestamps read as Unix seconds (UTC).")
        elif arr.dtype.kind in "US":
            text = np.char.decode(arr, "utf-8") if arr.dtype.kind == "S" else arr
            ts = parse_dates(pd.Series(text).str.strip())
        else:
            raise UrbanstError(
                f"{path}: 'timestamps' must be datetime64, ISO text or integer Unix seconds, got dtype {arr.dtype}"
            )
    except (ValueError, TypeError, OverflowError) as err:
        raise UrbanstError(f"{path}: cannot read 'timestamps' as dates ({str(err).splitlines()[0]})") from None
    if ts.isna().any():
        raise UrbanstError(f"{path}: 'timestamps' has {int(ts.isna().sum())} empty (NaT) entries")
    return naive_utc(ts, notes)
