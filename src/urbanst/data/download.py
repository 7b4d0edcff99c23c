"""Fetch the public original files of a registered dataset, verified by full SHA-256.

``download(name)`` puts the files of dataset ``name`` into ``<data dir>/<folder>/``, the
same layout the built-in readers expect. Every file comes from a pinned commit of the
public repository named in its folder's PROVENANCE.md, as
``https://raw.githubusercontent.com/<owner>/<repo>/<commit>/<path>``, is written to a
hidden temporary name, checked against the full SHA-256 recorded here, and only then
renamed into place. A file already present with the right checksum is not fetched
again, so a folder copied by hand is verified without any network.

Two kinds of files are not byte copies of a download:

- ``beijing_prsa_airquality/*.csv.gz``: the originals are plain CSV; the checksum is that
  of the CSV as published, and the file is stored gzip-compressed (a local ``.csv.gz``
  is verified by the checksum of its uncompressed content).
- built files, made here from downloaded sources by a fixed rule and verified by a
  checksum of their content: ``nyc_crime_events_stshn/nyc_crime_16x16_daily_2014_2015.npz``
  (the 16x16 daily grid rebuilt from ``NYC_Crime.zip`` with the rule in its PROVENANCE;
  the checksum is that of the ``data`` array, int16, C order: an ``.npz`` file's bytes
  carry zip timestamps) and ``beijing_prsa_airquality/stations.csv`` (station
  coordinates read from the ``load_coords()`` text of a source file in
  MLGlobalHealth/dl4bi; full-file checksum).

What cannot be downloaded (absent from every public copy under the sizes used here, see
the PROVENANCE files): the NYCBike1 ``train.npz`` of ST-SSL (Git LFS only), the original
``trn.pkl`` of NYC crime (replaced by the rebuilt tensor), ``NY_Meteorology.h5`` of
TaxiNYC. The folder ``nyc_crime_stshn`` (val/test pickles only) and ``pedalme_london_pgt``
are not in the manifest because no registered dataset reads them.

Tests and mirrors: pass ``base_url=`` (or set ``URBANST_DOWNLOAD_BASE``) to a folder or
server with the same ``<owner>/<repo>/<commit>/<path>`` layout (``file://`` works), or
pass ``opener=`` (a callable ``(url, timeout) -> binary file-like``).
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import re
import shutil
import socket
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from urbanst.errors import UrbanstError
from urbanst.settings import data_dir

RAW_BASE = "https://raw.githubusercontent.com"
BASE_URL_ENV = "URBANST_DOWNLOAD_BASE"
DEFAULT_TIMEOUT = 60.0
_CHUNK = 1 << 20

Opener = Callable[[str, float], BinaryIO]


@dataclass(frozen=True)
class RemoteFile:
    """One published file, fetched as is (or gzip-compressed after checking, when ``gzip``)."""

    name: str  # file name in the local folder
    repo: str  # owner/name on GitHub
    commit: str
    path: str  # path inside the repository
    sha256: str  # of the file as published (before our gzip)
    size: int  # bytes as published
    gzip: bool = False  # store gzip-compressed under ``name`` (which ends in .gz)


@dataclass(frozen=True)
class BuiltFile:
    """A file made here from downloaded sources by a fixed rule; ``sha256`` is of ``checks``."""

    name: str
    builder: str  # key into _BUILDERS
    sha256: str
    checks: str  # what the checksum covers
    inputs: tuple[str, ...] = ()  # local files of the same folder it is built from
    source: tuple[str, str, str] | None = None  # (repo, commit, path) of a text source read while building


# --------------------------------------------------------------------------------------
# the manifest: checksums computed from the project's copy of each file (see PROVENANCE.md)
# --------------------------------------------------------------------------------------
_NYC_ZONES = ("Evens1sen/Deep-NYC-Taxi-Bike", "097aa2d8177392339b089ed940c6ccc2d469dd97")
_TAXI_GRID = ("pengzhangzhi/spatial-temporal-transformer", "b17760e01eb08b9b4340e9dd6cbc7cd3caac2b97")
_STSSL = ("Echo-Ji/ST-SSL", "b3f3dfc48d12524c207cc89f4e242cb8aac081c0")
_STSHN = ("akaxlh/ST-SHN", "0a5f1adf907e91212a0b0e252a59fb3e379a975b")
_STHSL = ("LZH-YS1998/STHSL", "6f3429c07f88ada44b5c34a0a098e95eedf9cbd6")
_TGCN = ("lehaifeng/T-GCN", "219a2346f5bf68d54d91a948e7a41a08f9edc46b")
_PRSA = ("abhishek21441/DataScience_Project", "26eedeaf15bc1655bf8907834ae2554543aa3f4c")
_DL4BI = ("MLGlobalHealth/dl4bi", "fb31d9e34b13ed88836a4c6803dbd2b982ba5ea2")
_PRISTI = ("LMZZML/PriSTI", "8ba37cc1a84cf706e767ae071101b3f02c921c9a")
_PGT = ("benedekrozemberczki/pytorch_geometric_temporal", "adefe44265ad8faf239fd6cf3b59b95ca3ee60aa")
_DINEOF = ("aida-alvera/DINEOF", "b702649b3fc574ecc112589bd83c9419e9f9f7f4")


def _r(src: tuple[str, str], name: str, path: str, sha256: str, size: int, gz: bool = False) -> RemoteFile:
    return RemoteFile(name, src[0], src[1], path, sha256, size, gz)


_PRSA_CSV = {  # station: (sha256 of the published CSV, size)
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

MANIFEST: dict[str, tuple[RemoteFile | BuiltFile, ...]] = {
    "nyc_manhattan_bike_taxi_69zones": (
        _r(_NYC_ZONES, "201901-202012-NYCbike-inoutflow.npz", "data-NYCBike/60min/201901-202012-NYCbike-inoutflow.npz",
           "e6be89d9dd41579ecd0551699ff85490149993c50595425872b8d2ba35246b72", 2771289),
        _r(_NYC_ZONES, "201901-202012-NYCtaxi-inoutflow.npz", "data-NYCTaxi/60min/201901-202012-NYCtaxi-inoutflow.npz",
           "9d0734122f8e168e2f7f690ab4a857542c29fd9c888f27fe09fb48890b3f15f5", 3422611),
        _r(_NYC_ZONES, "W_adj_matrix.csv", "data-NYCZones/adjmatrix/W_adj_matrix.csv",
           "1822444cccf3545b6d2b410c0f36071f495a5f5ba6e65020f15f07359a60f9a9", 9859),
        _r(_NYC_ZONES, "W_od_bike.csv", "data-NYCZones/adjmatrix/W_od_bike.csv",
           "4f22e783f0204008ca581a1319b7d724e38c808dcf1393d0c24ce33dd4fd7b2b", 86059),
        _r(_NYC_ZONES, "W_od_taxi.csv", "data-NYCZones/adjmatrix/W_od_taxi.csv",
           "c24e515b328d68c481861074233995b6c606386cd81f1f7b8827d7050ebf4125", 95022),
        _r(_NYC_ZONES, "edges.txt", "data-processing/edges.txt",
           "c6e33ab5f37ea0ba1fbfd76f2bb13ae2eb8adeee0326ebd9430de626a1cc212f", 1352),
        _r(_NYC_ZONES, "manhattan_zones.csv", "data-NYCZones/zones/manhattan_zones.csv",
           "8b06eb185812d95c19a84951861b9a40a16672b522694238ff364cd369e850ec", 1836),
    ),
    "nyc_taxi_grid_16x8_streed": (
        _r(_TAXI_GRID, "NYC10_Taxi_M16x8_T60_InOut.h5", "data/TaxiNYC/NYC10_Taxi_M16x8_T60_InOut.h5",
           "09485eea7727b90273e6f4cbd9e9e18549034081eadf8d601abaa494297b8ce4", 1726592),
        _r(_TAXI_GRID, "NYC11_Taxi_M16x8_T60_InOut.h5", "data/TaxiNYC/NYC11_Taxi_M16x8_T60_InOut.h5",
           "72660bb87f4e7e0035a116d59102dadeb1b328aa95c84d383a6a15b896d9e351", 1736555),
        _r(_TAXI_GRID, "NYC12_Taxi_M16x8_T60_InOut.h5", "data/TaxiNYC/NYC12_Taxi_M16x8_T60_InOut.h5",
           "5b95d03f44bd07b9102431e74ee293db78048886a2d773e6c3d3b99c7c275fe9", 1644063),
        _r(_TAXI_GRID, "NYC13_Taxi_M16x8_T60_InOut.h5", "data/TaxiNYC/NYC13_Taxi_M16x8_T60_InOut.h5",
           "fbb84edbeb378e7f8067bead7ede8747cf8b9e1f708c03be222f767f3ae79dc2", 1503684),
        _r(_TAXI_GRID, "NYC14_Taxi_M16x8_T60_InOut.h5", "data/TaxiNYC/NYC14_Taxi_M16x8_T60_InOut.h5",
           "112585137947375db1e0a7733724c0604e3774eaf8c894cdb1abe867c3b22039", 1499663),
        _r(_TAXI_GRID, "NY_Holiday.txt", "data/TaxiNYC/NY_Holiday.txt",
           "2133c7c1febb111e5a6a6718989d26f621a2550ff3e10657e0b9119dcfdf1cb8", 656),
    ),
    "nyc_bike1_stssl": (
        _r(_STSSL, "adj_mx.npz", "data/NYCBike1/adj_mx.npz",
           "21e7556c2a05cbd41312154fc82ca07539b51be3299a9c53f5d19f676ba487ec", 631),
        _r(_STSSL, "val.npz", "data/NYCBike1/val.npz",
           "5a01b775da98029da9e6db10932f85fa295c82d173602c8fe677956fd3a394ac", 1781472),
        _r(_STSSL, "test.npz", "data/NYCBike1/test.npz",
           "076c2062e4fc8c8fd14a48262ded5aecb40704cf6969a5c6c7c358da34699378", 3542679),
    ),
    "chi_crime_stshn": (
        _r(_STSHN, "trn.pkl", "Datasets/CHI_crime/trn.pkl",
           "2a54c528a79031ba13ce17ca3002cd608557bd62bef8fae3285a5fb437100fca", 3274157),
        _r(_STSHN, "val.pkl", "Datasets/CHI_crime/val.pkl",
           "636012a59d246d6b9d54cc818c527e85db0c3fef4e0dd20318a22b086553bbbf", 161452),
        _r(_STSHN, "tst.pkl", "Datasets/CHI_crime/tst.pkl",
           "a86ac4a08b9c2c7c17bd53a79254354d3e80d25369e0023cc8f18e23bd2957f2", 494764),
    ),
    "nyc_crime_events_stshn": (
        _r(_STHSL, "NYC_Crime.zip", "Datasets/NYC_crime/NYC_Crime.zip",
           "ed147db0acb2b8679b87e7b1de004e1bb23a24e2381fd7f0afa49dc826c766de", 2937736),
        BuiltFile(
            "nyc_crime_16x16_daily_2014_2015.npz",
            builder="nyc_crime_grid",
            sha256="c21a9d3f4735297f6a35e05935bb37caf106f61952c96edb5f1f26ac775d16dd",
            checks="the bytes of its 'data' array (int16, shape (16, 16, 730, 4), C order)",
            inputs=("NYC_Crime.zip",),
        ),
    ),
    "los_loop_tgcn": (
        _r(_TGCN, "los_speed.csv", "data/los_speed.csv",
           "7b732d86ae32b2930595becba28aff39dacbfb2197e250fc0332e1744ce2cbf4", 3402125),
        _r(_TGCN, "los_adj.csv", "data/los_adj.csv",
           "7a6eb41e10677992b5af50f5ab187c6c05c5c3a92cb973950cfddbf857361e76", 111686),
        _r(_TGCN, "graph_sensor_locations.csv", "STGC-GNN/data/METR-LA/graph_sensor_locations.csv",
           "eb8ea96e07358b45d0e4ba3b89c2673fa20c54af50150249e627389e749ade6f", 6341),
        _r(_TGCN, "metr_la_adj_mx.pkl", "STGC-GNN/data/METR-LA/adj_mx.pkl",
           "64997ab26db6ffdd2f6d57c8c12da6aedcb3efc2729b46ab4cc48e8c7ad1e5e8", 177422),
    ),
    "beijing_prsa_airquality": tuple(
        _r(_PRSA, f"PRSA_Data_{station}_20130301-20170228.csv.gz",
           f"PRSA_Data_20130301-20170228/PRSA_Data_{station}_20130301-20170228.csv", sha, size, gz=True)
        for station, (sha, size) in _PRSA_CSV.items()
    ) + (
        BuiltFile(
            "stations.csv",
            builder="beijing_stations",
            sha256="d7491fa25598c7f6eaceacf119f00631179a5d174ef16e322587de19e85abd12",
            checks="the whole file",
            source=(*_DL4BI, "benchmarks/meta_learning/beijing_air_quality.py"),
        ),
    ),
    "aqi36_beijing_pm25": (
        _r(_PRISTI, "pm25_ground.txt", "data/pm25/SampleData/pm25_ground.txt",
           "8f77b738ae4c50621705a308e606e6229564ad7ad20358986bd6031355f0ab5f", 1098878),
        _r(_PRISTI, "pm25_missing.txt", "data/pm25/SampleData/pm25_missing.txt",
           "3f991eab5bbc5e644e61360e6b71ce45179c86cf650b3bb9a53771d8f9953fe3", 1022029),
        _r(_PRISTI, "pm25_latlng.txt", "data/pm25/SampleData/pm25_latlng.txt",
           "a7423dafe4ecdec5ba04b4b6b047a53df1b9c04aed0a2957f1c698761715d7c1", 958),
        _r(_PRISTI, "pm25_meanstd.pk", "data/pm25/pm25_meanstd.pk",
           "ed6413f7222e4a61446ee1cef9c3fa58eb194eac8ddee8bb503a80a52c5b2629", 778),
    ),
    "montevideo_bus_pgt": (
        _r(_PGT, "montevideo_bus.json", "dataset/montevideo_bus.json",
           "37d9c6286d474077b5c05173c1570c4da42c387013116daa8862c7a6cab86a75", 3131884),
    ),
    "alboran_sst_dineof": (
        _r(_DINEOF, "alboranSST_small.nc", "SmallExample/alboranSST_small.nc",
           "d1ccbab330642e47c9c23df046333ce2df2eb30c346acc4d3b806047ddc29e3b", 2664972),
    ),
}

DATASET_FOLDERS: dict[str, str] = {
    "nyc_bike": "nyc_manhattan_bike_taxi_69zones",
    "nyc_taxi": "nyc_manhattan_bike_taxi_69zones",
    "nyc_taxi_grid": "nyc_taxi_grid_16x8_streed",
    "nyc_bike_grid": "nyc_bike1_stssl",
    "chi_crime": "chi_crime_stshn",
    "nyc_crime": "nyc_crime_events_stshn",
    "la_loop": "los_loop_tgcn",
    "beijing_air": "beijing_prsa_airquality",
    "aqi36": "aqi36_beijing_pm25",
    "montevideo_bus": "montevideo_bus_pgt",
    "alboran_sst": "alboran_sst_dineof",
}

# Parts of the original datasets that no public source under these sizes holds.
NOT_DOWNLOADABLE: dict[str, str] = {
    "nyc_bike1_stssl": "train.npz of NYCBike1 (Git LFS only); val and test are downloaded",
    "nyc_taxi_grid_16x8_streed": "NY_Meteorology.h5 (not in the repository snapshot)",
}


# --------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------
def download(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    base_url: str | None = None,
    opener: Opener | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Fetch dataset ``name`` into ``<data dir>/<folder>/`` and return that folder.

    Files already there with the right checksum are kept; every other file is fetched
    to a temporary name, verified (full SHA-256) and renamed into place.
    """
    folder_name = dataset_folder(name)
    dest = data_dir(root) / folder_name
    base = (base_url or os.environ.get(BASE_URL_ENV) or RAW_BASE).rstrip("/")
    open_url = opener or _default_opener
    say = progress or (lambda _msg: None)
    created = not dest.exists()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UrbanstError(f"cannot create {dest}: {err.strerror or err}; choose another --data-dir") from None
    try:
        for entry in MANIFEST[folder_name]:
            target = dest / entry.name
            if target.is_file() and verify_file(target, entry) is None:
                say(f"{entry.name}: present, checksum ok")
                continue
            if isinstance(entry, RemoteFile):
                _fetch_remote(entry, dest, base, open_url, timeout, folder_name)
            else:
                _build_file(entry, dest, base, open_url, timeout, folder_name)
            say(f"{entry.name}: downloaded, checksum ok")
    except BaseException:
        if created and not any(dest.iterdir()):
            dest.rmdir()  # leave no empty folder behind: readers would take it for a broken copy
        raise
    return dest


