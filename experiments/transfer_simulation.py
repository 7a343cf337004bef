"""The published "simulated search" transfer study (``evaluate_transfer``) on an archive of evaluated networks.

For each task of the archive in turn (the *current run*) and each training limit ``L``: a surrogate is fitted
on the *transfer data* (every other task's run, each normalised as a block of its own) and/or the current run's
first ``L`` rows in evaluation order (``train_current``), and scored by Kendall τ on the current run's rows
``[L, L + window)``, the networks a search would meet next.  τ is averaged over the limits.  The grid:

* ``--models``: ``rf`` (scikit-learn defaults, ``n_jobs=1``) and/or ``xgb_tuned`` (the published XGBoost);
* ``--transfer``: ``none`` (the current run only) and/or ``other`` (every other task of the archive);
* ``--train-current``: ``T`` (add the current run's first ``L`` rows) and/or ``F`` (transfer data only; needs
  ``--transfer other``, and is fitted once per task since it does not depend on ``L``);
* ``--zeros``: failed trainings ``kept`` or ``dropped`` in *training*; test windows keep them, as published;
* ``--aggregations``: per-block target normalisation, ``none``, ``minmax``, ``percentile`` (ties averaged) or
  ``ecdf`` (the published percentile; ``surrogates.transfer.normalise_targets``).

Failures.  The published runs record a failed training as accuracy 0; the archive records a failure as NaN
with a reason.  Rows are read with ``surrogates.workflows.surrogate_dataset``, which counts a failed training as
accuracy 0 (the published convention, so a failure ranks below every trained network in a test window) and
leaves out a network stopped by the wall-clock safety timeout (a fact about the machine's load, not the
network).  "Dropped" removes the zero rows from training blocks before they are normalised.

Shared networks.  Tasks with the same input shape may hold the same networks (the shipped archive evaluates
one set of 300 on addnist-mini, multnist-mini and cifartile-mini); the published runs are independent
searches, so by default (``--overlap drop``) the transfer data leave out every network of the current run, which
would otherwise put the test window's own networks, labelled on a related task, into the training data.
``--overlap keep`` keeps them (results to another ``--out``).

Limits.  The published runs hold ≥ 1,000 networks and use ``L`` = 100, 200, …, 900 with windows of 100, i.e.
limits from 10 % to 90 % of the run.  The shipped archive holds about 300 networks per task, so the defaults
are ``L`` = 50, 100, 150, 200, 250 with windows of 50: the same 1/6 … 5/6 coverage of the run, five limits, and
a full window at every limit (a window is cut at the end of the run, e.g. rows [250, 291) when timeouts left
291 rows; a limit whose window keeps fewer than half of ``--window`` rows is skipped and logged).  A window of
50 makes one τ noisier than one of 100 (standard error ≈ 0.10 against 0.07 with no signal), which the average
over five limits and six tasks reduces.

Output (``--out``): ``simulation.csv`` (one row per model × transfer × train_current × zeros × aggregation ×
task × limit; re-running skips settings already there, so a killed run resumes and a second command with other
axes adds rows), ``commands.json`` (every command that added rows) and ``transfer_simulation.md``: the commands,
a table shaped like the published §6.1 (d) (τ per task averaged over limits, the average over tasks and over the
tasks with signal), a by-limit table like (e), and ``name: value unit`` lines of the headline figures.

    python -m experiments.transfer_simulation --out experiments/results/transfer_simulation
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from data.training import machine
from nas.versions import software_version
from surrogates.metrics import all_metrics
from surrogates.registry import make_surrogate
from surrogates.sources import open_source_archive
from surrogates.transfer import NORMALISATIONS, TaskData, failed_mask, prepare_block
from surrogates.workflows import surrogate_dataset, task_datasets

log = logging.getLogger(__name__)

TRANSFERS = ("none", "other")
ZEROS = ("kept", "dropped")
MODELS = ("rf", "xgb_tuned")
#: Published §6.1 (d) averages (percentile targets, zeros removed; transfer = CIFAR-10 + 7 unseen datasets).
PUBLISHED_D = {("rf", "none", True): 0.457, ("rf", "other", True): 0.425, ("rf", "other", False): 0.300,
               ("xgb_tuned", "none", True): 0.460, ("xgb_tuned", "other", True): 0.449,
               ("xgb_tuned", "other", False): 0.297}
CSV_FILE, COMMANDS_FILE, REPORT_FILE = "simulation.csv", "commands.json", "transfer_simulation.md"
COLUMNS = ("model", "transfer", "train_current", "zeros", "aggregation", "task", "limit", "kendall_tau",
           "spearman_rho", "n_train", "n_train_current", "n_test", "n_test_failed", "seconds")
SETTING_KEYS = COLUMNS[:5]


@dataclass(frozen=True)
class Setting:
    """One cell of the grid: the model, where the training data come from, and how its targets are treated."""

    model: str
    transfer: str
    train_current: bool
    zeros: str
    aggregation: str

    def label(self) -> str:
        return (f"{self.model}, transfer {self.transfer}, current {'T' if self.train_current else 'F'}, "
                f"zeros {self.zeros}, {self.aggregation}")


def settings(models: Iterable[str], transfers: Iterable[str], train_current: Iterable[bool],
             zeros: Iterable[str], aggregations: Iterable[str]) -> list[Setting]:
    """The grid's settings, in report order; ``transfer none`` with ``train_current F`` has no training data
    and is left out."""
    for value, allowed, what in ((models, MODELS, "model"), (transfers, TRANSFERS, "transfer"),
                                 (zeros, ZEROS, "zeros"), (aggregations, NORMALISATIONS, "aggregation")):
        bad = [v for v in value if v not in allowed]
        if bad:
            raise ValueError(f"unknown {what} {', '.join(map(str, bad))}; choose from {', '.join(allowed)}")
    out = [Setting(m, t, c, z, a) for m in models for t in transfers for c in train_current for z in zeros
           for a in aggregations if t != "none" or c]
    if not out:
        raise ValueError("the grid is empty: train_current F needs --transfer other")
    return out


def window_rows(n: int, limit: int, window: int) -> np.ndarray:
    """Row indices ``[limit, limit + window)`` of a run of ``n`` rows, cut at its end; empty when fewer than half
    of ``window`` rows remain (that limit is skipped)."""
    rows = np.arange(limit, min(limit + window, n))
    return rows if rows.size * 2 >= window else rows[:0]


def training_set(current: TaskData, others: Sequence[TaskData], setting: Setting, limit: int,
                 hashes: Mapping[str, Sequence[str]] | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """``(X, y, n_current)``: the pooled training rows of ``setting`` at ``limit``: each other task's run (when
    ``transfer`` is ``other``) and the current run's rows ``[0, limit)`` (when ``train_current``), every block
    with its failures dropped if ``zeros`` is ``dropped`` and its targets normalised by ``aggregation``;
    ``n_current`` is how many of the rows come from the current run.  ``hashes`` (task name -> each row's
    architecture hash): the other tasks' rows of networks in the current run are left out."""
    blocks = [_without_overlap(d, current.name, hashes) for d in others] if setting.transfer == "other" else []
    if setting.train_current:
        blocks.append((np.asarray(current.X)[:limit], np.asarray(current.y)[:limit], f"{current.name} (current)"))
    parts = [prepare_block(X, y, setting.aggregation, setting.zeros == "dropped", name) for X, y, name in blocks]
    if not parts or sum(p[1].size for p in parts) == 0:
        raise ValueError(f"{setting.label()}: no training rows for {current.name} at limit {limit}")
    n_current = parts[-1][1].size if setting.train_current else 0
    return np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), int(n_current)


