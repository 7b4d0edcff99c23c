"""Los-loop (T-GCN): speed at 207 METR-LA loop detectors, 5-minute steps, 2012-03-01 .. 03-07."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from urbanst.data.container import STData
from urbanst.data.declaration import DatasetSpec, Repo, Source
from urbanst.data.safe_pickle import load_pickle
from urbanst.errors import UrbanstError

FOLDER = "los_loop_tgcn"

REPO = Repo("lehaifeng/T-GCN", "219a2346f5bf68d54d91a948e7a41a08f9edc46b")
SOURCE = Source(FOLDER, (
    REPO.file("los_speed.csv", "data/los_speed.csv",
              "7b732d86ae32b2930595becba28aff39dacbfb2197e250fc0332e1744ce2cbf4", 3402125),
    REPO.file("los_adj.csv", "data/los_adj.csv",
              "7a6eb41e10677992b5af50f5ab187c6c05c5c3a92cb973950cfddbf857361e76", 111686),
    REPO.file("graph_sensor_locations.csv", "STGC-GNN/data/METR-LA/graph_sensor_locations.csv",
              "eb8ea96e07358b45d0e4ba3b89c2673fa20c54af50150249e627389e749ade6f", 6341),
    REPO.file("metr_la_adj_mx.pkl", "STGC-GNN/data/METR-LA/adj_mx.pkl",
              "64997ab26db6ffdd2f6d57c8c12da6aedcb3efc2729b46ab4cc48e8c7ad1e5e8", 177422),
))

NOTES = """\
Speed (mph) at 207 Los Angeles highway loop detectors (the METR-LA sensors), 7 days x 288 five-minute steps from
2012-03-01 00:00 (start per the T-GCN paper; weekend dip on days 3-4 = Sat/Sun fits). A zero speed is a missing reading
and is masked, but the T-GCN authors already filled the gaps: the file has no zeros, and about 3% of values lie in
exactly linear (interpolated) runs of 30 min or more, including an outage on 2012-03-05 about 13:25..14:55 that hits
nearly every sensor. Those filled values are kept as observed (they cannot be told apart for sure); treat errors there
with care. Adjacency = DCRNN Gaussian kernel of road distance (metr_la_adj_mx.pkl): directed (not symmetric), weights
in 0..1 with self-loops 1; T-GCN's own 0/1 los_adj.csv is not used. Coords (lat, lon) from graph_sensor_locations.csv."""


def read_la_loop(folder: Path) -> STData:
    speed = pd.read_csv(folder / "los_speed.csv")
    sensors = [str(c) for c in speed.columns]
    loc = pd.read_csv(folder / "graph_sensor_locations.csv", dtype={"sensor_id": str})
    ids, _, weights = load_pickle(folder / "metr_la_adj_mx.pkl", encoding="latin1")
    if loc["sensor_id"].tolist() != sensors or [str(i) for i in ids] != sensors:
        raise UrbanstError(f"{FOLDER}: sensor order differs between los_speed.csv, locations and adjacency")
    values = speed.to_numpy(dtype=np.float32)[..., None]
    return STData(
        name="la_loop",
        values=values,
        observed_mask=values > 0,
        timestamps=pd.date_range("2012-03-01", periods=len(values), freq="5min"),
        attributes=["speed"],
        units=["mph"],
        city="Los Angeles",
        unit_names=sensors,
        coords=loc[["latitude", "longitude"]].to_numpy(),
        adjacency=weights,
        notes=NOTES,
    )


DATASETS = (
    DatasetSpec("la_loop", "Los Angeles loop-detector speed, 207 sensors, 5-min, 2012-03-01..07 (T-GCN)",
                read_la_loop, SOURCE),
)
