"""CSV in long form: one row per value, columns ``timestamp``, ``unit``, ``attribute``, ``value``.

- ``timestamp``: ISO-like date/time text (a time zone, if given, is converted to UTC and
  dropped), or integers taken as Unix seconds;
- ``unit``: the spatial unit (station, zone, cell id); any text or number;
- ``attribute``: what was measured (``pm25``, ``inflow``...);
- ``value``: a number; empty, ``NaN``, ``inf`` become masked values (and are counted);
- optional ``lat`` and ``lon`` (degrees): one position per unit, kept as coordinates.
  Every unit needs one, and the same one on all its rows.

Files may be compressed (``.csv.gz``, ``.csv.bz2``, ``.csv.zip``, ``.csv.xz``). Column names
are matched without regard to case or surrounding blanks; other columns are ignored. Rows may
come in any order. Units and attributes are sorted (numerically when the column is numeric).
The time axis runs from the first to the last timestamp at the step (given, or inferred as
the most common gap between distinct timestamps); every (timestamp, unit, attribute) without a
row becomes a masked value (and is counted). A timestamp that falls between steps, a duplicate
(timestamp, unit, attribute) row, or a value that is not a number is refused, naming a few of them.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from urbanst.data.importers.raw import Raw, select_names
from urbanst.data.importers.time_axis import naive_utc, parse_dates, regular_axis, to_ns
from urbanst.errors import UrbanstError

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz")
REQUIRED = ("timestamp", "unit", "attribute", "value")


def read_long_csv(path: Path, step: pd.Timedelta | None, attribute) -> Raw:
    if not path.name.lower().endswith(CSV_SUFFIXES[1:]):  # plain text: binary content is a sure sign of corruption
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
    missing = [c for c in REQUIRED if c not in cols]
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
    attributes = select_names(attributes, attribute, path, "attribute")
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
            ts = parse_dates(ts_raw.astype(str).str.strip())
    except (ValueError, TypeError, OverflowError) as err:
        raise UrbanstError(
            f"{path}: cannot read the 'timestamp' column as dates ({str(err).splitlines()[0]}); "
            "write them like 2020-01-01 13:00 or as Unix seconds"
        ) from None
    ts = naive_utc(ts, notes)
    row_ns = to_ns(ts, path)

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
    axis, _, step = regular_axis(distinct, step, path, (len(unit_names), len(attributes)), notes)
    T, N, C = len(axis), len(unit_names), len(attributes)
    t_pos = (row_ns - distinct[0]) // int(step.value)

    values = np.full((T, N, C), np.nan, dtype=np.float64)
    present = np.zeros((T, N, C), dtype=bool)
    values[t_pos, unit_pos, attr_pos] = vals
    present[t_pos, unit_pos, attr_pos] = True
    nan_count = int(np.isnan(vals).sum())
    inf_count = int(np.isinf(vals).sum())
    absent = int(T * N * C - len(vals))

    coords = _unit_coords(df, cols, unit_pos, unit_names, path)
    return Raw(
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


def _unit_coords(df: pd.DataFrame, cols: dict, unit_pos: np.ndarray, unit_names: list[str], path: Path):
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

