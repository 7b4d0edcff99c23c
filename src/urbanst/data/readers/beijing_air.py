"""UCI Beijing multi-site air quality (PRSA): 12 stations, hourly 2013-03-01 .. 2017-02-28, with weather."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from urbanst.data.container import STData
from urbanst.data.registry import register

FOLDER = "beijing_prsa_airquality"
POLLUTANTS = ["PM2.5", "PM10", "SO2", "NO2", "CO", "O3"]
WEATHER = {"TEMP": "TEMP", "PRES": "PRES", "DEWP": "DEWP", "RAIN": "RAIN", "WSPM": "wind_speed"}
COMPASS = ["N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE", "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW"]
# Meteorological convention: the compass point the wind blows FROM, in degrees clockwise from north.
WIND_DEGREES = {point: 22.5 * i for i, point in enumerate(COMPASS)}

NOTES = """\
UCI "Beijing Multi-Site Air-Quality" (CC BY 4.0), local time (China Standard Time). Pollutants in ug/m3 (CO too).
PM2.5 and PM10 top out at 999 (probably an instrument cap). Exogenous per station: TEMP (deg C), PRES (hPa), DEWP
(deg C), RAIN (mm in the hour), wind_speed (WSPM, m/s), wind_direction (degrees, the direction the wind blows FROM:
N = 0, E = 90, S = 180, W = 270, converted from 16 compass points; missing -> NaN). Stations sorted by name;
coords (lat, lon) from stations.csv (dl4bi, 3 decimals; each within 0.06 km of an AQI-36 sensor except Guanyuan)."""


def _station(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, na_values=[" "])
    df.index = pd.to_datetime(df[["year", "month", "day", "hour"]])
    df["wind_direction"] = df["wd"].map(WIND_DEGREES).astype(float)
    return df.rename(columns=WEATHER)


@register("beijing_air", FOLDER, "Beijing air quality, 12 stations, hourly 2013-2017, 6 pollutants + weather (UCI)")
def read_beijing_air(folder: Path) -> STData:
    stations = pd.read_csv(folder / "stations.csv").sort_values("name")
    frames = [_station(folder / f"PRSA_Data_{name}_20130301-20170228.csv.gz") for name in stations["name"]]
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
