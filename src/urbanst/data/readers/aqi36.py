"""AQI-36: Beijing PM2.5 at 36 stations, hourly 2014-05-01 01:00 .. 2015-04-30 23:00 (imputation benchmark)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from urbanst.data.container import STData
from urbanst.data.declaration import DatasetSpec, Repo, Source
from urbanst.errors import UrbanstError

FOLDER = "aqi36_beijing_pm25"
TEST_MONTHS = [3, 6, 9, 12]

REPO = Repo("LMZZML/PriSTI", "8ba37cc1a84cf706e767ae071101b3f02c921c9a")
SOURCE = Source(FOLDER, (
    REPO.file("pm25_ground.txt", "data/pm25/SampleData/pm25_ground.txt",
              "8f77b738ae4c50621705a308e606e6229564ad7ad20358986bd6031355f0ab5f", 1098878),
    REPO.file("pm25_missing.txt", "data/pm25/SampleData/pm25_missing.txt",
              "3f991eab5bbc5e644e61360e6b71ce45179c86cf650b3bb9a53771d8f9953fe3", 1022029),
    REPO.file("pm25_latlng.txt", "data/pm25/SampleData/pm25_latlng.txt",
              "a7423dafe4ecdec5ba04b4b6b047a53df1b9c04aed0a2957f1c698761715d7c1", 958),
    REPO.file("pm25_meanstd.pk", "data/pm25/pm25_meanstd.pk",
              "ed6413f7222e4a61446ee1cef9c3fa58eb194eac8ddee8bb503a80a52c5b2629", 778),
))

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


DATASETS = (
    DatasetSpec("aqi36", "Beijing PM2.5, 36 stations, hourly May 2014 - Apr 2015, with the published eval mask",
                read_aqi36, SOURCE),
)