def _without_overlap(other: TaskData, current: str, hashes: Mapping[str, Sequence[str]] | None) -> tuple[Any, Any, str]:
    """``(X, y, name)`` of another task's run without the networks of the ``current`` run (all rows when
    ``hashes`` is None)."""
    X, y = np.asarray(other.X, dtype=np.float64), np.asarray(other.y, dtype=np.float64)
    if hashes is None:
        return X, y, other.name
    seen = set(hashes[current])
    keep = np.array([h not in seen for h in hashes[other.name]], dtype=bool)
    return X[keep], y[keep], other.name


def simulate(current: TaskData, others: Sequence[TaskData], setting: Setting, limits: Sequence[int], window: int,
             model_factory: Callable[[Setting], Any],
             hashes: Mapping[str, Sequence[str]] | None = None) -> list[dict[str, Any]]:
    """One setting on one current run: a row per limit with Kendall τ and Spearman ρ on the test window (raw
    accuracies, failures kept as 0), the training and test sizes.  With ``train_current`` F the model is fitted
    once (its training data do not depend on the limit) and scored on every window.  ``hashes``: see
    ``training_set``."""
    X, y = np.asarray(current.X, dtype=np.float64), np.asarray(current.y, dtype=np.float64)
    rows, fitted = [], None
    for limit in limits:
        test = window_rows(len(y), limit, window)
        if test.size == 0:
            log.info("%s: limit %d leaves %d test rows of %d, skipped", current.name, limit, max(len(y) - limit, 0),
                     window)
            continue
        start = time.perf_counter()
        if fitted is None or setting.train_current:
            X_train, y_train, n_current = training_set(current, others, setting, limit, hashes)
            fitted = model_factory(setting)
            fitted.fit(X_train, y_train)
        metrics = all_metrics(y[test], np.asarray(fitted.predict(X[test]), dtype=np.float64).reshape(-1))
        rows.append({**asdict(setting), "task": current.name, "limit": int(limit),
                     "kendall_tau": metrics["kendall_tau"], "spearman_rho": metrics["spearman_rho"],
                     "n_train": int(y_train.size), "n_train_current": n_current, "n_test": int(test.size),
                     "n_test_failed": int(failed_mask(y[test]).sum()),
                     "seconds": round(time.perf_counter() - start, 2)})
    return rows