def dataset_folder(name: str) -> str:
    """The data-directory folder that holds dataset ``name``'s files."""
    if name in DATASET_FOLDERS:
        return DATASET_FOLDERS[name]
    if name in MANIFEST:  # a folder name works too
        return name
    known = ", ".join(sorted(DATASET_FOLDERS))
    raise UrbanstError(
        f"no download known for {name!r}; downloadable datasets: {known} "
        "(generated and imported datasets need no download)"
    )


def source_url(entry: RemoteFile, base_url: str = RAW_BASE) -> str:
    return f"{base_url.rstrip('/')}/{entry.repo}/{entry.commit}/{urllib.parse.quote(entry.path)}"


def verify_file(path: Path, entry: RemoteFile | BuiltFile) -> str | None:
    """None when ``path`` matches the manifest; otherwise the checksum it has (or why it has none)."""
    try:
        got = _digest_local(path, entry)
    except Exception as err:  # a damaged local file just fails verification (and is fetched again)
        return f"unreadable ({type(err).__name__})"
    return None if got == entry.sha256 else got


# --------------------------------------------------------------------------------------
# fetching
# --------------------------------------------------------------------------------------
def _default_opener(url: str, timeout: float) -> BinaryIO:
    import urbanst

    req = urllib.request.Request(url, headers={"User-Agent": f"urbanst/{urbanst.__version__}"})
    return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 (https or a user-chosen mirror)


