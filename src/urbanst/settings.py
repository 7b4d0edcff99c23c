"""Where urbanst looks for data: ``--data-dir`` beats ``URBANST_DATA`` beats ``~/.cache/urbanst/data``."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "URBANST_DATA"


def data_dir(override: str | os.PathLike | None = None) -> Path:
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "urbanst" / "data"
