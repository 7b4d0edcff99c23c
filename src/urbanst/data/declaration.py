"""How a reader module declares its datasets: name, description, read function and source files.

A reader module of :mod:`urbanst.data.readers` ends with ``DATASETS``, a tuple of
:class:`DatasetSpec`. A dataset read from files names its :class:`Source`: the folder under
the data directory and every file in it, each with the full SHA-256 that
``urbanst data download`` checks. Files come from a pinned commit of a public repository
(:class:`Repo`); a few are built here from downloaded ones by a fixed rule (:class:`BuiltFile`).
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from urbanst.data.container import STData

CHUNK = 1 << 20


def sha256_file(path: Path, opener: Callable = open) -> str:
    """Full SHA-256 of a file's content (``opener=gzip.open``: of its uncompressed content)."""
    h = hashlib.sha256()
    with opener(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


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

    def checksum(self, path: Path) -> str:
        """What ``sha256`` is compared with for a local copy at ``path``."""
        return sha256_file(path, gzip.open if self.gzip else open)


@dataclass(frozen=True)
class BuiltFile:
    """A file made here from downloaded sources by ``build``; ``sha256`` is of what ``checks`` says."""

    name: str
    sha256: str
    checks: str  # what the checksum covers
    build: Callable[[Path, Path, str | None], None]  # (folder, output file, text of ``source`` or None)
    checksum: Callable[[Path], str] = sha256_file
    inputs: tuple[str, ...] = ()  # local files of the same folder it is built from
    source: tuple[str, str, str] | None = None  # (repo, commit, path) of a text source read while building


@dataclass(frozen=True)
class Repo:
    """A public GitHub repository pinned at one commit; ``file`` declares one of its files."""

    name: str  # owner/name
    commit: str

    def file(self, name: str, path: str, sha256: str, size: int, gzip: bool = False) -> RemoteFile:
        return RemoteFile(name, self.name, self.commit, path, sha256, size, gzip)


@dataclass(frozen=True)
class Source:
    """The folder of a dataset under the data directory, and every file it holds."""

    folder: str
    files: tuple[RemoteFile | BuiltFile, ...]


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: ``reader`` takes the source folder (the data directory when ``source`` is None)."""

    name: str
    description: str
    reader: Callable[[Path], STData]
    source: Source | None = None  # None for generated data

    @property
    def folder(self) -> str | None:
        return None if self.source is None else self.source.folder