def _hand_copy_hint(folder_name: str, dest: Path) -> str:
    repos = []
    for e in MANIFEST[folder_name]:
        if isinstance(e, RemoteFile) and (e.repo, e.commit) not in repos:
            repos.append((e.repo, e.commit))
    where = " and ".join(f"https://github.com/{r}/tree/{c}" for r, c in repos)
    return (
        f"copy the folder {folder_name}/ by hand from a machine that has it (or its files from {where}, "
        f"see urbanst.data.download.MANIFEST) into {dest.parent}; running the download again then only verifies it"
    )


def _network_error(err: BaseException, url: str, timeout: float, folder_name: str, dest: Path) -> UrbanstError:
    host = urllib.parse.urlparse(url).hostname or url
    hint = _hand_copy_hint(folder_name, dest)
    if isinstance(err, urllib.error.HTTPError):
        return UrbanstError(f"{host} answered HTTP {err.code} ({err.reason}) for {url}; the source may have moved: {hint}")
    reason = err.reason if isinstance(err, urllib.error.URLError) else err
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return UrbanstError(f"cannot reach {host}: no answer within {timeout:g} s (slow or offline network); {hint}")
    offline_errnos = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ECONNREFUSED, errno.ENETDOWN, errno.ECONNRESET}
    if isinstance(reason, (socket.gaierror, ConnectionError)) or (
        isinstance(reason, OSError) and reason.errno in offline_errnos
    ):
        return UrbanstError(f"cannot reach {host}: this machine looks offline; {hint}")
    return UrbanstError(f"cannot fetch {url}: {reason}; {hint}")


