"""Does a transfer surrogate pick well among a task's *good* networks, and does weighting the target help?

A filtered search asks its surrogate to pick 5 of 20 mutants of good parents: what matters there is the ranking
among networks that already train well, not the separation of failures from working networks that dominates
Kendall τ over a random sample.  For each target task of an archive, each number ``n`` of the target's own rows
the surrogate has seen and each repetition: the target's rows are split at random into ``n`` *current* rows and
the rest (*test*); a random forest (the product's ``rf``) is fitted under each *scheme* and scored on the test
rows by

* ``tau``: Kendall τ on every test row;
* ``tau_top``: Kendall τ on the test rows in the top ``--top`` fraction by accuracy (the region a search is in);
* ``pick_gain``: over ``POOLS`` pools of 20 test rows drawn from that top region, the best accuracy among the
  surrogate's top 5 minus the best among 5 drawn at random, in percentage points (a filter's gain per step).

Schemes (every source block and the current block with failed trainings dropped and min-max normalised on its own, as
``TransferSurrogate`` fits): ``uniform`` (the transfer surrogate a search refits: sources plus the current rows,
each row weight 1), ``wK`` (the current rows weighted K), ``balanced`` (the current rows weigh as much as all
source rows together), ``target`` (the current rows alone, the within-task filter; needs ``n`` ≥ 2) and ``auto``
(``target`` when a forest on the current rows alone ranks them better, out of fold, than the sources-only forest
does, else ``uniform``: a check a search could run at each refit).  Source rows that are networks of the target's
test rows (tasks of the same input shape share networks in the shipped archive) are left out.

``--runs DIR`` scores on search runs instead of random splits: each plain-RE run of a target in a
``benchmarks/search.py --einspace`` archive folder is fitted on its first ``n`` rows and scored on its next
``--window`` rows, the mutants the search met next (every one of them is in the search's region, so ``tau_top``
is ``tau`` there).

    .venv/bin/python -m experiments.transfer_top_region [--archive A] [--tasks language-mini,...] \\
        [--n 0,25,50] [--reps 5] [--top 0.3] [--out experiments/results/transfer_top_region.md]
    .venv/bin/python -m experiments.transfer_top_region --runs experiments/results/search_einspace/archives \\
        [--n 25,50] [--window 50] [--out experiments/results/transfer_search_runs.md]
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import statistics
import sys
from typing import Any, Sequence

import numpy as np
from scipy.stats import kendalltau

from data.archive import Archive
from experiments.size_of_best import RUN_FILE
from surrogates.base import build_featuriser
from surrogates.sources import open_source_archive
from surrogates.tabular import build_model
from surrogates.transfer import TaskData, prepare_block
from surrogates.workflows import surrogate_dataset, task_datasets

POOLS = 300
POOL, PICK = 20, 5
SCHEMES = ("uniform", "w5", "w20", "balanced", "target", "auto")
RANDOM_SCHEMES, RUN_SCHEMES = "uniform,w5,w20,balanced,target", "uniform,target,auto"
FOLDS = 5
log = logging.getLogger(__name__)


def pick_gain(pred: np.ndarray, y: np.ndarray, rng: np.random.Generator, pools: int = POOLS) -> float:
    """Mean over ``pools`` random pools of ``POOL`` rows: best ``y`` of the ``PICK`` rows ranked highest by
    ``pred`` minus best ``y`` of ``PICK`` rows drawn at random from the same pool."""
    size = min(POOL, len(y))
    gains = []
    for _ in range(pools):
        pool = rng.choice(len(y), size, replace=False)
        chosen = pool[np.argsort(-pred[pool], kind="stable")[:PICK]]
        gains.append(y[chosen].max() - y[rng.choice(pool, min(PICK, size), replace=False)].max())
    return float(np.mean(gains))


def training_rows(scheme: str, sources: Sequence[tuple[np.ndarray, np.ndarray]], X_cur: np.ndarray,
                  y_cur: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The pooled ``(X, y, sample_weight)`` a scheme fits on (None: the scheme needs more current rows)."""
    n = len(y_cur)
    if n == 1 or (n == 0 and scheme != "uniform"):
        return None
    current = [prepare_block(X_cur, y_cur, "minmax", True)[:2]] if n else []
    if scheme == "target":
        if len(current[0][1]) < 2:
            return None
        return current[0][0], current[0][1], np.ones(len(current[0][1]))
    blocks = [prepare_block(X, y, "minmax", True)[:2] for X, y in sources]
    n_src = sum(len(y) for _, y in blocks)
    X = np.vstack([b[0] for b in blocks + current])
    y = np.concatenate([b[1] for b in blocks + current])
    n_cur = len(y) - n_src
    weight = {"uniform": 1.0, "balanced": n_src / max(n_cur, 1)}.get(scheme) or float(scheme[1:])
    return X, y, np.concatenate([np.ones(n_src), np.full(n_cur, weight)])


