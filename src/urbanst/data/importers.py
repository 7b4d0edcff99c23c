"""Import a user's own file (CSV, NPZ, NetCDF) as a named dataset, and read it back.

``import_file(path, name)`` reads the file, builds an :class:`STData` (which validates
it), and stores it under ``<data dir>/imported/<name>/``; afterwards
``load_dataset(name)`` finds it like any built-in dataset.

Accepted inputs
---------------
**CSV, long form** (``.csv``, also ``.csv.gz``/``.csv.bz2``/``.csv.zip``/``.csv.xz``): one row per value, columns

- ``timestamp``: ISO-like date/time text (a time zone, if given, is converted to UTC and
  dropped), or integers taken as Unix seconds;
- ``unit``: the spatial unit (station, zone, cell id); any text or number;
- ``attribute``: what was measured (``pm25``, ``inflow``...);
- ``value``: a number; empty, ``NaN``, ``inf`` become masked values (and are counted);
- optional ``lat`` and ``lon`` (degrees): one position per unit, kept as coordinates.
  Every unit needs one, and the same one on all its rows.

Column names are matched without regard to case or surrounding blanks; other columns are
ignored. Rows may come in any order. Units and attributes are sorted (numerically when
the column is numeric). The time axis runs from the first to the last timestamp at the
step (given as ``step="1h"``, or inferred as the most common gap between distinct
timestamps); every (timestamp, unit, attribute) without a row becomes a masked value
(and is counted). A timestamp that falls between steps, a duplicate (timestamp, unit,
attribute) row, or a value that is not a number is refused, naming a few of them.

**NPZ** (``.npz``), always read with ``allow_pickle=False`` (an archive holding Python
objects is refused): ``values`` ``[T, N, C]`` or ``[T, N]`` (taken as C = 1); when the
archive holds a single array under another name (``arr_0``), that array is the values.
Optional arrays:

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

**NetCDF** (``.nc``, ``.nc4``, ``.cdf``, ``.netcdf``) through xarray. netCDF-3 files are
read with scipy (always installed); netCDF-4/HDF5 files need the ``netCDF4`` or
``h5netcdf`` package (the error says so). Fill values become masked. One data variable
with a time dimension is imported (pick it with ``attribute=`` when there are several;
a list picks several variables of the same dimensions as channels):

- dims (time, lat, lon) (or (time, y, x)): a grid, N = H*W row-major, ``grid_shape``
  kept, coordinates from 1-D or 2-D ``lat``/``lon`` variables when present;
- dims (time, station) (any name for the second): units, named by that coordinate,
  with coordinates from ``lat``/``lon`` variables along it when present.

Cells that are never observed (land in a sea field) stay as all-masked units.

Stored form (``<data dir>/imported/<name>/``)
-----------------------------------------------
- ``data.npz`` (``np.savez``, numeric and fixed-width text arrays only, no pickles):
  ``values`` float32 [T, N, C] (NaN where masked), ``observed_mask`` bool [T, N, C],
  ``timestamps`` int64 ns since 1970 [T]; optional ``coords`` float64 [N, 2],
  ``adjacency`` float32 [N, N], ``grid_shape`` int64 [2], ``grid_cells`` int64 [N],
  ``unit_names`` str [N].
- ``meta.json``: name, city, attributes, units, step, start/end, shape, coord_system,
  notes, the source (path, format, size, SHA-256), import time, urbanst version, and
  ``counts``: ``nan_values`` / ``inf_values`` (values the source held as NaN / inf where
  it did not already mark them missing; they became masked), ``absent_values`` (cells of
  the regular grid with no value in the source: absent CSV rows, skipped time steps).

The folder is written to ``imported/.staging/`` and renamed into place, so a failed
import never leaves half a dataset; importing over an existing name needs
``overwrite=True``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
import shutil
import uuid
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from urbanst.data.container import STData
from urbanst.errors import UrbanstError
from urbanst.settings import data_dir

IMPORTED_FOLDER = "imported"  # same as urbanst.data.registry.IMPORTED_FOLDER
STAGING_FOLDER = ".staging"
FORMAT_NAME = "urbanst-imported"
FORMAT_VERSION = 1
DEFAULT_START = "2000-01-01 00:00"
DEFAULT_STEP = "1h"
MAX_VALUES = 1_000_000_000  # cells of the regular [T, N, C] grid; ~5 GB of memory

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_FORMATS = {"csv": "csv", "npz": "npz", "netcdf": "netcdf", "nc": "netcdf"}
_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz")
_NETCDF_SUFFIXES = (".nc", ".nc4", ".cdf", ".netcdf")
_TIME_NAMES = ("time", "times", "t", "date", "datetime", "timestamp")
_LAT_NAMES = ("lat", "latitude", "y", "nav_lat", "rlat")
_LON_NAMES = ("lon", "longitude", "lng", "long", "x", "nav_lon", "rlon")


# ----------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------
def import_file(
    path: str | Path,
    name: str,
    root: str | Path | None = None,
    *,
    fmt: str | None = None,
    step: str | pd.Timedelta | _dt.timedelta | None = None,
    start: str | pd.Timestamp | None = None,
    city: str = "unknown",
    attribute: str | list[str] | None = None,
    unit: str | dict[str, str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Import a user file as dataset ``name`` and return its folder.

    ``fmt``: "csv", "npz" or "netcdf" (default: from the file suffix). ``step``: the time
    step as text ("1h", "15min", "1D"); inferred from the timestamps when omitted.
    ``start``: first timestamp for an NPZ/NetCDF without times (default 2000-01-01).
    ``attribute``: import only this attribute (CSV: rows of it; NPZ: that channel, or the
    name of the single channel when the file names none; NetCDF: that variable).
    ``unit``: unit of measure for every attribute (or a dict per attribute) when the file
    does not say. ``overwrite``: replace an existing imported dataset of that name.
    """
    path = Path(path).expanduser()
    _check_name(name)
    folder = data_dir(root) / IMPORTED_FOLDER / name
    if (folder.exists() or folder.is_symlink()) and not overwrite:
        raise UrbanstError(
            f"an imported dataset named {name!r} already exists in {folder}; "
            "pass overwrite=True (CLI: --overwrite) to replace it, or choose another name"
        )
    if not path.exists():
        raise UrbanstError(f"cannot import {path}: file not found")
    if not path.is_file():
        raise UrbanstError(f"cannot import {path}: not a file")
    kind = _guess_format(path, fmt)
    step_td = _parse_step(step) if step is not None else None
    start_ts = _parse_start(start)
    if kind == "csv":
        raw = _read_csv(path, step_td, attribute)
    elif kind == "npz":
        raw = _read_npz(path, step_td, start_ts, attribute)
    else:
        raw = _read_netcdf(path, step_td, start_ts, attribute)
    data = _build(raw, path, name, city, unit, kind)
    meta = _meta(data, raw, path, kind)
    _store(data, meta, folder, overwrite)
    _forget_cached(name)
    return folder