def run_grid(data: Sequence[TaskData], grid: Sequence[Setting], limits: Sequence[int], window: int,
             model_factory: Callable[[Setting], Any], done: set[tuple] = frozenset(),
             sink: Callable[[list[dict[str, Any]]], None] | None = None,
             hashes: Mapping[str, Sequence[str]] | None = None) -> list[dict[str, Any]]:
    """Every setting of ``grid`` with every task of ``data`` as the current run (the others its transfer data,
    less the current run's networks when ``hashes`` are given); a (setting, task) pair whose key is in ``done``
    is skipped; ``sink`` receives each pair's rows as they come."""
    out = []
    for setting in grid:
        for current in data:
            if _key(asdict(setting), current.name) in done:
                continue
            others = [d for d in data if d.name != current.name]
            rows = simulate(current, others, setting, limits, window, model_factory, hashes)
            log.info("%s on %s: mean tau %.3f", setting.label(), current.name,
                     np.nanmean([r["kendall_tau"] for r in rows]) if rows else math.nan)
            if sink is not None:
                sink(rows)
            out.extend(rows)
    return out


def _key(row: dict[str, Any], task: str | None = None) -> tuple:
    return (*(str(row[k]) for k in SETTING_KEYS), str(task if task is not None else row["task"]))


# --------------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------------


def _mean(values: Iterable[float]) -> float:
    v = [x for x in values if x == x]
    return float(np.mean(v)) if v else math.nan


def _transfer(value: str) -> str:
    return "other tasks" if value == "other" else value


def _f(value: float) -> str:
    return "—" if value != value else f"{value:.3f}"


def _order(key: tuple) -> tuple:
    """Report order of a setting key: model, transfer none first, current T first, zeros kept first, then
    aggregation none, minmax, percentile, ecdf."""
    model, transfer, current, zeros, agg = key
    aggs = ("none", "minmax", "percentile", "ecdf")
    return (MODELS.index(model) if model in MODELS else len(MODELS), transfer != "none", current != "True",
            zeros != "kept", aggs.index(agg) if agg in aggs else len(aggs))


def setting_means(rows: Sequence[dict[str, Any]]) -> dict[tuple, dict[str, float]]:
    """Per setting (``SETTING_KEYS`` as strings, in report order), per task: τ averaged over the limits."""
    cells: dict[tuple, dict[str, list[float]]] = {}
    for r in rows:
        cells.setdefault(_key(r)[:-1], {}).setdefault(str(r["task"]), []).append(float(r["kendall_tau"]))
    return {k: {task: _mean(v) for task, v in cells[k].items()} for k in sorted(cells, key=_order)}


def table_by_task(rows: Sequence[dict[str, Any]], tasks: Sequence[str], no_signal: Sequence[str]) -> str:
    """The §6.1 (d) table: a row per setting, τ per task averaged over limits, the mean over tasks, the mean
    over the tasks with signal (not in ``no_signal``, marked †), and the published average where one exists."""
    with_signal = [t for t in tasks if t not in no_signal]
    head = [f"{t} †" if t in no_signal else t for t in tasks]
    lines = ["| model | transfer data | train current | zeros | aggregation | " + " | ".join(head)
             + " | avg | avg with signal | published avg (d) |", "|" + "---|" * (len(tasks) + 8)]
    for key, per in setting_means(rows).items():
        model, transfer, current, zeros, agg = key
        published = PUBLISHED_D.get((model, transfer, current == "True")) if (zeros, agg) == ("dropped", "percentile") \
            else None
        cells = [_f(per.get(t, math.nan)) for t in tasks]
        lines.append(f"| {model} | {_transfer(transfer)} | "
                     f"{'T' if current == 'True' else 'F'} | {zeros} | {agg} | " + " | ".join(cells)
                     + f" | {_f(_mean(per.get(t, math.nan) for t in tasks))} | "
                     f"**{_f(_mean(per.get(t, math.nan) for t in with_signal))}** | "
                     + (f"{published:.3f}" if published is not None else "") + " |")
    return "\n".join(lines) + "\n"


