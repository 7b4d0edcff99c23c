"""Downloading the public originals, verified by SHA-256, served from local file:// mirrors (no network)."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import socket
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from urbanst.data import download as dl
from urbanst.data.declaration import Source
from urbanst.errors import UrbanstError

REPO, COMMIT = "someone/city-data", "0123456789abcdef0123456789abcdef01234567"
SPEED = b"time,s1,s2\n0,61.5,58.0\n1,60.0,57.5\n"
TABLE = b"station,value\n" + b"".join(b"st%d,%d\n" % (i, i * i) for i in range(200))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _serve(mirror: Path, repo: str, commit: str, path: str, data: bytes) -> None:
    target = mirror / repo / commit / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


@pytest.fixture
def toy(monkeypatch, tmp_path):
    """A fake dataset 'toy' of two files (one stored gzipped) and its file:// mirror."""
    entries = (
        dl.RemoteFile("speed.csv", REPO, COMMIT, "data/speed.csv", _sha(SPEED), len(SPEED)),
        dl.RemoteFile("table.csv.gz", REPO, COMMIT, "raw data/table.csv", _sha(TABLE), len(TABLE), gzip=True),
    )
    declared = dl.sources()
    monkeypatch.setattr(dl, "sources", lambda: {**declared, "toy": Source("toy_folder", entries)})
    monkeypatch.delenv(dl.BASE_URL_ENV, raising=False)
    mirror = tmp_path / "mirror"
    _serve(mirror, REPO, COMMIT, "data/speed.csv", SPEED)
    _serve(mirror, REPO, COMMIT, "raw data/table.csv", TABLE)  # a space: the URL is quoted
    return mirror


def _no_network(url, timeout):
    raise AssertionError(f"tried to fetch {url}")


def _offline(url, timeout):
    raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))


def test_checksum_match_from_file_url(toy, tmp_path):
    root = tmp_path / "data"
    messages = []
    folder = dl.download("toy", root, base_url=toy.as_uri(), progress=messages.append)
    assert folder == root / "toy_folder"
    assert sorted(p.name for p in folder.iterdir()) == ["speed.csv", "table.csv.gz"]  # no temporary files left
    assert (folder / "speed.csv").read_bytes() == SPEED
    assert gzip.decompress((folder / "table.csv.gz").read_bytes()) == TABLE
    assert messages == ["speed.csv: downloaded, checksum ok", "table.csv.gz: downloaded, checksum ok"]
    # present and verified: nothing is fetched again (works offline)
    assert dl.download("toy", root, opener=_no_network) == folder


def test_base_url_from_environment(toy, tmp_path, monkeypatch):
    monkeypatch.setenv(dl.BASE_URL_ENV, toy.as_uri())
    folder = dl.download("toy", tmp_path)
    assert (folder / "speed.csv").read_bytes() == SPEED


def test_checksum_mismatch_deletes_and_names_file(toy, tmp_path):
    _serve(toy, REPO, COMMIT, "raw data/table.csv", TABLE.replace(b"st7", b"st8"))
    with pytest.raises(UrbanstError) as err:
        dl.download("toy", tmp_path, base_url=toy.as_uri())
    message = str(err.value)
    assert "checksum mismatch for table.csv.gz" in message
    assert f"expected sha256 {_sha(TABLE)}" in message
    assert f"got {_sha(TABLE.replace(b'st7', b'st8'))}" in message
    folder = tmp_path / "toy_folder"
    assert sorted(p.name for p in folder.iterdir()) == ["speed.csv"]  # the good file stays, no partial file


def test_damaged_local_file_is_fetched_again(toy, tmp_path):
    folder = dl.download("toy", tmp_path, base_url=toy.as_uri())
    (folder / "speed.csv").write_bytes(b"edited by hand\n")
    (folder / "table.csv.gz").write_bytes(b"not gzip")
    dl.download("toy", tmp_path, base_url=toy.as_uri())
    assert (folder / "speed.csv").read_bytes() == SPEED
    assert gzip.decompress((folder / "table.csv.gz").read_bytes()) == TABLE


