"""The factors of a forecast: groups of its inputs, derived from what the dataset has.

For a forecast at one unit the factors are its own history; each of its nearest neighbours' histories (by
distance between coordinates, by cell distance on a grid, by hops in an adjacency graph), the rest of the
units together; each weather variable (wind speed and direction together); and the time of day. A unit's
history is every channel of its input steps and of its periodic context (the same slot a day and a week
earlier). Without coordinates, grid or graph there is no "nearest", and every other unit is one factor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from urbanst.data.exogenous import is_angle
from urbanst.data.graphs import distances_km

OWN, NEIGHBOUR, OTHERS, WEATHER, TIME = "own history", "neighbour", "other units", "weather", "time of day"


@dataclass(frozen=True)
class Factor:
    name: str
    kind: str  # OWN | NEIGHBOUR | OTHERS | WEATHER | TIME
    units: tuple[int, ...] = ()  # OWN, NEIGHBOUR, OTHERS: the units whose history it holds
    series: tuple[int, ...] = ()  # WEATHER: the exogenous series
    angles: tuple[int, ...] = ()  # those of ``series`` that are angles (removed = unknown, not a mean)


def weather_label(name: str) -> str:
    """The factor an exogenous series belongs to (wind speed and direction: one factor, ``wind``)."""
    n = name.lower()
    if "wind" in n:
        return "wind"
    if n.startswith("temp"):
        return "temperature"
    if "dew" in n or "humid" in n:
        return "humidity (dew point)"
    if n.startswith("pres"):
        return "pressure"
    if "rain" in n or "precip" in n:
        return "rain"
    return name


def unit_label(data, unit: int) -> str:
    """A unit in words: its name after what it is (a cell of a grid, a station with coordinates, or a unit)."""
    word = "cell" if data.grid_shape else "station" if data.coords is not None else "unit"
    name = unit_names(data)[unit]
    return name if name.startswith(word) else f"{word} {name}"


def unit_names(data) -> list[str]:
    return list(data.unit_names) if data.unit_names else [str(i) for i in range(data.num_units)]


def nearest_units(data, unit: int) -> list[int] | None:
    """The other units, nearest first (ties by index); None where the data have no layout to measure by."""
    if data.coords is not None:
        distance = np.asarray(distances_km(data.coords, data.coord_system))[unit]
    elif data.grid_shape:
        cells = np.arange(data.num_units) if data.grid_cells is None else np.asarray(data.grid_cells)
        rows, columns = np.divmod(cells, data.grid_shape[1])
        distance = np.hypot(rows - rows[unit], columns - columns[unit])
    elif data.adjacency is not None:
        from scipy.sparse.csgraph import shortest_path

        distance = shortest_path(data.adjacency != 0, unweighted=True, indices=unit)
    else:
        return None
    order = np.argsort(distance, kind="stable")
    return [int(j) for j in order if j != unit]


def factor_groups(data, unit: int, exogenous: bool = True, neighbours: int = 12) -> list[Factor]:
    """The factors of a forecast at ``unit``: own history, the ``neighbours`` nearest units one by one and the rest
    together, each weather variable (when ``exogenous``: the windows carry the dataset's weather), time of day."""
    out = [Factor(OWN, OWN, units=(unit,))]
    nearest = nearest_units(data, unit)
    others = [j for j in range(data.num_units) if j != unit] if nearest is None else nearest[neighbours:]
    for j in [] if nearest is None else nearest[:neighbours]:
        out.append(Factor(unit_label(data, j), NEIGHBOUR, units=(j,)))
    if others:
        out.append(Factor(OTHERS if nearest is None else f"{len(others)} farther units", OTHERS, units=tuple(others)))
    groups: dict[str, list[int]] = {}
    for e, name in enumerate(data.exogenous_names if exogenous and data.exogenous is not None else []):
        groups.setdefault(weather_label(name), []).append(e)
    out += [Factor(label, WEATHER, series=tuple(idx), angles=tuple(e for e in idx if is_angle(data.exogenous_names[e])))
            for label, idx in groups.items()]
    return out + [Factor(TIME, TIME)]
