"""UCI Beijing multi-site air quality (PRSA): 12 stations, hourly 2013-03-01 .. 2017-02-28, with weather."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from urbanst.data.container import STData
from urbanst.data.declaration import BuiltFile, DatasetSpec, Repo, Source
from urbanst.errors import UrbanstError

FOLDER = "beijing_prsa_airquality"
POLLUTANTS = ["PM2.5", "PM10", "SO2", "NO2", "CO", "O3"]
WEATHER = {"TEMP": "TEMP", "PRES": "PRES", "DEWP": "DEWP", "RAIN": "RAIN", "WSPM": "wind_speed"}
COMPASS = ["N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE", "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW"]
# Meteorological convention: the compass point the wind blows FROM, in degrees clockwise from north.
WIND_DEGREES = {point: 22.5 * i for i, point in enumerate(COMPASS)}

STATION_CSV = {  # station: (sha256, size) of its CSV as published; stored gzip-compressed
    "Aotizhongxin": ("719312ca8fc535398e10dc292f5f291494c8b43400a47b31d5778bbb8d7c71e8", 2835915),
    "Changping": ("a2e21402a6d95fb7043f87959e6e3dcbecb957aac356a6f8028a85b047c772e7", 2722295),
    "Dingling": ("3d8dff81f18a80d9f455876a785642bffe1e9b9924ec1e6b7ce8cca790432eeb", 2675856),
    "Dongsi": ("9c0020214425e5ee2a64d42f97a1f632e1d8f6b53ad50edd85a686cc7999f27e", 2636684),
    "Guanyuan": ("59390fee3b032597b387491f5230e7edb90a8558e30217ebd6d9befbe669fbf9", 2695860),
    "Gucheng": ("10ae48801ea55869fee56a48b885fb1127859c130551888d71673f34216ba951", 2654625),
    "Huairou": ("812dcbe848b3ba2c2d25731064797bff803c46eb0c602156a1fa044df136dc26", 2641027),
    "Nongzhanguan": ("572cf87b65ef543cd55d3a711b28474def224a46b0ec3fc8add8aaf13b67a487", 2839705),
    "Shunyi": ("520b59e4ead3b0cfe7f1ed673e30275de8441e999db6f413d5172d2277b8c15a", 2620654),
    "Tiantan": ("0743e34799cf1ee36195b73321b91baa5625276532e7263c588f68cdef3b4daa", 2655061),
    "Wanliu": ("0b1a6d754a07f0def2f55434ddfa3870dcd0063b7f766a6f66b6c11bb05a377a", 2659544),
    "Wanshouxigong": ("ab1d6a356d6997a45f6d657ad47de1e05a4a08d4a7015b38a329a90665ab74d0", 2871076),
}
# stations.csv is built from the station table in the load_coords() text of this file
STATIONS_SOURCE = ("MLGlobalHealth/dl4bi", "fb31d9e34b13ed88836a4c6803dbd2b982ba5ea2",
                   "benchmarks/meta_learning/beijing_air_quality.py")
_STATION_ROW = re.compile(r"^\s*([A-Za-z]+),(-?\d+\.\d+),(-?\d+\.\d+)\s*$")

NOTES = """\
UCI "Beijing Multi-Site Air-Quality" (CC BY 4.0), local time (China Standard Time). Pollutants in ug/m3 (CO too).
PM2.5 and PM10 top out at 999 (probably an instrument cap). Exogenous per station: TEMP (deg C), PRES (hPa), DEWP
(deg C), RAIN (mm in the hour), wind_speed (WSPM, m/s), wind_direction (degrees, the direction the wind blows FROM:
N = 0, E = 90, S = 180, W = 270, converted from 16 compass points; missing -> NaN). Stations sorted by name;
coords (lat, lon) from stations.csv (dl4bi, 3 decimals; each within 0.06 km of an AQI-36 sensor except Guanyuan)."""


def _station_file(station: str) -> str:
    return f"PRSA_Data_{station}_20130301-20170228.csv"


def _station(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, na_values=[" "])
    df.index = pd.to_datetime(df[["year", "month", "day", "hour"]])
    df["wind_direction"] = df["wd"].map(WIND_DEGREES).astype(float)
    return df.rename(columns=WEATHER)


def read_beijing_air(folder: Path) -> STData:
    stations = pd.read_csv(folder / "stations.csv").sort_values("name")
    frames = [_station(folder / f"{_station_file(name)}.gz") for name in stations["name"]]
    times = pd.date_range(frames[0].index[0], frames[0].index[-1], freq="h")
    frames = [f.reindex(times) for f in frames]  # any absent hour becomes NaN
    exo_names = list(WEATHER.values()) + ["wind_direction"]
    values = np.stack([f[POLLUTANTS].to_numpy(dtype=np.float32) for f in frames], axis=1)
    return STData(
        name="beijing_air",
        values=values,
        observed_mask=np.isfinite(values),
        timestamps=times,
        attributes=POLLUTANTS,
        units=["ug/m3"] * len(POLLUTANTS),
        city="Beijing",
        unit_names=stations["name"].tolist(),
        coords=stations[["lat", "lon"]].to_numpy(),
        exogenous=np.stack([f[exo_names].to_numpy(dtype=np.float32) for f in frames], axis=1),
        exogenous_names=exo_names,
        notes=NOTES,
    )


def build_stations(_folder: Path, out: Path, text: str | None) -> None:
    """stations.csv from the ``load_coords()`` text block of dl4bi's beijing_air_quality.py."""
    repo, commit, path = STATIONS_SOURCE
    start = (text or "").find("station,Latitude,Longitude")
    if start < 0:
        raise UrbanstError(f"{repo}@{commit}:{path} has no station coordinate table; the source changed")
    rows = []
    for line in text[start:].splitlines()[1:]:
        m = _STATION_ROW.match(line)
        if not m:
            break
        rows.append(m.groups())
    source = f"{repo}@{commit}:{path} (load_coords)"
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        f.write("name,lat,lon,source\n")
        for station, lat, lon in rows:
            f.write(f"{station},{lat},{lon},{source}\n")


PRSA = Repo("abhishek21441/DataScience_Project", "26eedeaf15bc1655bf8907834ae2554543aa3f4c")
SOURCE = Source(FOLDER, tuple(
    PRSA.file(f"{_station_file(station)}.gz", f"PRSA_Data_20130301-20170228/{_station_file(station)}", sha256, size,
              gzip=True)
    for station, (sha256, size) in STATION_CSV.items()
) + (
    BuiltFile("stations.csv", "d7491fa25598c7f6eaceacf119f00631179a5d174ef16e322587de19e85abd12", "the whole file",
              build_stations, source=STATIONS_SOURCE),
))
DATASETS = (
    DatasetSpec("beijing_air", "Beijing air quality, 12 stations, hourly 2013-2017, 6 pollutants + weather (UCI)",
                read_beijing_air, SOURCE),
)
