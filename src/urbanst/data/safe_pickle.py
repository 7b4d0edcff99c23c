"""Read pickled dataset files without letting them run code.

A pickle can name any importable callable and have it called while loading. This
unpickler resolves only the handful of names that NumPy arrays, NumPy scalars and
plain containers need; anything else is refused before it is imported.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from urbanst.errors import UrbanstError

_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core._multiarray_umath", "_reconstruct"),
    ("numpy._core._multiarray_umath", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
    ("builtins", "complex"),
    ("collections", "OrderedDict"),
}
# NumPy dtypes pickle as their scalar type class, e.g. numpy.float64 or numpy.dtypes.Float64DType.
_NUMPY_TYPE_MODULES = {"numpy", "numpy.dtypes"}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module.startswith("numpy.core"):  # pickles from NumPy 1 name the module NumPy 2 calls numpy._core
            module = "numpy._core" + module[len("numpy.core"):]
        if (module, name) in _ALLOWED or (module in _NUMPY_TYPE_MODULES and _is_numpy_type(module, name)):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: only NumPy arrays and plain containers are allowed")


def _is_numpy_type(module: str, name: str) -> bool:
    import importlib

    import numpy as np

    obj = getattr(importlib.import_module(module), name, None)
    return isinstance(obj, type) and (issubclass(obj, np.generic) or issubclass(obj, np.dtype))


def load_pickle(path: str | Path, encoding: str = "ASCII"):
    """Load a pickle that may hold only NumPy arrays and plain containers; refuse anything else."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return _RestrictedUnpickler(f, encoding=encoding).load()
    except FileNotFoundError:
        raise UrbanstError(f"file not found: {path}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise UrbanstError(f"refused or unreadable pickle {path}: {err}") from None
