"""Do a task's best networks tend to be large or small?

A transfer surrogate learns from its source tasks which networks do well; if the best networks there are larger
than average and on the target they are smaller, it steers a search towards networks that are both slower to
train and worse.  Per task of an archive: median parameters and FLOPs of the top decile by validation accuracy
against all evaluated networks, and Spearman's ρ between size and accuracy; with ``--runs``, the same sizes and
the seconds per training of the networks that each search run trained (``benchmarks/search.py --einspace``
archives, ``TASK-VARIANT-sSEED.sqlite``).

    .venv/bin/python -m experiments.size_of_best [--archive A.sqlite] [--runs runs/search_einspace/archives] \\
        [--out size_of_best.md]
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import re
import statistics
from typing import Any, Sequence

from scipy.stats import spearmanr

from data.archive import Archive
from data.training import Evaluation
from nas.search.history import TRAINED, run_history
from surrogates.sources import open_source_archive

TOP = 0.1
RUN_FILE = re.compile(r"^(?P<task>.+)-(?P<variant>[a-z]+)-s(?P<seed>\d+)\.sqlite$")


def _median(evs: Sequence[Evaluation], key: str) -> float:
    values = [float(e.metrics[key]) for e in evs if key in e.metrics]
    return statistics.median(values) if values else math.nan


def task_sizes(archive: Archive, task: str) -> dict[str, Any]:
    """Size of the top decile against all of one task's successful evaluations."""
    evs = sorted((e for e in archive.evaluations(task=task) if e.ok and math.isfinite(e.val_acc)),
                 key=lambda e: -e.val_acc)
    top = evs[:max(1, round(TOP * len(evs)))]
    row: dict[str, Any] = {"task": task, "n": len(evs)}
    for key in ("params", "flops"):
        row[f"{key}_top"], row[f"{key}_all"] = _median(top, key), _median(evs, key)
        sizes = [float(e.metrics.get(key, math.nan)) for e in evs]
        row[f"rho_{key}"] = float(spearmanr(sizes, [e.val_acc for e in evs]).correlation) if len(evs) > 2 else math.nan
    return row


def run_sizes(path: str) -> dict[str, Any] | None:
    """Median size and seconds per training of the networks one benchmark run trained (None: not a run file)."""
    m = RUN_FILE.match(os.path.basename(path))
    if m is None:
        return None
    with Archive(path, readonly=True) as archive:
        evs = [e.evaluation for e in run_history(archive, m["variant"]) if e.source == TRAINED and e.evaluation.ok]
    return {"task": m["task"], "variant": m["variant"], "seed": int(m["seed"]), "trained": len(evs),
            "params": _median(evs, "params"), "flops": _median(evs, "flops"),
            "seconds": statistics.median(e.seconds for e in evs) if evs else math.nan}


def markdown(tasks: Sequence[dict[str, Any]], runs: Sequence[dict[str, Any]], command: str) -> str:
    lines = ["# Size of the best networks per task\n", f"Command: `{command}`\n",
             f"Top: the best {TOP:.0%} by validation accuracy; medians.\n",
             "| task | n | params, top / all | FLOPs, top / all | ρ(params, acc) | ρ(FLOPs, acc) |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['task']} | {r['n']} | {r['params_top']:,.0f} / {r['params_all']:,.0f} | "
              f"{r['flops_top']:,.0f} / {r['flops_all']:,.0f} | {r['rho_params']:.2f} | {r['rho_flops']:.2f} |"
              for r in tasks]
    if runs:
        lines += ["", "Networks trained by each search run (medians):", "",
                  "| task | variant | seed | trained | params | FLOPs | seconds per training |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['task']} | {r['variant']} | {r['seed']} | {r['trained']} | {r['params']:,.0f} | "
                  f"{r['flops']:,.0f} | {r['seconds']:.1f} |"
                  for r in sorted(runs, key=lambda r: (r["task"], r["variant"], r["seed"]))]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archive", default=None, help="archive of evaluated tasks (default: the shipped one)")
    parser.add_argument("--runs", default=None, help="folder of benchmarks/search.py --einspace run archives")
    parser.add_argument("--out", default=None, help="also write the Markdown here")
    args = parser.parse_args(argv)
    with open_source_archive(args.archive, "--archive") as archive:
        tasks = [task_sizes(archive, t) for t in sorted({t for t, _, _ in archive.tasks()})]
    runs = []
    if args.runs:
        runs = [r for p in sorted(glob.glob(os.path.join(args.runs, "*.sqlite"))) if (r := run_sizes(p))]
    command = "python -m experiments.size_of_best" + "".join(
        f" --{k} {v}" for k, v in (("archive", args.archive), ("runs", args.runs), ("out", args.out)) if v)
    text = markdown(tasks, runs, command)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