def _stream(url: str, open_url: Opener, timeout: float, limit: int, sink, folder_name: str, dest: Path):
    """Copy the response into ``sink`` (a callable taking bytes) up to ``limit`` + 1 bytes; returns (sha256, size)."""
    h = hashlib.sha256()
    size = 0
    try:
        with open_url(url, timeout) as resp:
            while True:
                chunk = resp.read(_CHUNK)
                if not chunk:
                    break
                h.update(chunk)
                size += len(chunk)
                try:
                    sink(chunk)
                except OSError as err:
                    raise UrbanstError(f"cannot write into {dest}: {err.strerror or err}") from None
                if size > limit:  # far more than expected: stop, the checksum will fail
                    break
    except (urllib.error.URLError, OSError) as err:
        raise _network_error(err, url, timeout, folder_name, dest) from None
    return h.hexdigest(), size


def _part_name(dest: Path, name: str) -> Path:
    return dest / f".{name}.part-{uuid.uuid4().hex[:12]}"


def _fetch_remote(entry: RemoteFile, dest: Path, base: str, open_url: Opener, timeout: float, folder_name: str) -> None:
    url = source_url(entry, base)
    part = _part_name(dest, entry.name)
    packed = None
    try:
        with open(part, "wb") as out:
            got, size = _stream(url, open_url, timeout, entry.size, out.write, folder_name, dest)
        if got != entry.sha256:
            raise UrbanstError(
                f"checksum mismatch for {entry.name} from {url}: expected sha256 {entry.sha256} ({entry.size} bytes), "
                f"got {got} ({size}{'+' if size > entry.size else ''} bytes); the download was deleted. "
                "Try again; if it persists the source changed: " + _hand_copy_hint(folder_name, dest)
            )
        if entry.gzip:
            packed = _part_name(dest, entry.name + ".gz")
            with open(part, "rb") as src, open(packed, "wb") as raw_out:
                with gzip.GzipFile(filename="", mode="wb", fileobj=raw_out, mtime=0) as gz:
                    shutil.copyfileobj(src, gz, _CHUNK)
            os.replace(packed, dest / entry.name)
            packed = None
        else:
            os.replace(part, dest / entry.name)
    finally:
        for p in (part, packed):
            if p is not None and p.exists():
                p.unlink()