def table_by_limit(rows: Sequence[dict[str, Any]], no_signal: Sequence[str]) -> str:
    """The §6.1 (e) table: a row per setting, τ per limit averaged over the tasks with signal."""
    limits = sorted({int(r["limit"]) for r in rows})
    cells: dict[tuple, dict[int, list[float]]] = {}
    for r in rows:
        if r["task"] not in no_signal:
            cells.setdefault(_key(r)[:-1], {}).setdefault(int(r["limit"]), []).append(float(r["kendall_tau"]))
    lines = ["| model | transfer data | train current | zeros | aggregation | " + " | ".join(map(str, limits))
             + " |", "|" + "---|" * (len(limits) + 5)]
    for key in sorted(cells, key=_order):
        (model, transfer, current, zeros, agg), per = key, cells[key]
        lines.append(f"| {model} | {_transfer(transfer)} | {'T' if current == 'True' else 'F'} | {zeros} | {agg} | "
                     + " | ".join(_f(_mean(per.get(L, []))) for L in limits) + " |")
    return "\n".join(lines) + "\n"


def headline(rows: Sequence[dict[str, Any]], tasks: Sequence[str], no_signal: Sequence[str]) -> list[str]:
    """``name: value unit`` lines: each setting's τ averaged over limits and the tasks with signal."""
    with_signal = [t for t in tasks if t not in no_signal]
    out = []
    for (model, transfer, current, zeros, agg), per in setting_means(rows).items():
        name = f"tau_{model}_transfer-{transfer}_current-{'T' if current == 'True' else 'F'}_zeros-{zeros}_{agg}"
        out.append(f"{name}: {_f(_mean(per.get(t, math.nan) for t in with_signal))} kendall-tau")
    return out


def report(rows: Sequence[dict[str, Any]], commands: Sequence[dict[str, Any]], tasks: Sequence[str],
           no_signal: Sequence[str], fixed: dict[str, Any]) -> str:
    """The Markdown report of every row in the results (see the module docstring)."""
    seconds = sum(float(c.get("seconds", 0.0)) for c in commands)
    return "\n".join([
        "# Simulated search transfer (the published `evaluate_transfer`)", "",
        "Commands (each added the settings it names to `simulation.csv`; re-running one skips what is there):", "",
        *[f"    {c['command']}" for c in commands], "",
        f"Archive `{fixed['archive']}`, features `{fixed['features']}`, limits L = {fixed['limits']}, test window "
        f"[L, L + {fixed['window']}), model seed {fixed['seed']}, networks of the current run in other tasks' runs: "
        f"{'left out of' if fixed['overlap'] == 'drop' else 'kept in'} the transfer data. "
        f"surrogate-nas {software_version()}; {machine()}; {seconds:.0f} s of wall-clock in all on a busy, "
        "loaded machine.", "",
        "Kendall τ on the current run's next networks (raw accuracies, failures kept as 0), averaged over the "
        "limits. Training: the other tasks' runs (each its own block) and/or the current run's first L rows; "
        "zeros kept or dropped in training only; targets normalised per block. † marks a task without signal "
        "(random networks stay at chance on it: within-task τ ≈ 0); *avg with signal* leaves it out. The "
        "published averages (§6.1 (d): percentile targets, zeros removed, transfer data CIFAR-10 + 7 unseen "
        "datasets, ≥ 1,000 networks per run, L = 100…900, windows of 100, seeds 0 and 1) stand beside the "
        "matching rows.", "",
        "## By task (published (d))", "", table_by_task(rows, tasks, no_signal),
        "## By limit (published (e)), mean over the tasks with signal", "", table_by_limit(rows, no_signal),
        "## Figures", "", "```", *headline(rows, tasks, no_signal), "```", ""])


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def read_rows(path: str) -> list[dict[str, Any]]:
    """The rows of a ``simulation.csv`` (numbers as floats/ints)."""
    if not os.path.isfile(path):
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for k in ("kendall_tau", "spearman_rho", "seconds"):
            r[k] = float(r[k])
        for k in ("limit", "n_train", "n_train_current", "n_test", "n_test_failed"):
            r[k] = int(r[k])
    return rows


