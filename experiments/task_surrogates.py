"""Surrogates on the offline task suite: within-task Kendall τ (RF, XGBoost, LM) and one-to-one and
leave-one-out transfer between tasks, from an archive of ≥ 300 random architectures per task.

The archive (one command per task, resumable; see ``experiments.task_spread`` for all at once)::

    nas archive build --archive runs/tasks.sqlite --task addnist-mini --n 300 --workers 2
    ... (multnist-mini, cifartile-mini, language-mini, gutenberg-mini, chesseract-mini)

Then::

    .venv/bin/python -m experiments.task_surrogates --archive runs/tasks.sqlite --out experiments/results

Protocols (failures count as accuracy 0 in every test set and are dropped from every training set, as
published; features are GRAF + the 13 zero-cost proxies, cached in the archive):

* **within-task, random split**: 5 splits (seeds 0..4), train on a random 75 % of the task's architectures,
  τ on the other 25 %.  The LM (packaged all-MiniLM-L6-v2, full fine-tuning on grammar tokens, 10 epochs,
  lr 1e-4, batch 16, ECDF targets) runs ``--lm-splits`` of them (default 1: CPU time).
* **within-task, search windows** (the published "simulated search" protocol, whose mean τ over datasets is
  .457 for RF and .460 for XGBoost): train on the first ``L`` architectures in evaluation order, τ on the next
  100, for ``L`` = 100 and 200, averaged.
* **one-to-one**: every source → target pair, source and target each split into two seeded halves
  (``surrogates.transfer.one_to_one``); the diagonal is within-task across halves.
* **leave-one-out**: train on every other task (targets as per-task percentiles), test on all of the target
  task (``surrogates.transfer.leave_one_out``; published mean τ: RF .455, XGBoost .45).

Models: ``rf`` (RandomForestRegressor, published defaults) and ``xgb_tuned`` (the published offline
scripts' XGBoost); see ``surrogates.tabular``.  Writes ``tasks_surrogates.md``, ``transfer_one_to_one_{model}``
and ``transfer_leave_one_out_{model}`` (tau.md, tau.csv, tau.png) under ``--out``, and prints everything.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any, Sequence

import numpy as np

from data.archive import Archive
from data.training import machine
from surrogates.metrics import kendall_tau
from surrogates.registry import make_surrogate
from surrogates.workflows import evaluate_split, split_rows, task_datasets, transfer_study

log = logging.getLogger(__name__)

TABULAR = ("rf", "xgb_tuned")
LM_PARAMS = dict(encoding="tokens", grammar="einspace", epochs=10, lr=1e-4, batch_size=16, max_length=256,
                 target="ecdf", progress=False)


def fit_tau(X: np.ndarray, y: np.ndarray, model: str, train: np.ndarray, test: np.ndarray, seed: int = 0) -> float:
    """τ on rows ``test`` of a ``model`` fitted on rows ``train`` (of the cached GRAF + proxy feature matrix)."""
    m = make_surrogate(model, None, None, seed)  # features=None: the input is the feature matrix
    m.fit(X[train], y[train])
    return float(kendall_tau(y[test], m.predict(X[test])))


def split_tau(X: np.ndarray, y: np.ndarray, model: str, seed: int, test_fraction: float = 0.25) -> float:
    """τ on a random ``test_fraction`` of the rows of a model fitted on the rest (failures, y = 0, dropped
    from training and kept in the test part; ``surrogates.workflows.split_rows``)."""
    return fit_tau(X, y, model, *split_rows(y, test_fraction, seed), seed=seed)


def window_tau(X: np.ndarray, y: np.ndarray, model: str, limit: int, width: int = 100, seed: int = 0) -> float:
    """τ on rows ``limit .. limit+width`` of a model fitted on rows ``0 .. limit`` (evaluation order)."""
    train = np.array([i for i in range(limit) if y[i] > 0])
    return fit_tau(X, y, model, train, np.arange(limit, min(limit + width, len(y))), seed)


def lm_split_tau(archive: Any, task: str, seed: int) -> float:
    """τ of the LM surrogate on one random 75/25 split of ``task``'s architectures."""
    return float(evaluate_split(archive, task, "lm", test_fraction=0.25, seed=seed, **LM_PARAMS)["kendall_tau"])


