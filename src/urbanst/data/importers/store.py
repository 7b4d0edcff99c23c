"""The stored form of an imported dataset: built from what a format reader returned, written, read back.

``<data dir>/imported/<name>/`` holds

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
import never leaves half a dataset.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import uuid
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from urbanst.data.container import STData
from urbanst.data.declaration import sha256_file
from urbanst.data.importers.raw import Raw
from urbanst.data.importers.time_axis import step_text
from urbanst.errors import UrbanstError

IMPORTED_FOLDER = "imported"
STAGING_FOLDER = ".staging"
FORMAT_NAME = "urbanst-imported"
FORMAT_VERSION = 1


def to_stdata(raw: Raw, path: Path, name: str, city: str, unit, kind: str) -> STData:
    """The validated dataset of an import: values as float32, units from the file or from ``unit``."""
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


def import_meta(data: STData, raw: Raw, path: Path, kind: str) -> dict:
    """The ``meta.json`` of an import: what it holds, where it came from, what became masked."""
    import urbanst

    T, N, C = data.shape
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "name": data.name,
        "city": data.city,
        "attributes": list(data.attributes),
        "units": list(data.units),
        "step": step_text(data.step),
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
            "sha256": sha256_file(path),
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


def write_imported(data: STData, meta: dict, folder: Path, overwrite: bool) -> None:
    """Write ``data.npz`` and ``meta.json`` into a staging folder, then rename it to ``folder``."""
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
