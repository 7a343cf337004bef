"""``nas quickstart``: the whole loop on a built-in task, in minutes on a laptop CPU.

1. build a small archive of random architectures on the task (reduced protocol, CPU-sized networks);
2. fit a random forest on GRAF features (the default filter's) of three quarters of it and print its Kendall τ on
   the rest (as ``nas surrogate evaluate`` measures it); that forest is saved to ``OUT/surrogate``;
3. plain regularised evolution;
4. surrogate-filtered evolution with the forest of step 2, used from the first step and refitted on its rows
   plus the run's own evaluations (as a transfer surrogate is);
5. transfer-filtered evolution: a forest fitted on the source archive (the shipped one by default) with the
   quickstart's task left out, as ``nas search --surrogate transfer`` fits it;
6. the comparison at equal training budgets, failures by reason, and the best-so-far plot.

Results do not depend on the machine's load: candidates are kept CPU-sized by size budgets (FLOPs, layers,
parameters, activation memory), not by a per-candidate time limit; a generous safety timeout stays, and a
candidate it stops is a failure of its own kind ("over time budget"), which no surrogate trains or is scored
on.  Each search runs one evaluation at a time, so the same seed gives the same table.  Everything lands in
one folder (``--output``); re-running the command resumes whatever was interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

from data.archive import Archive
from data.tasks import get_task
from data.training import TrainingProtocol, get_protocol
from nas.cli.archive import fill_archive
from nas.cli.common import deprecated_alias
from nas.cli.options import positive_int, seed_int
from nas.cli.search import make_search_strategy, run_in_dir

log = logging.getLogger(__name__)

ARCHIVE_RUN = "quickstart-archive"
#: The three searches: run name and label.
RUNS = (("re", "RE"), ("filtered", "filtered RE"), ("transfer", "transfer-filtered RE"))
STEPS = 6
STATISTICS = ("One seed is an anecdote: the searches differ by chance as much as by method. For statistics over "
              "seeds run `nas run examples/quickstart.toml` (the same three searches, seeds 0-4) or "
              "`nas search --seeds 0-4 ...`.")

Say = Callable[[str], Any]


@dataclass(frozen=True)
class QuickstartConfig:
    """Sizes of the quickstart; the defaults are sized for at most ten minutes on 2 CPU cores (see the README)."""

    task: str = "language-mini"
    out: str = "runs/quickstart"
    archive_size: int = 50
    search_budget: int = 30
    population: int = 10
    tournament: int = 3
    n_candidates: int = 20
    k: int = 5
    refit_every: int = 10
    protocol: str = "reduced"
    #: A safety net per candidate (s), far above any CPU-sized network; what it stops is recorded as
    #: "over time budget" and kept out of every surrogate.
    max_seconds: float = 600.0
    #: Size budgets on top of the ``cpu`` sampling budget: forward FLOPs per sample and layer instances (on the
    #: offline tasks they halve the mean training time of random networks and keep the best of them).
    max_flops: float = 5e5
    max_layers: int = 60
    #: The default filter's features (``nas.search.factory.FILTER_FEATURES``): GRAF, a millisecond a candidate.
    features: str = "graf"
    seed: int = 0
    #: Parallel evaluations of the archive build (the searches run one at a time, so they replay exactly).
    workers: int = 2
    #: Archive of evaluated source tasks for the transfer-filtered run (None: the shipped source archive).
    source_archive: str | None = None


def sampling_budget(cfg: QuickstartConfig) -> Any:
    """The quickstart's size budget: the ``cpu`` sampling budget with ``max_flops`` and ``max_layers``."""
    from nas.search.budgets import CPU_BUDGET  # deferred: the search engine

    return dataclasses.replace(CPU_BUDGET, max_flops=cfg.max_flops, max_layers=cfg.max_layers)


