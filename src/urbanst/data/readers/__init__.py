"""Readers of the datasets, one module per source; each declares what it reads in ``DATASETS``.

``DATASETS`` is a tuple of :class:`~urbanst.data.declaration.DatasetSpec`: the name, a one-line
description, the read function and, for data read from files, the folder and its checksummed
files. :func:`declared_datasets` finds every module of this package by listing it, so a new
reader is one new module; modules whose names start with ``_`` hold shared helpers.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from urbanst.data.declaration import DatasetSpec


@functools.cache
def declared_datasets() -> dict[str, DatasetSpec]:
    """Every dataset declared by a module of this package, by name."""
    specs: dict[str, DatasetSpec] = {}
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("_"):
            continue
        for spec in importlib.import_module(f"{__name__}.{module.name}").DATASETS:
            if spec.name in specs:
                raise RuntimeError(f"dataset {spec.name!r} declared twice")
            specs[spec.name] = spec
    return specs
