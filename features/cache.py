"""Feature vectors cached in the archive, keyed by (architecture hash, task, featuriser name, version).

``CachedFeaturiser`` wraps any numeric featuriser (a transformer over lists of architectures with
``get_feature_names_out`` and a ``version``): ``transform`` reads what the archive already holds and
computes, then stores, only the rest, in chunks, so an interrupted computation resumes where it stopped.
The cache key's version combines the featuriser's ``version`` with a digest of its JSON-able parameters,
so a ZCP batch of 64 and one of 256 never share a cache entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from features import proxy_warnings
from nas.progress import Progress

log = logging.getLogger(__name__)


def featuriser_key(featuriser: Any) -> tuple[str, str]:
    """``(name, version)`` identifying a featuriser's output for caching: the class name, and its
    ``version`` plus a digest of its parameters (objects such as the task are keyed separately).  Parameters a
    featuriser lists in ``uncached_params`` (guards that only decide *whether* a row is computed, never its
    values) are left out, so changing a guard keeps the cache."""
    while isinstance(featuriser, CachedFeaturiser):  # a cache of a cache is keyed by what it caches
        featuriser = featuriser.featuriser
    params = {}
    exempt = set(getattr(featuriser, "uncached_params", ()))
    if hasattr(featuriser, "get_params"):
        for k, v in sorted(featuriser.get_params(deep=False).items()):
            if k not in exempt and isinstance(v, (str, int, float, bool, type(None), list, tuple)):
                params[k] = v
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return type(featuriser).__name__.lower(), f"{getattr(featuriser, 'version', '0')}-{digest}"


class MemoryStore:
    """An in-process stand-in for the archive's feature cache (same ``get_features``/``put_features``
    calls), for surrogates refitted many times within one search."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str, str, str], np.ndarray] = {}

    def get_features(self, arch_hashes: Sequence[str], task: str, featuriser: str, version: str) -> dict[str, np.ndarray]:
        out = {}
        for h in arch_hashes:
            row = self._rows.get((h, task, featuriser, version))
            if row is not None:
                out[h] = row
        return out

    def put_features(self, arch_hash: str, task: str, featuriser: str, version: str, names: Sequence[str],
                     vector: Sequence[float]) -> None:
        self._rows[(arch_hash, task, featuriser, version)] = np.asarray(vector, dtype=float)


class CachedFeaturiser(TransformerMixin, BaseEstimator):
    """``featuriser`` with its vectors cached in ``archive`` (a ``data.archive.Archive``, or a ``MemoryStore``)
    under ``task`` (a name).  ``chunk`` architectures are computed and stored at a time."""

    def __init__(self, featuriser: Any, archive: Any, task: str, chunk: int = 32, progress: bool = False) -> None:
        self.featuriser = featuriser
        self.archive = archive
        self.task = task
        self.chunk = chunk
        self.progress = progress

    def fit(self, X: Sequence[Any], y: Any = None) -> "CachedFeaturiser":
        self.featuriser.fit(X, y)
        return self

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return self.featuriser.get_feature_names_out()

    def transform(self, X: Sequence[Any]) -> np.ndarray:
        archs = list(X)
        name, version = featuriser_key(self.featuriser)
        names = [str(n) for n in self.get_feature_names_out()]
        cached = self.archive.get_features([a.hash for a in archs], self.task, name, version)
        missing = [a for a in {a.hash: a for a in archs if a.hash not in cached}.values()]
        if missing:
            log.info("%s: %d of %d architectures cached, computing %d", name, len(archs) - len(missing), len(archs),
                     len(missing))
        # one line of zero-cost-proxy NaN reasons for the whole step, not one per chunk or network
        with proxy_warnings.summarised(), \
                Progress(len(missing), f"features {name}", "arch", enabled=self.progress and bool(missing)) as bar:
            for i in range(0, len(missing), self.chunk):
                part = missing[i : i + self.chunk]
                rows = np.asarray(self.featuriser.transform(part), dtype=float)
                for arch, row in zip(part, rows):
                    if not np.isnan(row).all():  # a refused row (over a guard, not compiled) costs ms to redo
                        self.archive.put_features(arch.hash, self.task, name, version, names, row)
                    cached[arch.hash] = row
                bar.update(len(part))
        out = np.vstack([cached[a.hash] for a in archs]) if archs else np.zeros((0, len(names)))
        return out

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags
