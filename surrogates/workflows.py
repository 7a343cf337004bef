"""The three surrogate jobs as functions (the ``nas surrogate`` and ``nas transfer`` commands call these).

* ``fit_on_archive``: a surrogate trained on one task's evaluations in an archive (features cached there);
* ``evaluate_split`` / ``evaluate_on_archive``: rank metrics on a held-out part of an archive, or of a saved
  surrogate on another archive, with a predicted-vs-true scatter plot;
* ``transfer_study``: one-to-one or leave-one-out transfer between the tasks of an archive, written as a
  Markdown/CSV table and a heatmap of Kendall τ;
* ``fit_transfer``: a ``TransferSurrogate`` (or, for ``lm``, an ``LMSurrogate``) fitted on source tasks of an
  archive (``nas surrogate fit --transfer`` and ``nas search --surrogate transfer``), which then predicts for,
  and is refitted on, any other task; ``fit_for_search``: one fitted on part of the search task's own
  evaluations and scored on the rest (the quickstart's), which a filtered search uses from its first step.

Every job reads its rows through ``surrogate_dataset``: failed trainings count as accuracy 0 (as published),
but candidates stopped by the wall-clock safety timeout are left out of training and scoring alike (the
timeout measures the machine's load, not the network).
"""

from __future__ import annotations

import logging
import math
import os
import textwrap
from typing import Any, Sequence

import numpy as np

from surrogates.base import Surrogate, build_featuriser
from surrogates.metrics import all_metrics
from surrogates.registry import make_surrogate
from surrogates.sources import feature_store_of
from surrogates.tabular import fit_from_archive
from surrogates.transfer import TaskData, TransferSurrogate, heatmap, leave_one_out, matrix_rows, one_to_one, pivot, \
    source_signal, write_table

log = logging.getLogger(__name__)

#: The tabular models a transfer surrogate pools its blocks with (``TransferSurrogate.base``).
TRANSFER_BASES = ("rf", "xgb", "xgb_tuned")
#: What ``fit_transfer`` fits on source tasks: a ``TransferSurrogate`` on a tabular base, or ``lm`` (an
#: ``LMSurrogate`` fine-tuned on the pooled source strings, ``LMSurrogate.fit_sources``).
TRANSFER_FIT_MODELS = (*TRANSFER_BASES, "lm")
#: How ``data.training`` starts the reason of a candidate stopped by the protocol's wall-clock limit.
OVER_TIME = "over time budget"


def is_over_time(evaluation: Any) -> bool:
    """A failure by the wall-clock safety timeout (``TrainingProtocol.max_seconds``): a fact about the machine's
    load when it ran, not about the network."""
    return not evaluation.ok and str(evaluation.reason).startswith(OVER_TIME)


def surrogate_dataset(archive: Any, task: str, protocol: str | None = None,
                      run: str | None = None) -> tuple[list, np.ndarray]:
    """The rows every surrogate job fits and scores on: each distinct architecture of ``task`` (first-evaluation
    order) with its validation accuracy averaged over seeds, a failed training counting 0 (the published
    archives' convention) except a failure by the safety timeout (``is_over_time``), which is left out.
    ``run``: only the evaluations that run made (one archive build, in evaluation order)."""
    values: dict[str, list[float]] = {}
    for ev in archive.evaluations(task=task, protocol=protocol, run=run):
        if not is_over_time(ev):
            values.setdefault(ev.arch_hash, []).append(ev.val_acc if ev.ok else 0.0)
    if run is not None:
        kept = [archive.architecture(h) for h in values]
    else:
        archs, _ = archive.dataset(task, protocol, include_failed=True, failed_value=0.0)
        kept = [a for a in archs if a.hash in values]
        if len(kept) < len(archs):
            log.info("%s: %d architecture(s) of %s stopped by the time budget left out", archive.path,
                     len(archs) - len(kept), task)
    return kept, np.array([np.mean(values[a.hash]) for a in kept], dtype=float)


def _fit(surrogate: Surrogate, archive: Any, task: str, protocol: str | None, archs: Sequence[Any] | None = None,
         y: Any = None) -> Surrogate:
    """Fit on ``archs, y`` (default: every usable evaluation of ``task``), features cached in the archive."""
    if archs is None:
        return fit_from_archive(surrogate, archive, task, protocol, progress=True)
    return surrogate.fit_cached(archs, y, archive, task, progress=True)


