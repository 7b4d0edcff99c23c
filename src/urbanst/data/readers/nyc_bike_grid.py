"""NYCBike1 (ST-ResNet BikeNYC via ST-SSL): the hourly 16x8 grid series rebuilt from the val and test windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from urbanst.data.container import STData
from urbanst.data.declaration import DatasetSpec, Repo, Source
from urbanst.errors import UrbanstError

FOLDER = "nyc_bike1_stssl"
END = "2014-09-30 23:00"  # BikeNYC ends here; ST-SSL's test split is its last 864 hours (36 days)

REPO = Repo("Echo-Ji/ST-SSL", "b3f3dfc48d12524c207cc89f4e242cb8aac081c0")
SOURCE = Source(FOLDER, (  # no train.npz: the repository holds it in Git LFS only
    REPO.file("adj_mx.npz", "data/NYCBike1/adj_mx.npz",
              "21e7556c2a05cbd41312154fc82ca07539b51be3299a9c53f5d19f676ba487ec", 631),
    REPO.file("val.npz", "data/NYCBike1/val.npz",
              "5a01b775da98029da9e6db10932f85fa295c82d173602c8fe677956fd3a394ac", 1781472),
    REPO.file("test.npz", "data/NYCBike1/test.npz",
              "076c2062e4fc8c8fd14a48262ded5aecb40704cf6969a5c6c7c358da34699378", 3542679),
))

NOTES = """\
Evaluation / transfer target only: ST-SSL's train split is absent, so there is NO training split here.
Rebuilt from the val and test windows (x offsets -73..-69, -49..-45, -25..-21, -3..0 h; y = +1 h): the first val
sample's inputs give 74 hours before the first val target, the targets y give the rest, and the test windows start
exactly where val ends (checked), so the series is contiguous with no hour missing; every window input was checked to
equal the rebuilt series. Index {val} is the first val target and {test} the first test target (protocol
val_start / test_start; eval_only = True).
Time stamps are an assumption: BikeNYC ends {end} and the test targets are its last 864 hours; this fits the data
(weekday peaks at 08:00 and 17:00-18:00 local time, flat weekends, low Labor Day Mon 2014-09-01). Grid 16 rows x 8
columns, row-major units; adjacency = 8-neighbour (king-move) grid links from adj_mx.npz, no self-loops."""


def _check(x: np.ndarray, offsets: np.ndarray, series: np.ndarray, first_anchor: int) -> None:
    n = len(x)
    for j, off in enumerate(offsets):
        lo = first_anchor + off
        if lo < 0 or not np.array_equal(x[:, j], series[lo : lo + n]):
            raise UrbanstError(f"{FOLDER}: window inputs at offset {off} do not match the rebuilt hourly series")


def read_nyc_bike_grid(folder: Path) -> STData:
    val, test = (dict(np.load(folder / f"{split}.npz", allow_pickle=False)) for split in ("val", "test"))
    offsets = val["x_offsets"][:, 0]
    lead = int(-offsets.min())  # hours before the first val anchor that the val inputs reveal
    if val["y_offsets"].ravel().tolist() != [1] or offsets.max() != 0:
        raise UrbanstError(f"{FOLDER}: unexpected window offsets {offsets.tolist()} / {val['y_offsets'].ravel()}")
    series = np.concatenate([val["x"][: lead + 1, 0], val["y"][:, 0], test["y"][:, 0]])
    val_start, test_start = lead + 1, lead + 1 + len(val["y"])
    _check(val["x"], offsets, series, val_start - 1)
    _check(test["x"], offsets, series, test_start - 1)  # also proves that test starts where val ends
    return STData(
        name="nyc_bike_grid",
        values=series,
        observed_mask=np.isfinite(series),
        timestamps=pd.date_range(end=END, periods=len(series), freq="h"),
        attributes=["inflow", "outflow"],
        units=["bikes/hour", "bikes/hour"],
        city="New York",
        grid_shape=(16, 8),
        adjacency=np.load(folder / "adj_mx.npz", allow_pickle=False)["adj_mx"],
        protocol={"val_start": val_start, "test_start": test_start, "eval_only": True},
        notes=NOTES.format(val=val_start, test=test_start, end=END),
    )


DATASETS = (
    DatasetSpec("nyc_bike_grid", "NYC Citi Bike in/out flow, 16x8 grid, hourly Aug-Sep 2014 (NYCBike1 val+test only)",
                read_nyc_bike_grid, SOURCE),
)
