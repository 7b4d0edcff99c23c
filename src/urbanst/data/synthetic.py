"""The synthetic city: urbanst's embedded default dataset.

A fictional city of spatial units (grid cells or irregular regions) grouped into districts,
and districts into boroughs. Each district is mostly residential, business or leisure; its
units share that profile and a level, with smooth spatial variation on top. Trips in and
out of each unit follow weekday commute and weekend profiles, are scaled by weather and by
events (concerts raise a neighbourhood, storms lower an area), and are drawn as
negative-binomial counts. Then values go missing: sensor outages, blocks of cells, and
isolated gaps. Everything is vectorised, so large cities build in seconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from urbanst.data.container import STData
from urbanst.errors import UrbanstError

CENTRE = (45.46, 9.19)  # (lat, lon) of the fictional city's centre
KM_PER_DEG = 111.32
DISTRICT_KINDS = ("residential", "business", "leisure")
CHANNELS = ("inflow", "outflow")
DISPERSION = 20.0  # negative-binomial shape: variance = mean + mean² / DISPERSION

# Per district kind: weekday inflow, weekday outflow, weekend inflow, weekend outflow.
# Each profile is a base rate plus daily bumps (hour, width in hours, height); outflow
# repeats inflow shifted by how long people stay (home overnight, work a day, leisure a
# few hours), so the two channels are correlated at a lag.
_PROFILES = {
    "residential": (
        (0.10, (18.0, 1.5, 1.0), (13.0, 3.0, 0.25), (22.0, 2.0, 0.3)),
        (0.10, (7.8, 1.3, 1.0), (12.0, 3.0, 0.25), (19.5, 2.0, 0.3)),
        (0.10, (13.0, 3.0, 0.4), (19.0, 2.5, 0.5)),
        (0.10, (11.0, 2.5, 0.5), (17.0, 3.0, 0.4)),
    ),
    "business": (
        (0.05, (8.5, 1.0, 1.0), (13.0, 1.0, 0.3)),
        (0.05, (17.5, 1.2, 1.0), (12.0, 1.0, 0.3)),
        (0.05, (11.0, 3.0, 0.2)),
        (0.05, (15.0, 3.0, 0.2)),
    ),
    "leisure": (
        (0.08, (12.5, 1.5, 0.4), (20.0, 2.0, 0.8)),
        (0.08, (14.0, 1.5, 0.4), (23.0, 2.0, 0.8)),
        (0.10, (14.0, 3.0, 0.7), (21.0, 2.5, 1.0)),
        (0.10, (17.0, 3.0, 0.7), (0.5, 2.5, 1.0)),
    ),
}


def make_city(
    kind: str = "grid",
    *,
    grid: tuple[int, int] = (8, 8),
    num_units: int = 40,
    weeks: int = 8,
    step: str = "1h",
    channels: tuple[str, ...] = CHANNELS,
    missing: float = 0.05,
    events: bool | int = True,
    seed: int = 0,
    start: str = "2024-01-01",
    name: str | None = None,
) -> STData:
    """Generate a synthetic city as an :class:`STData`, deterministic by ``seed``.

    ``kind="grid"`` lays out ``grid=(H, W)`` cells of 1 km (rook adjacency);
    ``kind="region"`` scatters ``num_units`` regions around the centre (k-nearest-neighbour
    adjacency with Gaussian weights). ``events`` is True for about one event per ten days,
    a number for exactly that many, or False. ``missing`` is the share of (step, unit)
    entries to hide. The hierarchy is in ``protocol["hierarchy"]`` and the events in
    ``protocol["events"]`` as dicts of plain values (``start`` step, ``length`` in steps,
    ``units``, multiplicative ``factor``).
    """
    step_td = pd.Timedelta(step)
    step_h = step_td / pd.Timedelta(hours=1)
    _check(kind, grid, num_units, weeks, step_h, channels, missing)
    rng = np.random.default_rng(seed)
    timestamps = pd.date_range(pd.Timestamp(start), periods=int(round(weeks * 168 / step_h)), freq=step_td)
    T = len(timestamps)
    per_day, per_week = int(round(24 / step_h)), int(round(168 / step_h))
    first = timestamps[0]
    week_phase = int(round((first - first.normalize()) / step_td)) + first.day_of_week * per_day  # steps since Monday

    xy, adjacency, block_half, grid_shape = _layout(kind, grid, num_units, rng)
    N = len(xy)
    extent = max(np.abs(xy).max(), 1.0)
    centrality = np.exp(-1.5 * (np.hypot(xy[:, 0], xy[:, 1]) / extent) ** 2)
    field = _smooth_field(xy, 0.3 * extent, 4, rng)

    # Hierarchy: Voronoi districts around random seed units, boroughs around some of those seeds.
    n_districts = max(2, round(N / 6))
    n_boroughs = max(1, round(np.sqrt(n_districts)))
    seeds = rng.choice(N, n_districts, replace=False)
    district = _nearest(xy, xy[seeds], 1)[1][:, 0]
    borough = _nearest(xy[seeds], xy[seeds[:n_boroughs]], 1)[1][district, 0]
    # The most central 30% of districts (give or take) are business, the next 20% leisure, the rest residential.
    rank = np.argsort(np.argsort(-(centrality[seeds] + 0.3 * rng.normal(size=n_districts)))) / n_districts
    dominant = np.where(rank < 0.3, 1, np.where(rank < 0.5, 2, 0))
    mix = (0.7 * np.eye(3)[dominant] + 0.3 * rng.dirichlet(np.ones(3), n_districts))[district]
    mix *= np.exp(0.25 * field[:, 1:4] + 0.1 * rng.normal(size=(N, 3)))
    mix /= mix.sum(axis=1, keepdims=True)
    level = 20.0 * (0.4 + 1.2 * centrality) * np.exp(
        0.25 * rng.normal(size=n_boroughs)[borough]
        + 0.25 * rng.normal(size=n_districts)[district]
        + 0.4 * field[:, 0]
        + 0.1 * rng.normal(size=N)
    )

    # Expected trips per step: the unit's weekly profile, its district's peaks shifted by up to an hour.
    curves = _week_curves(step_h)[:, :, [CHANNELS.index(ch) for ch in channels]]
    week = np.einsum("pkc,nk->pnc", curves, mix, optimize=True)
    shift = (rng.integers(-1, 2, n_districts) * round(1 / step_h))[district]
    rate = week[(week_phase + np.arange(T)[:, None] - shift[None, :]) % per_week, np.arange(N)]

    daily = np.exp(0.05 * rng.normal(size=T // per_day + 1))[np.arange(T) // per_day]
    drift = _slow_noise(T, n_districts, 6 / step_h, 0.12, rng)  # districts drift by ~12% over hours
    temperature, rain = _weather(timestamps, step_h, xy, extent, centrality, rng)
    event_list, event_factor = _events(events, timestamps, per_day, per_week, step_h, xy, extent, rain, rng)
    weather_factor = np.exp(-0.05 * rain) * np.clip(1 + 0.01 * (temperature - 10), 0.85, 1.15)
    scale = level * step_h * daily[:, None] * np.exp(drift[:, district]) * weather_factor * event_factor
    rate *= scale[:, :, None]
    noise = rng.standard_gamma(DISPERSION, rate.shape, dtype=np.float32) / DISPERSION  # Poisson-gamma = neg. binomial
    values = rng.poisson(rate * noise).astype(np.float32)

    observed = _observed(T, N, missing, xy, block_half, step_h, rng)
    observed = np.repeat(observed[:, :, None], len(channels), axis=2)
    values[~observed] = np.nan

    unit = "trips/hour" if step_h == 1 else f"trips per {step}"
    lat = CENTRE[0] + xy[:, 1] / KM_PER_DEG
    lon = CENTRE[1] + xy[:, 0] / (KM_PER_DEG * np.cos(np.radians(CENTRE[0])))
    if grid_shape is not None:
        unit_names = [f"cell ({r},{c})" for r, c in zip(*np.divmod(np.arange(N), grid_shape[1]))]
    else:
        unit_names = [f"region {i}" for i in range(N)]
    return STData(
        name=name or f"synthetic_{kind}",
        values=values,
        observed_mask=observed,
        timestamps=timestamps,
        attributes=list(channels),
        units=[unit] * len(channels),
        city="Synthetic City",
        unit_names=unit_names,
        grid_shape=grid_shape,
        coords=np.stack([lat, lon], axis=1),
        adjacency=adjacency,
        exogenous=np.stack([temperature, rain], axis=2),
        exogenous_names=["temperature", "rain"],
        protocol={
            "events": event_list,
            "hierarchy": {
                "district": district.tolist(),
                "borough": borough.tolist(),
                "district_kind": [DISTRICT_KINDS[k] for k in dominant],
            },
        },
        notes=(
            f"Generated by urbanst.data.synthetic.make_city({kind!r}, seed={seed}): {N} units in "
            f"{n_districts} districts and {n_boroughs} boroughs (protocol['hierarchy']); negative-binomial "
            "trip counts around weekday-commute and weekend profiles of residential, business and leisure "
            f"districts; {len(event_list)} events listed in protocol['events'] (concerts raise, storms lower "
            "demand); missing values are sensor outages of 6-48 h, blocks of cells for 1-3 steps and isolated "
            "gaps; exogenous temperature [degC] and rain [mm/h] lower demand slightly."
        ),
    )


def _check(kind, grid, num_units, weeks, step_h, channels, missing) -> None:
    if kind not in ("grid", "region"):
        raise UrbanstError(f"synthetic city: kind must be 'grid' or 'region', got {kind!r}")
    if kind == "grid" and (len(grid) != 2 or min(grid) < 1 or grid[0] * grid[1] < 2):
        raise UrbanstError(f"synthetic city: grid must be (H, W) with at least 2 cells, got {grid}")
    if kind == "region" and num_units < 2:
        raise UrbanstError(f"synthetic city: num_units must be at least 2, got {num_units}")
    if int(weeks) != weeks or weeks < 1:
        raise UrbanstError(f"synthetic city: weeks must be a whole number >= 1, got {weeks}")
    if step_h <= 0 or abs(24 / step_h - round(24 / step_h)) > 1e-9:
        raise UrbanstError(f"synthetic city: the step must divide a day evenly, got {step_h} h")
    if not channels or any(ch not in CHANNELS for ch in channels):
        raise UrbanstError(f"synthetic city: channels must be taken from {CHANNELS}, got {channels}")
    if not 0 <= missing < 0.9:
        raise UrbanstError(f"synthetic city: missing must be a share in [0, 0.9), got {missing}")


def _layout(kind, grid, num_units, rng):
    """Unit positions in km east/north of the centre, adjacency, half-width of a missing block, grid shape."""
    if kind == "grid":
        H, W = grid
        row, col = np.divmod(np.arange(H * W), W)
        xy = np.stack([col - (W - 1) / 2, (H - 1) / 2 - row], axis=1).astype(float)
        cell = np.arange(H * W).reshape(H, W)
        a = np.concatenate([cell[:, :-1].ravel(), cell[:-1].ravel()])
        b = np.concatenate([cell[:, 1:].ravel(), cell[1:].ravel()])
        adjacency = np.zeros((H * W, H * W), dtype=np.float32)
        adjacency[a, b] = adjacency[b, a] = 1.0
        return xy, adjacency, 1.01, (H, W)  # blocks of 3x3 cells
    N = num_units
    radius = 1.2 * np.sqrt(N / np.pi)
    r, theta = radius * rng.random(N) ** 0.75, 2 * np.pi * rng.random(N)  # denser towards the centre
    xy = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    k = min(6, N - 1)
    dist, nbr = _nearest(xy, xy, k + 1)
    dist, nbr = dist[:, 1:], nbr[:, 1:]
    adjacency = np.zeros((N, N), dtype=np.float32)
    rows, cols, weight = np.repeat(np.arange(N), k), nbr.ravel(), np.exp(-((dist / dist.mean()) ** 2)).ravel()
    adjacency[rows, cols] = adjacency[cols, rows] = weight  # i and j are linked if either is a k-NN of the other
    return xy, adjacency, 2 * float(dist[:, 0].mean()), None


def _kdtree(points):
    from scipy.spatial import cKDTree  # slow to import, and only building a city needs it

    return cKDTree(points)


def _nearest(points, targets, k):
    """Distances and indices [len(points), k] of the k nearest targets of each point, nearest first."""
    dist, index = _kdtree(targets).query(points, k)
    return dist.reshape(len(points), k), index.reshape(len(points), k)


def _slow_noise(T, n, every, sd, rng):
    """[T, n] Gaussian noise of about ``sd``, linearly interpolated between knots ``every`` steps apart."""
    position = np.arange(T) / max(every, 1.0)
    knots = sd * rng.normal(size=(int(position[-1]) + 2, n))
    left, weight = position.astype(int), (position % 1)[:, None]
    return (1 - weight) * knots[left] + weight * knots[left + 1]


def _smooth_field(xy, length, n, rng, features=64):
    """``n`` smooth random fields over the units [N, n], unit variance, correlation length ``length`` km."""
    freq = rng.normal(0.0, 1.0 / length, (n, features, 2))
    phase = rng.uniform(0, 2 * np.pi, (n, features))
    return np.sqrt(2 / features) * np.cos(np.einsum("ud,nfd->unf", xy, freq, optimize=True) + phase).sum(axis=2)


def _bumps(hour, profile):
    base, *bumps = profile
    out = np.full_like(hour, base)
    for centre, width, height in bumps:
        out += height * np.exp(-0.5 * ((((hour - centre) + 12) % 24 - 12) / width) ** 2)
    return out


def _week_curves(step_h):
    """Profiles over one week from Monday 00:00 [steps per week, district kinds, channels]."""
    hours = (np.arange(int(round(168 / step_h))) + 0.5) * step_h
    day = hours // 24
    curves = np.empty((len(hours), len(DISTRICT_KINDS), len(CHANNELS)))
    for k, kind in enumerate(DISTRICT_KINDS):
        for c in range(len(CHANNELS)):
            weekday, weekend = _bumps(hours % 24, _PROFILES[kind][c]), _bumps(hours % 24, _PROFILES[kind][2 + c])
            curves[:, k, c] = np.where(day >= 5, weekend, weekday)
    return curves * np.where(day == 6, 0.85, 1.0)[:, None, None]  # quieter Sundays


def _weather(timestamps, step_h, xy, extent, centrality, rng):
    """Temperature [degC] with seasonal, synoptic and daily cycles plus a heat island; rain showers [mm/h]."""
    T, N = len(timestamps), len(xy)
    hours = np.asarray((timestamps - timestamps[0]) / pd.Timedelta(hours=1))
    hour_of_day = np.asarray(timestamps.hour + timestamps.minute / 60)
    periods = rng.uniform(2, 10, 4) * 24
    synoptic = (1.5 * np.sin(2 * np.pi * hours[:, None] / periods + rng.uniform(0, 2 * np.pi, 4))).sum(axis=1)
    seasonal = 12 - 10 * np.cos(2 * np.pi * (np.asarray(timestamps.day_of_year) - 20) / 365.25)
    city = seasonal + synoptic + 4 * np.cos(2 * np.pi * (hour_of_day - 15) / 24)
    temperature = city[:, None] + 1.5 * centrality + 0.3 * rng.normal(size=(T, N))

    n_showers = rng.poisson(3 * hours[-1] / 168) + 1
    start = rng.integers(0, T, n_showers)
    length = np.maximum(1, rng.uniform(2, 10, n_showers) / step_h).astype(int)
    t = np.arange(T)[:, None]
    intensity = ((t >= start) & (t < start + length)) * rng.gamma(2.0, 0.8, n_showers)
    centres = xy[rng.integers(0, N, n_showers)]
    radius = extent * rng.uniform(0.5, 1.5, n_showers)
    footprint = np.exp(-(np.linalg.norm(xy[None] - centres[:, None], axis=2) / radius[:, None]) ** 2)
    return temperature, intensity @ footprint


def _events(events, timestamps, per_day, per_week, step_h, xy, extent, rain, rng):
    """Concerts and storms as a list of plain dicts and a [T, N] demand factor; storms also add rain."""
    T, N = rain.shape
    n_days = T // per_day
    count = (max(1, round(n_days / 10)) if events is True else int(events)) if n_days >= 2 else 0
    factor = np.ones((T, N))
    first_day = 7 if T >= per_week + per_day else 1  # leave a week before each event to compare with
    found = []
    for _ in range(count):
        concert = rng.random() < 0.6
        day = int(rng.integers(first_day, n_days))
        d = np.linalg.norm(xy - xy[rng.integers(N)], axis=1)
        if concert:  # the venue and its four nearest units
            units = np.sort(np.argsort(d, kind="stable")[:5])
            hour, hours, f = rng.uniform(18, 21), rng.uniform(3, 5), rng.uniform(2.0, 3.5)
        else:
            units = np.flatnonzero(d <= 0.5 * extent)
            hour, hours, f = rng.uniform(0, 24), rng.uniform(4, 10), rng.uniform(0.45, 0.7)
        start = min(day * per_day + int(hour / step_h), T - 1)
        length = min(max(1, round(hours / step_h)), T - start)
        factor[start : start + length, units] *= f
        if not concert:
            rain[start : start + length] += rng.uniform(5, 12) * np.exp(-((d / (0.5 * extent)) ** 2))
        found.append(
            {
                "kind": "concert" if concert else "storm",
                "start": int(start),
                "length": int(length),
                "time": str(timestamps[start]),
                "units": units.tolist(),
                "factor": round(float(f), 3),
            }
        )
    found.sort(key=lambda e: e["start"])
    return found, factor


def _observed(T, N, share, xy, half, step_h, rng):
    """[T, N] bool: False on sensor outages, blocks of cells and isolated gaps, about ``share`` in all."""
    if share <= 0:
        return np.ones((T, N), dtype=bool)
    down = np.zeros((T + 1, N), dtype=np.int32)  # +1 where a gap starts, -1 where it ends
    n_out = rng.poisson(0.5 * share * T * N / (27 / step_h))
    unit = rng.integers(0, N, n_out)
    t0 = rng.integers(0, T, n_out)
    t1 = np.minimum(t0 + np.maximum(1, rng.uniform(6, 48, n_out) / step_h).astype(int), T)
    n_blk = rng.poisson(0.15 * share * T * N / 18)
    centres = xy[rng.integers(0, N, n_blk)]
    members = _kdtree(xy).query_ball_point(centres, half, p=np.inf)  # units in a square around each centre
    block = np.repeat(np.arange(n_blk), [len(m) for m in members])
    member = np.concatenate([np.asarray(m, dtype=int) for m in members] + [np.zeros(0, dtype=int)])
    b0 = rng.integers(0, T, n_blk)
    b1 = np.minimum(b0 + rng.integers(1, 4, n_blk), T)
    np.add.at(down, (np.concatenate([t0, b0[block]]), np.concatenate([unit, member])), 1)
    np.add.at(down, (np.concatenate([t1, b1[block]]), np.concatenate([unit, member])), -1)
    patched = np.cumsum(down[:T], axis=0) > 0
    covered = patched.mean()
    isolated = rng.random((T, N)) < max(0.0, (share - covered) / (1 - covered))
    return ~(patched | isolated)