def fit_on_archive(archive: Any, task: str, model: str = "rf", features: str = "graf,zcp", protocol: str | None = None,
                   seed: int = 0, **lm_params: Any) -> Surrogate:
    """Fit a ``model`` surrogate on the evaluations of ``task`` in ``archive``."""
    surrogate = make_surrogate(model, task, features, seed, **lm_params)
    return _fit(surrogate, archive, task, protocol)


def _predict(surrogate: Surrogate, archive: Any, task: str, archs: Sequence[Any]) -> np.ndarray:
    return np.asarray(surrogate.predict_cached(list(archs), archive, task), dtype=float)


def scatter(y_true: np.ndarray, y_pred: np.ndarray, path: str, title: str = "", failed: Any = None):
    """Predicted against true accuracy, as a PNG (matplotlib's Agg canvas; no pyplot state).  ``failed`` (a
    boolean mask; default: a true accuracy ≤ 0, how ``surrogate_dataset`` records a failed training) marks
    failed networks as red crosses on a strip left of the successful ones, so they neither hide among the
    points nor stretch the axis to 0.  Returns the ``Figure``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # deferred: matplotlib
    from matplotlib.figure import Figure  # deferred: matplotlib

    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    bad = np.asarray(y_true <= 0 if failed is None else failed, dtype=bool)
    fig = Figure(figsize=(5.0, 4.6), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ok_true, ok_pred = y_true[~bad], y_pred[~bad]
    ax.scatter(ok_true, ok_pred, s=10, alpha=0.6, label=f"trained ({len(ok_true)})")
    both = np.concatenate([ok_true, ok_pred])
    lo, hi = (float(np.nanmin(both)), float(np.nanmax(both))) if np.isfinite(both).any() else (0.0, 1.0)
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
    if bad.any():
        strip = lo - 0.08 * max(hi - lo, 1e-3)
        ax.scatter(np.full(int(bad.sum()), strip), y_pred[bad], marker="x", color="red", s=28,
                   label=f"failed ({int(bad.sum())}), at the left edge")
        ax.axvline(strip + 0.04 * max(hi - lo, 1e-3), color="red", lw=0.5, ls=":")
        ax.legend(fontsize="small", loc="upper left")
    ax.set_xlabel("true validation accuracy")
    ax.set_ylabel("predicted")
    ax.set_title("\n".join(textwrap.wrap(title, 60)), fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return fig


def split_rows(y: Any, test_fraction: float = 0.25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` row indices of a seeded random split: a ``test_fraction`` of the rows test, failures
    (``y`` ≤ 0) kept there and dropped from the training rows, as published."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    order = np.random.default_rng(seed).permutation(len(y))
    cut = int(round(len(y) * (1 - test_fraction)))
    return np.array([i for i in order[:cut] if y[i] > 0], dtype=np.int64), order[cut:]


def _split(archive: Any, task: str, test_fraction: float, protocol: str | None, seed: int,
           by_hash: bool = False) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
    """``(archs, y, train, test)``: the task's rows (``surrogate_dataset``; sorted by architecture hash when
    ``by_hash``, so that the split does not depend on which evaluation finished first) and ``split_rows``."""
    archs, y = surrogate_dataset(archive, task, protocol)
    if len(archs) < 8:
        raise ValueError(f"{archive.path}: only {len(archs)} evaluated architectures of {task!r}; need at least 8")
    if by_hash:
        order = sorted(range(len(archs)), key=lambda i: archs[i].hash)
        archs, y = [archs[i] for i in order], y[order]
    train, test = split_rows(y, test_fraction, seed)
    return archs, y, train, test


def _score(surrogate: Surrogate, store: Any, task: str, archs: list, y: np.ndarray, test: np.ndarray,
           n_train: int, plot: str | None, what: str) -> dict[str, float]:
    pred = _predict(surrogate, store, task, [archs[i] for i in test])
    metrics = all_metrics(y[test], pred)
    metrics.update(n_train=n_train, n_test=len(test))
    if plot:
        scatter(y[test], pred, plot, f"{what} on {task}: τ = {metrics['kendall_tau']:.3f} (n = {len(test)})")
    return metrics


def evaluate_split(archive: Any, task: str, model: str = "rf", features: str = "graf,zcp", test_fraction: float = 0.25,
                   protocol: str | None = None, seed: int = 0, plot: str | None = None,
                   **lm_params: Any) -> dict[str, float]:
    """Fit on a random ``1 - test_fraction`` of the task's architectures, score on the rest (failures kept
    in the test part as accuracy 0, as published; time-outs left out, ``surrogate_dataset``)."""
    archs, y, train, test = _split(archive, task, test_fraction, protocol, seed)
    surrogate = make_surrogate(model, task, features, seed, **lm_params)
    _fit(surrogate, archive, task, protocol, [archs[i] for i in train], y[train])
    return _score(surrogate, archive, task, archs, y, test, len(train), plot, model)


def fit_for_search(archive: Any, task: str, model: str = "rf", features: str = "graf,zcp",
                   test_fraction: float = 0.25, protocol: str | None = None, seed: int = 0,
                   task_obj: Any = None) -> tuple[TransferSurrogate, dict[str, float]]:
    """``(surrogate, metrics)``: a surrogate for a filtered search on ``task``, fitted on a seeded random
    ``1 - test_fraction`` of the task's evaluations in ``archive`` (rows in architecture-hash order) and
    scored on the rest, as ``evaluate_split`` scores.  It is a ``TransferSurrogate`` on ``model``
    (``TRANSFER_BASES``) whose one source block is those training rows, so that a search's refits pool them
    with the run's own evaluations, each block min-max normalised (an affine map of the targets, which leaves
    a forest's ranking as it is).  ``task_obj``: the loaded task, which new architectures are featurised on."""
    if model not in TRANSFER_BASES:
        raise ValueError(f"a surrogate for a search pools its rows with {', '.join(TRANSFER_BASES)}; got {model!r}")
    archs, y, train, test = _split(archive, task, test_fraction, protocol, seed, by_hash=True)
    store = feature_store_of(archive)
    target = task_obj if task_obj is not None else task
    surrogate = TransferSurrogate(model, "minmax", features=features, task=target, random_state=seed)
    surrogate.fit_sources([([archs[i] for i in train], y[train], target)], archive=store)
    metrics = _score(surrogate, store, task, archs, y, test, len(train), None, model)
    log.info("surrogate for a search on %s: %s on %d rows, Kendall tau %.3f on %d held out", task, model,
             len(train), metrics["kendall_tau"], len(test))
    return surrogate, metrics


