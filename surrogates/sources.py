"""Where the source tasks of a transfer surrogate come from: an archive given by the user, else the source
archive shipped with the project (the offline suite's evaluated networks), and where their features are
cached: a source archive is opened read-only and never written to; a feature cache stored inside it is used,
and features it lacks are computed into a cache of the user's (``SourceFeatureStore``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from data.archive import PACKAGED_ARCHIVES, Archive, is_packaged
from features.cache import MemoryStore

#: The source archive shipped with the project, inside the ``data`` package.
SHIPPED_ARCHIVE = PACKAGED_ARCHIVES / "offline-tasks.sqlite"


def source_archive(path: "str | os.PathLike[str] | None" = None, option: str = "--archive") -> Path:
    """The archive of source evaluations to transfer from: ``path`` when given, else ``SHIPPED_ARCHIVE``;
    either must exist (a one-line error says which is missing and that ``option`` names another one)."""
    if path is not None:
        found = Path(path)
        if not found.is_file():
            raise FileNotFoundError(f"source archive {os.fspath(found)!r} does not exist")
        return found
    if not SHIPPED_ARCHIVE.is_file():
        raise FileNotFoundError(f"the shipped source archive ({SHIPPED_ARCHIVE}) is not in this version of "
                                f"surrogate-nas; pass an archive of evaluated source tasks with {option} A")
    return SHIPPED_ARCHIVE


def open_source_archive(path: "str | os.PathLike[str] | None" = None, option: str = "--archive") -> Archive:
    """The source archive (``source_archive``) opened read-only: transferring from it never writes into it."""
    return Archive(source_archive(path, option), readonly=True)


class SourceFeatureStore:
    """The feature cache of an archive that is only read (the shipped one, or any opened read-only): vectors
    cached in ``archive`` are read from it, and vectors computed for it go to ``cache`` (default: a
    ``MemoryStore`` of this process; or a writable archive, e.g. one in the run's folder), never into it.
    Same ``get_features``/``put_features`` calls as an archive, for ``features.cache.CachedFeaturiser``."""

    def __init__(self, archive: Any, cache: Any = None) -> None:
        self.archive = archive
        self.cache = cache if cache is not None else MemoryStore()

    def get_features(self, arch_hashes: Sequence[str], task: str, featuriser: str,
                     version: str) -> dict[str, np.ndarray]:
        found = self.archive.get_features(arch_hashes, task, featuriser, version)
        rest = [h for h in arch_hashes if h not in found]
        if rest:
            found.update(self.cache.get_features(rest, task, featuriser, version))
        return found

    def put_features(self, arch_hash: str, task: str, featuriser: str, version: str, names: Sequence[str],
                     vector: Sequence[float]) -> None:
        self.cache.put_features(arch_hash, task, featuriser, version, names, vector)


def feature_store_of(archive: Any) -> Any:
    """Where features of ``archive``'s architectures are cached: the archive itself, or, for one opened
    read-only or the shipped archive, a ``SourceFeatureStore`` that reads its cache and writes nothing to it."""
    if getattr(archive, "readonly", False) or is_packaged(getattr(archive, "path", "")):
        return SourceFeatureStore(archive)
    return archive