def failure_kind(reason: str) -> str:
    """A failure's reason without its numbers: ``over time budget: 612.0 s > 600 s at ...`` → ``over time
    budget``, ``non-finite loss (nan) at epoch 1, step 3`` → ``non-finite loss``."""
    kind = str(reason).split(":", 1)[0].split(" (", 1)[0].split(" at epoch", 1)[0].strip()
    return kind or "unknown"


def describe_failures(reasons: list[str]) -> str:
    """``2 non-finite loss, 1 over memory budget`` (most frequent first), or ``none``."""
    counts = Counter(failure_kind(r) for r in reasons)
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"


def _archive(cfg: QuickstartConfig, task: Any, protocol: TrainingProtocol, progress: bool, say: Say) -> str:
    """Step 1: the archive of random architectures."""
    path = os.path.join(cfg.out, "archive.sqlite")
    say(f"[1/{STEPS}] archive: {cfg.archive_size} random architectures on {task.name} ({cfg.protocol} protocol; "
        f"at most {cfg.max_flops:g} FLOPs per sample and {cfg.max_layers} layers, safety timeout "
        f"{cfg.max_seconds:g} s)")
    with Archive(path) as archive:
        fill_archive(archive, cfg.task, cfg.archive_size, seed=cfg.seed, protocol=protocol,
                     budget=sampling_budget(cfg), workers=cfg.workers, run=ARCHIVE_RUN, progress=progress)
        failed = [e.reason for e in archive.evaluations(task=task.name, protocol=protocol.key) if not e.ok]
    say(f"      {len(failed)} of {cfg.archive_size} failed: {describe_failures(failed)}")
    return path


def _surrogate(cfg: QuickstartConfig, archive_path: str, task: Any, protocol: TrainingProtocol,
               say: Say) -> tuple[Any, dict[str, Any]]:
    """Step 2: the forest the filtered run uses, fitted on three quarters of the archive and scored on the rest."""
    from surrogates.persistence import save_surrogate  # deferred: scikit-learn
    from surrogates.workflows import fit_for_search  # deferred: scikit-learn

    say(f"[2/{STEPS}] surrogate: random forest on {cfg.features} features of three quarters of the archive")
    with Archive(archive_path) as archive:
        surrogate, metrics = fit_for_search(archive, task.name, "rf", cfg.features, 0.25, protocol.key, cfg.seed,
                                            task_obj=task)
    folder = os.path.join(cfg.out, "surrogate")
    save_surrogate(surrogate, folder)
    say(f"      Kendall tau on {metrics['n_test']} held-out architectures: {metrics['kendall_tau']:.3f} "
        f"(fitted on {metrics['n_train']}; saved to {folder}; the filtered search uses this forest)")
    return surrogate, {"kendall_tau": float(metrics["kendall_tau"]), "n_train": int(metrics["n_train"]),
                       "n_test": int(metrics["n_test"]), "dir": folder}


def _filter_options(cfg: QuickstartConfig) -> dict[str, Any]:
    return dict(population_size=cfg.population, tournament_size=cfg.tournament, n_candidates=cfg.n_candidates,
                k=cfg.k, refit_every=cfg.refit_every, start_after=0)


