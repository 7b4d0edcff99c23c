"""Montevideo bus-stop passenger inflow (PyTorch Geometric Temporal): 675 stops, hourly, October 2020."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from urbanst.data.container import STData
from urbanst.data.declaration import DatasetSpec, Repo, Source

FOLDER = "montevideo_bus_pgt"

REPO = Repo("benedekrozemberczki/pytorch_geometric_temporal", "adefe44265ad8faf239fd6cf3b59b95ca3ee60aa")
SOURCE = Source(FOLDER, (
    REPO.file("montevideo_bus.json", "dataset/montevideo_bus.json",
              "37d9c6286d474077b5c05173c1570c4da42c387013116daa8862c7a6cab86a75", 3131884),
))

NOTES = """\
Hourly passengers boarding at 675 stops of 11 STM bus lines, raw counts (the PyG-T loader z-scores them; we do not).
Index 0 is taken as 2020-10-01 00:00 local time (weekend dips on days 3-4 and the Monday 12 October holiday fit).
Coords are UTM zone 21S metres (EPSG:32721, presumed), stored as (northing, easting) so that the first column is the
north-south one as in (lat, lon); the file calls them lat / lon. Adjacency is 0/1 and DIRECTED: A[i, j] = 1 for a
link from stop i to the next stop j of a line (690 links, none reciprocal). The file's link weights (road distance,
23.8..1991.3, presumably metres) are dropped. Unit names are the STM bus_stop ids."""


def read_montevideo_bus(folder: Path) -> STData:
    with open(folder / "montevideo_bus.json") as f:
        graph = json.load(f)
    nodes = graph["nodes"]
    index = {node["bus_stop"]: i for i, node in enumerate(nodes)}
    adjacency = np.zeros((len(nodes), len(nodes)), dtype=np.float32)
    for link in graph["links"]:
        adjacency[index[link["source"]], index[link["target"]]] = 1.0
    values = np.array([node["y"] for node in nodes], dtype=np.float32).T[..., None]
    return STData(
        name="montevideo_bus",
        values=values,
        observed_mask=np.isfinite(values),
        timestamps=pd.date_range("2020-10-01", periods=len(values), freq="h"),
        attributes=["boardings"],
        units=["passengers/hour"],
        city="Montevideo",
        unit_names=[str(node["bus_stop"]) for node in nodes],
        coords=np.array([[node["lat"], node["lon"]] for node in nodes], dtype=np.float64),
        coord_system="metres",
        adjacency=adjacency,
        notes=NOTES,
    )


DATASETS = (
    DatasetSpec("montevideo_bus", "Montevideo bus-stop passenger inflow, 675 stops, hourly October 2020 (PyG-T)",
                read_montevideo_bus, SOURCE),
)
