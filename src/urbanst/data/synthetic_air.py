"""A small synthetic air-quality network with weather and wind-driven transport (embedded, for demos and tests).

Stations sit on a ring 4-14 km around a centre. Weather per hour (shared by the stations, with a
little local noise): temperature with a daily cycle, dew point below it, occasional rain, a wind
whose direction (blowing FROM, degrees) wanders and whose speed follows a gamma AR process.
Pollution (PM2.5 and NO2) is emitted at each station with a traffic-like daily cycle, carried
between stations along the wind graph of :mod:`urbanst.data.graphs` (so wind matters), diluted by
wind speed and washed out by rain; about 2% of values are missing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from urbanst.data.container import STData
from urbanst.data.graphs import bearings_deg, distances_km, normalise_rows, wind_graph

CENTRE = (39.9, 116.4)
KM_PER_DEG = 111.195


def _ar(rng, T: int, phi: float, scale: float) -> np.ndarray:
    out, value = np.zeros(T), 0.0
    for t in range(T):
        value = phi * value + scale * rng.normal()
        out[t] = value
    return out


def make_air(stations: int = 6, weeks: int = 4, seed: int = 0, name: str = "synthetic_air") -> STData:
    rng = np.random.default_rng(seed)
    T, N = weeks * 7 * 24, stations
    times = pd.date_range("2021-01-04", periods=T, freq="h")  # a Monday
    angle, radius = 2 * np.pi * np.arange(N) / N, rng.uniform(4, 14, N)
    lat = CENTRE[0] + radius * np.cos(angle) / KM_PER_DEG
    lon = CENTRE[1] + radius * np.sin(angle) / (KM_PER_DEG * np.cos(np.radians(CENTRE[0])))
    coords = np.stack([lat, lon], 1)
    hour = np.asarray(times.hour, dtype=float)
    temp = 2 + 6 * np.sin(2 * np.pi * (hour - 9) / 24) + _ar(rng, T, 0.98, 0.6)
    dewp = temp - 6 - np.abs(_ar(rng, T, 0.95, 1.0))
    rain = np.where(rng.random(T) < 0.04, rng.gamma(1.5, 1.0, T), 0.0)
    direction = (270 + np.cumsum(rng.normal(0, 12, T))) % 360
    speed = np.clip(2 + _ar(rng, T, 0.9, 0.6), 0, None)
    local = lambda base, s: base[:, None] + s * rng.normal(size=(T, N))  # noqa: E731
    exo = np.stack([local(temp, 0.3), local(dewp, 0.3), np.clip(local(rain, 0.05), 0, None),
                    np.clip(local(speed, 0.2), 0, None), local(direction, 5.0) % 360], 2).astype(np.float32)

    dist, bear = distances_km(coords), bearings_deg(coords)
    carry = normalise_rows(np.swapaxes(wind_graph(dist, bear, exo[..., 3], exo[..., 4], 5.0), -1, -2))  # [T, N, N]
    emission = rng.uniform(20, 60, N)
    traffic = 1 + 0.5 * np.exp(-((hour[:, None] - np.array([8, 18])) ** 2).min(1) / 4)
    values = np.zeros((T, N, 2))
    pm, no2 = emission.copy(), emission / 2
    for t in range(T):
        keep = np.exp(-0.08 * exo[t, :, 3]) * np.exp(-0.3 * exo[t, :, 2])
        pm = 0.85 * keep * (carry[t] @ pm) + 0.15 * emission * traffic[t] * (1 + 0.1 * rng.normal(size=N))
        no2 = 0.6 * keep * (carry[t] @ no2) + 0.4 * emission / 2 * traffic[t] ** 2 * (1 + 0.1 * rng.normal(size=N))
        values[t, :, 0], values[t, :, 1] = pm, no2
    values = values.astype(np.float32)
    values[rng.random(values.shape) < 0.02] = np.nan
    exo[rng.random(exo.shape) < 0.02] = np.nan
    return STData(
        name=name, values=values, observed_mask=np.isfinite(values), timestamps=times,
        attributes=["PM2.5", "NO2"], units=["ug/m3", "ug/m3"], city="Synthetic City",
        unit_names=[f"S{i}" for i in range(N)], coords=coords, exogenous=exo,
        exogenous_names=["TEMP", "DEWP", "RAIN", "wind_speed", "wind_direction"],
        notes="Synthetic air-quality network (urbanst.data.synthetic_air): wind carries pollution between stations; "
              "wind_direction in degrees the wind blows FROM (N = 0, E = 90).",
    )
