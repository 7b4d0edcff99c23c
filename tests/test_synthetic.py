"""The synthetic city: shapes, determinism, and each structure a model should be able to learn."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from urbanst.data.registry import builtin_datasets, load_dataset
from urbanst.data.synthetic import CENTRE, make_city
from urbanst.errors import UrbanstError

WEEK = 168


@pytest.fixture(scope="module")
def grid_city():
    return make_city("grid")


@pytest.fixture(scope="module")
def region_city():
    return make_city("region")


@pytest.fixture(scope="module", params=["grid", "region"])
def city(request, grid_city, region_city):
    return grid_city if request.param == "grid" else region_city


def _lag_corr(x, y, lag):
    """Per-unit correlation of x[t] with y[t + lag] over the steps where both are observed ([T, N] inputs)."""
    a, b = (x[: len(x) - lag], y[lag:]) if lag >= 0 else (x[-lag:], y[: len(y) + lag])
    both = np.isfinite(a) & np.isfinite(b)
    a, b = np.where(both, a, 0.0), np.where(both, b, 0.0)
    n = both.sum(axis=0)
    cov = (a * b).sum(axis=0) / n - a.sum(axis=0) * b.sum(axis=0) / n**2
    var_a = (a * a).sum(axis=0) / n - (a.sum(axis=0) / n) ** 2
    var_b = (b * b).sum(axis=0) / n - (b.sum(axis=0) / n) ** 2
    return cov / np.sqrt(var_a * var_b)


def _event_mask(data):
    inside = np.zeros(data.shape[:2], dtype=bool)
    for e in data.protocol["events"]:
        inside[e["start"] : e["start"] + e["length"], e["units"]] = True
    return inside


def test_grid_shapes_and_metadata(grid_city):
    d = grid_city
    assert d.shape == (8 * WEEK, 64, 2)
    assert d.grid_shape == (8, 8) and d.attributes == ["inflow", "outflow"]
    assert d.timestamps[0] == pd.Timestamp("2024-01-01") and d.timestamps[0].day_of_week == 0
    assert d.step == pd.Timedelta(hours=1) and d.steps_per("week") == WEEK
    lat, lon = d.coords.reshape(8, 8, 2).transpose(2, 0, 1)
    assert (np.diff(lat, axis=0) < 0).all() and (np.diff(lon, axis=1) > 0).all()  # row 0 is north, column 0 west
    assert np.allclose(lat.mean(), CENTRE[0]) and np.allclose(lon.mean(), CENTRE[1])
    degree = (d.adjacency > 0).sum(axis=1).reshape(8, 8)
    assert degree[0, 0] == 2 and degree[0, 3] == 3 and degree[3, 3] == 4
    assert d.exogenous.shape == (8 * WEEK, 64, 2) and d.exogenous_names == ["temperature", "rain"]
    hierarchy = d.protocol["hierarchy"]
    assert len(hierarchy["district"]) == len(hierarchy["borough"]) == 64
    assert len(hierarchy["district_kind"]) == max(hierarchy["district"]) + 1


def test_region_shapes_and_metadata(region_city):
    d = region_city
    assert d.shape == (8 * WEEK, 40, 2) and d.grid_shape is None
    assert np.abs(d.coords - np.array(CENTRE)).max() < 0.2
    assert np.array_equal(d.adjacency, d.adjacency.T) and (np.diag(d.adjacency) == 0).all()
    assert ((d.adjacency > 0).sum(axis=1) >= 6).all()  # k = 6 nearest neighbours, symmetrised
    assert d.adjacency.max() <= 1 and len(set(d.unit_names)) == 40


def test_registered_cities(grid_city):
    specs = builtin_datasets()
    assert specs["synthetic_grid"].folder is None and specs["synthetic_region"].folder is None
    loaded = load_dataset("synthetic_grid")
    assert loaded.name == "synthetic_grid"
    assert np.array_equal(loaded.values, grid_city.values, equal_nan=True)
    assert load_dataset("synthetic_region").shape == (8 * WEEK, 40, 2)


def test_deterministic_by_seed():
    a, b = make_city("region", num_units=20, weeks=2, seed=1), make_city("region", num_units=20, weeks=2, seed=1)
    assert np.array_equal(a.values, b.values, equal_nan=True) and np.array_equal(a.observed_mask, b.observed_mask)
    assert np.array_equal(a.exogenous, b.exogenous) and a.protocol == b.protocol
    c = make_city("region", num_units=20, weeks=2, seed=2)
    assert not np.array_equal(a.values, c.values, equal_nan=True)
    assert not np.allclose(a.coords, c.coords)


def test_counts_are_non_negative_integers_and_nan_where_missing(city):
    observed = city.values[city.observed_mask]
    assert (observed >= 0).all() and np.array_equal(observed, np.round(observed))
    assert np.isnan(city.values[~city.observed_mask]).all()
    assert observed.mean() > 2  # busy enough that counts carry signal, not only zeros


def test_daily_cycle(city):
    inflow = city.values[..., 0].astype(np.float64)
    assert (_lag_corr(inflow, inflow, 24) > _lag_corr(inflow, inflow, 12) + 0.15).all()


def test_weekday_differs_from_weekend(city):
    total = np.nanmean(city.values, axis=(1, 2))
    day, hour = np.asarray(city.timestamps.day_of_week), np.asarray(city.timestamps.hour)
    weekday = np.array([total[(day < 5) & (hour == h)].mean() for h in range(24)])
    weekend = np.array([total[(day >= 5) & (hour == h)].mean() for h in range(24)])
    assert weekday[6:10].mean() > 1.3 * weekend[6:10].mean()  # morning commute
    assert np.corrcoef(weekday, weekend)[0, 1] < 0.9  # a different shape, not just a scaled copy


def test_units_of_a_district_move_together(city):
    corr = pd.DataFrame(city.values.sum(axis=2)).corr().to_numpy()
    district = np.array(city.protocol["hierarchy"]["district"])
    same = district[:, None] == district[None, :]
    np.fill_diagonal(same, False)
    different = district[:, None] != district[None, :]
    assert corr[same].mean() > corr[different].mean() + 0.1


def test_neighbours_have_similar_levels(city):
    level = np.log(np.nanmean(city.values, axis=(0, 2)))
    gap = np.abs(level[:, None] - level[None, :])
    linked = city.adjacency > 0
    apart = ~linked & ~np.eye(city.num_units, dtype=bool)
    assert gap[linked].mean() < 0.9 * gap[apart].mean()


def test_outflow_follows_inflow_at_a_lag(city):
    inflow, outflow = city.values.astype(np.float64).transpose(2, 0, 1)
    corr = np.stack([_lag_corr(inflow, outflow, lag) for lag in range(-12, 13)])  # [lags, N]
    best_lag = corr.argmax(axis=0) - 12
    assert np.mean(best_lag != 0) > 0.8
    assert corr.max(axis=0).mean() > 0.3 and corr.max(axis=0).mean() > corr[12].mean() + 0.15


def test_missing_share_and_patches(grid_city, region_city):
    for d in (grid_city, region_city):
        assert abs(d.missing_fraction - 0.05) < 0.01
        down = ~d.observed_mask[..., 0]
        assert (~d.observed_mask == down[..., None]).all()  # a unit's channels go missing together
        run = np.zeros(d.num_units, dtype=int)
        longest = 0
        for t in range(d.num_steps):  # longest run of consecutive missing steps of any unit
            run = np.where(down[t], run + 1, 0)
            longest = max(longest, run.max())
        assert longest >= 6
    down = (~grid_city.observed_mask[..., 0]).reshape(-1, 8, 8)
    square = down[:, :-1, :-1] & down[:, 1:, :-1] & down[:, :-1, 1:] & down[:, 1:, 1:]
    assert square.any()  # a block of cells missing at one step
    assert make_city("grid", weeks=1, missing=0.0).observed_mask.all()
    assert abs(make_city("grid", weeks=2, missing=0.3).missing_fraction - 0.3) < 0.02


def test_events_are_listed_and_visible(city):
    events = city.protocol["events"]
    assert 3 <= len(events) <= 10
    for e in events:
        start, length, units = e["start"], e["length"], e["units"]
        assert {"kind", "start", "length", "units", "factor", "time"} <= set(e)
        assert start >= WEEK and units and pd.Timestamp(e["time"]) == city.timestamps[start]
        now = np.nanmean(city.values[start : start + length, units])
        # The same hours of the other weeks (the week before included) set the usual level.
        weeks = [k for k in range(-(start // WEEK), (city.num_steps - start - length) // WEEK + 1) if k != 0]
        usual = np.nanmean([city.values[start + k * WEEK : start + k * WEEK + length, units] for k in weeks])
        if e["kind"] == "concert":
            assert e["factor"] > 1 and now > 1.3 * usual
        else:
            assert e["factor"] < 1 and now < 0.85 * usual
            assert city.exogenous[start : start + length, units, 1].mean() > 2  # storms bring rain
    assert make_city("grid", weeks=2, events=False).protocol["events"] == []
    assert len(make_city("grid", weeks=2, events=3).protocol["events"]) == 3


def test_weather_series_and_their_effect(city):
    temperature, rain = city.exogenous[..., 0], city.exogenous[..., 1]
    hour = np.asarray(city.timestamps.hour)
    by_hour = np.array([temperature[hour == h].mean() for h in range(24)])
    assert 12 <= by_hour.argmax() <= 17 and by_hour.argmin() <= 7
    assert (rain >= 0).all() and (rain > 0.5).mean() > 0.01
    # Demand relative to the same hour of the week in other weeks is lower when it rains.
    flow = np.where(_event_mask(city), np.nan, city.values.mean(axis=2))  # channels go missing together
    slot = np.arange(city.num_steps) % WEEK
    typical = np.stack([np.nanmean(flow[slot == s], axis=0) for s in range(WEEK)])[slot]
    seen = np.isfinite(flow) & np.isfinite(typical)

    def relative(hours):
        return flow[hours & seen].sum() / typical[hours & seen].sum()

    assert relative(rain > 2) < relative(rain < 0.1) - 0.03


def test_other_steps_and_channels():
    d = make_city("region", num_units=10, weeks=1, step="30min", channels=("outflow",))
    assert d.shape == (7 * 48, 10, 1) and d.attributes == ["outflow"] and d.steps_per("day") == 48
    assert d.units == ["trips per 30min"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "hexagon"},
        {"kind": "grid", "grid": (1, 1)},
        {"kind": "region", "num_units": 1},
        {"weeks": 0},
        {"step": "7h"},
        {"channels": ("pm25",)},
        {"missing": 1.0},
    ],
)
def test_bad_options_raise(kwargs):
    with pytest.raises(UrbanstError):
        make_city(**kwargs)


def test_large_city_builds_fast():
    began = time.perf_counter()
    d = make_city("region", num_units=4096, weeks=2)
    assert time.perf_counter() - began < 5.0
    assert d.shape == (2 * WEEK, 4096, 2) and abs(d.missing_fraction - 0.05) < 0.01
