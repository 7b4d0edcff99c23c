"""NYC Manhattan bike and taxi in/out flow, 69 taxi zones, hourly 2019-2020 (Deep-NYC-Taxi-Bike)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from urbanst.data.container import STData
from urbanst.data.declaration import DatasetSpec, Repo, Source

FOLDER = "nyc_manhattan_bike_taxi_69zones"

REPO = Repo("Evens1sen/Deep-NYC-Taxi-Bike", "097aa2d8177392339b089ed940c6ccc2d469dd97")
SOURCE = Source(FOLDER, (
    REPO.file("201901-202012-NYCbike-inoutflow.npz", "data-NYCBike/60min/201901-202012-NYCbike-inoutflow.npz",
              "e6be89d9dd41579ecd0551699ff85490149993c50595425872b8d2ba35246b72", 2771289),
    REPO.file("201901-202012-NYCtaxi-inoutflow.npz", "data-NYCTaxi/60min/201901-202012-NYCtaxi-inoutflow.npz",
              "9d0734122f8e168e2f7f690ab4a857542c29fd9c888f27fe09fb48890b3f15f5", 3422611),
    REPO.file("W_adj_matrix.csv", "data-NYCZones/adjmatrix/W_adj_matrix.csv",
              "1822444cccf3545b6d2b410c0f36071f495a5f5ba6e65020f15f07359a60f9a9", 9859),
    REPO.file("W_od_bike.csv", "data-NYCZones/adjmatrix/W_od_bike.csv",
              "4f22e783f0204008ca581a1319b7d724e38c808dcf1393d0c24ce33dd4fd7b2b", 86059),
    REPO.file("W_od_taxi.csv", "data-NYCZones/adjmatrix/W_od_taxi.csv",
              "c24e515b328d68c481861074233995b6c606386cd81f1f7b8827d7050ebf4125", 95022),
    REPO.file("edges.txt", "data-processing/edges.txt",
              "c6e33ab5f37ea0ba1fbfd76f2bb13ae2eb8adeee0326ebd9430de626a1cc212f", 1352),
    REPO.file("manhattan_zones.csv", "data-NYCZones/zones/manhattan_zones.csv",
              "8b06eb185812d95c19a84951861b9a40a16672b522694238ff364cd369e850ec", 1836),
))


def _read(folder: Path, mode: str) -> STData:
    values = np.load(folder / f"201901-202012-NYC{mode}-inoutflow.npz", allow_pickle=False)["arr_0"]
    zones = pd.read_csv(folder / "manhattan_zones.csv").sort_values("graph_id")
    adjacency = pd.read_csv(folder / "W_adj_matrix.csv").to_numpy(dtype=np.float32)
    return STData(
        name=f"nyc_{mode}",
        values=values,
        observed_mask=np.isfinite(values),
        timestamps=pd.date_range("2019-01-01", periods=values.shape[0], freq="h"),
        attributes=["inflow", "outflow"],
        units=["trips/hour", "trips/hour"],
        city="New York (Manhattan)",
        unit_names=zones["zone_name"].astype(str).tolist(),
        adjacency=adjacency,
        notes="69 Manhattan taxi zones; adjacency = zone contiguity. Includes the COVID-19 drop from 2020-03.",
    )


def read_nyc_bike(folder: Path) -> STData:
    return _read(folder, "bike")


def read_nyc_taxi(folder: Path) -> STData:
    return _read(folder, "taxi")


DATASETS = (
    DatasetSpec("nyc_bike", "NYC Citi Bike in/out flow, 69 Manhattan zones, hourly 2019-2020", read_nyc_bike, SOURCE),
    DatasetSpec("nyc_taxi", "NYC yellow-taxi in/out flow, 69 Manhattan zones, hourly 2019-2020", read_nyc_taxi, SOURCE),
)
