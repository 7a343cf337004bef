"""Transfer across tasks: per-task target normalisation, the transfer surrogate, and the offline protocols.

Targets of different tasks live on different scales (a 40 % network on one task is excellent, on another
poor), so each *block* of training data (one task's run, one file of the published transfer data) is
normalised on its own before the blocks are pooled:

* ``minmax``: ``(y - min) / (max - min)`` over the block (a constant block becomes 0.5);
* ``percentile``: the block's ECDF with ties averaged, ``rank(y) / n`` with average ranks, in ``(0, 1]``;
* ``ecdf``: the published percentile, the fraction of the block's values ≤ y (ties share the highest rank),
  in ``(0, 1]``;
* ``none``: raw targets.

Failed trainings (targets ≤ 0, or not finite) are dropped from *training* blocks when ``drop_failed``,
before normalising; test data keep them, as in the published protocols ("we would still get them in search").

Shapes.  A *block* is ``(X, y, task)``: ``X`` a list of ``n`` architectures, featurised on ``task`` (an
``(n, d)`` feature matrix for a surrogate with ``features=None``), ``y`` ``n`` targets, ``task`` a task name
or object.  For the protocols, a
*dataset* is a named ``TaskData``: a training run ``(X, y)`` (published: the seed-1 run) and optionally a
test run ``(X_test, y_test)`` (published: the seed-0 run); without a test run, the rows are split into two
halves by a permutation seeded with ``random_state`` (the first ``ceil(n/2)`` permuted rows train, the
rest test).  ``datasets`` is a sequence of ``TaskData`` or a mapping ``name -> (X, y)`` or
``name -> (X, y, X_test, y_test)``; every ``X`` must have the same columns.  ``surrogates.task_runs`` finds
each task's two independent runs in archives (two builds with different seeds, or a second archive).

Protocols: ``one_to_one`` trains on a source's training run and tests on a target's test run
for every ordered pair (the diagonal is within-task, across runs or halves); ``leave_one_out`` trains on
every run of every other dataset (each run normalised as its own block) and tests on both runs of the held-out
one.  Both return lists of row dicts; ``pivot``, ``write_table`` and ``heatmap`` turn them into reports.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

import numpy as np
from scipy import stats
from sklearn.utils.validation import check_is_fitted

from surrogates import folder
from surrogates.base import FeatureSurrogate, Loader, build_featuriser, featurise_with, grammar_of, \
    is_feature_matrix, task_label, task_ref
from surrogates.folder import MANIFEST, PersistenceError
from surrogates.metrics import all_metrics
from surrogates.tabular import TabularSurrogate

log = logging.getLogger(__name__)

NORMALISATIONS: tuple[str, ...] = ("minmax", "percentile", "ecdf", "none")


# --------------------------------------------------------------------------------------------------
# Target normalisation
# --------------------------------------------------------------------------------------------------


def normalise_targets(y: Any, method: str | None = "minmax") -> np.ndarray:
    """One block's targets normalised by ``method`` (``minmax``, ``percentile``, ``ecdf``, ``none``/None); NaN
    stays NaN and is ignored by the statistics."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    method = "none" if method is None else str(method).lower()
    if method not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {method!r}; choose from {', '.join(NORMALISATIONS)}")
    if method == "none" or y.size == 0:
        return y.copy()
    ok = np.isfinite(y)
    out = np.full_like(y, np.nan)
    if not ok.any():
        return out
    values = y[ok]
    if method == "minmax":
        lo, hi = values.min(), values.max()
        out[ok] = 0.5 if hi == lo else (values - lo) / (hi - lo)
    elif method == "ecdf":
        out[ok] = stats.rankdata(values, method="max") / values.size
    else:
        out[ok] = stats.rankdata(values, method="average") / values.size
    return out


