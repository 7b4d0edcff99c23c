"""NYC crime counts (ST-SHN / STHSL), 16x16 grid, daily 2014-2015, 4 categories, full tensor rebuilt from events."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from urbanst.data.container import STData
from urbanst.data.declaration import BuiltFile, DatasetSpec, Repo, Source
from urbanst.data.readers._common import crime_cube
from urbanst.errors import UrbanstError

FOLDER = "nyc_crime_events_stshn"
GRID_FILE = "nyc_crime_16x16_daily_2014_2015.npz"
BUILT_CATEGORIES = ("BURGLARY", "GRAND LARCENY", "ROBBERY", "FELONY ASSAULT")

NOTES = """\
Daily crime counts 2014-01-01 .. 2015-12-31 on about 3 km x 3 km cells, 16 rows (from the south) x 16 columns (from the
west), unit = row * 16 + col; coords = cell centres (lat, lon). The tensor was rebuilt from the raw NYPD events
(NYC_Crime.zip) with STHSL's gridding rule; days 608..729 equal ST-SHN's released val/tst pickles exactly, so days
0..607 stand in for the unreleased trn.pkl. Benchmark split trn | val | tst = 608 | 30 | 92 days (protocol
split_index). Category names and order come from the file. 129 of 256 cells never record a crime (water or outside
NYC); their zeros are kept as observed."""


def read_nyc_crime(folder: Path) -> STData:
    z = np.load(folder / GRID_FILE, allow_pickle=False)
    H, W = z["data"].shape[:2]
    rows, cols = np.divmod(np.arange(H * W), W)
    lat = z["lat_min"] + (rows + 0.5) * z["lat_step_deg"]
    lon = z["lon_min"] + (cols + 0.5) * z["lon_step_deg"]
    return crime_cube(
        "nyc_crime",
        z["data"],
        start=str(z["dates"][0]),
        categories=[str(c) for c in z["categories"]],
        city="New York",
        coords=np.stack([lat, lon], axis=1),  # cell centres
        protocol={"split_index": z["split_index"].tolist()},
        notes=NOTES,
    )


def build_grid(folder: Path, out: Path, _text: str | None) -> None:
    """The ST-SHN/STHSL gridding rule (PROVENANCE of nyc_crime_events_stshn), applied to NYC_Crime.csv.

    row = int((lat - min lat) * 111 / 3), col = int((lon - min lon) * 84 / 3) (about 3 km cells),
    day = calendar day since 2014-01-01, channel = offense in BUILT_CATEGORIES, value = count.
    """
    try:
        with zipfile.ZipFile(folder / "NYC_Crime.zip") as zf, zf.open("NYC_Crime.csv") as f:
            ev = pd.read_csv(f)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as err:
        raise UrbanstError(f"cannot read {folder / 'NYC_Crime.zip'}: {err}; delete it and download again") from None
    t = pd.to_datetime(ev["Occurrence Date"], format="%m/%d/%Y %I:%M:%S %p")
    lat = ev["Latitude"].to_numpy(np.float64)
    lon = ev["Longitude"].to_numpy(np.float64)
    lat_min, lon_min = lat.min(), lon.min()
    row = ((lat - lat_min) * 111 / 3).astype(np.int64)
    col = ((lon - lon_min) * 84 / 3).astype(np.int64)
    day = ((t.dt.normalize() - pd.Timestamp("2014-01-01")) // pd.Timedelta(days=1)).to_numpy(np.int64)
    channel = ev["Offense"].map({c: i for i, c in enumerate(BUILT_CATEGORIES)})
    if channel.isna().any():
        raise UrbanstError(f"NYC_Crime.csv has offenses outside {BUILT_CATEGORIES}; the source changed")
    data = np.zeros((16, 16, 730, 4), dtype=np.int16)
    np.add.at(data, (row, col, day, channel.to_numpy(np.int64)), 1)
    dates = pd.date_range("2014-01-01", periods=730, freq="D").strftime("%Y-%m-%d").to_numpy(dtype="<U10")
    with open(out, "wb") as f:
        np.savez_compressed(
            f,
            data=data,
            dates=dates,
            categories=np.asarray(BUILT_CATEGORIES, dtype="<U14"),
            lat_min=np.float64(lat_min),
            lon_min=np.float64(lon_min),
            lat_step_deg=np.float64(3 / 111),
            lon_step_deg=np.float64(3 / 84),
            split_index=np.asarray([608, 638], dtype=np.int64),
        )


def grid_checksum(path: Path) -> str:
    """SHA-256 of the grid's ``data`` array: an ``.npz`` file's own bytes carry zip timestamps."""
    with np.load(path, allow_pickle=False) as z:
        data = z["data"]
    if data.dtype != np.int16 or data.shape != (16, 16, 730, 4):
        return f"wrong array {data.dtype} {data.shape}"
    return hashlib.sha256(np.ascontiguousarray(data).astype("<i2").tobytes()).hexdigest()


REPO = Repo("LZH-YS1998/STHSL", "6f3429c07f88ada44b5c34a0a098e95eedf9cbd6")
SOURCE = Source(FOLDER, (
    REPO.file("NYC_Crime.zip", "Datasets/NYC_crime/NYC_Crime.zip",
              "ed147db0acb2b8679b87e7b1de004e1bb23a24e2381fd7f0afa49dc826c766de", 2937736),
    BuiltFile(GRID_FILE, "c21a9d3f4735297f6a35e05935bb37caf106f61952c96edb5f1f26ac775d16dd",
              "the bytes of its 'data' array (int16, shape (16, 16, 730, 4), C order)",
              build_grid, checksum=grid_checksum, inputs=("NYC_Crime.zip",)),
))
DATASETS = (
    DatasetSpec("nyc_crime", "NYC crime counts, 16x16 grid, daily 2014-2015, 4 categories (ST-SHN, rebuilt)",
                read_nyc_crime, SOURCE),
)
