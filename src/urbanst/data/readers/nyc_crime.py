"""NYC crime counts (ST-SHN / STHSL), 16x16 grid, daily 2014-2015, 4 categories, full tensor rebuilt from events."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from urbanst.data.container import STData
from urbanst.data.readers._common import crime_cube
from urbanst.data.registry import register

FOLDER = "nyc_crime_events_stshn"

NOTES = """\
Daily crime counts 2014-01-01 .. 2015-12-31 on about 3 km x 3 km cells, 16 rows (from the south) x 16 columns (from the
west), unit = row * 16 + col; coords = cell centres (lat, lon). The tensor was rebuilt from the raw NYPD events
(NYC_Crime.zip) with STHSL's gridding rule; days 608..729 equal ST-SHN's released val/tst pickles exactly, so days
0..607 stand in for the unreleased trn.pkl. Benchmark split trn | val | tst = 608 | 30 | 92 days (protocol
split_index). Category names and order come from the file. 129 of 256 cells never record a crime (water or outside
NYC); their zeros are kept as observed."""


@register("nyc_crime", FOLDER, "NYC crime counts, 16x16 grid, daily 2014-2015, 4 categories (ST-SHN, rebuilt)")
def read_nyc_crime(folder: Path) -> STData:
    z = np.load(folder / "nyc_crime_16x16_daily_2014_2015.npz", allow_pickle=False)
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
