"""Alboran Sea satellite SST with cloud gaps (AVHRR Metop-B L3, DINEOF example): sea pixels of a 201x301 grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.io import netcdf_file

from urbanst.data.container import STData
from urbanst.data.declaration import DatasetSpec, Repo, Source
from urbanst.data.readers._common import on_regular_axis

FOLDER = "alboran_sst_dineof"
FILL = 99999.0

REPO = Repo("aida-alvera/DINEOF", "b702649b3fc574ecc112589bd83c9419e9f9f7f4")
SOURCE = Source(FOLDER, (
    REPO.file("alboranSST_small.nc", "SmallExample/alboranSST_small.nc",
              "d1ccbab330642e47c9c23df046333ce2df2eb30c346acc4d3b806047ddc29e3b", 2664972),
))

NOTES = """\
Daily L3 sea-surface temperature (deg C) on a 0.02 deg grid, 201 rows (row 0 = south, lat 34.01) x 301 columns
(col 0 = west, lon -5.99). Units are the 22,186 sea pixels of the file's mask (grid_cells = their row-major flat
indices); land is not a unit (19 stray land-pixel values are dropped). Clouds are missing values (fill 99999 -> NaN):
45% of sea cells, 9%..90% per frame. The file has no frame for 2017-05-22; it is inserted as a fully masked step so the
daily axis is regular (11 steps). Time of day is not given (stamps at 00:00). Coords (lat, lon) per unit. Data:
CMEMS AVHRR Metop-B L3 via the DINEOF example; only 11 days, so use it for gap filling, not long training."""


def read_alboran_sst(folder: Path) -> STData:
    with netcdf_file(folder / "alboranSST_small.nc", "r", mmap=False) as f:
        sst = f.variables["SST"].data.astype(np.float32)
        sea = f.variables["mask"].data.astype(bool)
        lat, lon = f.variables["lat"].data.astype(np.float64), f.variables["lon"].data.astype(np.float64)
        days = f.variables["time"].data.astype(np.float64)  # days since 2017-01-01
    sst[sst >= FILL / 10] = np.nan
    cells = np.flatnonzero(sea)  # row-major flat indices of sea pixels
    rows, cols = np.divmod(cells, sea.shape[1])
    frames = sst.reshape(len(sst), -1)[:, cells, None]
    times, values = on_regular_axis(pd.Timestamp("2017-01-01") + pd.to_timedelta(days, unit="D"), frames, "D")
    return STData(
        name="alboran_sst",
        values=values,
        observed_mask=np.isfinite(values),
        timestamps=times,
        attributes=["SST"],
        units=["degC"],
        city="Alboran Sea (western Mediterranean; not a city)",
        grid_shape=sea.shape,
        grid_cells=cells,
        coords=np.stack([lat[rows], lon[cols]], axis=1),
        notes=NOTES,
    )


DATASETS = (
    DatasetSpec("alboran_sst", "Alboran Sea satellite SST, clouds missing, 22,186 sea pixels, daily May 2017 (DINEOF)",
                read_alboran_sst, SOURCE),
)
