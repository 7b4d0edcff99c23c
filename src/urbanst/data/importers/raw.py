"""What each format reader of an import returns, before it becomes an :class:`STData`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from urbanst.errors import UrbanstError


@dataclass
class Raw:
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
    nan_values: int = 0  # NaN / inf where the source held a value: masked now
    inf_values: int = 0
    absent_values: int = 0  # cells of the regular grid with no value in the source
    notes: list[str] = field(default_factory=list)
    source_details: dict = field(default_factory=dict)


def select_names(available: list[str], attribute, source: Path, what: str) -> list[str]:
    """The names ``attribute`` picks (one name or a list; None = all), refusing names the file lacks."""
    if attribute is None:
        return list(available)
    wanted = [attribute] if isinstance(attribute, str) else list(attribute)
    unknown = [a for a in wanted if a not in available]
    if unknown:
        raise UrbanstError(f"{source} has no {what} {unknown}; it has {sorted(available)[:20]}")
    return wanted
