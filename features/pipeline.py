"""Feature sets by name, for the CLI and the surrogates: ``graf``, ``zcp``, combinations, and ``published``.

``make_featuriser("graf,zcp", task)`` gives one transformer whose columns are GRAF's then the proxies'
(the published order of the tabular encoding).  ``published`` is the published einspace encoding itself,
exactly 392 columns: the 385 GRAF family columns (no descriptors or path statistics) and the seven
published proxies at batch 32 with fisher computed as published (``features.zcp.PublishedProxies``).
GRAF is the einspace family set for einspace architectures and the original NB201 families for ``nb201``
cells; the proxies are computed on one mini-batch of the task's training data, except on a tabular task
that ships its own proxy table (the NAS-Bench-201 one), where they are looked up.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from data.task import grammar_of
from features.cache import CachedFeaturiser
from features.graf import GRAF, NB201GRAF, GrammarGRAF

FEATURE_SETS = ("graf", "zcp", "published")
#: Feature sets that stand alone (not combined with others in one spec).
WHOLE_SETS = ("published",)
#: Feature sets that compute zero-cost proxies (so they need the task's training data).
PROXY_SETS = ("zcp", "published")


class TableProxies(TransformerMixin, BaseEstimator):
    """The zero-cost proxies a tabular task ships (``task.proxies(arch)``), in ``features.zcp.ALL`` order."""

    version = "1"

    def __init__(self, task: Any = None) -> None:
        self.task = task

    def fit(self, X: Any = None, y: Any = None) -> "TableProxies":
        return self

    def transform(self, X: Sequence[Any]) -> np.ndarray:
        from features.zcp import ALL  # deferred: torch

        rows = []
        for arch in X:
            values = self.task.proxies(arch)
            rows.append([float(values.get(name, values.get("jacov" if name == "jacob_cov" else name, np.nan)))
                         for name in ALL])
        return np.asarray(rows, dtype=float).reshape(-1, len(ALL))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        from features.zcp import ALL  # deferred: torch

        return np.asarray(ALL, dtype=object)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


class Concat(TransformerMixin, BaseEstimator):
    """Columns of several featurisers side by side (names kept; they do not collide across sets)."""

    version = "1"

    def __init__(self, parts: Sequence[Any] = ()) -> None:
        self.parts = parts

    def fit(self, X: Sequence[Any], y: Any = None) -> "Concat":
        for p in self.parts:
            p.fit(X, y)
        return self

    def transform(self, X: Sequence[Any]) -> np.ndarray:
        X = list(X)
        return np.hstack([np.asarray(p.transform(X), dtype=float) for p in self.parts])

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.concatenate([np.asarray(p.get_feature_names_out(), dtype=object) for p in self.parts])

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


def parse_feature_sets(spec: "str | Sequence[str]") -> list[str]:
    names = [s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    bad = [n for n in names if n not in FEATURE_SETS]
    if bad or not names:
        raise ValueError(f"unknown feature set(s) {bad or spec!r}; choose from {', '.join(FEATURE_SETS)}")
    whole = [n for n in names if n in WHOLE_SETS]
    if whole and len(names) > 1:
        raise ValueError(f"feature set {whole[0]!r} is a whole encoding: use it alone, not in {spec!r}")
    return names


def uses_proxies(spec: "str | Sequence[str]") -> bool:
    """Whether the feature spec computes zero-cost proxies (and so needs a task with training data)."""
    return any(n in PROXY_SETS for n in parse_feature_sets(spec))


def make_one(name: str, task: Any = None, grammar: str = "einspace", **zcp_params: Any) -> Any:
    """One named featuriser for architectures of ``grammar`` on ``task``."""
    if name == "graf":
        if grammar == "nb201":
            return NB201GRAF()
        return GRAF() if grammar.startswith("einspace") else GrammarGRAF(grammar)
    if name == "zcp":
        if task is not None and getattr(task, "is_tabular", False):
            if not hasattr(task, "proxies"):
                raise ValueError(f"task {task.name!r} is a look-up table without proxies: zcp is not available")
            return TableProxies(task)
        if task is None:
            raise ValueError("zcp features need a task (its training data gives the mini-batch)")
        from features.zcp import ZeroCostProxies  # deferred: torch

        return ZeroCostProxies(task=task, **zcp_params)
    if name == "published":
        return _published(task, grammar, **zcp_params)
    raise ValueError(f"unknown feature set {name!r}; choose from {', '.join(FEATURE_SETS)}")


def _published(task: Any, grammar: str, **zcp_params: Any) -> "Concat":
    """The published einspace encoding: 385 GRAF columns then the 7 published proxies (392 columns)."""
    if not grammar.startswith("einspace"):
        raise ValueError(f"feature set 'published' is the einspace encoding; architectures of {grammar!r} "
                         "take graf, zcp or graf,zcp")
    if task is None or getattr(task, "is_tabular", False):
        raise ValueError("feature set 'published' needs a task with training data (its proxies' mini-batch)")
    from features.zcp import PublishedProxies  # deferred: torch

    return Concat([GRAF(extras=False), PublishedProxies(task=task, **zcp_params)])


def make_featuriser(spec: "str | Sequence[str]", task: Any = None, grammar: str | None = None, **zcp_params: Any) -> Any:
    """``"graf"``, ``"zcp"``, ``"graf,zcp"`` or ``"published"`` as one transformer over architectures.
    ``zcp_params`` go to ``ZeroCostProxies`` (``PublishedProxies`` for ``published``; not to a task's proxy
    table): ``proxies``, ``batch_size`` (64; 32 for ``published``), ``seed``, ``device`` and the guards:
    ``max_memory_mb`` (24576: estimated MiB of the largest proxy pass), ``max_params`` (5M), ``max_flops``
    (1e9 per sample), ``max_seconds`` (300, a wall-clock safety net); an architecture over a budget gets NaN
    proxies with the reason, before its network is built (``features.zcp.guard``)."""
    grammar = grammar_of(task, grammar)
    parts = [make_one(n, task, grammar, **zcp_params) for n in parse_feature_sets(spec)]
    return parts[0] if len(parts) == 1 else Concat(parts)


def cached(featuriser: Any, archive: Any, task_name: str, progress: bool = False) -> Any:
    """``featuriser`` with every part's vectors cached in ``archive`` under ``task_name``."""
    def one(part: Any) -> Any:
        inner = part.featuriser if isinstance(part, CachedFeaturiser) else part  # re-target, never nest
        return CachedFeaturiser(inner, archive, task_name, progress=progress)

    if isinstance(featuriser, Concat):
        return Concat([one(p) for p in featuriser.parts])
    return one(featuriser)
