"""The built-in readers of the real datasets: shapes, missing data and the quirks each source is known for."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pandas as pd
import pytest
from einops import rearrange

from urbanst.data.registry import builtin_datasets, load_dataset
from urbanst.data.safe_pickle import load_pickle

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def load(data_root):
    return lambda name: load_dataset(name, data_root)


def _at(data, when: str) -> int:
    return data.timestamps.get_loc(pd.Timestamp(when))


def test_nyc_taxi_grid_joins_years_sums_duplicates_and_masks_september(load, data_root):
    d = load("nyc_taxi_grid")
    assert d.shape == (43824, 128, 2) and d.grid_shape == (16, 8)
    assert (d.timestamps[0], d.timestamps[-1]) == (pd.Timestamp("2010-01-01 00:00"), pd.Timestamp("2014-12-31 23:00"))
    # 5 Septembers (720 h each) + the four all-zero spring-forward hours 2011..2014, every unit and channel.
    assert d.missing_fraction == pytest.approx(3604 / 43824, abs=1e-9)
    assert d.attributes == ["new_flow", "end_flow"]

    with h5py.File(data_root / "nyc_taxi_grid_16x8_streed" / "NYC10_Taxi_M16x8_T60_InOut.h5", "r") as f:
        raw, dates = f["data"][()], f["date"][()].astype(str)
    rows = np.flatnonzero(dates == "2010040100")
    assert len(rows) == 2  # a known duplicated slot: two partial rows
    expected = rearrange(raw[rows].sum(axis=0), "c h w -> (h w) c")
    np.testing.assert_array_equal(d.values[_at(d, "2010-04-01 00:00")], expected)
    single = np.flatnonzero(dates == "2010050112")
    np.testing.assert_array_equal(d.values[_at(d, "2010-05-01 12:00")], rearrange(raw[single[0]], "c h w -> (h w) c"))

    september = d.timestamps.month == 9
    assert september.sum() == 5 * 720 and not d.observed_mask[september].any()
    assert d.observed_mask[_at(d, "2012-08-31 23:00")].all() and d.observed_mask[_at(d, "2012-10-01 00:00")].all()
    assert not d.observed_mask[_at(d, "2011-03-13 02:00")].any()  # spring-forward hour, all zero in the file
    assert d.observed_mask[_at(d, "2010-03-14 02:00")].all()  # the 2010 one has a partial count: kept


def test_nyc_bike_grid_rebuilds_a_contiguous_series_from_windows(load, data_root):
    d = load("nyc_bike_grid")
    assert d.shape == (1369, 128, 2) and d.grid_shape == (16, 8)
    assert d.missing_fraction == 0.0
    assert (d.timestamps[0], d.timestamps[-1]) == (pd.Timestamp("2014-08-04 23:00"), pd.Timestamp("2014-09-30 23:00"))
    val, test = (np.load(data_root / "nyc_bike1_stssl" / f"{s}.npz") for s in ("val", "test"))
    vy, tx, ty = val["y"][:, 0], test["x"], test["y"][:, 0]
    np.testing.assert_array_equal(d.values[0], val["x"][0, 0])  # offset -73 of the first val window
    np.testing.assert_array_equal(d.values[74:505], vy)
    np.testing.assert_array_equal(d.values[505:], ty)
    np.testing.assert_array_equal(tx[0, -1], vy[-1])  # val and test join up: no gap
    assert d.protocol == {"val_start": 74, "test_start": 505, "eval_only": True}
    assert "no training split" in d.notes.lower()
    degrees = d.adjacency.sum(axis=1)
    assert d.adjacency.shape == (128, 128) and sorted(set(degrees.tolist())) == [3.0, 5.0, 8.0]


def test_chi_crime_layout(load, data_root):
    d = load("chi_crime")
    assert d.shape == (731, 168, 4) and d.grid_shape == (14, 12) and d.missing_fraction == 0.0
    assert (d.timestamps[0], d.timestamps[-1]) == (pd.Timestamp("2016-01-01"), pd.Timestamp("2017-12-31"))
    tst = load_pickle(data_root / "chi_crime_stshn" / "tst.pkl")  # (row, col, day, category)
    row, col, day, cat = np.argwhere(tst == tst.max())[0]
    assert d.values[639 + day, row * 12 + col, cat] == tst.max()
    np.testing.assert_array_equal(d.values[639:], rearrange(tst, "h w t c -> t (h w) c"))
    assert d.protocol == {"split_index": [609, 639]}
    assert "not verified" in d.notes.lower()
    assert d.values.sum(axis=(0, 1)).tolist() == [124630.0, 99389.0, 37972.0, 59885.0]


def test_nyc_crime_matches_the_released_val_and_test(load, data_root):
    d = load("nyc_crime")
    assert d.shape == (730, 256, 4) and d.grid_shape == (16, 16) and d.missing_fraction == 0.0
    assert (d.timestamps[0], d.timestamps[-1]) == (pd.Timestamp("2014-01-01"), pd.Timestamp("2015-12-31"))
    assert d.attributes == ["BURGLARY", "GRAND LARCENY", "ROBBERY", "FELONY ASSAULT"]
    assert d.protocol == {"split_index": [608, 638]}
    released = np.concatenate([load_pickle(data_root / "nyc_crime_stshn" / f"{s}.pkl") for s in ("val", "tst")], axis=2)
    np.testing.assert_array_equal(d.values[608:], rearrange(released, "h w t c -> t (h w) c"))
    assert int(d.values.sum()) == 191_580
    assert 40.50 < d.coords[:, 0].min() < d.coords[:, 0].max() < 41.0  # cell centres, lat first


def test_la_loop(load):
    d = load("la_loop")
    assert d.shape == (2016, 207, 1) and d.step == pd.Timedelta("5min")
    assert (d.timestamps[0], d.timestamps[-1]) == (pd.Timestamp("2012-03-01 00:00"), pd.Timestamp("2012-03-07 23:55"))
    assert d.missing_fraction == 0.0  # the T-GCN file has its gaps already filled: no zeros
    assert d.unit_names[0] == "773869" and d.coords[0].tolist() == [34.15497, -118.31829]
    assert d.adjacency.shape == (207, 207) and np.all(np.diag(d.adjacency) == 1) and d.adjacency.max() == 1.0


def test_la_loop_masks_zero_speeds(data_root, tmp_path):
    source = data_root / "los_loop_tgcn"
    for name in ("graph_sensor_locations.csv", "metr_la_adj_mx.pkl"):
        (tmp_path / name).symlink_to(source / name)
    speed = pd.read_csv(source / "los_speed.csv")
    speed.iloc[10, 3] = 0.0
    speed.to_csv(tmp_path / "los_speed.csv", index=False)
    d = builtin_datasets()["la_loop"].reader(tmp_path)
    assert not d.observed_mask[10, 3, 0] and np.isnan(d.values[10, 3, 0])
    assert d.observed_mask.sum() == d.values.size - 1


def test_beijing_air_channels_and_wind(load, data_root):
    d = load("beijing_air")
    assert d.shape == (35064, 12, 6)
    assert (d.timestamps[0], d.timestamps[-1]) == (pd.Timestamp("2013-03-01 00:00"), pd.Timestamp("2017-02-28 23:00"))
    assert d.missing_fraction == pytest.approx(0.0278471, abs=1e-6)
    assert d.attributes == ["PM2.5", "PM10", "SO2", "NO2", "CO", "O3"]
    assert d.unit_names == sorted(d.unit_names) and len(d.unit_names) == 12
    assert d.exogenous_names == ["TEMP", "PRES", "DEWP", "RAIN", "wind_speed", "wind_direction"]
    dongsi, wd = d.unit_names.index("Dongsi"), d.exogenous_names.index("wind_direction")
    # Compass points read from the Dongsi file at these hours; degrees the wind blows FROM.
    for when, degrees in [("2013-03-01 03:00", 0.0), ("2013-03-02 00:00", 90.0), ("2013-03-02 13:00", 180.0),
                          ("2013-03-01 12:00", 270.0), ("2013-03-02 05:00", 22.5), ("2013-03-02 11:00", 225.0),
                          ("2013-03-03 12:00", 292.5)]:
        assert d.exogenous[_at(d, when), dongsi, wd] == degrees, when
    assert np.isnan(d.exogenous[_at(d, "2015-01-27 20:00"), dongsi, wd])
    assert np.nanmax(d.exogenous[..., wd]) == 337.5
    raw = pd.read_csv(data_root / "beijing_prsa_airquality" / "PRSA_Data_Dongsi_20130301-20170228.csv.gz")
    np.testing.assert_allclose(d.values[:, dongsi, 0], raw["PM2.5"].to_numpy(dtype=np.float32), equal_nan=True)
    assert d.coords[d.unit_names.index("Gucheng")].tolist() == [39.914, 116.184]


def test_aqi36_eval_mask_and_protocol(load):
    d = load("aqi36")
    assert d.shape == (8759, 36, 1)
    assert (d.timestamps[0], d.timestamps[-1]) == (pd.Timestamp("2014-05-01 01:00"), pd.Timestamp("2015-04-30 23:00"))
    assert d.missing_fraction == pytest.approx(0.1324701, abs=1e-6)
    assert d.eval_mask.sum() == 35_737 and not (d.eval_mask & ~d.observed_mask).any()
    assert d.eval_mask.mean() == pytest.approx(0.1133, abs=1e-4)
    test_hours = np.isin(d.timestamps.month, d.protocol["test_months"])
    assert d.protocol == {"test_months": [3, 6, 9, 12]} and test_hours.sum() == 2928
    assert d.eval_mask[test_hours].sum() == 20_434
    assert d.unit_names[0] == "001001" and d.coords[0].tolist() == [40.090679, 116.173553]


def test_montevideo_bus(load):
    d = load("montevideo_bus")
    assert d.shape == (744, 675, 1) and d.missing_fraction == 0.0
    assert (d.timestamps[0], d.timestamps[-1]) == (pd.Timestamp("2020-10-01 00:00"), pd.Timestamp("2020-10-31 23:00"))
    assert (d.values == 0).mean() == pytest.approx(0.80413, abs=1e-5)
    assert d.adjacency.sum() == 690 and not (d.adjacency * d.adjacency.T).any()  # directed, no reciprocal links
    first = d.unit_names.index("5289")
    assert d.adjacency[first, d.unit_names.index("5290")] == 1.0  # link 5289 -> 5290, source row
    assert d.coord_system == "metres" and d.coords[first].tolist() == [6151987.0, 589196.0]  # (northing, easting)


def test_alboran_sst_sea_units_and_inserted_day(load):
    d = load("alboran_sst")
    assert d.shape == (11, 22_186, 1) and d.grid_shape == (201, 301)
    assert list(d.timestamps.strftime("%m-%d")) == [f"05-{day}" for day in range(14, 25)]
    inserted = _at(d, "2017-05-22")
    assert inserted == 8 and not d.observed_mask[inserted].any()
    assert d.observed_mask.sum() == 121_224
    assert d.missing_fraction == pytest.approx((100_636 + 22_186) / (11 * 22_186), abs=1e-9)
    unit = int(np.flatnonzero(d.grid_cells == 100 * 301 + 150)[0])  # sea pixel at row 100, col 150
    assert d.values[0, unit, 0] == pytest.approx(18.249994, abs=1e-5)
    np.testing.assert_allclose(d.coords[unit], [36.01, -2.99], atol=1e-4)
    assert np.nanmin(d.values) > 14.0 and np.nanmax(d.values) < 21.2  # no 99999 fill left


def test_every_reader_fills_the_container(load):
    for name in ["nyc_taxi_grid", "nyc_bike_grid", "chi_crime", "nyc_crime", "la_loop", "beijing_air", "aqi36",
                 "montevideo_bus", "alboran_sst"]:
        d = load(name)
        assert d.name == name and d.city and len(d.notes) > 100 and all(d.units), name
        assert d.grid_shape is not None or d.coords is not None, name
