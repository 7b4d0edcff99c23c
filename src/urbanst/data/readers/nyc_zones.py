"""NYC Manhattan bike and taxi in/out flow, 69 taxi zones, hourly 2019-2020 (Deep-NYC-Taxi-Bike)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from urbanst.data.container import STData
from urbanst.data.registry import register

FOLDER = "nyc_manhattan_bike_taxi_69zones"


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


@register("nyc_bike", FOLDER, "NYC Citi Bike in/out flow, 69 Manhattan zones, hourly 2019-2020")
def read_nyc_bike(folder: Path) -> STData:
    return _read(folder, "bike")


@register("nyc_taxi", FOLDER, "NYC yellow-taxi in/out flow, 69 Manhattan zones, hourly 2019-2020")
def read_nyc_taxi(folder: Path) -> STData:
    return _read(folder, "taxi")
