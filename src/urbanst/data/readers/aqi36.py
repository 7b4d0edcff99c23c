"""AQI-36: Beijing PM2.5 at 36 stations, hourly 2014-05-01 01:00 .. 2015-04-30 23:00 (imputation benchmark)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from urbanst.data.container import STData
from urbanst.data.registry import register
from urbanst.errors import UrbanstError

FOLDER = "aqi36_beijing_pm25"
TEST_MONTHS = [3, 6, 9, 12]

NOTES = """\
Urban Air / ST-MVL PM2.5 (ug/m3, capped at 500) as used by BRITS, GRIN, CSDI and PriSTI. observed_mask = present in
pm25_ground.txt. eval_mask = present in ground but absent from pm25_missing.txt (35,737 cells, 11.3%): the published
imputation targets, whose real gaps follow the true missing pattern. A model may see observed AND NOT eval_mask.
Test = months 3, 6, 9, 12 (2,928 hours; protocol test_months); the published per-sensor mean/std
(pm25_meanstd.pk) come from the other months. Sensor ids 001001..001036 (no names); coords (lat, lon) from
pm25_latlng.txt. 12 of the sensors match the UCI beijing_air stations (nearest within 0.06 km, Guanyuan 1.03 km)."""


def _read(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, index_col="datetime")
    df.index = pd.to_datetime(df.index, format="%Y/%m/%d %H:%M:%S")
    return df


@register("aqi36", FOLDER, "Beijing PM2.5, 36 stations, hourly May 2014 - Apr 2015, with the published eval mask")
def read_aqi36(folder: Path) -> STData:
    ground, missing = _read(folder / "pm25_ground.txt"), _read(folder / "pm25_missing.txt")
    if not (ground.index.equals(missing.index) and ground.columns.equals(missing.columns)):
        raise UrbanstError(f"{FOLDER}: pm25_ground.txt and pm25_missing.txt do not share rows and columns")
    loc = pd.read_csv(folder / "pm25_latlng.txt", dtype={"sensor_id": str}).set_index("sensor_id").loc[ground.columns]
    values = ground.to_numpy(dtype=np.float32)[..., None]
    return STData(
        name="aqi36",
        values=values,
        observed_mask=np.isfinite(values),
        timestamps=ground.index,
        attributes=["PM2.5"],
        units=["ug/m3"],
        city="Beijing",
        unit_names=list(ground.columns),
        coords=loc[["latitude", "longitude"]].to_numpy(),
        eval_mask=(ground.notna() & missing.isna()).to_numpy()[..., None],
        protocol={"test_months": TEST_MONTHS},
        notes=NOTES,
    )