def failed_mask(y: Any) -> np.ndarray:
    """Rows that are failed trainings: target ≤ 0 or not finite (the published archives record failures as 0)."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    return ~np.isfinite(y) | (y <= 0.0)


def _take(X: Any, index: np.ndarray) -> Any:
    if is_feature_matrix(X):
        return np.asarray(X, dtype=np.float64)[index]
    items = list(X)
    return [items[i] for i in index]


def _length(X: Any) -> int:
    return int(np.asarray(X).shape[0]) if is_feature_matrix(X) else len(list(X))


def _stack(parts: Sequence[Any]) -> Any:
    """Row-wise concatenation of matrices (checking widths) or of architecture lists."""
    kinds = {is_feature_matrix(p) for p in parts}
    if len(kinds) > 1:
        raise ValueError("cannot pool feature matrices with architectures; featurise every block the same way")
    if kinds == {True}:
        mats = [np.asarray(p, dtype=np.float64) for p in parts]
        widths = {m.shape[1] for m in mats if m.ndim == 2}
        if any(m.ndim != 2 for m in mats) or len(widths) > 1:
            raise ValueError(f"blocks have different feature widths {sorted(widths)} (or are not 2-D)")
        return np.vstack(mats)
    return [a for p in parts for a in p]


def size_bands_of(sizes: Any, bands: int) -> np.ndarray:
    """Band index (0 .. ``bands - 1``) of every row: equal-count bands of ``log(1 + size)`` (ties share a band,
    so a band may hold more rows than another; a block with fewer distinct sizes has fewer bands)."""
    logs = np.log1p(np.maximum(np.nan_to_num(np.asarray(sizes, dtype=np.float64).reshape(-1)), 0.0))
    if bands <= 1 or logs.size == 0:
        return np.zeros(logs.size, dtype=int)
    edges = np.quantile(logs, np.linspace(0.0, 1.0, bands + 1)[1:-1])
    return np.unique(np.searchsorted(np.unique(edges), logs, side="right"), return_inverse=True)[1].reshape(-1)


def normalise_within(y: Any, groups: np.ndarray, method: str | None) -> np.ndarray:
    """``normalise_targets`` applied to each group of rows on its own."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    out = np.empty_like(y)
    for g in np.unique(groups):
        rows = groups == g
        out[rows] = normalise_targets(y[rows], method)
    return out