def score(pred: np.ndarray, y: np.ndarray, top: float, rng: np.random.Generator) -> dict[str, float]:
    """``tau``, ``tau_top`` and ``pick_gain`` (percentage points) of predictions on test rows."""
    region = y >= np.quantile(y, 1 - top)
    return {"tau": float(kendalltau(pred, y).statistic),
            "tau_top": float(kendalltau(pred[region], y[region]).statistic),
            "pick_gain": 100 * pick_gain(pred[region], y[region], rng)}


def sources_without(others: Sequence[Any], hashes: dict[str, list[str]],
                    left_out: set[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every other task's ``(X, y)`` without the networks in ``left_out`` (the target's test networks)."""
    sources = []
    for other in others:
        keep = np.array([h not in left_out for h in hashes[other.name]])
        sources.append((np.nan_to_num(np.asarray(other.X, float))[keep], np.asarray(other.y, float)[keep]))
    return sources


def fit_predict(scheme: str, sources: Sequence[tuple[np.ndarray, np.ndarray]], X_cur: np.ndarray, y_cur: np.ndarray,
                X_test: np.ndarray, seed: int) -> np.ndarray | None:
    """A forest fitted under ``scheme`` (not ``auto``: see ``choose_scheme``), its predictions on ``X_test``."""
    data = training_rows(scheme, sources, X_cur, y_cur)
    if data is None:
        return None
    model = build_model("rf", seed, 2)  # n_jobs does not change a seeded forest
    model.fit(data[0], data[1], sample_weight=data[2])
    return model.predict(X_test)


def choose_scheme(sources: Sequence[tuple[np.ndarray, np.ndarray]], X_cur: np.ndarray, y_cur: np.ndarray,
                  seed: int, folds: int = FOLDS) -> str:
    """``target`` when a forest on the current rows alone ranks them better (Kendall τ of ``folds``-fold
    out-of-fold predictions) than the sources-only forest does (τ of its predictions, which never saw them);
    ``uniform`` otherwise, or with fewer than ``2 * folds`` current rows."""
    if len(y_cur) < 2 * folds:
        return "uniform"
    transfer_tau = kendalltau(fit_predict("uniform", sources, X_cur[:0], y_cur[:0], X_cur, seed), y_cur).statistic
    oof = np.empty(len(y_cur))
    for k in range(folds):
        held = np.arange(len(y_cur)) % folds == k
        oof[held] = fit_predict("target", sources, X_cur[~held], y_cur[~held], X_cur[held], seed)
    target_tau = kendalltau(oof, y_cur).statistic
    return "target" if np.nan_to_num(target_tau, nan=-1) > np.nan_to_num(transfer_tau, nan=-1) else "uniform"


def study_target(target: Any, others: Sequence[Any], hashes: dict[str, list[str]], n: int, rep: int,
                 schemes: Sequence[str], top: float) -> list[dict[str, Any]]:
    """One (target, n, repetition) of random splits: every scheme's scores on the same split."""
    rng = np.random.default_rng(rep)
    X_t, y_t = np.nan_to_num(np.asarray(target.X, float)), np.asarray(target.y, float)
    order = rng.permutation(len(y_t))
    cur, test = order[:n], order[n:]
    sources = sources_without(others, hashes, {hashes[target.name][i] for i in test})
    key = {"task": target.name, "n": n, "rep": rep}
    return score_schemes(key, schemes, sources, (X_t[cur], y_t[cur]), (X_t[test], y_t[test]), top)


def study_run(run: Any, run_hashes: list[str], others: Sequence[Any], hashes: dict[str, list[str]], n: int,
              window: int, seed: int, schemes: Sequence[str]) -> list[dict[str, Any]]:
    """One search run (``run``: its rows in evaluation order) at ``n``: fitted on its first ``n`` rows, scored
    on the next ``window`` (the networks the search met next, all of them in its region)."""
    X_r, y_r = np.nan_to_num(np.asarray(run.X, float)), np.asarray(run.y, float)
    cur, test = np.arange(min(n, len(y_r))), np.arange(n, min(n + window, len(y_r)))
    if len(test) < PICK + 1:
        return []
    sources = sources_without(others, hashes, {run_hashes[i] for i in test})
    key = {"task": run.name, "n": n, "rep": seed}
    return score_schemes(key, schemes, sources, (X_r[cur], y_r[cur]), (X_r[test], y_r[test]), 1.0)


def score_schemes(key: dict[str, Any], schemes: Sequence[str], sources: Sequence[tuple[np.ndarray, np.ndarray]],
                  current: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                  top: float) -> list[dict[str, Any]]:
    """Every scheme fitted on ``sources`` and the ``current`` rows, scored on the ``test`` rows; the forests'
    seed and the pools' are ``key["rep"]``."""
    rows = []
    for scheme in schemes:
        chosen = choose_scheme(sources, *current, key["rep"]) if scheme == "auto" else scheme
        pred = fit_predict(chosen, sources, *current, test[0], key["rep"])
        if pred is not None:
            rows.append({**key, "scheme": scheme, "chose": chosen,
                         **score(pred, test[1], top, np.random.default_rng(1000 + key["rep"]))})
    return rows


def run_datasets(runs: str, task: str, features: str) -> list[tuple[Any, list[str], int]]:
    """Every plain-RE run of ``task`` in a ``benchmarks/search.py --einspace`` archive folder
    (``TASK-re-sSEED.sqlite``): ``(TaskData of its rows in evaluation order, their hashes, seed)``."""
    found = []
    for path in sorted(glob.glob(os.path.join(runs, f"{task}-re-s*.sqlite"))):
        m = RUN_FILE.match(os.path.basename(path))
        if m is None or m["task"] != task:
            continue
        with Archive(path, readonly=True) as archive:
            archs, y = surrogate_dataset(archive, task, run="re")
        if not archs:
            log.warning("%s: no evaluations of run 're' on %s, skipped", path, task)
            continue
        X = build_featuriser(features, task, archs[0].grammar.name).fit(archs).transform(archs)
        found.append((TaskData(task, X, y), [a.hash for a in archs], int(m["seed"])))
    return found


def markdown(rows: Sequence[dict[str, Any]], command: str, top: float | None) -> str:
    """Mean over repetitions (or runs) per task × n × scheme, and ``name: value unit`` lines; ``top`` None:
    rows of ``study_run`` (scored on every test row, with ``auto``'s choices counted)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["n"], r["scheme"]), []).append(r)
    if top is None:
        intro = (f"Search runs: fitted on each plain-RE run's first n rows, scored on its next rows (the networks the "
                 f"search met next); pick gain: best of the surrogate's top {PICK} of {POOL} minus best of {PICK} at "
                 f"random, percentage points; means over runs; auto: how often it chose the target-only forest.")
    else:
        intro = (f"Top region: the best {top:.0%} of each task's test rows; pick gain: best of the surrogate's top "
                 f"{PICK} of {POOL} minus best of {PICK} at random, percentage points; means over repetitions.")
    title = "among a task's good networks" if top is not None else "on a search's next networks"
    lines = [f"# Transfer surrogates {title}", "", f"    {command}", "", intro, "",
             "| task | n target rows | scheme | τ (all) | τ (top) | pick gain (pp) |", "|---|---|---|---|---|---|"]
    figures = []
    for (task, n, scheme), rs in groups.items():
        m = {k: statistics.fmean(r[k] for r in rs) for k in ("tau", "tau_top", "pick_gain")}
        label = scheme
        if scheme == "auto":
            label += f" (target {sum(r['chose'] == 'target' for r in rs)}/{len(rs)})"
        lines.append(f"| {task} | {n} | {label} | {m['tau']:+.3f} | {m['tau_top']:+.3f} | {m['pick_gain']:+.2f} |")
        figures.append(f"{'top_region' if top is not None else 'search_runs'} {task} n{n} {scheme} pick_gain: "
                       f"{m['pick_gain']:+.2f} pp")
    return "\n".join([*lines, "", "```", *figures, "```", ""])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m experiments.transfer_top_region", description=__doc__.split("\n\n")[0])
    p.add_argument("--archive", default=None, help="archive of evaluated tasks (default: the shipped one)")
    p.add_argument("--tasks", default="language-mini,gutenberg-mini,addnist-mini", help="target tasks, comma-separated")
    p.add_argument("--features", default="graf", help="feature set (default graf, the default filter's)")
    p.add_argument("--n", default=None, help="numbers of the target's own rows the surrogate sees (default 0,25,50)")
    p.add_argument("--reps", type=int, default=5, help="random splits per target and n")
    p.add_argument("--top", type=float, default=0.3, help="fraction of the best test rows scored as the top region")
    p.add_argument("--schemes", default=None, help=f"comma-separated, from {', '.join(SCHEMES)} (default "
                   f"{RANDOM_SCHEMES}; with --runs {RUN_SCHEMES})")
    p.add_argument("--runs", default=None, help="score on the plain-RE runs in this benchmarks/search.py --einspace "
                   "archive folder instead of random splits (--n default 25,50)")
    p.add_argument("--window", type=int, default=50, help="--runs: rows after the first n that are scored")
    p.add_argument("--out", default=None, help="write the Markdown report here too")
    args = p.parse_args(argv)
    args.n = [int(v) for v in (args.n or ("25,50" if args.runs else "0,25,50")).split(",") if v]
    args.schemes = [s for s in (args.schemes or (RUN_SCHEMES if args.runs else RANDOM_SCHEMES)).split(",") if s]
    bad = [s for s in args.schemes if s not in SCHEMES]
    if bad:
        p.error(f"--schemes: unknown {', '.join(bad)}; choose from {', '.join(SCHEMES)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    with open_source_archive(args.archive) as archive:
        data = task_datasets(archive, None, args.features)
        hashes = {d.name: [a.hash for a in surrogate_dataset(archive, d.name)[0]] for d in data}
    by_name = {d.name: d for d in data}
    rows = []
    for task in [t for t in args.tasks.split(",") if t]:
        if task not in by_name:
            raise SystemExit(f"--tasks: {task!r} is not a task of the archive ({', '.join(by_name)})")
        others = [d for d in data if d.name != task]
        runs = run_datasets(args.runs, task, args.features) if args.runs else []
        if args.runs and not runs:
            raise SystemExit(f"--runs: no plain-RE run of {task} ({task}-re-sN.sqlite) in {args.runs}")
        for n in args.n:
            for rep in range(args.reps) if not args.runs else []:
                rows += study_target(by_name[task], others, hashes, n, rep, args.schemes, args.top)
            for run, run_hashes, seed in runs:
                rows += study_run(run, run_hashes, others, hashes, n, args.window, seed, args.schemes)
            log.info("%s n=%d done", task, n)
    command = "python -m experiments.transfer_top_region " + " ".join(sys.argv[1:] if argv is None else argv)
    text = markdown(rows, command, None if args.runs else args.top)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