def _strategies(cfg: QuickstartConfig, task: Any, surrogate: Any, say: Say) -> tuple[dict[str, Any], dict[str, str]]:
    """The three strategies (``transfer`` is None without a source archive) and what each one's surrogate is."""
    from nas.search.factory import make_strategy  # deferred: the search engine, surrogates

    budget = sampling_budget(cfg)
    strategies = {"re": make_search_strategy("re", task, cfg.seed, budget, population_size=cfg.population,
                                             tournament_size=cfg.tournament),
                  "filtered": make_strategy("filtered", task, cfg.seed, budget, surrogate=surrogate, prefit=True,
                                            **_filter_options(cfg))}
    n_rows = surrogate.source_blocks_[0]["n_rows"] - surrogate.source_blocks_[0]["n_dropped"]
    notes = {"re": "–", "filtered": f"RF on {n_rows} networks of this task (step 2)"}
    source = cfg.source_archive or "the shipped source archive"
    say(f"      transfer: a random forest on the tasks of {source} but {task.name}")
    try:
        strategies["transfer"] = make_search_strategy("filtered", task, cfg.seed, budget, "transfer", cfg.features,
                                                      None, cfg.source_archive, **_filter_options(cfg))
    except FileNotFoundError as exc:
        strategies["transfer"], notes["transfer"] = None, f"not run: {exc}"
        return strategies, notes
    blocks = strategies["transfer"].surrogate.source_blocks_
    rows = sum(int(b["n_rows"]) - int(b["n_dropped"]) for b in blocks)
    notes["transfer"] = f"RF on {rows} networks of {len(blocks)} other tasks"
    say(f"      transfer: {notes['transfer']} ({', '.join(str(b['name']) for b in blocks)})")
    return strategies, notes


def _searches(cfg: QuickstartConfig, task: Any, protocol: TrainingProtocol, strategies: dict[str, Any],
              progress: bool, say: Say) -> tuple[dict[str, dict], dict[str, float]]:
    """Steps 3-5: the searches, each with the same training budget and one evaluation at a time; their
    summaries and the seconds each took."""
    results, seconds = {}, {}
    for step, (name, label) in enumerate(RUNS, start=3):
        if strategies.get(name) is None:
            say(f"[{step}/{STEPS}] search: {label}: skipped (no source archive)")
            continue
        say(f"[{step}/{STEPS}] search: {label}, {cfg.search_budget} evaluations")
        t0 = time.perf_counter()
        results[name] = run_in_dir(strategies[name], cfg.task, os.path.join(cfg.out, name), name,
                                   strategy_name="re" if name == "re" else "filtered", label=label,
                                   budget_evals=cfg.search_budget, protocol=protocol, workers=1, progress=progress)
        seconds[name] = time.perf_counter() - t0
    return results, seconds


def _run_failures(cfg: QuickstartConfig, name: str) -> list[str]:
    from nas.search import run_history  # deferred: the search engine

    with Archive(os.path.join(cfg.out, name, "archive.sqlite"), readonly=True) as archive:
        return [e.evaluation.reason for e in run_history(archive, name) if not e.evaluation.ok]


def results_table(cfg: QuickstartConfig, results: dict[str, dict], notes: dict[str, str]) -> str:
    """The comparison as Markdown: only what the seed decides (no clock), so it is the same on any load."""
    header = ("search", "surrogate", "best val acc", "found at step", "trained", "failed", "failures by reason")
    lines = ["| " + " | ".join(header) + " |", "|---|---|---:|---:|---:|---:|---|"]
    for name, label in RUNS:
        s = results.get(name)
        if s is None:
            lines.append(f"| {label} | {notes[name]} | – | – | – | – | – |")
            continue
        best, counts = s.get("best") or {}, s["counts"]
        acc = "–" if not best else f"{best['val_acc']:.4f}"
        step = "–" if not best else str(best["step"] + 1)
        lines.append(f"| {label} | {notes[name]} | {acc} | {step} | {counts['trained']} | {counts['failed']} | "
                     f"{describe_failures(_run_failures(cfg, name))} |")
    return "\n".join(lines) + "\n"


