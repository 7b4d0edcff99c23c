"""Named datasets: built-in readers of the real sources, the synthetic city, and user imports.

A reader takes the folder of its source inside the data directory and returns an
:class:`STData`. Readers register themselves with :func:`register`; importing
``urbanst.data.readers`` registers them all.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from urbanst.data.container import STData
from urbanst.errors import UrbanstError
from urbanst.settings import data_dir

IMPORTED_FOLDER = "imported"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    folder: str | None  # folder under the data directory; None for generated data
    reader: Callable[[Path], STData]
    description: str


_REGISTRY: dict[str, DatasetSpec] = {}


def register(name: str, folder: str | None, description: str):
    def wrap(reader: Callable[[Path], STData]) -> Callable[[Path], STData]:
        if name in _REGISTRY:
            raise RuntimeError(f"dataset {name!r} registered twice")
        _REGISTRY[name] = DatasetSpec(name, folder, reader, description)
        return reader

    return wrap


def _ensure_readers() -> None:
    import urbanst.data.readers  # noqa: F401  (registers the built-in readers)
    import urbanst.data.synthetic  # noqa: F401
    import urbanst.data.synthetic_air  # noqa: F401


def builtin_datasets() -> dict[str, DatasetSpec]:
    _ensure_readers()
    return dict(_REGISTRY)


def imported_datasets(root: str | Path | None = None) -> list[str]:
    folder = data_dir(root) / IMPORTED_FOLDER
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / "meta.json").is_file())


def dataset_names(root: str | Path | None = None) -> list[str]:
    return sorted(builtin_datasets()) + [n for n in imported_datasets(root) if n not in _REGISTRY]


def load_dataset(name: str, root: str | Path | None = None) -> STData:
    """Load a dataset by name from the data directory (``--data-dir`` / ``URBANST_DATA``)."""
    return _load_cached(name, str(data_dir(root)))


@functools.lru_cache(maxsize=32)
def _load_cached(name: str, root: str) -> STData:
    from urbanst.data.sources import SEPARATOR, join_sources

    if SEPARATOR in name:  # several datasets over the same units as one multi-source dataset
        return join_sources([_load_cached(part.strip(), root) for part in name.split(SEPARATOR)], name)
    specs = builtin_datasets()
    if name in specs:
        spec = specs[name]
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
    if name in imported_datasets(root):
        from urbanst.data.importers import read_imported

        return read_imported(Path(root) / IMPORTED_FOLDER / name)
    known = ", ".join(dataset_names(root))
    raise UrbanstError(f"unknown dataset {name!r}; known datasets: {known}")