def _fmt(values: Sequence[float]) -> str:
    v = np.asarray(values, dtype=float)
    if len(v) == 0:  # e.g. no search window fits a small archive
        return "—"
    return f"{v.mean():.3f} ± {v.std():.3f}" if len(v) > 1 else f"{v.mean():.3f}"


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archive", default="runs/tasks.sqlite")
    ap.add_argument("--tasks", default=None, help="comma-separated (default: every task in the archive)")
    ap.add_argument("--out", default="experiments/results")
    ap.add_argument("--splits", type=int, default=5)
    ap.add_argument("--lm-splits", type=int, default=1, help="LM within-task splits (0 = skip the LM)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-transfer", action="store_true")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("features.zcp").setLevel(logging.ERROR)

    import torch  # deferred: torch

    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    t0 = time.perf_counter()
    with Archive(args.archive) as archive:
        data = task_datasets(archive, args.tasks.split(",") if args.tasks else None, "graf,zcp")
        tasks = [d.name for d in data]
        t_feat = time.perf_counter() - t0
        rows, means = [], {}
        for d in data:
            X, y = np.asarray(d.X, dtype=float), np.asarray(d.y, dtype=float)
            row: dict[str, Any] = {"task": d.name, "n": len(y), "failed": int((y == 0).sum())}
            for model in TABULAR:
                row[f"{model} split"] = [split_tau(X, y, model, s) for s in range(args.splits)]
                row[f"{model} windows"] = [window_tau(X, y, model, L) for L in (100, 200) if L + 10 <= len(y)]
            if args.lm_splits:
                row["lm split"] = [lm_split_tau(archive, d.name, s) for s in range(args.lm_splits)]
            print(d.name, {k: (np.round(v, 3).tolist() if isinstance(v, list) else v) for k, v in row.items()},
                  flush=True)
            rows.append(row)
        cols = [f"{m} {p}" for m in TABULAR for p in ("split", "windows")] + (["lm split"] if args.lm_splits else [])
        lines = [
            f"Within-task Kendall τ on `{args.archive}` (features GRAF + 13 zero-cost proxies; failures 0 in "
            f"test sets, dropped in training). *split*: mean ± std over {args.splits} random 75/25 splits "
            f"(LM: {args.lm_splits}); *windows*: train on the first L = 100, 200 evaluations, τ on the next 100, "
            "mean over L (the published protocol: RF .457, XGBoost .460).",
            "",
            "| task | n (failed) | " + " | ".join(cols) + " |",
            "|---|---|" + "---|" * len(cols),
        ]
        for row in rows:
            lines.append(f"| {row['task']} | {row['n']} ({row['failed']}) | "
                         + " | ".join(_fmt(row[c]) for c in cols) + " |")
        for c in cols:
            per_task = [float(np.mean(r[c])) for r in rows if len(r[c])]
            means[c] = float(np.mean(per_task)) if per_task else float("nan")
        lines.append("| **mean over tasks** | | " + " | ".join(
            f"**{means[c]:.3f}**" if means[c] == means[c] else "—" for c in cols) + " |")
        within = "\n".join(lines) + "\n"
        print(within)
        transfer = []
        if not args.skip_transfer:
            for protocol in ("one-to-one", "leave-one-out"):
                for model in TABULAR:
                    out = os.path.join(args.out, f"transfer_{protocol.replace('-', '_')}_{model}")
                    table = transfer_study(archive, protocol, model, "graf,zcp", tasks, out, seed=0, data=data)
                    transfer.append(f"### {protocol}, {model}\n\n{table}\n")
                    print(f"{protocol} {model}\n{table}", flush=True)
    text = "\n".join([
        "# Surrogates on the offline task suite", "",
        "Produced by `python -m experiments.task_surrogates "
        + " ".join(sys.argv[1:] if argv is None else list(argv)) + "`.",
        "", "## Within-task", "", within, "## Transfer", "",
        "One-to-one: rows are sources, columns targets; each task's archive split into two seeded halves (train "
        "on the source's first half, test on the target's second; the diagonal is within-task). Leave-one-out: "
        "train on every other task (per-task percentile targets), test on all of the target task.", "",
        *transfer,
        f"Machine: {machine()}, torch {torch.__version__}, {args.threads} threads; features {t_feat:.0f} s, "
        f"total {time.perf_counter() - t0:.0f} s.", "",
    ])
    with open(os.path.join(args.out, "tasks_surrogates.md"), "w", encoding="utf-8") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
