"""Named datasets: the ones the reader modules declare, the user's imports, and joins of them (``a+b``).

A built-in dataset reads the folder of its source inside the data directory (see
:mod:`urbanst.data.readers`); an imported one is read back from ``imported/<name>/``.
"""

from __future__ import annotations

import functools
from pathlib import Path

from urbanst.data.container import STData
from urbanst.data.declaration import DatasetSpec
from urbanst.data.importers.store import IMPORTED_FOLDER, read_imported
from urbanst.data.readers import declared_datasets
from urbanst.data.sources import SEPARATOR, join_sources
from urbanst.errors import UrbanstError
from urbanst.settings import data_dir

__all__ = ["IMPORTED_FOLDER", "builtin_datasets", "dataset_names", "imported_datasets", "load_dataset"]


def builtin_datasets() -> dict[str, DatasetSpec]:
    return dict(declared_datasets())


def imported_datasets(root: str | Path | None = None) -> list[str]:
    folder = data_dir(root) / IMPORTED_FOLDER
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / "meta.json").is_file())


def dataset_names(root: str | Path | None = None) -> list[str]:
    builtin = declared_datasets()
    return sorted(builtin) + [n for n in imported_datasets(root) if n not in builtin]


def load_dataset(name: str, root: str | Path | None = None) -> STData:
    """Load a dataset by name from the data directory (``--data-dir`` / ``URBANST_DATA``)."""
    root = data_dir(root)
    if SEPARATOR in name:  # several datasets over the same units as one multi-source dataset
        return join_sources([load_dataset(part.strip(), root) for part in name.split(SEPARATOR)], name)
    if name in declared_datasets():
        return _read_builtin(name, str(root))
    if name in imported_datasets(root):
        meta = (root / IMPORTED_FOLDER / name / "meta.json").stat()  # a new import writes a new meta.json
        return _read_imported(str(root / IMPORTED_FOLDER / name), meta.st_ino, meta.st_mtime_ns)
    known = ", ".join(dataset_names(root))
    raise UrbanstError(f"unknown dataset {name!r}; known datasets: {known}")


@functools.lru_cache(maxsize=32)
def _read_builtin(name: str, root: str) -> STData:
    spec = declared_datasets()[name]
    if spec.folder is None:
        return spec.reader(Path(root))
    folder = Path(root) / spec.folder
    if not folder.is_dir():
        raise UrbanstError(
            f"dataset {name!r}: folder {folder} not found; set URBANST_DATA or --data-dir to the folder that "
            f"holds {spec.folder}/, or run `urbanst data download {name}`"
        )
    try:
        return spec.reader(folder)
    except FileNotFoundError as err:
        raise UrbanstError(
            f"dataset {name!r}: missing file {err.filename}; run `urbanst data download {name}` "
            "or point --data-dir at a complete copy"
        ) from None


@functools.lru_cache(maxsize=32)
def _read_imported(folder: str, _meta_inode: int, _meta_mtime_ns: int) -> STData:
    """Cached per version of the import: the file identity of its ``meta.json`` is part of the key."""
    return read_imported(folder)