def test_offline_message(toy, tmp_path):
    with pytest.raises(UrbanstError) as err:
        dl.download("toy", tmp_path, opener=_offline)
    message = str(err.value)
    assert message.startswith("cannot reach raw.githubusercontent.com: this machine looks offline; copy the folder")
    assert f"https://github.com/{REPO}/tree/{COMMIT}" in message and str(tmp_path) in message
    assert not (tmp_path / "toy_folder").exists()  # no empty folder left behind


def test_other_network_failures(toy, tmp_path):
    def refused(url, timeout):
        raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))

    def not_found(url, timeout):
        raise urllib.error.HTTPError(url, 404, "Not Found", None, None)

    def slow(url, timeout):
        raise TimeoutError("timed out")

    with pytest.raises(UrbanstError, match="this machine looks offline"):
        dl.download("toy", tmp_path, opener=refused)
    with pytest.raises(UrbanstError, match="answered HTTP 404"):
        dl.download("toy", tmp_path, opener=not_found)
    with pytest.raises(UrbanstError, match=r"no answer within 5 s"):
        dl.download("toy", tmp_path, opener=slow, timeout=5)
    with pytest.raises(UrbanstError, match="cannot fetch file://"):
        dl.download("toy", tmp_path, base_url=(tmp_path / "empty-mirror").as_uri())


def test_unknown_dataset():
    with pytest.raises(UrbanstError, match=r"no download known for 'nope'; downloadable datasets: alboran_sst, aqi36"):
        dl.download("nope")


def test_manifest_covers_the_registered_names():
    dataset_folders = {name: source.folder for name, source in dl.sources().items()}
    manifest = {source.folder: source.files for source in dl.sources().values()}
    assert set(dataset_folders.values()) == set(manifest)
    for entries in manifest.values():
        for entry in entries:
            assert len(entry.sha256) == 64 and int(entry.sha256, 16) >= 0
            if isinstance(entry, dl.RemoteFile):
                assert len(entry.commit) == 40 and entry.name.endswith(".gz") == entry.gzip


# ----------------------------------------------------------------------------------------
# against the project's copy of the real data (skipped without it)
# ----------------------------------------------------------------------------------------
@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(dl.sources()))
def test_manifest_checksums_match_the_real_copy(data_root, name):
    # every file of the shared copy verifies, so nothing is fetched
    assert dl.download(name, data_root, opener=_no_network) == data_root / dl.sources()[name].folder


@pytest.mark.realdata
def test_real_files_from_a_mirror_with_rebuilt_files(data_root, tmp_path):
    mirror = tmp_path / "mirror"
    # NYC crime: the zip is downloaded, the 16x16 daily tensor is rebuilt from it and verified
    for entry in dl.dataset_source("nyc_crime_events_stshn").files:
        if isinstance(entry, dl.RemoteFile):
            target = mirror / entry.repo / entry.commit / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(data_root / "nyc_crime_events_stshn" / entry.name, target)
    folder = dl.download("nyc_crime", tmp_path / "data", base_url=mirror.as_uri())
    with np.load(folder / "nyc_crime_16x16_daily_2014_2015.npz", allow_pickle=False) as built, np.load(
        data_root / "nyc_crime_events_stshn" / "nyc_crime_16x16_daily_2014_2015.npz", allow_pickle=False
    ) as ref:
        assert sorted(built.files) == sorted(ref.files)
        for key in ref.files:
            np.testing.assert_array_equal(built[key], ref[key])

    # Beijing station coordinates: built from the load_coords() text of a source file
    beijing = dl.dataset_source("beijing_prsa_airquality")
    repo, commit, path = next(e.source for e in beijing.files if isinstance(e, dl.BuiltFile))
    rows = (data_root / "beijing_prsa_airquality" / "stations.csv").read_text().splitlines()[1:]
    table = "\n".join(",".join(r.split(",")[:3]) for r in rows)
    source = f'def load_coords():\n    return pd.read_csv(StringIO("""\nstation,Latitude,Longitude\n{table}\n    """))\n'
    _serve(mirror, repo, commit, path, source.encode())
    station_entry = next(e for e in beijing.files if isinstance(e, dl.BuiltFile))
    out = tmp_path / "beijing"
    out.mkdir()
    dl.Fetcher(beijing, out, mirror.as_uri(), dl.open_url, 5.0).build(station_entry)
    assert (out / "stations.csv").read_bytes() == (data_root / "beijing_prsa_airquality" / "stations.csv").read_bytes()
