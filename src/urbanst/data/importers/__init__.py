"""Import a user's own file (CSV in long form, NPZ, NetCDF) as a named dataset, and read it back.

``import_file(path, name)`` reads the file with the reader of its format (``long_csv``, ``npz``,
``netcdf``: each module says what it accepts), places it on a regular time axis
(``time_axis``), builds an :class:`STData` (which validates it) and stores it under
``<data dir>/imported/<name>/`` (``store``); afterwards ``load_dataset(name)`` finds it like
any built-in dataset. Importing over an existing name needs ``overwrite=True``.
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path

import pandas as pd

from urbanst.data.importers.long_csv import CSV_SUFFIXES, read_long_csv
from urbanst.data.importers.netcdf import NETCDF_SUFFIXES, read_netcdf
from urbanst.data.importers.npz import read_npz
from urbanst.data.importers.store import (
    IMPORTED_FOLDER,
    import_meta,
    import_summary_lines,
    read_import_meta,
    read_imported,
    to_stdata,
    write_imported,
)
from urbanst.data.importers.time_axis import parse_start, parse_step
from urbanst.data.readers import declared_datasets
from urbanst.errors import UrbanstError
from urbanst.settings import data_dir

__all__ = ["import_file", "import_summary_lines", "read_import_meta", "read_imported"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_FORMATS = {"csv": "csv", "npz": "npz", "netcdf": "netcdf", "nc": "netcdf"}


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
    step_td = parse_step(step) if step is not None else None
    start_ts = parse_start(start)
    if kind == "csv":
        raw = read_long_csv(path, step_td, attribute)
    elif kind == "npz":
        raw = read_npz(path, step_td, start_ts, attribute)
    else:
        raw = read_netcdf(path, step_td, start_ts, attribute)
    data = to_stdata(raw, path, name, city, unit, kind)
    write_imported(data, import_meta(data, raw, path, kind), folder, overwrite)
    return folder


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise UrbanstError(
            f"invalid dataset name {name!r}: use letters, digits, '_', '-' or '.', starting with a letter or digit "
            "(at most 100 characters)"
        )
    if name in declared_datasets():
        raise UrbanstError(f"{name!r} is the name of a built-in dataset; choose another name for your import")


def _guess_format(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        kind = _FORMATS.get(str(fmt).lower())
        if kind is None:
            raise UrbanstError(f"unknown import format {fmt!r}; use one of csv, npz, netcdf")
        return kind
    lower = path.name.lower()
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    if lower.endswith(".npz"):
        return "npz"
    if lower.endswith(NETCDF_SUFFIXES):
        return "netcdf"
    raise UrbanstError(
        f"cannot tell the format of {path} from its suffix; name it .csv, .npz or .nc, or pass fmt='csv'|'npz'|'netcdf'"
    )
