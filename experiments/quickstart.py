"""The whole loop on a built-in task, in a few minutes on a laptop CPU (``nas quickstart``).

1. build a small archive of random architectures on the task (reduced protocol, CPU sampling budget);
2. fit a random forest on GRAF + zero-cost-proxy features of three quarters of it and print its Kendall τ on
   the rest;
3. run plain regularised evolution and surrogate-filtered evolution with the same training budget;
4. print the comparison table and write the best-so-far plot.

Everything lands in one folder (``--out``); re-running the command resumes whatever was interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


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


def run_quickstart(cfg: QuickstartConfig = QuickstartConfig(), progress: bool = True) -> dict:
    """Run the quickstart and return its results (also written to ``cfg.out/quickstart.json``)."""
    from data.archive import Archive
    from data.evaluate import CPU_BUDGET, build_archive
    from data.tasks import get_task
    from features.pipeline import cached, make_featuriser
    from nas.search import run_search
    from nas.search.factory import make_strategy, make_surrogate
    from nas.search.report import compare, plot_best_so_far
    from surrogates.metrics import kendall_tau
    from surrogates.tabular import TabularSurrogate

    from data.training import get_protocol

    t_start = time.perf_counter()
    os.makedirs(cfg.out, exist_ok=True)
    protocol = get_protocol(cfg.protocol).replace(max_seconds=cfg.max_seconds)
    task = get_task(cfg.task)
    say = print if progress else log.info

    # 1. an archive of random architectures
    archive_path = os.path.join(cfg.out, "archive.sqlite")
    with Archive(archive_path) as archive:
        say(f"[1/4] archive: {cfg.archive_size} random architectures on {task.name} ({cfg.protocol} protocol, "
            f"at most {cfg.max_seconds:g} s each)")
        build_archive(archive, cfg.task, cfg.archive_size, seed=cfg.seed, protocol=protocol, budget=CPU_BUDGET,
                      workers=cfg.workers, run="quickstart-archive", progress=progress)
        evs = archive.evaluations(task=task.name, run="quickstart-archive")
        archs = [archive.architecture(e.arch_hash) for e in evs if e.ok]
        y = np.array([e.val_acc for e in evs if e.ok])

        # 2. a surrogate and its rank correlation on held-out architectures
        say(f"[2/4] surrogate: random forest on {cfg.features} features")
        featuriser = cached(make_featuriser(cfg.features, task), archive, task.name)
        X = featuriser.fit(archs).transform(archs)
        rng = np.random.default_rng(cfg.seed)
        order = rng.permutation(len(archs))
        cut = int(0.75 * len(archs))
        train, test = order[:cut], order[cut:]
        rf = TabularSurrogate("rf", features=cfg.features, task=cfg.task, random_state=cfg.seed)
        rf.fit(X[train], y[train], feature_names=list(featuriser.get_feature_names_out()))
        tau = kendall_tau(y[test], rf.predict(X[test]))
        say(f"      Kendall tau on {len(test)} held-out architectures: {tau:.3f}")

    # 3. plain and filtered evolution with the same training budget
    results = {}
    refs = []
    for name in ("re", "filtered"):
        say(f"[3/4] search: {'regularised evolution' if name == 're' else 'surrogate-filtered evolution'}, "
            f"{cfg.search_budget} evaluations")
        surrogate = None
        options = {}
        if name == "filtered":
            surrogate, _ = make_surrogate("rf", cfg.task, cfg.features, cfg.seed)
            options = dict(n_candidates=cfg.n_candidates, k=cfg.k, start_after=cfg.population,
                           refit_every=cfg.refit_every)
        strategy = make_strategy(name, task, cfg.seed, CPU_BUDGET, surrogate=surrogate,
                                 population_size=cfg.population, tournament_size=cfg.tournament, **options)
        run_dir = os.path.join(cfg.out, name)
        os.makedirs(run_dir, exist_ok=True)
        search_archive = os.path.join(run_dir, "archive.sqlite")
        with open(os.path.join(run_dir, "run.json"), "w", encoding="utf-8") as fh:
            json.dump({"archive": "archive.sqlite", "run": name, "label": name, "task": cfg.task, "strategy": name}, fh)
        with Archive(search_archive) as archive:
            results[name] = run_search(strategy, cfg.task, archive, name, budget_evals=cfg.search_budget,
                                       protocol=protocol, workers=cfg.workers, progress=progress, run_dir=run_dir)
        refs.append((search_archive, name, "RE" if name == "re" else "filtered RE"))

    # 4. the comparison
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