def _fetch_bytes(url: str, open_url: Opener, timeout: float, limit: int, folder_name: str, dest: Path) -> bytes:
    buf = bytearray()
    _, size = _stream(url, open_url, timeout, limit, buf.extend, folder_name, dest)
    if size > limit:
        raise UrbanstError(f"{url} is larger than expected ({size}+ bytes); not using it")
    return bytes(buf)


def _build_file(entry: BuiltFile, dest: Path, base: str, open_url: Opener, timeout: float, folder_name: str) -> None:
    for needed in entry.inputs:
        if not (dest / needed).is_file():
            raise UrbanstError(f"cannot build {entry.name}: {needed} is missing from {dest}")
    text = None
    if entry.source is not None:
        repo, commit, path = entry.source
        url = f"{base}/{repo}/{commit}/{urllib.parse.quote(path)}"
        text = _fetch_bytes(url, open_url, timeout, 1 << 20, folder_name, dest).decode("utf-8", errors="replace")
    part = _part_name(dest, entry.name)
    try:
        _BUILDERS[entry.builder](dest, part, text)
        got = _DIGESTS[entry.builder](part)
        if got != entry.sha256:
            raise UrbanstError(
                f"checksum mismatch for {entry.name} (built here; checksum of {entry.checks}): expected sha256 "
                f"{entry.sha256}, got {got}; the file was deleted. " + _hand_copy_hint(folder_name, dest)
            )
        os.replace(part, dest / entry.name)
    finally:
        if part.exists():
            part.unlink()


