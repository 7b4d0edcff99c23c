"""TaxiNYC (STREED-Net): NYC taxi flows on a 16x8 grid, hourly 2010-2014, five yearly h5 files joined."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from einops import rearrange

from urbanst.data.container import STData
from urbanst.data.declaration import DatasetSpec, Repo, Source
from urbanst.data.readers._common import on_regular_axis

FOLDER = "nyc_taxi_grid_16x8_streed"
H, W = 16, 8
YEAR_FILES = {  # year: (sha256, size) of its file; NY_Meteorology.h5 is not in the repository snapshot
    2010: ("09485eea7727b90273e6f4cbd9e9e18549034081eadf8d601abaa494297b8ce4", 1726592),
    2011: ("72660bb87f4e7e0035a116d59102dadeb1b328aa95c84d383a6a15b896d9e351", 1736555),
    2012: ("5b95d03f44bd07b9102431e74ee293db78048886a2d773e6c3d3b99c7c275fe9", 1644063),
    2013: ("fbb84edbeb378e7f8067bead7ede8747cf8b9e1f708c03be222f767f3ae79dc2", 1503684),
    2014: ("112585137947375db1e0a7733724c0604e3774eaf8c894cdb1abe867c3b22039", 1499663),
}
YEARS = list(YEAR_FILES)


def year_file(year: int) -> str:
    return f"NYC{year % 100}_Taxi_M16x8_T60_InOut.h5"


REPO = Repo("pengzhangzhi/spatial-temporal-transformer", "b17760e01eb08b9b4340e9dd6cbc7cd3caac2b97")
SOURCE = Source(FOLDER, tuple(
    REPO.file(year_file(year), f"data/TaxiNYC/{year_file(year)}", sha256, size)
    for year, (sha256, size) in YEAR_FILES.items()
) + (
    REPO.file("NY_Holiday.txt", "data/TaxiNYC/NY_Holiday.txt",
              "2133c7c1febb111e5a6a6718989d26f621a2550ff3e10657e0b9119dcfdf1cb8", 656),
))

NOTES = """\
Five yearly files joined into one hourly series 2010-01-01 00:00 .. 2014-12-31 23:00 (local clock time).
Rows sharing a time stamp (month boundaries; 2013-2014 spring heavily) hold partial counts from two monthly source
files and are SUMMED. September is missing every year: Sep 2-30 are absent and kept as masked steps; Sep 1 is masked
whole (new_flow is zero all day and end_flow holds only trips begun on Aug 31, i.e. the September source file is
missing). Slots where the whole grid is zero are masked too: the Sep 1 hours and the non-existent spring-forward hour
02:00 of 2011-03-13, 2012-03-11, 2013-03-10, 2014-03-09 (2010-03-14 02:00 has a partial count and is kept). The
fall-back hour 01:00 in early November holds two clock hours. The first hours of Oct 1 probably lack the end_flow of
trips begun in September. Days at 40-55% of normal volume without known cause (likely incomplete source files):
2010-02-01..07, 2010-03-01..07, 2010-08-02..04, 2010-10-01..03, 2013-08-02..04, 2013-08-11; real events also show
(blizzards 2010-02-10 and 2010-12-27, Hurricane Irene 2011-08-28, Sandy 2012-10-29/30). Channel order follows the data
ReadMe (new_flow = trips starting in the cell, end_flow = trips ending there) but the file name says "InOut", so it is
not certain; the Sep 1 pattern above (only end_flow non-zero after midnight) supports the ReadMe order. Grid 16 rows x
8 columns, row-major units; the bounding box is not published. NY_Holiday.txt (US holidays) is not read."""


def _read_year(path: Path) -> tuple[pd.DatetimeIndex, np.ndarray]:
    with h5py.File(path, "r") as f:
        data, dates = f["data"][()], f["date"][()].astype(str)
    return pd.to_datetime(dates, format="%Y%m%d%H"), data.reshape(len(data), -1)


def read_nyc_taxi_grid(folder: Path) -> STData:
    parts = [_read_year(folder / year_file(year)) for year in YEARS]
    rows = pd.DataFrame(np.concatenate([x for _, x in parts]), index=np.concatenate([t for t, _ in parts]))
    summed = rows.groupby(level=0).sum()  # duplicate time stamps hold partial counts
    times, flat = on_regular_axis(summed.index, summed.to_numpy(), "h", f"{YEARS[0]}-01-01", f"{YEARS[-1]}-12-31 23:00")
    values = rearrange(flat, "t (c h w) -> t (h w) c", c=2, h=H, w=W)
    missing = (times.month == 9)[:, None, None] | (np.nansum(values, axis=(1, 2)) == 0)[:, None, None]
    values[np.broadcast_to(missing, values.shape)] = np.nan
    return STData(
        name="nyc_taxi_grid",
        values=values,
        observed_mask=np.isfinite(values),
        timestamps=times,
        attributes=["new_flow", "end_flow"],
        units=["trips/hour", "trips/hour"],
        city="New York",
        grid_shape=(H, W),
        notes=NOTES,
    )


DATASETS = (
    DatasetSpec("nyc_taxi_grid", "NYC taxi new/end flow, 16x8 grid, hourly 2010-2014 (TaxiNYC, STREED-Net)",
                read_nyc_taxi_grid, SOURCE),
)
