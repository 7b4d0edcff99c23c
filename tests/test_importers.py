"""Importing a user's own CSV / NPZ / NetCDF file as a named dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from urbanst.data.importers import import_file, read_import_meta, read_imported, store
from urbanst.data.registry import load_dataset
from urbanst.errors import UrbanstError


def _leftovers(root: Path) -> list[str]:
    imported = root / "imported"
    return sorted(str(p.relative_to(root)) for p in imported.rglob("*")) if imported.exists() else []


# ----------------------------------------------------------------------------------------
# CSV
# ----------------------------------------------------------------------------------------
CSV_TEXT = """timestamp,unit,attribute,value,lat,lon
2020-01-01 02:00,B,pm25,3.25,40.1,116.2
2020-01-01 00:00,A,pm25,1.5,40.0,116.0
2020-01-01 00:00,B,pm25,,40.1,116.2
2020-01-01 01:00,A,pm25,inf,40.0,116.0
2020-01-01 00:00,A,no2,7,40.0,116.0
2020-01-01 03:00,A,no2,nan,40.0,116.0
2020-01-01 03:00,B,no2,-2.5,40.1,116.2
2020-01-01 03:00,B,pm25,-inf,40.1,116.2
"""


def test_csv_round_trip(tmp_path):
    src = tmp_path / "air.csv"
    src.write_text(CSV_TEXT)
    root = tmp_path / "data"
    folder = import_file(src, "air", root, city="Beijing", unit={"pm25": "ug/m3", "no2": "ppb"})
    assert folder == root / "imported" / "air"
    assert sorted(p.name for p in folder.iterdir()) == ["data.npz", "meta.json"]

    data = load_dataset("air", root)
    assert data.shape == (4, 2, 2)  # 4 hourly steps (inferred), units A, B, attributes no2, pm25 (sorted)
    assert list(data.timestamps) == list(pd.date_range("2020-01-01", periods=4, freq="h"))
    assert data.unit_names == ["A", "B"] and data.attributes == ["no2", "pm25"]
    assert data.units == ["ppb", "ug/m3"] and data.city == "Beijing"
    np.testing.assert_array_equal(data.coords, [[40.0, 116.0], [40.1, 116.2]])
    expected = np.full((4, 2, 2), np.nan, dtype=np.float32)
    expected[0, 0, 0] = 7  # (t0, A, no2)
    expected[0, 0, 1] = 1.5  # (t0, A, pm25)
    expected[2, 1, 1] = 3.25  # (t2, B, pm25)
    expected[3, 1, 0] = -2.5  # (t3, B, no2)
    np.testing.assert_array_equal(data.values, expected)  # NaN in the same places
    np.testing.assert_array_equal(data.observed_mask, np.isfinite(expected))

    meta = read_import_meta(folder)
    # rows: 8; NaN: the empty cell and 'nan'; inf: 'inf' and '-inf'; absent: 16 cells - 8 rows
    assert meta["counts"]["nan_values"] == 2 and meta["counts"]["inf_values"] == 2
    assert meta["counts"]["absent_values"] == 8 and meta["counts"]["observed_values"] == 4
    assert meta["step"] == "1h" and meta["source"]["format"] == "csv"
    assert "NaN/inf in the source became masked: 4 values" in data.notes
    assert "NaN/inf in the source became masked: 4 values" in data.summary()["notes"]


def test_csv_given_step_inserts_empty_steps_and_numeric_units(tmp_path):
    src = tmp_path / "flow.csv"
    src.write_text(
        "Timestamp , Unit,ATTRIBUTE,value,extra\n"
        "2021-03-01T00:00,10,inflow,1,x\n"
        "2021-03-01T00:30,2,inflow,2,y\n"
        "2021-03-01T02:00,10,inflow,3,z\n"
    )
    import_file(src, "flow", tmp_path, step="30min")
    data = load_dataset("flow", tmp_path)
    assert data.shape == (5, 2, 1) and data.step == pd.Timedelta("30min")
    assert data.unit_names == ["2", "10"]  # numeric ids sort numerically
    assert data.observed_mask.sum() == 3
    assert data.values[4, 1, 0] == 3 and data.values[1, 0, 0] == 2


def test_csv_timestamp_between_steps_refused(tmp_path):
    src = tmp_path / "odd.csv"
    src.write_text(
        "timestamp,unit,attribute,value\n"
        "2020-01-01 00:00,a,x,1\n2020-01-01 01:00,a,x,1\n2020-01-01 02:00,a,x,1\n2020-01-01 02:20,a,x,1\n"
    )
    with pytest.raises(UrbanstError, match=r"fall between steps of 1h.*2020-01-01 02:20:00") as err:
        import_file(src, "odd", tmp_path)
    assert "step=" in str(err.value)
    with pytest.raises(UrbanstError, match="between steps of 30min"):
        import_file(src, "odd", tmp_path, step="30min")
    assert _leftovers(tmp_path) == []


def test_csv_duplicates_refused_naming_them(tmp_path):
    src = tmp_path / "dup.csv"
    src.write_text(
        "timestamp,unit,attribute,value\n"
        "2020-01-01 00:00,a,x,1\n"
        "2020-01-01 01:00,a,x,2\n"
        "2020-01-01 00:00,a,x,3\n"
        "2020-01-01 01:00,b,x,4\n"
    )
    with pytest.raises(UrbanstError, match=r"\(2020-01-01 00:00:00, a, x\) on lines \[2, 4\]"):
        import_file(src, "dup", tmp_path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("timestamp,unit,attribute,value\n2020-01-01,a,x,1\n2020-01-02,a,x,oops\n", r"not numbers.*line 3: 'oops'"),
        ("time,station,value\n2020-01-01,a,1\n", r"missing column\(s\) \['timestamp', 'unit', 'attribute'\]"),
        ("timestamp,unit,attribute,value\nyesterday,a,x,1\n2020-01-02,a,x,1\n", "cannot read the 'timestamp'"),
        ("", "empty"),
    ],
)
def test_csv_bad_content_refused(tmp_path, text, message):
    src = tmp_path / "bad.csv"
    src.write_text(text)
    with pytest.raises(UrbanstError, match=message):
        import_file(src, "bad", tmp_path)
    assert _leftovers(tmp_path) == []


def test_csv_attribute_filter_and_inconsistent_coords(tmp_path):
    src = tmp_path / "air.csv"
    src.write_text(CSV_TEXT)
    import_file(src, "pm", tmp_path, attribute="pm25", unit="ug/m3")
    data = load_dataset("pm", tmp_path)
    assert data.attributes == ["pm25"] and data.units == ["ug/m3"] and data.shape == (4, 2, 1)
    bad = tmp_path / "moving.csv"
    bad.write_text(CSV_TEXT.replace("2020-01-01 03:00,B,no2,-2.5,40.1", "2020-01-01 03:00,B,no2,-2.5,41.0"))
    with pytest.raises(UrbanstError, match=r"unit\(s\) \['B'\] have more than one 'lat'"):
        import_file(bad, "moving", tmp_path)


# ----------------------------------------------------------------------------------------
# NPZ
# ----------------------------------------------------------------------------------------
def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    T, N, C = 6, 3, 2
    values = rng.normal(size=(T, N, C)).astype(np.float32)
    mask = rng.random((T, N, C)) > 0.3
    values[0, 0, 0] = np.nan  # NaN where the source claims a value: counted
    mask[0, 0, 0] = True
    values[1, 1, 1] = np.inf
    mask[1, 1, 1] = True
    values[2, 2, 0] = np.nan  # NaN where the source already says missing: not counted
    mask[2, 2, 0] = False
    timestamps = pd.date_range("2022-05-01", periods=T, freq="15min").to_numpy()
    coords = rng.uniform(30, 40, size=(N, 2))
    adjacency = (rng.random((N, N)) > 0.5).astype(np.float32)
    src = tmp_path / "sensors.npz"
    np.savez(
        src,
        values=values,
        mask=mask.astype(np.uint8),
        timestamps=timestamps,
        attributes=np.array(["speed", "flow"]),
        units=np.array(["km/h", "veh/5min"]),
        unit_names=np.array(["s1", "s2", "s3"]),
        coords=coords,
        adjacency=adjacency,
    )
    import_file(src, "sensors", tmp_path, city="Testville")
    data = load_dataset("sensors", tmp_path)
    observed = mask & np.isfinite(values)
    np.testing.assert_array_equal(data.observed_mask, observed)
    np.testing.assert_array_equal(data.values[observed], values[observed])
    assert np.isnan(data.values[~observed]).all()
    assert (data.timestamps == pd.DatetimeIndex(timestamps)).all() and data.step == pd.Timedelta("15min")
    assert data.attributes == ["speed", "flow"] and data.units == ["km/h", "veh/5min"]
    assert data.unit_names == ["s1", "s2", "s3"]
    np.testing.assert_array_equal(data.coords, coords)
    np.testing.assert_array_equal(data.adjacency, adjacency)
    counts = read_import_meta(tmp_path / "imported" / "sensors")["counts"]
    assert counts == {
        "nan_values": 1,
        "inf_values": 1,
        "absent_values": 0,
        "observed_values": int(observed.sum()),
        "masked_values": int((~observed).sum()),
    }


def test_npz_two_dimensional_without_timestamps_uses_defaults(tmp_path):
    src = tmp_path / "plain.npz"
    values = np.arange(12, dtype=np.float64).reshape(4, 3)
    np.savez(src, values, grid_shape=np.array([1, 3]))  # stored as 'arr_0' plus grid_shape: not the only array
    with pytest.raises(UrbanstError, match=r"no array named 'values' \(it has \['arr_0', 'grid_shape'\]\)"):
        import_file(src, "plain", tmp_path)
    np.savez(src, values=values, grid_shape=np.array([1, 3]))
    import_file(src, "plain", tmp_path, attribute="count")
    data = load_dataset("plain", tmp_path)
    assert data.shape == (4, 3, 1) and data.attributes == ["count"] and data.grid_shape == (1, 3)
    assert data.timestamps[0] == pd.Timestamp("2000-01-01") and data.step == pd.Timedelta("1h")
    assert "assumed start 2000-01-01 00:00:00 and step 1h" in data.notes
    np.testing.assert_array_equal(data.values[..., 0], values)


def test_npz_unsorted_timestamps_with_gap(tmp_path):
    src = tmp_path / "gappy.npz"
    seconds = np.array([7200, 0, 3600, 14400])  # Unix seconds, unsorted, 10800 missing
    values = np.array([[3.0], [1.0], [2.0], [5.0]])
    np.savez(src, values=values, timestamps=seconds)
    import_file(src, "gappy", tmp_path)
    data = load_dataset("gappy", tmp_path)
    assert list(data.timestamps) == list(pd.date_range("1970-01-01", periods=5, freq="h"))
    np.testing.assert_array_equal(data.values[:, 0, 0], [1.0, 2.0, 3.0, np.nan, 5.0])
    assert read_import_meta(tmp_path / "imported" / "gappy")["counts"]["absent_values"] == 1


def test_npz_wrong_shapes_refused_with_shapes(tmp_path):
    src = tmp_path / "bad.npz"
    np.savez(src, values=np.zeros((2, 3, 4, 5)))
    with pytest.raises(UrbanstError, match=r"got shape \(2, 3, 4, 5\)"):
        import_file(src, "bad", tmp_path)
    np.savez(src, values=np.zeros((5, 3, 2)), mask=np.ones((5, 3), dtype=bool))
    with pytest.raises(UrbanstError, match=r"'mask' has shape \(5, 3\) but 'values' has shape \(5, 3, 2\)"):
        import_file(src, "bad", tmp_path)
    np.savez(src, values=np.zeros((5, 3)), timestamps=np.arange(4))
    with pytest.raises(UrbanstError, match=r"'timestamps' has shape \(4,\) but 'values' has 5 steps"):
        import_file(src, "bad", tmp_path)
    np.savez(src, values=np.zeros((5, 3)), coords=np.zeros((4, 2)))
    with pytest.raises(UrbanstError, match=r"bad.npz.*coords must be \[N, 2\], got \(4, 2\)"):
        import_file(src, "bad", tmp_path)
    assert _leftovers(tmp_path) == []


def test_npz_object_array_refused(tmp_path):
    src = tmp_path / "objects.npz"
    np.savez(src, values=np.zeros((3, 2)), attributes=np.array([{"name": "x"}], dtype=object))
    with pytest.raises(UrbanstError, match=r"'attributes' holds Python objects.*never unpickles"):
        import_file(src, "objects", tmp_path)
    assert _leftovers(tmp_path) == []


# ----------------------------------------------------------------------------------------
# NetCDF
# ----------------------------------------------------------------------------------------
def _sst_dataset():
    xr = pytest.importorskip("xarray")
    times = pd.to_datetime(["2017-05-14", "2017-05-15", "2017-05-17"])  # 05-16 absent
    lat = np.array([34.0, 34.5, 35.0], dtype=np.float32)
    lon = np.array([-5.0, -4.5], dtype=np.float32)
    sst = np.arange(18, dtype=np.float32).reshape(3, 3, 2) + 14.0
    sst[0, 1, 1] = np.nan  # a cloud: written as the fill value
    ds = xr.Dataset(
        {"SST": (("time", "lat", "lon"), sst, {"units": "degC"}), "mask": (("lat", "lon"), np.ones((3, 2), np.float32))},
        coords={"time": times, "lat": lat, "lon": lon},
    )
    ds["SST"].encoding["_FillValue"] = np.float32(99999.0)
    return ds, sst, times, lat, lon


def test_netcdf_grid_round_trip(tmp_path):
    ds, sst, times, lat, lon = _sst_dataset()
    src = tmp_path / "sst.nc"
    ds.to_netcdf(src, engine="scipy")  # netCDF-3, readable with scipy alone
    import_file(src, "sst", tmp_path, city="Alboran Sea")
    data = load_dataset("sst", tmp_path)
    assert data.shape == (4, 6, 1) and data.grid_shape == (3, 2) and data.spatial_kind() == "grid 3x2"
    assert data.attributes == ["SST"] and data.units == ["degC"]
    assert list(data.timestamps) == list(pd.date_range("2017-05-14", periods=4, freq="D"))
    expected = np.full((4, 6), np.nan, dtype=np.float32)
    expected[[0, 1, 3]] = sst.reshape(3, 6)
    np.testing.assert_array_equal(data.values[..., 0], expected)
    assert data.observed_mask.sum() == 17  # 18 values, one cloud; the absent day is all masked
    la, lo = np.meshgrid(lat.astype(np.float64), lon.astype(np.float64), indexing="ij")
    np.testing.assert_array_equal(data.coords, np.stack([la.ravel(), lo.ravel()], axis=1))
    counts = read_import_meta(tmp_path / "imported" / "sst")["counts"]
    assert counts["absent_values"] == 6 and counts["nan_values"] == 0  # the cloud was the file's own fill value


def test_netcdf_stations_pick_variable(tmp_path):
    xr = pytest.importorskip("xarray")
    times = pd.date_range("2020-01-01", periods=4, freq="h")
    pm = np.array([[1.0, 2.0], [np.nan, 4.0], [5.0, np.inf], [7.0, 8.0]])
    ds = xr.Dataset(
        {
            "pm25": (("time", "station"), pm, {"units": "ug/m3"}),
            "no2": (("time", "station"), pm * 2),
            "lat": (("station",), np.array([39.9, 40.1])),
            "lon": (("station",), np.array([116.3, 116.5])),
        },
        coords={"time": times, "station": np.array(["dongsi", "wanliu"])},
    )
    src = tmp_path / "stations.nc"
    ds.to_netcdf(src, engine="scipy")
    with pytest.raises(UrbanstError, match=r"several variables \['pm25', 'no2'\]; choose one with attribute="):
        import_file(src, "st", tmp_path)
    import_file(src, "st", tmp_path, attribute="pm25")
    data = load_dataset("st", tmp_path)
    assert data.shape == (4, 2, 1) and data.unit_names == ["dongsi", "wanliu"] and data.units == ["ug/m3"]
    np.testing.assert_array_equal(data.coords, [[39.9, 116.3], [40.1, 116.5]])
    np.testing.assert_array_equal(data.observed_mask[:, :, 0], np.isfinite(pm))
    counts = read_import_meta(tmp_path / "imported" / "st")["counts"]
    assert counts["nan_values"] == 1 and counts["inf_values"] == 1


# ----------------------------------------------------------------------------------------
# damaged files
# ----------------------------------------------------------------------------------------
def _truncated(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def test_corrupted_files_refused(tmp_path):
    npz = tmp_path / "cut.npz"
    np.savez(npz, values=np.random.default_rng(0).normal(size=(50, 40, 2)))
    _truncated(npz)
    with pytest.raises(UrbanstError, match=r"cannot read .*cut.npz as NPZ"):
        import_file(npz, "cut", tmp_path)

    fake = tmp_path / "fake.npz"
    fake.write_text("timestamp,unit,attribute,value\n")
    with pytest.raises(UrbanstError, match=r"fake.npz as NPZ: it is not a zip archive"):
        import_file(fake, "fake", tmp_path)

    ds, *_ = _sst_dataset()
    nc = tmp_path / "cut.nc"
    ds.to_netcdf(nc, engine="scipy")
    _truncated(nc)
    with pytest.raises(UrbanstError, match=r"cannot read .*cut.nc as NetCDF"):
        import_file(nc, "cutnc", tmp_path)

    not_nc = tmp_path / "notes.nc"
    not_nc.write_text("hello")
    with pytest.raises(UrbanstError, match=r"notes.nc as NetCDF: it does not start like a netCDF"):
        import_file(not_nc, "notes", tmp_path)

    binary_csv = tmp_path / "image.csv"
    binary_csv.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(UrbanstError, match=r"cannot read .*image.csv as CSV: it holds binary data"):
        import_file(binary_csv, "image", tmp_path)

    with pytest.raises(UrbanstError, match="file not found"):
        import_file(tmp_path / "nowhere.csv", "nowhere", tmp_path)
    with pytest.raises(UrbanstError, match="pass fmt="):
        import_file(binary_csv.rename(tmp_path / "image.dat"), "image", tmp_path)
    assert _leftovers(tmp_path) == []


# ----------------------------------------------------------------------------------------
# names, overwrite, atomic store
# ----------------------------------------------------------------------------------------
def _tiny_npz(path: Path, fill: float) -> Path:
    np.savez(path, values=np.full((3, 2), fill))
    return path


def test_duplicate_name_needs_overwrite(tmp_path):
    first = _tiny_npz(tmp_path / "a.npz", 1.0)
    second = _tiny_npz(tmp_path / "b.npz", 2.0)
    import_file(first, "mine", tmp_path)
    assert load_dataset("mine", tmp_path).values[0, 0, 0] == 1.0
    with pytest.raises(UrbanstError, match=r"already exists.*overwrite=True"):
        import_file(second, "mine", tmp_path)
    assert load_dataset("mine", tmp_path).values[0, 0, 0] == 1.0
    import_file(second, "mine", tmp_path, overwrite=True)
    assert load_dataset("mine", tmp_path).values[0, 0, 0] == 2.0  # the cached copy was dropped
    assert _leftovers(tmp_path) == ["imported/mine", "imported/mine/data.npz", "imported/mine/meta.json"]


@pytest.mark.parametrize("name", ["", "../escape", "with space", ".hidden", "a/b"])
def test_bad_names_refused(tmp_path, name):
    with pytest.raises(UrbanstError, match="invalid dataset name"):
        import_file(_tiny_npz(tmp_path / "a.npz", 1.0), name, tmp_path)


def test_builtin_name_refused(tmp_path):
    with pytest.raises(UrbanstError, match="built-in dataset"):
        import_file(_tiny_npz(tmp_path / "a.npz", 1.0), "nyc_bike", tmp_path)


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    src = _tiny_npz(tmp_path / "a.npz", 1.0)

    def broken_dump(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.json, "dump", broken_dump)
    with pytest.raises(OSError):
        import_file(src, "half", tmp_path)
    assert _leftovers(tmp_path) == []

    monkeypatch.undo()
    import_file(src, "keep", tmp_path)
    monkeypatch.setattr(store.json, "dump", broken_dump)
    with pytest.raises(OSError):
        import_file(_tiny_npz(tmp_path / "b.npz", 2.0), "keep", tmp_path, overwrite=True)
    monkeypatch.undo()
    assert _leftovers(tmp_path) == ["imported/keep", "imported/keep/data.npz", "imported/keep/meta.json"]
    assert load_dataset("keep", tmp_path).values[0, 0, 0] == 1.0  # the previous import is intact


def test_stored_form_has_no_pickles(tmp_path):
    src = tmp_path / "air.csv"
    src.write_text(CSV_TEXT)
    folder = import_file(src, "air", tmp_path)
    with np.load(folder / "data.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    assert arrays["timestamps"].dtype == np.int64 and arrays["values"].dtype == np.float32
    assert arrays["observed_mask"].dtype == bool and arrays["unit_names"].dtype.kind == "U"
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["format"] == "urbanst-imported" and meta["attributes"] == ["no2", "pm25"]
    assert read_imported(folder).shape == (4, 2, 2)


@pytest.mark.realdata
def test_import_real_alboran_netcdf(tmp_path, data_root):
    import_file(data_root / "alboran_sst_dineof" / "alboranSST_small.nc", "alboran", tmp_path, attribute="SST")
    data = load_dataset("alboran", tmp_path)
    # 10 frames over 2017-05-14..24 with 05-22 absent -> 11 daily steps on the 201x301 grid
    assert data.shape == (11, 201 * 301, 1) and data.grid_shape == (201, 301)
    assert not data.observed_mask[8].any()
    assert 14.0 < np.nanmin(data.values) and np.nanmax(data.values) < 22.0