# --------------------------------------------------------------------------------------
# checksums of local files
# --------------------------------------------------------------------------------------
def _sha256_stream(f) -> str:
    h = hashlib.sha256()
    for chunk in iter(lambda: f.read(_CHUNK), b""):
        h.update(chunk)
    return h.hexdigest()


def _digest_local(path: Path, entry: RemoteFile | BuiltFile) -> str:
    if isinstance(entry, BuiltFile):
        return _DIGESTS[entry.builder](path)
    opener = gzip.open if entry.gzip else open
    with opener(path, "rb") as f:
        return _sha256_stream(f)


# --------------------------------------------------------------------------------------
# builders of the files that are not plain downloads
# --------------------------------------------------------------------------------------
NYC_CRIME_CATEGORIES = ("BURGLARY", "GRAND LARCENY", "ROBBERY", "FELONY ASSAULT")


def _build_nyc_crime_grid(folder: Path, out: Path, _text: str | None) -> None:
    """The ST-SHN/STHSL gridding rule (PROVENANCE of nyc_crime_events_stshn), applied to NYC_Crime.csv.

    row = int((lat - min lat) * 111 / 3), col = int((lon - min lon) * 84 / 3) (about 3 km cells),
    day = calendar day since 2014-01-01, channel = offense in NYC_CRIME_CATEGORIES, value = count.
    """
    import zipfile

    import numpy as np
    import pandas as pd

    try:
        with zipfile.ZipFile(folder / "NYC_Crime.zip") as zf, zf.open("NYC_Crime.csv") as f:
            ev = pd.read_csv(f)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as err:
        raise UrbanstError(f"cannot read {folder / 'NYC_Crime.zip'}: {err}; delete it and download again") from None
    t = pd.to_datetime(ev["Occurrence Date"], format="%m/%d/%Y %I:%M:%S %p")
    lat = ev["Latitude"].to_numpy(np.float64)
    lon = ev["Longitude"].to_numpy(np.float64)
    lat_min, lon_min = lat.min(), lon.min()
    row = ((lat - lat_min) * 111 / 3).astype(np.int64)
    col = ((lon - lon_min) * 84 / 3).astype(np.int64)
    day = ((t.dt.normalize() - pd.Timestamp("2014-01-01")) // pd.Timedelta(days=1)).to_numpy(np.int64)
    channel = ev["Offense"].map({c: i for i, c in enumerate(NYC_CRIME_CATEGORIES)})
    if channel.isna().any():
        raise UrbanstError(f"NYC_Crime.csv has offenses outside {NYC_CRIME_CATEGORIES}; the source changed")
    data = np.zeros((16, 16, 730, 4), dtype=np.int16)
    np.add.at(data, (row, col, day, channel.to_numpy(np.int64)), 1)
    dates = pd.date_range("2014-01-01", periods=730, freq="D").strftime("%Y-%m-%d").to_numpy(dtype="<U10")
    with open(out, "wb") as f:
        np.savez_compressed(
            f,
            data=data,
            dates=dates,
            categories=np.asarray(NYC_CRIME_CATEGORIES, dtype="<U14"),
            lat_min=np.float64(lat_min),
            lon_min=np.float64(lon_min),
            lat_step_deg=np.float64(3 / 111),
            lon_step_deg=np.float64(3 / 84),
            split_index=np.asarray([608, 638], dtype=np.int64),
        )


def _digest_nyc_crime_grid(path: Path) -> str:
    import numpy as np

    with np.load(path, allow_pickle=False) as z:
        data = z["data"]
    if data.dtype != np.int16 or data.shape != (16, 16, 730, 4):
        return f"wrong array {data.dtype} {data.shape}"
    return hashlib.sha256(np.ascontiguousarray(data).astype("<i2").tobytes()).hexdigest()


_STATION_ROW = re.compile(r"^\s*([A-Za-z]+),(-?\d+\.\d+),(-?\d+\.\d+)\s*$")


def _build_beijing_stations(_folder: Path, out: Path, text: str | None) -> None:
    """stations.csv from the ``load_coords()`` text block of dl4bi's beijing_air_quality.py."""
    repo, commit, path = next(e.source for e in MANIFEST["beijing_prsa_airquality"] if isinstance(e, BuiltFile))
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


def _digest_whole_file(path: Path) -> str:
    with open(path, "rb") as f:
        return _sha256_stream(f)


_BUILDERS = {
    "nyc_crime_grid": _build_nyc_crime_grid,
    "beijing_stations": _build_beijing_stations,
}
_DIGESTS = {
    "nyc_crime_grid": _digest_nyc_crime_grid,
    "beijing_stations": _digest_whole_file,
}