def read_imported(folder: str | Path) -> STData:
    """Read a dataset stored by :func:`import_file` (never unpickles anything)."""
    folder = Path(folder)
    meta = read_import_meta(folder)
    npz_path = folder / "data.npz"
    try:
        with np.load(npz_path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise UrbanstError(f"imported dataset {folder.name!r} is damaged: {npz_path} is missing; import it again") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise UrbanstError(f"imported dataset {folder.name!r} is damaged: cannot read {npz_path} ({err}); import it again") from None
    missing = [k for k in ("values", "observed_mask", "timestamps") if k not in arrays]
    if missing:
        raise UrbanstError(f"imported dataset {folder.name!r} is damaged: {npz_path} lacks {missing}; import it again")
    grid_shape = arrays.get("grid_shape")
    unit_names = arrays.get("unit_names")
    notes = meta.get("notes", "")
    lines = import_summary_lines(meta)
    if lines:
        notes = (notes + " " if notes else "") + " ".join(lines)
    try:
        return STData(
            name=str(meta.get("name", folder.name)),
            values=arrays["values"],
            observed_mask=arrays["observed_mask"],
            timestamps=pd.DatetimeIndex(arrays["timestamps"].astype("datetime64[ns]")),
            attributes=list(meta["attributes"]),
            units=list(meta["units"]),
            city=str(meta.get("city", "unknown")),
            unit_names=None if unit_names is None else [str(u) for u in unit_names],
            grid_shape=None if grid_shape is None else (int(grid_shape[0]), int(grid_shape[1])),
            grid_cells=arrays.get("grid_cells"),
            coords=arrays.get("coords"),
            coord_system=str(meta.get("coord_system", "latlon")),
            adjacency=arrays.get("adjacency"),
            notes=notes,
        )
    except KeyError as err:
        raise UrbanstError(f"imported dataset {folder.name!r} is damaged: meta.json lacks {err}; import it again") from None


def read_import_meta(folder: str | Path) -> dict:
    """The ``meta.json`` of an imported dataset (for ``urbanst data info``)."""
    folder = Path(folder)
    meta_path = folder / "meta.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UrbanstError(f"imported dataset {folder.name!r} is damaged: {meta_path} is missing; import it again") from None
    except (ValueError, OSError) as err:
        raise UrbanstError(f"imported dataset {folder.name!r} is damaged: cannot read {meta_path} ({err}); import it again") from None
    if not isinstance(meta, dict):
        raise UrbanstError(f"imported dataset {folder.name!r} is damaged: {meta_path} is not a JSON object; import it again")
    return meta


def import_summary_lines(meta: dict) -> list[str]:
    """Human-readable lines about what the import masked, e.g. for ``urbanst data info``."""
    counts = meta.get("counts", {})
    lines = []
    nonfinite = int(counts.get("nan_values", 0)) + int(counts.get("inf_values", 0))
    if nonfinite:
        lines.append(
            f"NaN/inf in the source became masked: {nonfinite} values "
            f"({counts.get('nan_values', 0)} NaN, {counts.get('inf_values', 0)} inf)."
        )
    if counts.get("absent_values"):
        lines.append(f"Absent from the source (no row or time step) and masked: {counts['absent_values']} values.")
    return lines


# ----------------------------------------------------------------------------------------
# what every reader returns
# ----------------------------------------------------------------------------------------
@dataclass
class _Raw:
    values: np.ndarray  # [T, N, C] float (any), NaN where missing
    observed: np.ndarray  # [T, N, C] bool
    timestamps: pd.DatetimeIndex
    attributes: list[str]
    units: list[str | None]  # None = not given by the file
    unit_names: list[str] | None = None
    coords: np.ndarray | None = None
    coord_system: str = "latlon"
    adjacency: np.ndarray | None = None
    grid_shape: tuple[int, int] | None = None
    nan_values: int = 0
    inf_values: int = 0
    absent_values: int = 0
    notes: list[str] = field(default_factory=list)
    source_details: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------------
# small parsers
# ----------------------------------------------------------------------------------------
def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise UrbanstError(
            f"invalid dataset name {name!r}: use letters, digits, '_', '-' or '.', starting with a letter or digit "
            "(at most 100 characters)"
        )
    builtin = _builtin_names()
    if name in builtin:
        raise UrbanstError(f"{name!r} is the name of a built-in dataset; choose another name for your import")


def _builtin_names() -> set[str]:
    from urbanst.data import registry

    try:
        return set(registry.builtin_datasets())
    except ImportError:  # a reader module is missing from this checkout: check what did register
        return set(registry._REGISTRY)


def _guess_format(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        kind = _FORMATS.get(str(fmt).lower())
        if kind is None:
            raise UrbanstError(f"unknown import format {fmt!r}; use one of csv, npz, netcdf")
        return kind
    lower = path.name.lower()
    if lower.endswith(_CSV_SUFFIXES):
        return "csv"
    if lower.endswith(".npz"):
        return "npz"
    if lower.endswith(_NETCDF_SUFFIXES):
        return "netcdf"
    raise UrbanstError(
        f"cannot tell the format of {path} from its suffix; name it .csv, .npz or .nc, or pass fmt='csv'|'npz'|'netcdf'"
    )


def _parse_step(step) -> pd.Timedelta:
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


def _parse_start(start) -> pd.Timestamp | None:
    if start is None:
        return None
    try:
        ts = pd.Timestamp(start)
    except (ValueError, TypeError) as err:
        raise UrbanstError(f"start {start!r} is not a date/time ({err}); use text such as '2020-01-01 00:00'") from None
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def _to_ns(index: pd.DatetimeIndex, source: Path) -> np.ndarray:
    try:
        return np.asarray(index.as_unit("ns").asi8, dtype=np.int64)
    except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime) as err:
        raise UrbanstError(f"{source}: timestamps outside the years 1678..2261 are not supported ({err})") from None


def _parse_dates(text: pd.Series) -> pd.DatetimeIndex:
    """Dates from text: one inferred format first (fast), element by element when formats are mixed."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "could not infer format": we fall back on purpose
        try:
            return pd.DatetimeIndex(pd.to_datetime(text))
        except (ValueError, TypeError):
            return pd.DatetimeIndex(pd.to_datetime(text, format="mixed"))


def _naive_utc(index: pd.DatetimeIndex, notes: list[str]) -> pd.DatetimeIndex:
    if index.tz is not None:
        notes.append(f"timestamps converted from time zone {index.tz} to UTC.")
        index = index.tz_convert("UTC").tz_localize(None)
    return index


def _fmt_step(td: pd.Timedelta) -> str:
    """Short text for a step: '1h', '15min', '1D', '30s'."""
    ns = int(td.value)
    for unit, size in (("D", 86_400 * 10**9), ("h", 3_600 * 10**9), ("min", 60 * 10**9), ("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"


def _regular_axis(
    ns: np.ndarray, step: pd.Timedelta | None, source: Path, what: str = "timestamps"
) -> tuple[pd.DatetimeIndex, np.ndarray, pd.Timedelta, bool]:
    """Map sorted, distinct ``ns`` onto the regular axis ``ns[0] + k * step``.

    Returns the full axis, the position of each input time, the step and whether it was inferred.
    """
    if len(ns) < 2:
        raise UrbanstError(f"{source}: needs at least 2 distinct {what}, found {len(ns)}")
    inferred = step is None
    if step is None:
        diffs = np.diff(ns)
        gaps, counts = np.unique(diffs, return_counts=True)
        step_ns = int(gaps[np.argmax(counts)])  # most common gap; ties: the smallest
        step = pd.Timedelta(step_ns, unit="ns")
    step_ns = int(step.value)
    offsets = ns - ns[0]
    off_grid = np.flatnonzero(offsets % step_ns != 0)
    if off_grid.size:
        shown = ", ".join(str(pd.Timestamp(int(ns[i]))) for i in off_grid[:3])
        how = "the most common gap, inferred" if inferred else "given"
        raise UrbanstError(
            f"{source}: {off_grid.size} of the {what} fall between steps of {_fmt_step(step)} ({how}) counted from "
            f"{pd.Timestamp(int(ns[0]))}, e.g. {shown}; pass the right step= (e.g. step='30min') or resample the "
            "data onto a regular axis first"
        )
    positions = offsets // step_ns
    T = int(positions[-1]) + 1
    axis = pd.DatetimeIndex((ns[0] + np.arange(T, dtype=np.int64) * step_ns).astype("datetime64[ns]"))
    return axis, positions, step, inferred


def _check_size(T: int, N: int, C: int, step: pd.Timedelta, axis_start, source: Path) -> None:
    if T * N * C > MAX_VALUES:
        raise UrbanstError(
            f"{source}: the regular axis from {axis_start} at step {_fmt_step(step)} has {T} steps; with {N} units and "
            f"{C} attributes that is {T * N * C:,} values (limit {MAX_VALUES:,}); check the step (pass step=) "
            "or split the file"
        )


def _select_names(available: list[str], attribute, source: Path, what: str) -> list[str]:
    if attribute is None:
        return list(available)
    wanted = [attribute] if isinstance(attribute, str) else list(attribute)
    unknown = [a for a in wanted if a not in available]
    if unknown:
        raise UrbanstError(f"{source} has no {what} {unknown}; it has {sorted(available)[:20]}")
    return wanted


# ----------------------------------------------------------------------------------------
# CSV
# ----------------------------------------------------------------------------------------
_REQUIRED_CSV = ("timestamp", "unit", "attribute", "value")


def _read_csv(path: Path, step: pd.Timedelta | None, attribute) -> _Raw:
    if not path.name.lower().endswith(_CSV_SUFFIXES[1:]):  # plain text: binary content is a sure sign of corruption
        with open(path, "rb") as f:
            head = f.read(8192)
        if b"\x00" in head:
            raise UrbanstError(f"cannot read {path} as CSV: it holds binary data, not text")
    try:
        df = pd.read_csv(path, low_memory=False)
    except pd.errors.EmptyDataError:
        raise UrbanstError(f"cannot read {path} as CSV: the file is empty") from None
    except UnicodeDecodeError as err:
        raise UrbanstError(f"cannot read {path} as CSV: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except (pd.errors.ParserError, ValueError, OSError, EOFError, zlib.error, zipfile.BadZipFile) as err:
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UrbanstError(f"cannot read {path} as CSV: {msg}") from None
    cols = {str(c).strip().lower(): c for c in df.columns}
    missing = [c for c in _REQUIRED_CSV if c not in cols]
    if missing:
        seen = [str(c) for c in df.columns[:10]]
        raise UrbanstError(
            f"cannot read {path} as a long-form CSV: missing column(s) {missing}; it has {seen}"
            f"{' ...' if len(df.columns) > 10 else ''}. Needed: timestamp, unit, attribute, value "
            "(one row per value; optional lat, lon per unit)"
        )
    if len(df) == 0:
        raise UrbanstError(f"cannot import {path}: the CSV has a header but no rows")
    notes: list[str] = []
    lines = np.arange(len(df)) + 2  # file line of each row (header is line 1)

    # attributes (and the optional filter on them)
    attr_col = df[cols["attribute"]]
    if attr_col.isna().any():
        bad = lines[attr_col.isna().to_numpy()][:5].tolist()
        raise UrbanstError(f"{path}: empty 'attribute' on line(s) {bad}")
    attr_col = attr_col.astype(str).str.strip()
    attributes = sorted(attr_col.unique().tolist())
    attributes = _select_names(attributes, attribute, path, "attribute")
    if attribute is not None:
        keep = attr_col.isin(attributes).to_numpy()
        df, attr_col, lines = df[keep], attr_col[keep], lines[keep]

    # units
    unit_col = df[cols["unit"]]
    if unit_col.isna().any():
        bad = lines[unit_col.isna().to_numpy()][:5].tolist()
        raise UrbanstError(f"{path}: empty 'unit' on line(s) {bad}")
    if pd.api.types.is_numeric_dtype(unit_col) and not pd.api.types.is_bool_dtype(unit_col):
        raw_units = unit_col.to_numpy()  # numeric ids sort numerically
    else:
        raw_units = unit_col.astype(str).str.strip().to_numpy(dtype=object)
    unit_keys = np.unique(raw_units)
    unit_pos = np.searchsorted(unit_keys, raw_units)
    unit_names = [str(u) for u in unit_keys]
    attr_pos = pd.Index(attributes).get_indexer(attr_col.to_numpy())

    # timestamps
    ts_raw = df[cols["timestamp"]]
    if ts_raw.isna().any():
        bad = lines[ts_raw.isna().to_numpy()][:5].tolist()
        raise UrbanstError(f"{path}: empty 'timestamp' on line(s) {bad}")
    try:
        if pd.api.types.is_integer_dtype(ts_raw):
            ts = pd.DatetimeIndex(pd.to_datetime(ts_raw.to_numpy(), unit="s"))
            notes.append("integer timestamps read as Unix seconds (UTC).")
        else:
            ts = _parse_dates(ts_raw.astype(str).str.strip())
    except (ValueError, TypeError, OverflowError) as err:
        raise UrbanstError(
            f"{path}: cannot read the 'timestamp' column as dates ({str(err).splitlines()[0]}); "
            "write them like 2020-01-01 13:00 or as Unix seconds"
        ) from None
    ts = _naive_utc(ts, notes)
    row_ns = _to_ns(ts, path)

    # values
    val_raw = df[cols["value"]]
    if pd.api.types.is_numeric_dtype(val_raw) and not pd.api.types.is_bool_dtype(val_raw):
        vals = val_raw.to_numpy(dtype=np.float64)
    else:
        vals = pd.to_numeric(val_raw, errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(np.isnan(vals) & val_raw.notna().to_numpy())
        if bad.size:
            shown = ", ".join(f"line {lines[i]}: {val_raw.iloc[i]!r}" for i in bad[:3])
            raise UrbanstError(f"{path}: {bad.size} value(s) are not numbers ({shown}); fix or empty them")

    # duplicates
    dup = pd.DataFrame({"t": row_ns, "u": unit_pos, "a": attr_pos}).duplicated(keep=False).to_numpy()
    if dup.any():
        idx = np.flatnonzero(dup)
        order = np.lexsort((lines[idx], attr_pos[idx], unit_pos[idx], row_ns[idx]))
        idx = idx[order]
        groups: dict[tuple, list[int]] = {}
        for i in idx:
            key = (int(row_ns[i]), int(unit_pos[i]), int(attr_pos[i]))
            if key not in groups and len(groups) == 3:
                break
            groups.setdefault(key, []).append(int(lines[i]))
        shown = "; ".join(
            f"({pd.Timestamp(k[0])}, {unit_names[k[1]]}, {attributes[k[2]]}) on lines {v}" for k, v in groups.items()
        )
        n_keys = int(pd.DataFrame({"t": row_ns[dup], "u": unit_pos[dup], "a": attr_pos[dup]}).drop_duplicates().shape[0])
        raise UrbanstError(
            f"{path}: {n_keys} (timestamp, unit, attribute) combination(s) appear on more than one row, e.g. {shown}; "
            "keep one row each (or aggregate them, e.g. sum or mean) before importing"
        )

    # the regular axis
    distinct = np.unique(row_ns)
    axis, _, step, inferred = _regular_axis(distinct, step, path)
    T, N, C = len(axis), len(unit_names), len(attributes)
    _check_size(T, N, C, step, axis[0], path)
    t_pos = (row_ns - distinct[0]) // int(step.value)
    if inferred:
        notes.append(f"step {_fmt_step(step)} inferred from the timestamps.")

    values = np.full((T, N, C), np.nan, dtype=np.float64)
    present = np.zeros((T, N, C), dtype=bool)
    values[t_pos, unit_pos, attr_pos] = vals
    present[t_pos, unit_pos, attr_pos] = True
    nan_count = int(np.isnan(vals).sum())
    inf_count = int(np.isinf(vals).sum())
    absent = int(T * N * C - len(vals))

    coords = _csv_coords(df, cols, unit_pos, unit_names, path)
    return _Raw(
        values=values,
        observed=present & np.isfinite(values),
        timestamps=axis,
        attributes=attributes,
        units=[None] * C,
        unit_names=unit_names,
        coords=coords,
        nan_values=nan_count,
        inf_values=inf_count,
        absent_values=absent,
        notes=notes,
        source_details={"rows": int(len(vals))},
    )


def _csv_coords(df: pd.DataFrame, cols: dict, unit_pos: np.ndarray, unit_names: list[str], path: Path):
    if "lat" not in cols and "lon" not in cols:
        return None
    if "lat" not in cols or "lon" not in cols:
        raise UrbanstError(f"{path}: has only one of the columns lat, lon; give both (degrees) or neither")
    coords = np.full((len(unit_names), 2), np.nan)
    for j, key in enumerate(("lat", "lon")):
        col = pd.to_numeric(df[cols[key]], errors="coerce")
        per_unit = pd.DataFrame({"u": unit_pos, "v": col.to_numpy(dtype=np.float64)}).dropna()
        spread = per_unit.groupby("u")["v"].agg(["min", "max"])
        differ = spread.index[(spread["max"] - spread["min"]).abs() > 1e-9].tolist()
        if differ:
            shown = [unit_names[i] for i in differ[:5]]
            raise UrbanstError(f"{path}: unit(s) {shown} have more than one '{key}'; give one position per unit")
        coords[spread.index.to_numpy(), j] = spread["min"].to_numpy()
    lacking = np.flatnonzero(~np.isfinite(coords).all(axis=1))
    if lacking.size:
        shown = [unit_names[i] for i in lacking[:5]]
        raise UrbanstError(
            f"{path}: {lacking.size} unit(s) have no numeric lat/lon, e.g. {shown}; give every unit a position "
            "or drop the lat and lon columns"
        )
    return coords


# ----------------------------------------------------------------------------------------
# NPZ
# ----------------------------------------------------------------------------------------
_NPZ_KNOWN = {
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


def _read_npz(path: Path, step: pd.Timedelta | None, start: pd.Timestamp | None, attribute) -> _Raw:
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
        chosen = _select_names(attributes, attribute, path, "attribute")
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
        t0 = start if start is not None else pd.Timestamp(DEFAULT_START)
        st = step if step is not None else pd.Timedelta(DEFAULT_STEP)
        axis = pd.date_range(t0, periods=T, freq=st)
        notes.append(
            f"the file has no timestamps: assumed start {t0} and step {_fmt_step(st)}"
            f"{' (defaults; pass start= and step= to set them)' if start is None or step is None else ''}."
        )
    else:
        ts = _npz_timestamps(ts_arr, T, path, notes)
        axis, values, observed, absent = _place_on_axis(ts, values, observed, step, path, notes)

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
    ignored = sorted(set(arrays) - _NPZ_KNOWN - ({next(iter(arrays))} if len(arrays) == 1 else set()))
    if ignored:
        notes.append(f"ignored arrays in the file: {ignored}.")
    for key in ("coords", "adjacency"):
        if key in arrays and arrays[key].dtype.kind not in "biuf":
            raise UrbanstError(f"{path}: {key!r} must be numeric, got dtype {arrays[key].dtype}")
    return _Raw(
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
            ts = _parse_dates(pd.Series(text).str.strip())
        else:
            raise UrbanstError(
                f"{path}: 'timestamps' must be datetime64, ISO text or integer Unix seconds, got dtype {arr.dtype}"
            )
    except (ValueError, TypeError, OverflowError) as err:
        raise UrbanstError(f"{path}: cannot read 'timestamps' as dates ({str(err).splitlines()[0]})") from None
    if ts.isna().any():
        raise UrbanstError(f"{path}: 'timestamps' has {int(ts.isna().sum())} empty (NaT) entries")
    return _naive_utc(ts, notes)


def _place_on_axis(ts: pd.DatetimeIndex, values, observed, step, path: Path, notes: list[str]):
    """Sort the steps, refuse duplicates, insert skipped steps as masked; returns (axis, values, observed, absent)."""
    ns = _to_ns(ts, path)
    order = np.argsort(ns, kind="stable")
    if (order != np.arange(len(ns))).any():
        notes.append("time steps sorted by timestamp.")
    ns = ns[order]
    dup = np.flatnonzero(np.diff(ns) == 0)
    if dup.size:
        shown = ", ".join(str(pd.Timestamp(int(ns[i]))) for i in dup[:3])
        raise UrbanstError(f"{path}: {dup.size} duplicate timestamp(s), e.g. {shown}; keep one step each")
    axis, positions, step, inferred = _regular_axis(ns, step, path)
    T_full = len(axis)
    _, N, C = values.shape
    _check_size(T_full, N, C, step, axis[0], path)
    if inferred:
        notes.append(f"step {_fmt_step(step)} inferred from the timestamps.")
    absent = 0
    if T_full == len(ns):
        return axis, values[order], observed[order], absent
    full_v = np.full((T_full, N, C), np.nan, dtype=values.dtype)
    full_m = np.zeros((T_full, N, C), dtype=bool)
    full_v[positions] = values[order]
    full_m[positions] = observed[order]
    skipped = T_full - len(ns)
    notes.append(f"{skipped} time step(s) missing from the file were inserted as masked.")
    return axis, full_v, full_m, skipped * N * C


# ----------------------------------------------------------------------------------------
# NetCDF
# ----------------------------------------------------------------------------------------
def _netcdf_engine(path: Path) -> str:
    with open(path, "rb") as f:
        magic = f.read(8)
    if magic[:3] == b"CDF" and magic[3:4] in (b"\x01", b"\x02", b"\x05"):
        return "scipy"
    if magic == b"\x89HDF\r\n\x1a\n":
        import importlib.util

        for module, engine in (("netCDF4", "netcdf4"), ("h5netcdf", "h5netcdf")):
            if importlib.util.find_spec(module) is not None:
                return engine
        raise UrbanstError(
            f"{path} is a netCDF-4 (HDF5) file; reading it needs the netCDF4 or h5netcdf package "
            "(pip install h5netcdf), or convert it to netCDF-3 (nccopy -k classic)"
        )
    raise UrbanstError(
        f"cannot read {path} as NetCDF: it does not start like a netCDF-3 or netCDF-4 file (first bytes {magic[:4]!r})"
    )


def _read_netcdf(path: Path, step: pd.Timedelta | None, start: pd.Timestamp | None, attribute) -> _Raw:
    import xarray as xr

    engine = _netcdf_engine(path)
    try:
        ds = xr.open_dataset(path, engine=engine, mask_and_scale=True, decode_times=True)
    except Exception as err:  # third-party parsers raise many types on damaged files
        raise UrbanstError(f"cannot read {path} as NetCDF: damaged or truncated ({type(err).__name__}: {err})") from None
    try:
        raw = _netcdf_to_raw(ds, path, step, start, attribute)
    except UrbanstError:
        raise
    except Exception as err:  # data are read lazily: damage may show only now
        raise UrbanstError(f"cannot read {path} as NetCDF: damaged or truncated ({type(err).__name__}: {err})") from None
    finally:
        ds.close()
    raw.source_details["engine"] = engine
    return raw


def _time_dim(da) -> str | None:
    for dim in da.dims:
        if dim in da.coords and np.issubdtype(da.coords[dim].dtype, np.datetime64):
            return dim
    for dim in da.dims:
        if str(dim).lower() in _TIME_NAMES:
            return dim
    return None


def _netcdf_to_raw(ds, path: Path, step, start, attribute) -> _Raw:
    candidates = []
    for var_name, da in ds.data_vars.items():
        if _time_dim(da) is not None and da.ndim in (2, 3) and da.dtype.kind in "biuf":
            candidates.append(str(var_name))
    if not candidates:
        shown = {str(k): tuple(str(d) for d in v.dims) for k, v in ds.data_vars.items()}
        raise UrbanstError(
            f"{path}: no numeric variable with a time dimension and one or two spatial dimensions; variables: "
            f"{shown}. urbanst imports (time, lat, lon) grids or (time, station) series"
        )
    if attribute is None:
        if len(candidates) > 1:
            raise UrbanstError(f"{path} holds several variables {candidates}; choose one with attribute=...")
        chosen = candidates
    else:
        chosen = _select_names(candidates, attribute, path, "variable with a time dimension")
    first = ds[chosen[0]]
    for v in chosen[1:]:
        if set(ds[v].dims) != set(first.dims):
            raise UrbanstError(f"{path}: variables {chosen} do not share dimensions ({first.dims} vs {ds[v].dims})")
    notes: list[str] = []
    tdim = _time_dim(first)
    space = [d for d in first.dims if d != tdim]
    order = (tdim, *_order_grid_dims(space)) if len(space) == 2 else (tdim, space[0])
    arrays, units = [], []
    nan_count = inf_count = 0
    for v in chosen:
        raw = np.asarray(ds[v].transpose(*order).values, dtype=np.float64)
        # xarray turned values equal to a declared _FillValue / missing_value into NaN: those are the source's
        # own missing marks and are not counted (nor, then, any NaN stored as such). Otherwise (no fill value,
        # or a NaN one) a NaN in the file is counted like an empty or NaN cell of a CSV.
        if not _has_fill_value(ds[v]):
            nan_count += int(np.isnan(raw).sum())
        inf_count += int(np.isinf(raw).sum())
        arrays.append(raw.reshape(raw.shape[0], -1))
        units.append(str(ds[v].attrs["units"]) if "units" in ds[v].attrs else None)
    values = np.stack(arrays, axis=-1)
    observed = np.isfinite(values)
    T = values.shape[0]

    # time axis
    tvals = np.asarray(first.coords[tdim].values) if tdim in first.coords else None
    absent = 0
    if tvals is not None and np.issubdtype(tvals.dtype, np.datetime64):
        ts = _naive_utc(pd.DatetimeIndex(tvals), notes)
        if ts.isna().any():
            raise UrbanstError(f"{path}: the time coordinate {tdim!r} has {int(ts.isna().sum())} empty (NaT) entries")
        axis, values, observed, absent = _place_on_axis(ts, values, observed, step, path, notes)
    elif tvals is not None:
        raise UrbanstError(
            f"{path}: the time coordinate {tdim!r} could not be read as dates (dtype {tvals.dtype}, "
            f"units {first.coords[tdim].attrs.get('units')!r}); use a standard calendar and CF units "
            "such as 'hours since 2020-01-01'"
        )
    else:
        t0 = start if start is not None else pd.Timestamp(DEFAULT_START)
        st = step if step is not None else pd.Timedelta(DEFAULT_STEP)
        axis = pd.date_range(t0, periods=T, freq=st)
        notes.append(
            f"the time dimension {tdim!r} has no dates: assumed start {t0} and step {_fmt_step(st)}"
            f"{' (defaults; pass start= and step= to set them)' if start is None or step is None else ''}."
        )

    grid_shape = coords = unit_names = None
    if len(space) == 2:
        H, W = int(ds.sizes[order[1]]), int(ds.sizes[order[2]])
        grid_shape = (H, W)
        coords = _grid_coords(ds, order[1], order[2])
        notes.append(f"grid {H}x{W} from dims ({order[1]}, {order[2]}), units in row-major order.")
    else:
        sdim = order[1]
        if sdim in ds.coords:
            names = [s.decode() if isinstance(s, bytes) else str(s) for s in np.asarray(ds.coords[sdim].values)]
            unit_names = names if len(set(names)) == len(names) else None
        coords = _station_coords(ds, sdim)
    return _Raw(
        values=values,
        observed=observed,
        timestamps=axis,
        attributes=list(chosen),
        units=units,
        unit_names=unit_names,
        coords=coords,
        grid_shape=grid_shape,
        nan_values=nan_count,
        inf_values=inf_count,
        absent_values=absent,
        notes=notes,
        source_details={"variables": list(chosen)},
    )


def _has_fill_value(da) -> bool:
    """True when the variable declares a fill/missing value other than NaN (xarray decoded those to NaN)."""
    for d in (da.encoding, da.attrs):
        for key in ("_FillValue", "missing_value"):
            fill = d.get(key)
            if fill is None:
                continue
            fills = np.atleast_1d(np.asarray(fill))
            if fills.dtype.kind not in "fc" or not np.isnan(fills).all():
                return True
    return False


def _order_grid_dims(space: list) -> tuple:
    a, b = space
    if str(a).lower() in _LON_NAMES and str(b).lower() in _LAT_NAMES:
        return b, a
    return a, b  # file order: (rows, cols)


def _find_var(ds, names: tuple[str, ...]):
    lowered = {str(k).lower(): k for k in list(ds.coords) + list(ds.data_vars)}
    for n in names:
        if n in lowered:
            return ds[lowered[n]]
    return None


def _grid_coords(ds, ydim, xdim):
    lat = _find_var(ds, ("lat", "latitude", "nav_lat"))
    lon = _find_var(ds, ("lon", "longitude", "nav_lon", "lng"))
    if lat is None or lon is None:
        return None
    if lat.dims == (ydim,) and lon.dims == (xdim,):
        la, lo = np.meshgrid(np.asarray(lat.values, dtype=np.float64), np.asarray(lon.values, dtype=np.float64), indexing="ij")
    elif set(lat.dims) == {ydim, xdim} and set(lon.dims) == {ydim, xdim}:
        la = np.asarray(lat.transpose(ydim, xdim).values, dtype=np.float64)
        lo = np.asarray(lon.transpose(ydim, xdim).values, dtype=np.float64)
    else:
        return None
    return np.stack([la.reshape(-1), lo.reshape(-1)], axis=1)


def _station_coords(ds, sdim):
    lat = _find_var(ds, ("lat", "latitude"))
    lon = _find_var(ds, ("lon", "longitude", "lng"))
    if lat is None or lon is None or lat.dims != (sdim,) or lon.dims != (sdim,):
        return None
    return np.stack([np.asarray(lat.values, dtype=np.float64), np.asarray(lon.values, dtype=np.float64)], axis=1)


# ----------------------------------------------------------------------------------------
# build, describe, store
# ----------------------------------------------------------------------------------------
def _build(raw: _Raw, path: Path, name: str, city: str, unit, kind: str) -> STData:
    values = raw.values
    finite64 = np.isfinite(values)
    with np.errstate(over="ignore", invalid="ignore"):
        values32 = values.astype(np.float32)
    overflow = finite64 & ~np.isfinite(values32)
    if overflow.any():
        raise UrbanstError(
            f"{path}: {int(overflow.sum())} value(s) exceed the float32 range (|x| > 3.4e38); rescale them before importing"
        )
    units = []
    for a, u in zip(raw.attributes, raw.units):
        if isinstance(unit, dict):
            units.append(str(unit.get(a, u if u is not None else "unknown")))
        elif unit is not None:
            units.append(str(unit))
        else:
            units.append(u if u is not None else "unknown")
    notes = list(raw.notes)
    try:
        return STData(
            name=name,
            values=values32,
            observed_mask=raw.observed,
            timestamps=raw.timestamps,
            attributes=list(raw.attributes),
            units=units,
            city=city,
            unit_names=raw.unit_names,
            grid_shape=raw.grid_shape,
            coords=raw.coords,
            coord_system=raw.coord_system,
            adjacency=raw.adjacency,
            notes=f"Imported from {path.name} ({kind}). " + " ".join(notes),
        )
    except UrbanstError as err:
        raise UrbanstError(f"cannot import {path}: {err}") from None


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _meta(data: STData, raw: _Raw, path: Path, kind: str) -> dict:
    import urbanst

    T, N, C = data.shape
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "name": data.name,
        "city": data.city,
        "attributes": list(data.attributes),
        "units": list(data.units),
        "step": _fmt_step(data.step),
        "step_seconds": data.step.total_seconds(),
        "start": str(data.timestamps[0]),
        "end": str(data.timestamps[-1]),
        "shape": [T, N, C],
        "spatial": data.spatial_kind(),
        "coord_system": data.coord_system,
        "notes": data.notes,
        "source": {
            "path": str(path.resolve()),
            "format": kind,
            "size": path.stat().st_size,
            "sha256": _sha256_file(path),
            **raw.source_details,
        },
        "imported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "urbanst_version": urbanst.__version__,
        "counts": {
            "nan_values": int(raw.nan_values),
            "inf_values": int(raw.inf_values),
            "absent_values": int(raw.absent_values),
            "observed_values": int(data.observed_mask.sum()),
            "masked_values": int((~data.observed_mask).sum()),
        },
    }


def _store(data: STData, meta: dict, folder: Path, overwrite: bool) -> None:
    parent = folder.parent
    staging_root = parent / STAGING_FOLDER
    staging_root.mkdir(parents=True, exist_ok=True)
    tmp = staging_root / f"{folder.name}-{uuid.uuid4().hex[:12]}"
    old = None
    try:
        tmp.mkdir()
        arrays = {
            "values": data.values.astype(np.float32),
            "observed_mask": data.observed_mask.astype(bool),
            "timestamps": np.asarray(data.timestamps.as_unit("ns").asi8, dtype=np.int64),
        }
        if data.coords is not None:
            arrays["coords"] = np.asarray(data.coords, dtype=np.float64)
        if data.adjacency is not None:
            arrays["adjacency"] = np.asarray(data.adjacency, dtype=np.float32)
        if data.grid_shape is not None:
            arrays["grid_shape"] = np.asarray(data.grid_shape, dtype=np.int64)
            arrays["grid_cells"] = np.asarray(data.grid_cells, dtype=np.int64)
        if data.unit_names is not None:
            arrays["unit_names"] = np.asarray([str(u) for u in data.unit_names], dtype=str)
        with open(tmp / "data.npz", "wb") as f:
            np.savez(f, **arrays)
        with open(tmp / "meta.json", "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2, ensure_ascii=False)
            f.write("\n")
        if folder.exists() or folder.is_symlink():
            if not overwrite:  # appeared while we were reading the file
                raise UrbanstError(f"an imported dataset named {folder.name!r} already exists in {folder}; pass overwrite=True")
            old = staging_root / f"{folder.name}-old-{uuid.uuid4().hex[:12]}"
            folder.rename(old)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not folder.exists():
            old.rename(folder)  # put the previous import back
            old = None
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        try:
            staging_root.rmdir()  # only when empty
        except OSError:
            pass


def _forget_cached(name: str) -> None:
    """Drop a stale copy from ``load_dataset``'s cache after (re)importing."""
    from urbanst.data import registry

    cached = getattr(registry, "_load_cached", None)
    if cached is not None and hasattr(cached, "cache_clear"):
        cached.cache_clear()