def append_rows(path: str, rows: Sequence[dict[str, Any]]) -> None:
    """Append ``rows`` to a ``simulation.csv`` (the header first when the file is new)."""
    new = not os.path.isfile(path)
    with open(path, "a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerows([{**r, "kendall_tau": repr(float(r["kendall_tau"])),
                           "spearman_rho": repr(float(r["spearman_rho"]))} for r in rows])


def _commands(out: str, fixed: dict[str, Any]) -> list[dict[str, Any]]:
    """The commands recorded in ``out``; a folder made with another archive, features, limits, window or seed
    is refused (its rows could not share one table)."""
    path = os.path.join(out, COMMANDS_FILE)
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as fh:
        saved = json.load(fh)
    if saved["fixed"] != fixed:
        raise ValueError(f"{out}: results made with {saved['fixed']}, not {fixed}; use another --out")
    return saved["commands"]


def _model_factory(seed: int) -> Callable[[Setting], Any]:
    def factory(setting: Setting) -> Any:  # features=None: the inputs are feature matrices
        return make_surrogate(setting.model, None, None, seed)
    return factory


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def _words(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archive", default=None, help="archive of evaluated networks (default: the shipped one)")
    ap.add_argument("--tasks", default=None, help="comma-separated (default: every task of the archive)")
    ap.add_argument("--features", default="graf", help="feature sets, e.g. graf,zcp (default %(default)s)")
    ap.add_argument("--models", default="rf", help=f"comma-separated, of {', '.join(MODELS)}")
    ap.add_argument("--transfer", default="none,other", help="none (current run only) and/or other (other tasks)")
    ap.add_argument("--train-current", default="T,F", help="T (add the current run's first L rows) and/or F")
    ap.add_argument("--zeros", default="kept,dropped", help="failed trainings kept or dropped in training")
    ap.add_argument("--aggregations", default="none,minmax,percentile",
                    help=f"per-block target normalisations, of {', '.join(NORMALISATIONS)}")
    ap.add_argument("--limits", default="50,100,150,200,250", help="training limits L (default %(default)s)")
    ap.add_argument("--window", type=int, default=50, help="test rows [L, L + window) (default %(default)s)")
    ap.add_argument("--no-signal", default="cifartile-mini", help="tasks marked † and left out of 'with signal'")
    ap.add_argument("--overlap", choices=("drop", "keep"), default="drop",
                    help="the current run's networks in other tasks' runs: left out of the transfer data (default)")
    ap.add_argument("--seed", type=int, default=0, help="the models' random_state")
    ap.add_argument("--out", default="experiments/results/transfer_simulation")
    args = ap.parse_args(argv)
    flags = _words(args.train_current)
    if any(f not in ("T", "F") for f in flags):
        raise SystemExit(f"--train-current: expected T and/or F, got {args.train_current!r}")
    args.train_current = [f == "T" for f in flags]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    grid = settings(_words(args.models), _words(args.transfer), args.train_current, _words(args.zeros),
                    _words(args.aggregations))
    limits = _ints(args.limits)
    fixed = {"archive": os.fspath(args.archive or "data/archives/offline-tasks.sqlite (shipped)"),
             "features": args.features, "limits": limits, "window": args.window, "seed": args.seed,
             "overlap": args.overlap}
    os.makedirs(args.out, exist_ok=True)
    commands = _commands(args.out, fixed)
    csv_path = os.path.join(args.out, CSV_FILE)
    done = {_key(r) for r in read_rows(csv_path)}
    start = time.perf_counter()
    with open_source_archive(args.archive) as archive:  # read-only; features it lacks are computed in memory
        data = task_datasets(archive, _words(args.tasks) if args.tasks else None, args.features)
        hashes = {d.name: [a.hash for a in surrogate_dataset(archive, d.name)[0]] for d in data}  # same rows, order
    run_grid(data, grid, limits, args.window, _model_factory(args.seed), done, lambda rows: append_rows(csv_path, rows),
             hashes if args.overlap == "drop" else None)
    command = "python -m experiments.transfer_simulation " + " ".join(sys.argv[1:] if argv is None else argv)
    commands = [c for c in commands if c["command"] != command]
    commands.append({"command": command, "seconds": round(time.perf_counter() - start, 1)})
    with open(os.path.join(args.out, COMMANDS_FILE), "w", encoding="utf-8") as fh:
        json.dump({"fixed": fixed, "commands": commands}, fh, indent=1)
    rows = read_rows(csv_path)
    text = report(rows, commands, list(dict.fromkeys(r["task"] for r in rows)), _words(args.no_signal), fixed)
    with open(os.path.join(args.out, REPORT_FILE), "w", encoding="utf-8") as fh:
        fh.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
