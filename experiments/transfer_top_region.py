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
``TransferSurrogate`` fits):
``uniform`` (the transfer surrogate a search refits: sources plus the current rows, each row weight 1),
``wK`` (the current rows weighted K), ``balanced`` (the current rows weigh as much as all source rows together),
and ``target`` (the current rows alone, the within-task filter; needs ``n`` ≥ 2).  Source rows that are networks
of the target's test rows (tasks of the same input shape share networks in the shipped archive) are left out.

    .venv/bin/python -m experiments.transfer_top_region [--archive A] [--tasks language-mini,...] \\
        [--n 0,25,50] [--reps 5] [--top 0.3] [--out experiments/results/transfer_top_region.md]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from typing import Any, Sequence

import numpy as np
from scipy.stats import kendalltau

from surrogates.sources import open_source_archive
from surrogates.tabular import build_model
from surrogates.transfer import prepare_block
from surrogates.workflows import surrogate_dataset, task_datasets

POOLS = 300
POOL, PICK = 20, 5
SCHEMES = ("uniform", "w5", "w20", "balanced", "target")
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


def study_target(target: Any, others: Sequence[Any], hashes: dict[str, list[str]], n: int, rep: int,
                 schemes: Sequence[str], top: float) -> list[dict[str, Any]]:
    """One (target, n, repetition): every scheme's scores on the same split."""
    rng = np.random.default_rng(rep)
    X_t, y_t = np.nan_to_num(np.asarray(target.X, float)), np.asarray(target.y, float)
    order = rng.permutation(len(y_t))
    cur, test = order[:n], order[n:]
    test_hashes = {hashes[target.name][i] for i in test}
    sources = []
    for other in others:
        keep = np.array([h not in test_hashes for h in hashes[other.name]])
        sources.append((np.nan_to_num(np.asarray(other.X, float))[keep], np.asarray(other.y, float)[keep]))
    rows = []
    for scheme in schemes:
        data = training_rows(scheme, sources, X_t[cur], y_t[cur])
        if data is None:
            continue
        model = build_model("rf", rep, 2)  # n_jobs does not change a seeded forest
        model.fit(data[0], data[1], sample_weight=data[2])
        pred = model.predict(X_t[test])
        rows.append({"task": target.name, "n": n, "rep": rep, "scheme": scheme,
                     **score(pred, y_t[test], top, np.random.default_rng(1000 + rep))})
    return rows


def markdown(rows: Sequence[dict[str, Any]], command: str, top: float) -> str:
    """Mean over repetitions per task × n × scheme, and ``name: value unit`` lines."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["n"], r["scheme"]), []).append(r)
    lines = ["# Transfer surrogates among a task's good networks", "", f"    {command}", "",
             f"Top region: the best {top:.0%} of each task's test rows; pick gain: best of the surrogate's top "
             f"{PICK} of {POOL} minus best of {PICK} at random, percentage points; means over repetitions.", "",
             "| task | n target rows | scheme | τ (all) | τ (top) | pick gain (pp) |", "|---|---|---|---|---|---|"]
    figures = []
    for (task, n, scheme), rs in groups.items():
        m = {k: statistics.fmean(r[k] for r in rs) for k in ("tau", "tau_top", "pick_gain")}
        lines.append(f"| {task} | {n} | {scheme} | {m['tau']:+.3f} | {m['tau_top']:+.3f} | {m['pick_gain']:+.2f} |")
        figures.append(f"top_region {task} n{n} {scheme} pick_gain: {m['pick_gain']:+.2f} pp")
    return "\n".join([*lines, "", "```", *figures, "```", ""])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m experiments.transfer_top_region", description=__doc__.split("\n\n")[0])
    p.add_argument("--archive", default=None, help="archive of evaluated tasks (default: the shipped one)")
    p.add_argument("--tasks", default="language-mini,gutenberg-mini,addnist-mini", help="target tasks, comma-separated")
    p.add_argument("--features", default="graf", help="feature set (default graf, the default filter's)")
    p.add_argument("--n", default="0,25,50", help="numbers of the target's own rows the surrogate sees")
    p.add_argument("--reps", type=int, default=5, help="random splits per target and n")
    p.add_argument("--top", type=float, default=0.3, help="fraction of the best test rows scored as the top region")
    p.add_argument("--schemes", default=",".join(SCHEMES), help=f"comma-separated, from {', '.join(SCHEMES)}")
    p.add_argument("--out", default=None, help="write the Markdown report here too")
    args = p.parse_args(argv)
    args.schemes = [s for s in args.schemes.split(",") if s]
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
        for n in (int(v) for v in args.n.split(",")):
            for rep in range(args.reps):
                rows += study_target(by_name[task], others, hashes, n, rep, args.schemes, args.top)
            log.info("%s n=%d done", task, n)
    text = markdown(rows, "python -m experiments.transfer_top_region " + " ".join(sys.argv[1:] if argv is None
                                                                                   else argv), args.top)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
