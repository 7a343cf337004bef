"""``nas quickstart``: the whole loop on a built-in task, in a few minutes on a laptop CPU.

1. build a small archive of random architectures on the task (reduced protocol, CPU sampling budget);
2. fit a random forest on GRAF + zero-cost-proxy features of three quarters of it and print its Kendall τ on
   the rest (what ``nas surrogate evaluate`` reports);
3. run plain regularised evolution and surrogate-filtered evolution with the same training budget;
4. print the comparison table and write the best-so-far plot.

Everything lands in one folder (``--output``); re-running the command resumes whatever was interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from data.archive import Archive
from data.tasks import get_task
from data.training import TrainingProtocol, get_protocol
from nas.cli.archive import fill_archive
from nas.cli.common import deprecated_alias
from nas.cli.options import positive_int
from nas.cli.search import make_search_strategy, run_in_dir

log = logging.getLogger(__name__)

ARCHIVE_RUN = "quickstart-archive"
LABELS = {"re": "RE", "filtered": "filtered RE"}


@dataclass(frozen=True)
class QuickstartConfig:
    """Sizes of the quickstart; the defaults take about five minutes on 2 CPU cores."""

    task: str = "language-mini"
    out: str = "runs/quickstart"
    archive_size: int = 60
    search_budget: int = 40
    population: int = 10
    tournament: int = 3
    n_candidates: int = 20
    k: int = 4
    refit_every: int = 5
    protocol: str = "reduced"
    #: Per-candidate training time budget (s): a slow random network is recorded as failed, not waited for.
    max_seconds: float = 30.0
    features: str = "graf,zcp"
    seed: int = 0
    workers: int = 2


def _archive_and_tau(cfg: QuickstartConfig, task_name: str, protocol: TrainingProtocol, progress: bool,
                     say: Callable[[str], Any]) -> tuple[str, float]:
    """Steps 1 and 2: the archive of random architectures, and a random forest's held-out Kendall τ on it."""
    from surrogates.workflows import evaluate_split  # deferred: scikit-learn

    archive_path = os.path.join(cfg.out, "archive.sqlite")
    with Archive(archive_path) as archive:
        say(f"[1/4] archive: {cfg.archive_size} random architectures on {task_name} ({cfg.protocol} protocol, "
            f"at most {cfg.max_seconds:g} s each)")
        fill_archive(archive, cfg.task, cfg.archive_size, seed=cfg.seed, protocol=protocol, budget="cpu",
                     workers=cfg.workers, run=ARCHIVE_RUN, progress=progress)
        say(f"[2/4] surrogate: random forest on {cfg.features} features")
        metrics = evaluate_split(archive, task_name, "rf", cfg.features, 0.25, None, cfg.seed)
    say(f"      Kendall tau on {metrics['n_test']} held-out architectures: {metrics['kendall_tau']:.3f}")
    return archive_path, float(metrics["kendall_tau"])


def _searches(cfg: QuickstartConfig, task: Any, protocol: TrainingProtocol, progress: bool,
              say: Callable[[str], Any]) -> tuple[dict[str, dict], list[tuple[str, str, str]]]:
    """Step 3: plain and surrogate-filtered evolution with the same training budget, one folder each."""
    results, refs = {}, []
    for name in ("re", "filtered"):
        say(f"[3/4] search: {'regularised evolution' if name == 're' else 'surrogate-filtered evolution'}, "
            f"{cfg.search_budget} evaluations")
        options = {}
        if name == "filtered":
            options = dict(n_candidates=cfg.n_candidates, k=cfg.k, start_after=cfg.population,
                           refit_every=cfg.refit_every)
        strategy = make_search_strategy(name, task, cfg.seed, "cpu", "rf", cfg.features,
                                        population_size=cfg.population, tournament_size=cfg.tournament, **options)
        run_dir = os.path.join(cfg.out, name)
        results[name] = run_in_dir(strategy, cfg.task, run_dir, name, strategy_name=name, label=name,
                                   budget_evals=cfg.search_budget, protocol=protocol, workers=cfg.workers,
                                   progress=progress)
        refs.append((os.path.join(run_dir, "archive.sqlite"), name, LABELS[name]))
    return results, refs


def run_quickstart(cfg: QuickstartConfig = QuickstartConfig(), progress: bool = True) -> dict:
    """Run the quickstart and return its results (also written to ``cfg.out/quickstart.json``)."""
    from nas.search.report import compare, plot_best_so_far  # deferred: the search engine, matplotlib

    t_start = time.perf_counter()
    os.makedirs(cfg.out, exist_ok=True)
    protocol = get_protocol(cfg.protocol).replace(max_seconds=cfg.max_seconds)
    task = get_task(cfg.task)
    say = print if progress else log.info
    archive_path, tau = _archive_and_tau(cfg, task.name, protocol, progress, say)
    results, refs = _searches(cfg, task, protocol, progress, say)
    table = compare(refs)
    plot = os.path.join(cfg.out, "best_so_far.png")
    plot_best_so_far(refs, plot, title=f"{task.name}: best validation accuracy so far")
    say("[4/4] comparison")
    say(table)
    say(f"plot: {plot}")
    out = {"task": task.name, "tau": tau, "archive": archive_path, "table": table, "plot": plot,
           "seconds": time.perf_counter() - t_start,
           "best": {k: (v.get("best") or {}).get("val_acc") for k, v in results.items()}}
    with open(os.path.join(cfg.out, "quickstart.json"), "w", encoding="utf-8") as fh:
        json.dump(out, fh, indent=2)
    say(f"done in {out['seconds']:.0f} s; results in {cfg.out}")
    return out


def cmd_quickstart(args: argparse.Namespace) -> int:
    run_quickstart(QuickstartConfig(task=args.task, out=args.output, archive_size=args.archive_size,
                                    search_budget=args.budget, workers=args.workers, seed=args.seed))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    d = QuickstartConfig()
    p = sub.add_parser("quickstart", help="the whole loop on a built-in task in a few minutes: archive, surrogate, "
                       "plain vs filtered evolution")
    p.add_argument("--task", default=d.task, help="task (default %(default)s)")
    p.add_argument("-o", "--output", default=d.out,
                   help="output folder (default %(default)s); re-running resumes")
    deprecated_alias(p, "--out", "--output", "output")
    p.add_argument("--archive-size", type=positive_int, default=d.archive_size,
                   help="random architectures trained for the archive the surrogate learns from (default %(default)s)")
    p.add_argument("--budget", type=positive_int, default=d.search_budget,
                   help="evaluations (trained candidates) per search (default %(default)s)")
    p.add_argument("--workers", type=positive_int, default=d.workers,
                   help="evaluations run at once, each in its own process (default %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="sampling, search and surrogate seed (default %(default)s)")
    p.set_defaults(func=cmd_quickstart)
