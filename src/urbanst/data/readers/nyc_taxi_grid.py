"""TaxiNYC (STREED-Net): NYC taxi flows on a 16x8 grid, hourly 2010-2014, five yearly h5 files joined."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from einops import rearrange

from urbanst.data.container import STData
from urbanst.data.readers._common import on_regular_axis
from urbanst.data.registry import register

FOLDER = "nyc_taxi_grid_16x8_streed"
YEARS = range(2010, 2015)
H, W = 16, 8

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


@register("nyc_taxi_grid", FOLDER, "NYC taxi new/end flow, 16x8 grid, hourly 2010-2014 (TaxiNYC, STREED-Net)")
def read_nyc_taxi_grid(folder: Path) -> STData:
    parts = [_read_year(folder / f"NYC{y % 100}_Taxi_M16x8_T60_InOut.h5") for y in YEARS]
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
