"""Several datasets over the same units as one multi-source dataset (``load_dataset("nyc_bike+nyc_taxi")``).

The sources must share their units and their time step; the joined data cover the steps they
all cover, and each channel is named after its source (``"nyc_bike inflow"``), so a model that
describes its sources in words (urbanmind) tells them apart. Spatial metadata (grid, coordinates,
adjacency) come from the first source; exogenous series are left out.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

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
    spans = [(s.timestamps.get_loc(start), s.timestamps.get_loc(end) + 1) for s in sources]
    return replace(
        first,
        name=name or SEPARATOR.join(s.name for s in sources),
        values=np.concatenate([s.values[a:b] for s, (a, b) in zip(sources, spans)], axis=-1),
        observed_mask=np.concatenate([s.observed_mask[a:b] for s, (a, b) in zip(sources, spans)], axis=-1),
        timestamps=first.timestamps[spans[0][0] : spans[0][1]],
        attributes=[f"{s.name} {a}" for s in sources for a in s.attributes],
        units=[u for s in sources for u in s.units],
        city=" / ".join(dict.fromkeys(s.city for s in sources)),
        exogenous=None,
        exogenous_names=[],
        eval_mask=None,
        protocol={},
        notes="joined sources: " + ", ".join(s.name for s in sources),
    )
