"""How well do the offline tasks tell random architectures apart?

Fills one archive with ``--n`` random architectures per offline task (CPU sampling budget, reduced
protocol; resumable: re-run the same command after an interruption) and writes a Markdown table of the
spread of validation accuracy per task: mean, standard deviation, range, the fraction of architectures at
chance (within 2 points of the majority-class accuracy), failures, and seconds per evaluation.  A task on
which all architectures score alike teaches a surrogate nothing.

    .venv/bin/python -m experiments.task_spread --n 50 --archive runs/spread.sqlite --out runs/spread.md

A second, independent build of the same tasks (another sampling seed, and training seed with
``--train-seed``) in its own archive is the training side of ``nas transfer --test-archive``; in the same
archive, ``nas transfer`` pairs the two builds of each task by itself.
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import numpy as np

from data.archive import Archive
from nas.search import build_archive
from data.tasks import get_task
from data.training import PROTOCOLS

OFFLINE = ("addnist-mini", "multnist-mini", "cifartile-mini", "language-mini", "gutenberg-mini", "chesseract-mini")
AT_CHANCE = 0.02


def spread(archive: Archive, task_name: str, protocol_key: str, chance: float) -> dict[str, float]:
    """Summary statistics of one task's evaluations in ``archive``."""
    evs = archive.evaluations(task=task_name, protocol=protocol_key)
    acc = np.array([e.val_acc for e in evs if e.ok])
    secs = np.array([e.seconds for e in evs])
    return {
        "n": len(evs),
        "failed": sum(not e.ok for e in evs),
        "mean": float(acc.mean()) if len(acc) else float("nan"),
        "std": float(acc.std()) if len(acc) else float("nan"),
        "min": float(acc.min()) if len(acc) else float("nan"),
        "max": float(acc.max()) if len(acc) else float("nan"),
        "at_chance": float(np.mean(acc <= chance + AT_CHANCE)) if len(acc) else float("nan"),
        "chance": chance,
        "median_s": float(np.median(secs)) if len(secs) else float("nan"),
        "mean_s": float(secs.mean()) if len(secs) else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--archive", default="runs/spread.sqlite")
    ap.add_argument("--out", default=None, help="also write the Markdown table here")
    ap.add_argument("--tasks", default=",".join(OFFLINE))
    ap.add_argument("--protocol", default="reduced")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0, help="sampling seed of the builds (default %(default)s)")
    ap.add_argument("--train-seed", type=int, default=0,
                    help="training seed of every evaluation (default %(default)s); published independent runs "
                    "differ in both seeds")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    protocol = PROTOCOLS[args.protocol]
    rows = []
    with Archive(args.archive) as archive:
        for name in args.tasks.split(","):
            t0 = time.perf_counter()
            build_archive(archive, name, args.n, seed=args.seed, protocol=protocol, train_seed=args.train_seed,
                          workers=args.workers)
            task = get_task(name)
            s = spread(archive, task.name, protocol.key, task.chance_level())
            s["wall_s"] = time.perf_counter() - t0
            rows.append((name, s))
    lines = [
        f"| task | n | failed | chance | mean | std | range | at chance | s/eval (median / mean) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in rows:
        lines.append(
            f"| {name} | {s['n']} | {s['failed']} | {s['chance']:.3f} | {s['mean']:.3f} | {s['std']:.3f} | "
            f"{s['min']:.3f}–{s['max']:.3f} | {s['at_chance']:.0%} | {s['median_s']:.2f} / {s['mean_s']:.2f} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(table + "\n")


if __name__ == "__main__":
    main()
