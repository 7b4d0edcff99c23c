"""Fetch the public original files of a built-in dataset, verified by full SHA-256.

``download(name)`` puts the files that dataset ``name``'s reader module declares (its
:class:`~urbanst.data.declaration.Source`) into ``<data dir>/<folder>/``, the layout the reader
expects. Every file comes from a pinned commit of the public repository named in its folder's
PROVENANCE.md, as ``https://raw.githubusercontent.com/<owner>/<repo>/<commit>/<path>``, is
written to a hidden temporary name, checked against its declared SHA-256, and only then
renamed into place. A file already present with the right checksum is not fetched again, so
a folder copied by hand is verified without any network.

Two kinds of files are not byte copies of a download: files stored gzip-compressed (the
checksum is that of the file as published, and a local copy is verified by its uncompressed
content), and built files, made here from downloaded sources by the rule their reader module
holds and verified by the checksum that rule defines (``BuiltFile``).

What cannot be downloaded (absent from every public copy under the sizes used here, see the
PROVENANCE files): the NYCBike1 ``train.npz`` of ST-SSL (Git LFS only), the original
``trn.pkl`` of NYC crime (replaced by the rebuilt tensor), ``NY_Meteorology.h5`` of TaxiNYC.
The folders ``nyc_crime_stshn`` (val/test pickles only) and ``pedalme_london_pgt`` are not
declared because no dataset reads them.

Tests and mirrors: pass ``base_url=`` (or set ``URBANST_DOWNLOAD_BASE``) to a folder or
server with the same ``<owner>/<repo>/<commit>/<path>`` layout (``file://`` works), or
pass ``opener=`` (a callable ``(url, timeout) -> binary file-like``).
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
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

from urbanst.data.declaration import CHUNK, BuiltFile, RemoteFile, Source
from urbanst.data.readers import declared_datasets
from urbanst.errors import UrbanstError
from urbanst.settings import data_dir

__all__ = ["BASE_URL_ENV", "BuiltFile", "Fetcher", "RemoteFile", "dataset_source", "download", "sources", "verify_file"]

RAW_BASE = "https://raw.githubusercontent.com"
BASE_URL_ENV = "URBANST_DOWNLOAD_BASE"
DEFAULT_TIMEOUT = 60.0

Opener = Callable[[str, float], BinaryIO]


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
    source = dataset_source(name)
    dest = data_dir(root) / source.folder
    base = base_url or os.environ.get(BASE_URL_ENV) or RAW_BASE
    fetcher = Fetcher(source, dest, base, opener or open_url, timeout)
    say = progress or (lambda _msg: None)
    created = not dest.exists()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UrbanstError(f"cannot create {dest}: {err.strerror or err}; choose another --data-dir") from None
    try:
        for entry in source.files:
            if (dest / entry.name).is_file() and verify_file(dest / entry.name, entry) is None:
                say(f"{entry.name}: present, checksum ok")
                continue
            if isinstance(entry, RemoteFile):
                fetcher.fetch(entry)
            else:
                fetcher.build(entry)
            say(f"{entry.name}: downloaded, checksum ok")
    except BaseException:
        if created and not any(dest.iterdir()):
            dest.rmdir()  # leave no empty folder behind: readers would take it for a broken copy
        raise
    return dest


def sources() -> dict[str, Source]:
    """The source of every built-in dataset read from files, by dataset name."""
    return {name: spec.source for name, spec in declared_datasets().items() if spec.source is not None}


def dataset_source(name: str) -> Source:
    """The source of dataset ``name`` (a folder name works too)."""
    known = sources()
    if name in known:
        return known[name]
    for source in known.values():
        if source.folder == name:
            return source
    raise UrbanstError(
        f"no download known for {name!r}; downloadable datasets: {', '.join(sorted(known))} "
        "(generated and imported datasets need no download)"
    )


def source_url(repo: str, commit: str, path: str, base_url: str = RAW_BASE) -> str:
    return f"{base_url.rstrip('/')}/{repo}/{commit}/{urllib.parse.quote(path)}"


def verify_file(path: Path, entry: RemoteFile | BuiltFile) -> str | None:
    """None when ``path`` has the declared checksum; otherwise the checksum it has (or why it has none)."""
    try:
        got = entry.checksum(path)
    except Exception as err:  # a damaged local file just fails verification (and is fetched again)
        return f"unreadable ({type(err).__name__})"
    return None if got == entry.sha256 else got


def open_url(url: str, timeout: float) -> BinaryIO:
    import urbanst

    req = urllib.request.Request(url, headers={"User-Agent": f"urbanst/{urbanst.__version__}"})
    return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 (https or a user-chosen mirror)


@dataclass(frozen=True)
class Fetcher:
    """Fetches or builds the files of ``source`` into ``dest``, from ``base`` through ``opener``."""

    source: Source
    dest: Path
    base: str
    opener: Opener
    timeout: float

    def fetch(self, entry: RemoteFile) -> None:
        url = source_url(entry.repo, entry.commit, entry.path, self.base)
        part = self._part(entry.name)
        packed = None
        try:
            with open(part, "wb") as out:
                got, size = self._stream(url, entry.size, out.write)
            if got != entry.sha256:
                raise UrbanstError(
                    f"checksum mismatch for {entry.name} from {url}: expected sha256 {entry.sha256} ({entry.size} "
                    f"bytes), got {got} ({size}{'+' if size > entry.size else ''} bytes); the download was deleted. "
                    "Try again; if it persists the source changed: " + self._hand_copy_hint()
                )
            if entry.gzip:
                packed = self._part(entry.name + ".gz")
                with open(part, "rb") as src, open(packed, "wb") as raw_out:
                    with gzip.GzipFile(filename="", mode="wb", fileobj=raw_out, mtime=0) as gz:
                        shutil.copyfileobj(src, gz, CHUNK)
                os.replace(packed, self.dest / entry.name)
                packed = None
            else:
                os.replace(part, self.dest / entry.name)
        finally:
            for p in (part, packed):
                if p is not None and p.exists():
                    p.unlink()

    def build(self, entry: BuiltFile) -> None:
        for needed in entry.inputs:
            if not (self.dest / needed).is_file():
                raise UrbanstError(f"cannot build {entry.name}: {needed} is missing from {self.dest}")
        text = None
        if entry.source is not None:
            url = source_url(*entry.source, self.base)
            text = self._bytes(url, limit=1 << 20).decode("utf-8", errors="replace")
        part = self._part(entry.name)
        try:
            entry.build(self.dest, part, text)
            got = entry.checksum(part)
            if got != entry.sha256:
                raise UrbanstError(
                    f"checksum mismatch for {entry.name} (built here; checksum of {entry.checks}): expected sha256 "
                    f"{entry.sha256}, got {got}; the file was deleted. " + self._hand_copy_hint()
                )
            os.replace(part, self.dest / entry.name)
        finally:
            if part.exists():
                part.unlink()

    def _part(self, name: str) -> Path:
        return self.dest / f".{name}.part-{uuid.uuid4().hex[:12]}"

    def _stream(self, url: str, limit: int, sink: Callable[[bytes], object]) -> tuple[str, int]:
        """Copy the response into ``sink`` up to ``limit`` + 1 bytes; returns (sha256, size)."""
        h = hashlib.sha256()
        size = 0
        try:
            with self.opener(url, self.timeout) as resp:
                while chunk := resp.read(CHUNK):
                    h.update(chunk)
                    size += len(chunk)
                    try:
                        sink(chunk)
                    except OSError as err:
                        raise UrbanstError(f"cannot write into {self.dest}: {err.strerror or err}") from None
                    if size > limit:  # far more than expected: stop, the checksum will fail
                        break
        except (urllib.error.URLError, OSError) as err:
            raise self._network_error(err, url) from None
        return h.hexdigest(), size

    def _bytes(self, url: str, limit: int) -> bytes:
        buf = bytearray()
        _, size = self._stream(url, limit, buf.extend)
        if size > limit:
            raise UrbanstError(f"{url} is larger than expected ({size}+ bytes); not using it")
        return bytes(buf)

    def _hand_copy_hint(self) -> str:
        repos = list(dict.fromkeys((e.repo, e.commit) for e in self.source.files if isinstance(e, RemoteFile)))
        where = " and ".join(f"https://github.com/{r}/tree/{c}" for r, c in repos)
        return (
            f"copy the folder {self.source.folder}/ by hand from a machine that has it (or its files from {where}, "
            f"declared with their checksums in urbanst.data.readers) into {self.dest.parent}; running the download "
            "again then only verifies it"
        )

    def _network_error(self, err: BaseException, url: str) -> UrbanstError:
        host = urllib.parse.urlparse(url).hostname or url
        hint = self._hand_copy_hint()
        if isinstance(err, urllib.error.HTTPError):
            return UrbanstError(f"{host} answered HTTP {err.code} ({err.reason}) for {url}; the source may have moved: {hint}")
        reason = err.reason if isinstance(err, urllib.error.URLError) else err
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return UrbanstError(f"cannot reach {host}: no answer within {self.timeout:g} s (slow or offline network); {hint}")
        offline_errnos = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ECONNREFUSED, errno.ENETDOWN, errno.ECONNRESET}
        if isinstance(reason, (socket.gaierror, ConnectionError)) or (
            isinstance(reason, OSError) and reason.errno in offline_errnos
        ):
            return UrbanstError(f"cannot reach {host}: this machine looks offline; {hint}")
        return UrbanstError(f"cannot fetch {url}: {reason}; {hint}")