def evaluate_on_archive(surrogate: Any, archive: Any, task: str, protocol: str | None = None,
                        plot: str | None = None) -> dict[str, float]:
    """Metrics of a fitted surrogate on every architecture of ``task`` in ``archive`` (failures as 0)."""
    archs, y = surrogate_dataset(archive, task, protocol)
    if not archs:
        raise ValueError(f"{archive.path}: no evaluation of task {task!r}")
    pred = _predict(surrogate, archive, task, archs)
    metrics = all_metrics(y, pred)
    if plot:
        scatter(y, pred, plot, f"{type(surrogate).__name__} on {task}: τ = {metrics['kendall_tau']:.3f}")
    return metrics


def task_datasets(archive: Any, tasks: Sequence[str] | None = None, features: str = "graf,zcp",
                  protocol: str | None = None, feature_store: Any = None) -> list:
    """One ``TaskData`` per task of the archive: cached features and accuracies (``surrogate_dataset``);
    features cached in ``feature_store`` (default ``feature_store_of(archive)``)."""
    names = list(tasks) if tasks else sorted({t for t, _, _ in archive.tasks()})
    store = feature_store if feature_store is not None else feature_store_of(archive)
    out = []
    for name in names:
        archs, y = surrogate_dataset(archive, name, protocol)
        if len(archs) < 4:
            log.warning("task %s: only %d architectures, left out", name, len(archs))
            continue
        featuriser = build_featuriser(features, name, archs[0].grammar.name, store, progress=True)
        out.append(TaskData(name, featuriser.fit(archs).transform(archs), y))
    return out


