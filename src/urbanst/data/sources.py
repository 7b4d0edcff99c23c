"""Several datasets over the same units as one multi-source dataset (``load_dataset("nyc_bike+nyc_taxi")``).

The sources must share their units and their time step; the joined data cover the span they all
cover, on one regular time axis: a step one source lacks (a gap in its file) is unobserved in its
channels, never shifted onto another step. Each channel is named after its source (``"nyc_bike
inflow"``), so a model that describes its sources in words (urbanmind) tells them apart. Spatial metadata (grid, coordinates,
adjacency) come from the first source; exogenous series are left out.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from urbanst.data.container import STData
from urbanst.errors import UrbanstError

SEPARATOR = "+"


def join_sources(sources: list[STData], name: str | None = None) -> STData:
    """The channels of every source side by side, over the steps common to all of them."""
    if len(sources) < 2:
        raise UrbanstError("joining sources needs two or more datasets, e.g. nyc_bike+nyc_taxi")
    first = sources[0]
    for other in sources[1:]:
        if other.num_units != first.num_units or (other.unit_names or None) != (first.unit_names or None):
            raise UrbanstError(f"cannot join {first.name!r} and {other.name!r}: they cover different units")
        if other.step != first.step:
            raise UrbanstError(f"cannot join {first.name!r} and {other.name!r}: steps {first.step} and {other.step} differ")
    start = max(s.timestamps[0] for s in sources)
    end = min(s.timestamps[-1] for s in sources)
    if start >= end:
        raise UrbanstError(f"cannot join {', '.join(s.name for s in sources)}: their time spans do not overlap")
    axis = pd.date_range(start, end, freq=first.step)
    rows = [s.timestamps.get_indexer(axis) for s in sources]
    for s, row in zip(sources, rows):
        if (row < 0).all():
            raise UrbanstError(f"cannot join {first.name!r} and {s.name!r}: their time steps never coincide "
                               f"(steps of {first.step} starting at different offsets)")
    return replace(
        first,
        name=name or SEPARATOR.join(s.name for s in sources),
        values=np.concatenate([on_axis(s.values, row, np.nan) for s, row in zip(sources, rows)], axis=-1),
        observed_mask=np.concatenate([on_axis(s.observed_mask, row, False) for s, row in zip(sources, rows)], axis=-1),
        timestamps=axis,
        attributes=[f"{s.name} {a}" for s in sources for a in s.attributes],
        units=[u for s in sources for u in s.units],
        city=" / ".join(dict.fromkeys(s.city for s in sources)),
        exogenous=None,
        exogenous_names=[],
        eval_mask=None,
        protocol={},
        notes="joined sources: " + ", ".join(s.name for s in sources),
    )


def on_axis(array: np.ndarray, rows: np.ndarray, missing) -> np.ndarray:
    """``array`` at ``rows`` (one per step of the joined axis), ``missing`` where a row is -1 (the step is absent)."""
    taken = array[np.clip(rows, 0, None)]
    return np.where((rows >= 0).reshape(-1, *([1] * (array.ndim - 1))), taken, missing)