def run_quickstart(cfg: QuickstartConfig = QuickstartConfig(), progress: bool = True) -> dict:
    """Run the quickstart and return its results (also written to ``cfg.out/quickstart.json``)."""
    from nas.search.report import plot_best_so_far  # deferred: the search engine, matplotlib

    t_start = time.perf_counter()
    os.makedirs(cfg.out, exist_ok=True)
    protocol = get_protocol(cfg.protocol).replace(max_seconds=cfg.max_seconds)
    task = get_task(cfg.task)
    say = print if progress else log.info
    clock = [time.perf_counter()]
    archive_path = _archive(cfg, task, protocol, progress, say)
    clock.append(time.perf_counter())
    surrogate, fitted = _surrogate(cfg, archive_path, task, protocol, say)
    strategies, notes = _strategies(cfg, task, surrogate, say)
    clock.append(time.perf_counter())
    results, seconds = _searches(cfg, task, protocol, strategies, progress, say)
    table = results_table(cfg, results, notes)
    refs = [(os.path.join(cfg.out, name, "archive.sqlite"), name, label) for name, label in RUNS if name in results]
    plot = os.path.join(cfg.out, "best_so_far.png")
    plot_best_so_far(refs, plot, title=f"{task.name}: best validation accuracy so far")
    say(f"[{STEPS}/{STEPS}] comparison at equal training budgets ({cfg.search_budget} evaluations per search, "
        f"seed {cfg.seed})")
    say(table)
    out = {"task": task.name, "seed": cfg.seed, "tau": fitted["kendall_tau"], "surrogate": fitted,
           "archive": archive_path, "table": table, "plot": plot,
           "sources": _source_names(strategies.get("transfer")), "transfer": notes["transfer"],
           "best": {k: (v.get("best") or {}).get("val_acc") for k, v in results.items()},
           "seconds": time.perf_counter() - t_start,
           "step_seconds": {"archive": clock[1] - clock[0], "surrogates": clock[2] - clock[1],
                            **seconds}}
    _report_footer(cfg, out, say)
    with open(os.path.join(cfg.out, "quickstart.json"), "w", encoding="utf-8") as fh:
        json.dump(out, fh, indent=2)
    return out


def _source_names(strategy: Any) -> list[str] | None:
    if strategy is None:
        return None
    return [str(b["name"]) for b in strategy.surrogate.source_blocks_]


def _report_footer(cfg: QuickstartConfig, out: dict, say: Say) -> None:
    """What the table does not say: the filtered run's extra training cost, the seed, where things are."""
    say(f"The filtered search's forest learned from the {cfg.archive_size} networks trained in step 1 (on top of "
        "its budget); the transfer-filtered search's from networks of other tasks, trained once and shipped.")
    say(STATISTICS)
    steps = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in out["step_seconds"].items())
    say(f"plot: {out['plot']}; done in {out['seconds']:.0f} s ({steps}); results in {cfg.out}")


def cmd_quickstart(args: argparse.Namespace) -> int:
    run_quickstart(QuickstartConfig(task=args.task, out=args.output, archive_size=args.archive_size,
                                    search_budget=args.budget, workers=args.workers, seed=args.seed,
                                    source_archive=args.source_archive))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    d = QuickstartConfig()
    p = sub.add_parser("quickstart", help="the whole loop on a built-in task in minutes: archive, surrogate, plain "
                       "vs filtered vs transfer-filtered evolution")
    p.add_argument("--task", default=d.task, help="task (default %(default)s)")
    p.add_argument("-o", "--output", default=d.out,
                   help="output folder (default %(default)s); re-running resumes")
    deprecated_alias(p, "--out", "--output", "output")
    p.add_argument("--archive-size", type=positive_int, default=d.archive_size,
                   help="random architectures trained for the archive the surrogate learns from (default %(default)s)")
    p.add_argument("--budget", type=positive_int, default=d.search_budget,
                   help="evaluations (trained candidates) per search (default %(default)s)")
    p.add_argument("--workers", type=positive_int, default=d.workers,
                   help="archive build: evaluations run at once, each in its own process; the searches run one "
                   "at a time so that a seed gives the same result on any machine load (default %(default)s)")
    p.add_argument("--seed", type=seed_int, default=d.seed, help="sampling, search and surrogate seed (default %(default)s)")
    p.add_argument("--source-archive", default=None,
                   help="archive of evaluated source tasks for the transfer-filtered search (default: the source "
                   "archive shipped with the package); the quickstart's task is left out of it")
    p.set_defaults(func=cmd_quickstart)