def transfer_study(archive: Any, protocol: str = "one-to-one", model: str = "rf", features: str = "graf,zcp",
                   tasks: Sequence[str] | None = None, out: str = "runs/transfer", seed: int = 0,
                   normalisation: str | None = None, min_source_tau: float | None = None,
                   data: Sequence[Any] | None = None) -> str:
    """One-to-one (every source → target pair, diagonal = within-task across the task's two runs: seeded halves,
    or independent runs via ``surrogates.task_runs``) or leave-one-out transfer between the archive's tasks; writes ``tau.md``, ``tau.csv`` and ``tau.png`` to ``out`` and returns the
    Markdown table.  ``min_source_tau`` (leave-one-out only) screens out sources without a ranking signal
    of their own (``surrogates.transfer.leave_one_out``).  ``data``: the ``task_datasets`` of these tasks,
    when the caller has them already (they are loaded from the archive otherwise)."""
    if model == "lm":
        raise ValueError("transfer studies run on tabular surrogates (rf, xgb, ensemble); fine-tune the LM with "
                         "nas surrogate fit --model lm")
    os.makedirs(out, exist_ok=True)
    if data is None:
        data = task_datasets(archive, tasks, features)
    if len(data) < 2:
        raise ValueError(f"{archive.path}: transfer needs at least two tasks with evaluations")

    def factory() -> Any:  # the protocols fit on feature matrices
        return make_surrogate(model, None, None, seed)

    md, csv_path, png = (os.path.join(out, f"tau.{ext}") for ext in ("md", "csv", "png"))
    if min_source_tau is not None and protocol != "leave-one-out":
        raise ValueError("min_source_tau screens the sources of leave-one-out transfer; one-to-one reports "
                         "every source")
    if protocol == "one-to-one":
        rows = one_to_one(data, factory, normalisation=normalisation or "none", random_state=seed)
        matrix, r, c = pivot(rows)
        table = write_table(matrix_rows(matrix, r, c), md, csv_path)
        heatmap(matrix, r, png, col_labels=c, off_diagonal_mean=True,
                title=f"One-to-one transfer: Kendall τ of a {model} surrogate on {features} features, fitted on the "
                "source task (row) and scored on the target task (column); the diagonal is within-task")
    elif protocol == "leave-one-out":
        rows = leave_one_out(data, factory, normalisation=normalisation or "percentile", random_state=seed,
                             min_source_tau=min_source_tau)
        table = write_table(rows, md, csv_path, columns=["target", "kendall_tau", "spearman_rho", "mae",
                                                         "precision_at_k", "n_train", "n_test", "n_sources"])
        values = np.array([[row["kendall_tau"] for row in rows]])
        heatmap(values, ["all other tasks"], png, col_labels=[row["target"] for row in rows], row_title="sources",
                title=f"Leave-one-out transfer: Kendall τ of a {model} surrogate on {features} features, fitted on "
                "every other task and scored on the target task")
    else:
        raise ValueError(f"unknown transfer protocol {protocol!r}; expected one-to-one or leave-one-out")
    return table


def source_tasks(archive: Any, sources: Sequence[str] | None = None, exclude: Sequence[str] = ()) -> list[str]:
    """The tasks of ``archive`` to transfer from: ``sources`` (default: every task in it) less ``exclude`` (the
    target task, when it is one of them); each named source must have evaluations in the archive."""
    available = sorted({t for t, _, _ in archive.tasks()})
    names = list(dict.fromkeys(sources)) if sources else available
    missing = [n for n in names if n not in available]
    if missing:
        raise ValueError(f"{archive.path}: no evaluations of source task(s) {', '.join(missing)}; the archive has "
                         f"{', '.join(available) or 'none'}")
    left_out = [n for n in names if n in set(exclude)]
    if left_out:
        log.info("transfer: the target task %s is left out of the sources", ", ".join(left_out))
    names = [n for n in names if n not in set(exclude)]
    if not names:
        raise ValueError(f"{archive.path}: no source task left to transfer from once {', '.join(exclude)} is left out")
    return names