def prepare_block(X: Any, y: Any, normalisation: str | None, drop_failed: bool,
                  name: str = "block", sizes: Any = None,
                  bands: int = 1) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """One training block with failures dropped (if asked) and targets normalised: ``(X, y, description)``.
    With ``sizes`` (one per row, e.g. parameter counts) and ``bands`` > 1 the targets are normalised within
    each of ``bands`` size bands of the kept rows (``size_bands_of``), so that the block says which networks
    are good *for their size* and nothing about whether larger networks do better."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    n = _length(X)
    if n != y.size:
        raise ValueError(f"block {name!r}: {n} rows of features but {y.size} targets")
    keep = ~failed_mask(y) if drop_failed else np.isfinite(y)
    index = np.flatnonzero(keep)
    if sizes is not None and bands > 1:
        sizes = np.asarray(sizes, dtype=np.float64).reshape(-1)
        if sizes.size != n:
            raise ValueError(f"block {name!r}: {n} rows but {sizes.size} sizes")
        yk = normalise_within(y[index], size_bands_of(sizes[index], bands), normalisation)
    else:
        yk = normalise_targets(y[index], normalisation)
    desc = {"name": name, "n_rows": int(n), "n_dropped": int(n - index.size),
            "y_min": float(y[index].min()) if index.size else None, "y_max": float(y[index].max()) if index.size else None}
    return _take(X, index), yk, desc


# --------------------------------------------------------------------------------------------------
# The transfer surrogate
# --------------------------------------------------------------------------------------------------


class Block(NamedTuple):
    """One block of training data: architectures (or a feature matrix) ``X``, targets ``y``, and its task."""

    X: Any
    y: Any
    task: Any = None


SOURCES_FILE = "sources.csv"
CURRENT = " (current)"


class TransferSurrogate(FeatureSurrogate):
    """A tabular model (``base``: ``rf``, ``xgb`` or ``xgb_tuned``) fitted on pooled blocks of other tasks'
    evaluations plus the current task's own, each block's targets normalised on its own (the published
    ``tr_rf``).  Predictions are on that normalised scale: use them for ranking, not as accuracies.

    ``size_bands`` > 1 normalises each *source* block within that many equal-count bands of its networks'
    parameter counts (``prepare_block``): the sources then teach which networks are good for their size, not
    that larger ones are better (true on most shipped source tasks, false on language-mini), and any preference
    for size comes from the current task's own block, which is normalised whole.

    ``fit_sources(blocks, current=None)`` learns the source data: every block is featurised on its own task
    and normalised, and the pooled rows are kept (``source_X_``, ``source_y_``; saved with the surrogate).
    ``fit(archs, y)``, the surrogate contract a search refits with, featurises the current task's
    architectures on ``task`` and fits the base model on the source rows plus this current block; a fresh
    surrogate without sources fits on the current block alone.

    Fitted attributes: ``model_`` (a fitted ``TabularSurrogate`` on the pooled data), ``blocks_`` (a
    description of every block), ``source_X_``, ``source_y_``, ``source_blocks_``, and ``n_features_in_``,
    ``feature_names_``, ``featuriser_``, ``training_``, ``check_X_`` (the pooled model's).
    """

    kind = "transfer"

    def __init__(self, base: str = "rf", normalisation: str = "minmax", drop_failed: bool = True,
                 features: str | None = "graf,zcp", task: Any = None, random_state: int = 0,
                 model_params: Mapping[str, Any] | None = None, n_jobs: int | None = 1,
                 size_bands: int = 1) -> None:
        self.base = base
        self.normalisation = normalisation
        self.size_bands = size_bands
        self.drop_failed = drop_failed
        self.features = features
        self.task = task_ref(task, strict=False)
        self.random_state = random_state
        self.model_params = model_params
        self.n_jobs = n_jobs

    def _featurise_block(self, X: Any, task: Any,
                         archive: Any = None) -> tuple[np.ndarray, list[str] | None, list[dict[str, str]] | None]:
        if self.features is None:
            return np.asarray(X, dtype=np.float64), None, None
        items = list(X)
        featuriser = build_featuriser(self.features, task, grammar_of(items), archive,
                                      task_label(task) if archive is not None else None, progress=archive is not None)
        return featurise_with(featuriser, items)

    def fit_sources(self, sources: Iterable[Any], current: Any = None, *,
                    feature_names: Sequence[str] | None = None, archive: Any = None) -> "TransferSurrogate":
        """Fit on ``sources``, a sequence of blocks ``(X, y, task)``, plus ``current``, the current task's own
        ``(X, y)`` (or None).  Architecture blocks are featurised on their own task (the current block on
        ``self.task``), the sources' features read from and written to ``archive``'s cache under their task's
        name when given; ``feature_names`` names the columns when ``features=None``."""
        blocks = [Block(*b) for b in sources]
        if not blocks and current is None:
            raise ValueError("TransferSurrogate.fit_sources: no training blocks (sources is empty and current is None)")
        mats, ys, descs = [], [], []
        names, info = (None if feature_names is None else [str(n) for n in feature_names]), None
        for i, block in enumerate(blocks):
            label = task_label(block.task) or f"block{i}"
            X = block.X if is_feature_matrix(block.X) else list(block.X)  # read twice: features, sizes
            matrix, block_names, block_info = self._featurise_block(X, block.task, archive)
            if block_names is not None:
                if names is not None and block_names != names:
                    raise ValueError(f"TransferSurrogate.fit: block {i} ({label}) has other feature columns than the first")
                names, info = block_names, info or block_info
            Xb, yb, desc = prepare_block(matrix, block.y, self.normalisation, self.drop_failed, label,
                                         self._sizes(X, label), self.size_bands)
            mats.append(Xb)
            ys.append(yb)
            descs.append(desc)
        self.source_X_ = _stack(mats) if mats else None
        self.source_y_ = np.concatenate(ys) if ys else None
        self.source_blocks_ = descs
        self.source_names_, self.source_info_ = names, info
        if current is None:
            return self._fit_pooled(self.source_X_, self.source_y_, names, info, descs, "transfer")
        cur = tuple(current)
        matrix, cur_names, cur_info = self._featurise_block(cur[0], cur[2] if len(cur) > 2 else self.task)
        return self.fit_matrix(matrix, cur[1], cur_names or names, featuriser_info=cur_info or info,
                               source="transfer")

    def _sizes(self, X: Any, label: str) -> np.ndarray | None:
        """Parameter counts of a source block's architectures when targets are normalised within size bands."""
        if int(self.size_bands) <= 1:
            return None
        if is_feature_matrix(X):
            raise ValueError(f"TransferSurrogate: size_bands={self.size_bands} needs the architectures of block "
                             f"{label!r} (their parameter counts), not a feature matrix")
        return np.array([a.num_params for a in X], dtype=np.float64)

    def _sources(self) -> tuple[np.ndarray | None, np.ndarray | None, list[dict[str, Any]]]:
        blocks = list(getattr(self, "source_blocks_", None) or [])
        X, y = getattr(self, "source_X_", None), getattr(self, "source_y_", None)
        if blocks and X is None:
            raise ValueError("this TransferSurrogate was saved without its source data (an older format with an "
                             "XGBoost base), so it cannot be refitted; refit it with fit_sources and save it again")
        return X, y, blocks

    def fit_matrix(self, X: Any, y: Any, feature_names: Sequence[str] | None = None, *,
                   featuriser_info: list[dict[str, str]] | None = None, source: str = "matrix",
                   archs: Sequence[Any] | None = None) -> "TransferSurrogate":
        """Fit on the source rows (if any) plus the current task's feature matrix ``X`` and targets ``y``,
        normalised as a block of its own."""
        src_X, src_y, src_blocks = self._sources()
        label = (self.task_name or f"block{len(src_blocks)}") + CURRENT
        Xc, yc, desc = prepare_block(np.asarray(X, dtype=np.float64), y, self.normalisation, self.drop_failed, label)
        names = None if feature_names is None else [str(n) for n in feature_names]
        known = getattr(self, "source_names_", None)
        if src_X is not None and names is not None and known is not None and names != list(known):
            raise ValueError("TransferSurrogate.fit: the current task's feature columns differ from the sources'")
        pooled_X = Xc if src_X is None else _stack([src_X, Xc])
        pooled_y = yc if src_y is None else np.concatenate([src_y, yc])
        info = featuriser_info or getattr(self, "source_info_", None)
        return self._fit_pooled(pooled_X, pooled_y, names or known, info, [*src_blocks, desc], source)

    def _fit_pooled(self, X: np.ndarray, y: np.ndarray, names: Sequence[str] | None,
                    info: list[dict[str, str]] | None, descs: list[dict[str, Any]], source: str) -> "TransferSurrogate":
        if y is None or y.size == 0:
            raise ValueError("TransferSurrogate.fit: every training row was dropped as a failure")
        model = TabularSurrogate(self.base, self.features, self.task, self.random_state, self.model_params, self.n_jobs)
        model.fit_matrix(X, y, names, featuriser_info=info, source=source)
        self.model_ = model
        self.blocks_ = descs
        self.n_features_in_ = model.n_features_in_
        self.feature_names_ = model.feature_names_
        self.featuriser_ = model.featuriser_
        self.training_ = model.training_
        self.check_X_ = model.check_X_
        log.info("TransferSurrogate: fitted on %d rows from %d blocks (%s targets)", y.size, len(descs),
                 self.normalisation)
        return self

    def predict_matrix(self, X: Any) -> np.ndarray:
        """Predicted normalised targets (1-D float64) for a feature matrix."""
        check_is_fitted(self, "model_")
        return self.model_.predict_matrix(X)

    def _save_model(self, directory: Path) -> dict[str, Any]:
        self.model_.save(directory / "base")
        src_X, src_y, src_blocks = self._sources()
        sources: dict[str, Any] = {"blocks": folder.to_json(src_blocks, "source_blocks"), "n_rows": 0}
        if src_X is not None and len(src_X):
            path = directory / SOURCES_FILE
            folder.write_training_csv(path, [str(n) for n in self.feature_names_], src_X, src_y)
            sources.update(file=SOURCES_FILE, n_rows=int(len(src_y)), sha256=folder.sha256(path))
        return {"base": "base", "blocks": folder.to_json(self.blocks_, "blocks"), "sources": sources}

    def _load_model(self, directory: Path, manifest: Mapping[str, Any], load: Loader | None) -> None:
        path = directory / MANIFEST
        if load is None:
            raise PersistenceError(f"{path}: loading a transfer surrogate needs a loader for its base model")
        model = load(folder.subfolder(directory, folder.field(manifest, "base", str, path), path, "base"),
                     task=self.task)
        if not isinstance(model, TabularSurrogate):
            raise PersistenceError(f"{directory}/base: expected a tabular surrogate, found {type(model).__name__}")
        self.model_ = model
        self.blocks_ = list(manifest.get("blocks") or [])
        names = [str(n) for n in manifest["feature_names"]]
        self.source_names_, self.source_info_ = names, (manifest.get("featuriser") or {}).get("parts")
        info = manifest.get("sources")
        if isinstance(info, Mapping):
            self.source_blocks_ = list(info.get("blocks") or [])
            if info.get("file"):
                self.source_X_, self.source_y_ = folder.read_training_csv(folder.model_file(directory, info, path), names)
            else:
                self.source_X_, self.source_y_ = np.zeros((0, len(names))), np.zeros(0)
            return
        self._sources_from_base(model, len(names))

    def _sources_from_base(self, model: TabularSurrogate, width: int) -> None:
        """A folder saved before the source rows were kept: a forest base holds the pooled rows (sources
        first); an XGBoost base holds none, so such a surrogate predicts but cannot be refitted."""
        self.source_blocks_ = [b for b in self.blocks_ if not str(b.get("name", "")).endswith(CURRENT)]
        kept = sum(int(b.get("n_rows", 0)) - int(b.get("n_dropped", 0)) for b in self.source_blocks_)
        if model.train_X_ is not None:
            self.source_X_, self.source_y_ = model.train_X_[:kept], model.train_y_[:kept]
        else:
            self.source_X_, self.source_y_ = (None, None) if self.source_blocks_ else (np.zeros((0, width)), np.zeros(0))


# --------------------------------------------------------------------------------------------------
# Offline protocols
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskData:
    """A named dataset for the protocols: a training run ``(X, y)`` and an optional test run
    ``(X_test, y_test)``; see the module docstring for shapes and the half split."""

    name: str
    X: Any
    y: Any
    X_test: Any = None
    y_test: Any = None

    def runs(self, random_state: int = 0) -> tuple[tuple[Any, np.ndarray], tuple[Any, np.ndarray]]:
        """``((X_train, y_train), (X_test, y_test))``: the two runs, or two seeded halves of the one run."""
        y = np.asarray(self.y, dtype=np.float64).reshape(-1)
        if _length(self.X) != y.size:
            raise ValueError(f"dataset {self.name!r}: {_length(self.X)} rows of features but {y.size} targets")
        if self.X_test is not None:
            y_test = np.asarray(self.y_test, dtype=np.float64).reshape(-1)
            if _length(self.X_test) != y_test.size:
                raise ValueError(f"dataset {self.name!r}: {_length(self.X_test)} test rows but {y_test.size} test targets")
            return (self.X, y), (self.X_test, y_test)
        if y.size < 2:
            raise ValueError(f"dataset {self.name!r}: {y.size} row(s) cannot be split into two halves")
        perm = np.random.default_rng(random_state).permutation(y.size)
        cut = y.size - y.size // 2
        a, b = np.sort(perm[:cut]), np.sort(perm[cut:])
        return (_take(self.X, a), y[a]), (_take(self.X, b), y[b])


def as_task_data(datasets: "Sequence[TaskData] | Mapping[str, Sequence[Any]]") -> list[TaskData]:
    """``datasets`` (see the module docstring) as a list of ``TaskData`` with distinct names."""
    if isinstance(datasets, Mapping):
        out = []
        for name, value in datasets.items():
            if isinstance(value, TaskData):
                out.append(value)
            elif len(value) in (2, 4):
                out.append(TaskData(str(name), *value))
            else:
                raise ValueError(f"dataset {name!r}: expected (X, y) or (X, y, X_test, y_test), got {len(value)} items")
    else:
        out = list(datasets)
    bad = [type(d).__name__ for d in out if not isinstance(d, TaskData)]
    if bad:
        raise TypeError(f"datasets must be TaskData values or a mapping of name -> tuple; got {', '.join(bad)}")
    names = [d.name for d in out]
    if len(set(names)) != len(names):
        raise ValueError(f"dataset names must be distinct: {names}")
    return out


def _fit(model_factory: Callable[[], Any], train: Sequence[tuple[Any, np.ndarray, str]],
         normalisation: str | None, drop_failed: bool) -> tuple[Any, int]:
    """``(model, n_train)``: ``model_factory()`` fitted on the pooled training blocks."""
    parts = [prepare_block(X, y, normalisation, drop_failed, name) for X, y, name in train]
    X = _stack([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    if y.size == 0:
        raise ValueError(f"no training rows left in {[name for *_, name in train]} after dropping failures")
    model = model_factory()
    model.fit(X, y)
    return model, int(y.size)


def _score(model: Any, n_train: int, X_test: Any, y_test: np.ndarray, frac: float) -> dict[str, Any]:
    pred = np.asarray(model.predict(X_test), dtype=np.float64).reshape(-1)
    row = all_metrics(y_test, pred, frac)
    row.update(n_train=n_train, n_test=int(np.asarray(y_test).size))
    return row


def _evaluate(model_factory: Callable[[], Any], train: Sequence[tuple[Any, np.ndarray, str]], X_test: Any,
              y_test: np.ndarray, normalisation: str | None, drop_failed: bool, frac: float) -> dict[str, Any]:
    return _score(*_fit(model_factory, train, normalisation, drop_failed), X_test, y_test, frac)


def one_to_one(datasets: "Sequence[TaskData] | Mapping[str, Sequence[Any]]", model_factory: Callable[[], Any], *,
               normalisation: str | None = "none", drop_failed: bool = True, random_state: int = 0,
               frac: float = 0.1) -> list[dict[str, Any]]:
    """Every source → target pair: fit ``model_factory()`` on the source's training run (failures dropped if
    ``drop_failed``, targets normalised; one fit per source), test on the target's test run (failures kept,
    raw targets).  The
    diagonal is within-task (training run vs test run, or the two seeded halves).  Returns one row dict per
    pair: ``source``, ``target``, ``kendall_tau``, ``spearman_rho``, ``mae``, ``precision_at_k``, ``n``
    (finite test pairs), ``n_train``, ``n_test``."""
    data = as_task_data(datasets)
    runs = {d.name: d.runs(random_state) for d in data}
    rows = []
    for src in data:
        (X_tr, y_tr), _ = runs[src.name]
        model, n_train = _fit(model_factory, [(X_tr, y_tr, src.name)], normalisation, drop_failed)  # once per source
        for tgt in data:
            _, (X_te, y_te) = runs[tgt.name]
            row = {"source": src.name, "target": tgt.name}
            row.update(_score(model, n_train, X_te, y_te, frac))
            log.info("one-to-one %s -> %s: tau %.3f", src.name, tgt.name, row["kendall_tau"])
            rows.append(row)
    return rows


def source_signal(datasets: "Sequence[TaskData] | Mapping[str, Sequence[Any]]", model_factory: Callable[[], Any],
                  *, drop_failed: bool = True, random_state: int = 0) -> dict[str, float]:
    """Each dataset's own ranking signal: Kendall τ of ``model_factory()`` fitted on one of its runs and
    tested on the other, both ways, averaged (the one-to-one diagonal, symmetrised).  It uses the source's
    data only, so it can screen sources for any target without looking at the target."""
    out = {}
    for d in as_task_data(datasets):
        (Xa, ya), (Xb, yb) = d.runs(random_state)
        taus = [_evaluate(model_factory, [(X_tr, y_tr, d.name)], X_te, y_te, "none", drop_failed, 0.1)["kendall_tau"]
                for (X_tr, y_tr), (X_te, y_te) in (((Xa, ya), (Xb, yb)), ((Xb, yb), (Xa, ya)))]
        out[d.name] = float(np.nanmean(taus)) if not all(math.isnan(t) for t in taus) else math.nan
        log.info("source signal %s: tau %.3f", d.name, out[d.name])
    return out


def leave_one_out(datasets: "Sequence[TaskData] | Mapping[str, Sequence[Any]]", model_factory: Callable[[], Any], *,
                  normalisation: str | None = "percentile", drop_failed: bool = True, random_state: int = 0,
                  frac: float = 0.1, min_source_tau: float | None = None) -> list[dict[str, Any]]:
    """For each dataset T: fit ``model_factory()`` on both runs of every other dataset (each run a block of
    its own, failures dropped if ``drop_failed``, targets normalised per block), test on both runs of T pooled
    (failures kept, raw targets).  Returns one row dict per target: ``target``, the metrics, ``n_train``,
    ``n_test``, ``n_sources``.

    ``min_source_tau`` screens the sources: a dataset whose own ranking signal (``source_signal``, computed
    from its data alone) is below it, or undefined, is never used for training (it is still a target).  A
    source whose accuracies are noise (a task on which random networks sit at chance) otherwise teaches the
    pooled model rankings that hold nowhere; each row's ``n_sources`` says how many sources it used."""
    data = as_task_data(datasets)
    if len(data) < 2:
        raise ValueError("leave_one_out needs at least two datasets")
    runs = {d.name: d.runs(random_state) for d in data}
    usable = {d.name for d in data}
    if min_source_tau is not None:
        signal = source_signal(data, model_factory, drop_failed=drop_failed, random_state=random_state)
        usable = {name for name, tau in signal.items() if tau >= min_source_tau}
        dropped = {name: round(tau, 3) for name, tau in signal.items() if name not in usable}
        if dropped:
            log.warning("leave-one-out: sources below min_source_tau=%s left out of training: %s", min_source_tau,
                        dropped)
    rows = []
    for tgt in data:
        sources = [d for d in data if d.name != tgt.name and d.name in usable]
        if not sources:
            raise ValueError(f"leave_one_out: no source left to train for target {tgt.name!r}: every other "
                             f"dataset's own τ is below min_source_tau={min_source_tau}")
        train = [(X, y, f"{d.name}/{part}") for d in sources for part, (X, y) in zip(("train", "test"), runs[d.name])]
        (Xa, ya), (Xb, yb) = runs[tgt.name]
        row = {"target": tgt.name}
        row.update(_evaluate(model_factory, train, _stack([Xa, Xb]), np.concatenate([ya, yb]), normalisation,
                             drop_failed, frac))
        row["n_sources"] = len(sources)
        log.info("leave-one-out %s: tau %.3f", tgt.name, row["kendall_tau"])
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------------


def pivot(rows: Sequence[Mapping[str, Any]], value: str = "kendall_tau", row_key: str = "source",
          col_key: str = "target") -> tuple[np.ndarray, list[str], list[str]]:
    """``(matrix, row_labels, col_labels)`` of ``value`` from protocol rows (labels in first-seen order; NaN
    where a pair is missing)."""
    r_labels = list(dict.fromkeys(str(r[row_key]) for r in rows))
    c_labels = list(dict.fromkeys(str(r[col_key]) for r in rows))
    matrix = np.full((len(r_labels), len(c_labels)), np.nan)
    for r in rows:
        matrix[r_labels.index(str(r[row_key])), c_labels.index(str(r[col_key]))] = float(r[value])
    return matrix, r_labels, c_labels


def matrix_rows(matrix: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str],
                corner: str = "source \\ target", average: bool = True) -> list[dict[str, Any]]:
    """A matrix as table rows (``{corner: row label, col label: value, ..., "avg off-diagonal": mean}``): the
    average is over the row's transfer cells only (``off_diagonal_means``), never the within-task diagonal."""
    means = off_diagonal_means(matrix, row_labels, col_labels) if average else None
    out = []
    for i, (label, values) in enumerate(zip(row_labels, np.asarray(matrix, dtype=float))):
        row: dict[str, Any] = {corner: label, **{c: float(v) for c, v in zip(col_labels, values)}}
        if means is not None:
            row["avg off-diagonal"] = float(means[i])
        out.append(row)
    return out


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, (float, np.floating)):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def write_table(rows: Sequence[Mapping[str, Any]], path_md: "str | os.PathLike[str] | None" = None,
                path_csv: "str | os.PathLike[str] | None" = None, columns: Sequence[str] | None = None,
                digits: int = 3) -> str:
    """Write row dicts as a Markdown table (floats to ``digits`` places) and/or a CSV file (full precision);
    returns the Markdown text.  ``columns`` defaults to every key, in first-seen order."""
    cols = list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r.get(c, ""), digits) for c in cols) + " |" for r in rows]
    text = "\n".join(lines) + "\n"
    if path_md is not None:
        with open(path_md, "w", encoding="utf-8") as fh:
            fh.write(text)
    if path_csv is not None:
        with open(path_csv, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(cols)
            for r in rows:
                values = (r.get(c, "") for c in cols)
                writer.writerow([repr(float(v)) if isinstance(v, (float, np.floating)) else v for v in values])
    return text


def off_diagonal_means(matrix: Any, labels: Sequence[str], col_labels: Sequence[str]) -> np.ndarray:
    """Per row, the mean of its finite cells whose column is another task than the row's (a cell whose row and
    column name the same task is within-task, not transfer, and is left out)."""
    m = np.asarray(matrix, dtype=float)
    out = np.full(m.shape[0], np.nan)
    for i, row in enumerate(labels):
        keep = [j for j, col in enumerate(col_labels) if col != row and np.isfinite(m[i, j])]
        if keep:
            out[i] = float(m[i, keep].mean())
    return out


def heatmap(matrix: Any, labels: Sequence[str], path_png: "str | os.PathLike[str]",
            col_labels: Sequence[str] | None = None, title: str = "", value_label: str = "Kendall τ",
            digits: int = 2, row_title: str = "source task", col_title: str = "target task",
            off_diagonal_mean: bool = False):
    """Save an annotated heatmap of ``matrix`` (rows ``labels``, columns ``col_labels``, default the same) as
    PNG, on an Agg canvas (no pyplot, no global figure state).  The axes are titled ``row_title`` and
    ``col_title``; ``off_diagonal_mean`` adds a last column, set apart, with each row's mean over the other
    tasks (``off_diagonal_means``); within-task cells are outlined.  A long title wraps instead of being cut off.
    Returns the ``Figure``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # deferred: matplotlib
    from matplotlib.figure import Figure  # deferred: matplotlib
    from matplotlib.patches import Rectangle  # deferred: matplotlib

    m = np.asarray(matrix, dtype=float)
    cols = list(labels if col_labels is None else col_labels)
    if m.shape != (len(labels), len(cols)):
        raise ValueError(f"heatmap: matrix of shape {m.shape} for {len(labels)} row and {len(cols)} column labels")
    if off_diagonal_mean:
        m = np.column_stack([m, off_diagonal_means(m, labels, cols)])
        cols = cols + ["mean off-diagonal"]
    width = max(5.5, 1.6 + 0.8 * len(cols) + 0.08 * max(map(len, labels), default=0))
    fig = Figure(figsize=(width, 1.6 + 0.6 * len(labels)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(m), cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), list(labels))
    ax.set_xlabel(col_title)
    ax.set_ylabel(row_title)
    if off_diagonal_mean:
        ax.axvline(len(cols) - 1.5, color="white", lw=3)
    for i, row in enumerate(labels):  # within-task cells (row and column the same task) are outlined
        for j in (j for j, col in enumerate(cols) if col == row):
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="white", lw=1.2, ls="--"))
    _annotate(ax, m, digits)
    fig.colorbar(image, ax=ax, label=value_label)
    if title:
        fig.suptitle("\n".join(textwrap.wrap(title, max(20, int(width * 9)))), fontsize=10)
    fig.savefig(os.fspath(path_png), dpi=120)
    return fig


def _annotate(ax: Any, m: np.ndarray, digits: int) -> None:
    finite = m[np.isfinite(m)]
    mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            v = m[i, j]
            ax.text(j, i, "–" if not np.isfinite(v) else f"{v:.{digits}f}", ha="center", va="center", fontsize=8,
                    color="black" if np.isfinite(v) and v > mid else "white")
