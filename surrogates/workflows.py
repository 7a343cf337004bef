"""The three surrogate jobs as functions (the ``nas surrogate`` and ``nas transfer`` commands call these).

* ``fit_on_archive``: a surrogate trained on one task's evaluations in an archive (features cached there);
* ``evaluate_split`` / ``evaluate_on_archive``: rank metrics on a held-out part of an archive, or of a saved
  surrogate on another archive, with a predicted-vs-true scatter plot;
* ``transfer_study``: one-to-one or leave-one-out transfer between the tasks of an archive, written as a
  Markdown/CSV table and a heatmap of Kendall τ;
* ``fit_transfer``: a ``TransferSurrogate`` fitted on source tasks of an archive (``nas surrogate fit
  --transfer`` and ``nas search --surrogate transfer``), which then predicts for, and is refitted on, any
  other task.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any, Sequence

import numpy as np

from surrogates.base import Surrogate, build_featuriser
from surrogates.metrics import all_metrics
from surrogates.registry import make_surrogate
from surrogates.tabular import fit_from_archive
from surrogates.transfer import TaskData, TransferSurrogate, heatmap, leave_one_out, matrix_rows, one_to_one, pivot, \
    source_signal, write_table

log = logging.getLogger(__name__)

#: The tabular models a transfer surrogate pools its blocks with (``TransferSurrogate.base``).
TRANSFER_BASES = ("rf", "xgb", "xgb_tuned")


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


def scatter(y_true: np.ndarray, y_pred: np.ndarray, path: str, title: str = "") -> None:
    """Predicted against true accuracy, as a PNG (matplotlib's Agg canvas; no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # deferred: matplotlib
    from matplotlib.figure import Figure  # deferred: matplotlib

    fig = Figure(figsize=(4.5, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(y_true, y_pred, s=10, alpha=0.6)
    lo = float(np.nanmin(np.concatenate([y_true, y_pred])))
    hi = float(np.nanmax(np.concatenate([y_true, y_pred])))
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("true validation accuracy")
    ax.set_ylabel("predicted")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)


def split_rows(y: Any, test_fraction: float = 0.25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` row indices of a seeded random split: a ``test_fraction`` of the rows test, failures
    (``y`` ≤ 0) kept there and dropped from the training rows, as published."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    order = np.random.default_rng(seed).permutation(len(y))
    cut = int(round(len(y) * (1 - test_fraction)))
    return np.array([i for i in order[:cut] if y[i] > 0], dtype=np.int64), order[cut:]


def evaluate_split(archive: Any, task: str, model: str = "rf", features: str = "graf,zcp", test_fraction: float = 0.25,
                   protocol: str | None = None, seed: int = 0, plot: str | None = None,
                   **lm_params: Any) -> dict[str, float]:
    """Fit on a random ``1 - test_fraction`` of the task's architectures, score on the rest (failures kept
    in the test part as accuracy 0, as published)."""
    archs, y = archive.dataset(task, protocol, include_failed=True, failed_value=0.0)
    if len(archs) < 8:
        raise ValueError(f"{archive.path}: only {len(archs)} evaluated architectures of {task!r}; need at least 8")
    train, test = split_rows(y, test_fraction, seed)
    surrogate = make_surrogate(model, task, features, seed, **lm_params)
    _fit(surrogate, archive, task, protocol, [archs[i] for i in train], y[train])
    pred = _predict(surrogate, archive, task, [archs[i] for i in test])
    metrics = all_metrics(y[test], pred)
    metrics.update(n_train=len(train), n_test=len(test))
    if plot:
        scatter(y[test], pred, plot, f"{model} on {task}: τ = {metrics['kendall_tau']:.3f} (n = {len(test)})")
    return metrics


def evaluate_on_archive(surrogate: Any, archive: Any, task: str, protocol: str | None = None,
                        plot: str | None = None) -> dict[str, float]:
    """Metrics of a fitted surrogate on every architecture of ``task`` in ``archive`` (failures as 0)."""
    archs, y = archive.dataset(task, protocol, include_failed=True, failed_value=0.0)
    if not archs:
        raise ValueError(f"{archive.path}: no evaluation of task {task!r}")
    pred = _predict(surrogate, archive, task, archs)
    metrics = all_metrics(y, pred)
    if plot:
        scatter(y, pred, plot, f"{type(surrogate).__name__} on {task}: τ = {metrics['kendall_tau']:.3f}")
    return metrics


def task_datasets(archive: Any, tasks: Sequence[str] | None = None, features: str = "graf,zcp",
                  protocol: str | None = None) -> list:
    """One ``TaskData`` per task of the archive: cached features and accuracies (failures as 0)."""
    names = list(tasks) if tasks else sorted({t for t, _, _ in archive.tasks()})
    out = []
    for name in names:
        archs, y = archive.dataset(name, protocol, include_failed=True, failed_value=0.0)
        if len(archs) < 4:
            log.warning("task %s: only %d architectures, left out", name, len(archs))
            continue
        featuriser = build_featuriser(features, name, archs[0].grammar.name, archive, progress=True)
        out.append(TaskData(name, featuriser.fit(archs).transform(archs), y))
    return out


def transfer_study(archive: Any, protocol: str = "one-to-one", model: str = "rf", features: str = "graf,zcp",
                   tasks: Sequence[str] | None = None, out: str = "runs/transfer", seed: int = 0,
                   normalisation: str | None = None, min_source_tau: float | None = None,
                   data: Sequence[Any] | None = None) -> str:
    """One-to-one (every source → target pair, diagonal = within-task halves) or leave-one-out transfer
    between the archive's tasks; writes ``tau.md``, ``tau.csv`` and ``tau.png`` to ``out`` and returns the
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
        heatmap(matrix, r, png, col_labels=c, title=f"one-to-one transfer, {model} on {features}")
    elif protocol == "leave-one-out":
        rows = leave_one_out(data, factory, normalisation=normalisation or "percentile", random_state=seed,
                             min_source_tau=min_source_tau)
        table = write_table(rows, md, csv_path, columns=["target", "kendall_tau", "spearman_rho", "mae",
                                                         "precision_at_k", "n_train", "n_test", "n_sources"])
        values = np.array([[row["kendall_tau"] for row in rows]])
        heatmap(values, ["leave-one-out"], png, col_labels=[row["target"] for row in rows],
                title=f"leave-one-out transfer, {model} on {features}")
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
                   protocol: str | None = None, seed: int = 0) -> list[str]:
    """The ``names`` whose own ranking signal (``surrogates.transfer.source_signal``: τ between the halves of
    the task's evaluations) reaches ``min_source_tau``, as in the leave-one-out protocol."""
    data = task_datasets(archive, names, features, protocol)
    signal = source_signal(data, lambda: make_surrogate(model, None, None, seed), random_state=seed)
    kept = [n for n in names if not math.isnan(signal.get(n, math.nan)) and signal[n] >= min_source_tau]
    dropped = {n: round(signal.get(n, math.nan), 3) for n in names if n not in kept}
    if dropped:
        log.warning("transfer: sources below min_source_tau=%s left out: %s", min_source_tau, dropped)
    if not kept:
        raise ValueError(f"{archive.path}: no source task reaches min_source_tau={min_source_tau} (own τ: {dropped})")
    return kept


def fit_transfer(archive: Any, model: str = "rf", features: str = "graf,zcp", sources: Sequence[str] | None = None,
                 exclude: Sequence[str] = (), min_source_tau: float | None = None, normalisation: str = "minmax",
                 protocol: str | None = None, seed: int = 0, task: Any = None) -> TransferSurrogate:
    """A ``TransferSurrogate`` on ``model`` (``TRANSFER_BASES``) fitted on the source tasks of ``archive``
    (``source_tasks``; screened by ``min_source_tau`` when given), one block per task with failures dropped
    and targets normalised per block (``minmax``: the published ``tr_rf``).  ``task`` is the target task (name,
    ``TaskRef`` or task object), the one the surrogate featurises new architectures on; it may be set later
    (``persistence.load_surrogate(directory, task=...)``)."""
    if model not in TRANSFER_BASES:
        raise ValueError(f"a transfer surrogate pools its sources with {', '.join(TRANSFER_BASES)}; got {model!r}")
    names = source_tasks(archive, sources, exclude)
    if min_source_tau is not None:
        names = screen_sources(archive, names, model, features, min_source_tau, protocol, seed)
    blocks = [(*archive.dataset(name, protocol, include_failed=True, failed_value=0.0), name) for name in names]
    surrogate = TransferSurrogate(model, normalisation, features=features, task=task, random_state=seed)
    surrogate.fit_sources(blocks, archive=archive)
    log.info("transfer surrogate (%s, %s targets) fitted on %s", model, normalisation, ", ".join(names))
    return surrogate