def screen_sources(archive: Any, names: Sequence[str], model: str, features: str, min_source_tau: float,
                   protocol: str | None = None, seed: int = 0, feature_store: Any = None) -> list[str]:
    """The ``names`` whose own ranking signal (``surrogates.transfer.source_signal``: τ between the halves of
    the task's evaluations) reaches ``min_source_tau``, as in the leave-one-out protocol."""
    data = task_datasets(archive, names, features, protocol, feature_store)
    signal = source_signal(data, lambda: make_surrogate(model, None, None, seed), random_state=seed)
    kept = [n for n in names if not math.isnan(signal.get(n, math.nan)) and signal[n] >= min_source_tau]
    dropped = {n: round(signal.get(n, math.nan), 3) for n in names if n not in kept}
    if dropped:
        log.warning("transfer: sources below min_source_tau=%s left out: %s", min_source_tau, dropped)
    if not kept:
        raise ValueError(f"{archive.path}: no source task reaches min_source_tau={min_source_tau} (own τ: {dropped})")
    return kept


def cap_rows(archs: Sequence[Any], y: np.ndarray, limit: int | None, seed: int = 0) -> tuple[list, np.ndarray]:
    """At most ``limit`` of the rows ``(archs, y)``: a random subset drawn with a generator seeded by ``seed``,
    kept in their order; every row when ``limit`` is None or not below their number."""
    if limit is None or limit >= len(archs):
        return list(archs), np.asarray(y)
    if limit < 1:
        raise ValueError(f"max_per_source must be a positive number of rows, got {limit}")
    keep = np.sort(np.random.default_rng(seed).choice(len(archs), size=limit, replace=False))
    return [archs[i] for i in keep], np.asarray(y)[keep]


def fit_transfer(archive: Any, model: str = "rf", features: str = "graf,zcp", sources: Sequence[str] | None = None,
                 exclude: Sequence[str] = (), min_source_tau: float | None = None, normalisation: str = "minmax",
                 protocol: str | None = None, seed: int = 0, task: Any = None,
                 feature_store: Any = None, max_per_source: int | None = None,
                 lm_params: dict[str, Any] | None = None, size_bands: int = 1) -> Surrogate:
    """A ``TransferSurrogate`` on ``model`` (``TRANSFER_BASES``) fitted on the source tasks of ``archive``
    (``source_tasks``; screened by ``min_source_tau`` when given), one block per task with failures dropped
    and targets normalised per block (``minmax``: the published ``tr_rf``).  ``task`` is the target task (name,
    ``TaskRef`` or task object), the one the surrogate featurises new architectures on; it may be set later
    (``persistence.load_surrogate(directory, task=...)``).  The sources' features are cached in
    ``feature_store`` (default ``surrogates.sources.feature_store_of(archive)``: the archive itself, except
    that a read-only or shipped archive is only read, its missing features kept in memory).
    ``max_per_source``: at most this many rows of each source (``cap_rows``, before failures are dropped).
    ``model="lm"``: an ``LMSurrogate`` (``lm_params``; ``target`` ``raw`` unless they say otherwise) fine-tuned
    on the pooled source strings, each source's targets normalised on their own (``LMSurrogate.fit_sources``;
    ``features`` is not used).  ``size_bands`` > 1: each source's targets are normalised within that many
    bands of parameter count (``TransferSurrogate``; tabular models only)."""
    if model not in TRANSFER_FIT_MODELS:
        raise ValueError(f"a transfer surrogate pools its sources with {', '.join(TRANSFER_FIT_MODELS)}; got {model!r}")
    if model == "lm" and size_bands > 1:
        raise ValueError("size_bands applies to the tabular transfer models; not to model 'lm'")
    if model == "lm" and min_source_tau is not None:
        raise ValueError("min_source_tau screens sources with a tabular model on features; not with model 'lm'")
    store = feature_store if feature_store is not None else feature_store_of(archive)
    names = source_tasks(archive, sources, exclude)
    if min_source_tau is not None:
        names = screen_sources(archive, names, model, features, min_source_tau, protocol, seed, store)
    blocks = [(*cap_rows(*surrogate_dataset(archive, name, protocol), max_per_source, seed), name) for name in names]
    if model == "lm":
        lm = make_surrogate("lm", task, None, seed, **{"target": "raw", **(lm_params or {})})
        return lm.fit_sources(blocks, normalisation)
    surrogate = TransferSurrogate(model, normalisation, features=features, task=task, random_state=seed,
                                  size_bands=size_bands)
    surrogate.fit_sources(blocks, archive=store)
    log.info("transfer surrogate (%s, %s targets%s) fitted on %s", model, normalisation,
             f" within {size_bands} size bands" if size_bands > 1 else "", ", ".join(names))
    return surrogate
