"""``nas search`` (with ``--final``: the best network retrained and exported), and ``nas status``;
the one place the CLI builds strategies and runs searches."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from data.archive import Archive
from data.final import require_trainable
from data.tasks import get_task
from nas.cli.archive import final_outcome, final_to_folder, report_final_failure, run_best
from nas.cli.common import (PROTOCOLS_HELP, SURROGATE_MODELS, add_lm_args, add_sampling_budget_arg, add_task_args,
                            fit_transfer_surrogate, lm_params, read_run_ref, write_run_ref)
from nas.cli.options import positive_float, positive_int, protocol_spec

#: ``nas.search.factory.STRATEGIES``, spelled out so that building the parser imports no search code (a test
#: keeps the two equal).
STRATEGIES = ("random", "re", "filtered", "objective", "bo")


def search_surrogate(spec: str, task: Any, features: str = "graf,zcp", seed: int = 0,
                     source_archive: str | None = None, **params: Any) -> tuple[Any, bool]:
    """``(surrogate, prefitted)`` for ``nas search --surrogate spec`` on ``task`` (a loaded task): ``transfer``
    is a transfer surrogate fitted on every task of the source archive (``source_archive``, default the shipped
    one) except ``task``, as ``nas surrogate fit --transfer`` fits it; anything else as for
    ``nas.search.factory.make_surrogate`` (a model name, fitted during the search, or a saved folder)."""
    from nas.search.factory import make_surrogate  # deferred: the search engine, surrogates

    if spec == "transfer":
        target = str(getattr(task, "name", task))
        return fit_transfer_surrogate(source_archive, features=features, exclude=[target], seed=seed, task=task,
                                      option="--source-archive"), True
    return make_surrogate(spec, task, features, seed, **params)


def make_search_strategy(name: str, task: Any, seed: int, sampling_budget: str = "cpu",
                         surrogate: str | None = None, features: str = "graf,zcp",
                         surrogate_params: dict[str, Any] | None = None, source_archive: str | None = None,
                         **options: Any) -> Any:
    """The strategy ``name`` for ``task`` (a loaded task), sampling under the named budget;
    ``surrogate`` for ``filtered`` and ``objective`` (``search_surrogate``: a model name, ``transfer`` from
    ``source_archive``, or a saved folder), a fresh one built with ``surrogate_params`` (e.g. ``epochs`` for
    ``lm``); ``options`` as for ``nas.search.factory.make_strategy``."""
    from nas.search.budgets import sampling_budget as named_budget  # deferred: the search engine
    from nas.search.factory import make_strategy  # deferred: the search engine, surrogates

    model, prefit = None, False
    if name in ("filtered", "objective"):
        model, prefit = search_surrogate(surrogate or "rf", task, features, seed, source_archive,
                                         **dict(surrogate_params or {}))
    return make_strategy(name, task, seed, named_budget(sampling_budget, task), surrogate=model, prefit=prefit,
                         **options)


def run_in_dir(strategy: Any, task: str, run_dir: str, run: str, *, strategy_name: str, label: str | None = None,
               archive_path: str | None = None, executor: str = "local", scheduler: str | None = None,
               **options: Any) -> dict:
    """Run (or resume) ``strategy`` on ``task`` as run ``run`` of ``archive_path`` (default
    ``RUN_DIR/archive.sqlite``), with ``RUN_DIR/run.json`` written for and ``nas status``;
    ``options`` go to ``nas.search.run_search``."""
    from nas.search import make_dask_executor, run_search  # deferred: the search engine (scipy, networkx)

    archive_path = archive_path or os.path.join(run_dir, "archive.sqlite")
    write_run_ref(run_dir, archive_path, run, label or run, task, strategy_name)
    pool, close = (None, None)
    if executor == "dask":
        pool, close = make_dask_executor(scheduler, options.get("workers", 1))
    try:
        with Archive(archive_path) as archive:
            return run_search(strategy, task, archive, run, executor=pool, run_dir=run_dir, **options)
    finally:
        if close is not None:
            close()


def _strategy_options(args: argparse.Namespace) -> dict[str, Any]:
    if args.strategy == "filtered":
        from nas.search.factory import default_start_after  # deferred: the search engine

        start_after = args.start_after if args.start_after is not None else default_start_after(args.budget)
        return dict(mode=args.mode, n_candidates=args.n_candidates, k=args.k, quantile=args.quantile,
                    start_after=start_after, refit_every=args.refit_every)
    if args.strategy == "objective":
        return dict(steps=args.steps, top_k=args.k)
    if args.strategy == "bo":
        return dict(n_init=args.n_init, pool_size=args.pool_size)
    return {}


def cmd_search(args: argparse.Namespace) -> int:
    from nas.search.report import plot_best_so_far  # deferred: the search engine, matplotlib

    task = get_task(args.task, seed=args.task_seed)
    if args.final:  # refused before the search, not after it
        try:
            require_trainable(task)
        except ValueError as exc:
            raise ValueError(f"--final: {exc}") from None
    strategy = make_search_strategy(args.strategy, task, args.seed, args.sampling_budget, args.surrogate,
                                    args.features, lm_params(args, args.surrogate), args.source_archive,
                                    seed_arch=args.seed_arch,
                                    population_size=args.population, tournament_size=args.tournament,
                                    **_strategy_options(args))
    run = args.run_name or f"{args.strategy}-seed{args.seed}"
    summary = run_in_dir(strategy, args.task, args.run_dir, run, strategy_name=args.strategy, label=args.label,
                         archive_path=args.archive, executor=args.executor, scheduler=args.scheduler,
                         budget_evals=args.budget, budget_seconds=args.time_budget, protocol=args.protocol,
                         train_seed=args.train_seed, workers=args.workers, task_seed=args.task_seed,
                         device=args.device)
    plot_best_so_far([read_run_ref(args.run_dir)], os.path.join(args.run_dir, "best_so_far.png"))
    if not args.final:
        print(json.dumps(summary, indent=2))
        return 0
    result, output = _final_after_search(args, task)
    summary["final"] = final_outcome(result, output)
    print(json.dumps(summary, indent=2))
    return report_final_failure(args.command, result, output)


def _final_after_search(args: argparse.Namespace, task: Any) -> tuple[Any, str]:
    """``nas search --final``: the run's best architecture retrained on train+valid and saved to RUN_DIR/final
    (replacing an earlier one: re-running the command re-does it, with the same result)."""
    arch, validation, _ = run_best(args.run_dir)
    output = os.path.join(args.run_dir, "final")
    print(f"final evaluation: retraining the best network (val_acc {validation.val_acc:.4f}) on train+valid, "
          f"writing {output}", file=sys.stderr)
    result = final_to_folder(arch, task, args.final_protocol or args.protocol, args.train_seed, args.device, output,
                             validation, replace=True)
    return result, output


def cmd_status(args: argparse.Namespace) -> int:
    from nas.search import summarize  # deferred: the search engine

    archive_path, run, label = read_run_ref(args.run_dir)
    with Archive(archive_path, readonly=True) as archive:
        summary = summarize(archive, run)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    counts, best = summary["counts"], summary["best"]
    print(f"{label} ({summary['strategy']} on {summary['task']}): {summary['evaluations']} steps, "
          f"{counts['trained']} trained, {counts['failed']} failed, {counts['duplicates']} duplicates, "
          f"{counts['filtered']} filtered by the surrogate; {summary['seconds']['wall_clock']:.0f} s")
    if best:
        print(f"best val_acc {best['val_acc']:.4f} (step {best['step']}): {best['arch']}")
    return 0


def _add_search_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="run (or resume) a search on a task; re-running the same command resumes it")
    add_task_args(p, required=True)
    p.add_argument("--strategy", choices=STRATEGIES, default="re",
                   help="bo: Bayesian optimisation, GP with a (hierarchical) WL graph kernel (default %(default)s)")
    p.add_argument("--seed-arch", default=None, help="RE seeds: resnet18, wrn16_4, vit, mlp_mixer or mixed (default: random start)")
    p.add_argument("--surrogate", default="rf",
                   help=f"filtered/objective: {', '.join(m for m in SURROGATE_MODELS if m != 'transfer')} (fitted on "
                   "the run's own evaluations from --start-after on); transfer (fitted on the source archive's tasks, "
                   "the target task left out, and used from the first step); or a folder saved by nas surrogate fit, "
                   "e.g. with --transfer (used from the first step) (default %(default)s)")
    p.add_argument("--source-archive", default=None,
                   help="--surrogate transfer: the archive of evaluated source tasks (default: the source archive "
                   "shipped with the package)")
    p.add_argument("--features", default="graf,zcp", help="surrogate features (default %(default)s)")
    add_lm_args(p)
    p.add_argument("--budget", type=positive_int, default=100, help="evaluations (steps) of the run (default %(default)s)")
    p.add_argument("--time-budget", type=positive_float, default=None, help="wall-clock seconds of the run")
    p.add_argument("--run-dir", required=True, help="folder for run.json, summary.json, plots and (by default) the archive")
    p.add_argument("--archive", default=None, help="archive file to use (default RUN_DIR/archive.sqlite); share one to reuse evaluations")
    p.add_argument("--run-name", default=None, help="default: STRATEGY-seedSEED")
    p.add_argument("--label", default=None, help="name in comparisons")
    p.add_argument("--seed", type=int, default=0, help="search seed: sampling, mutation and selection (default %(default)s)")
    p.add_argument("--train-seed", type=int, default=0, help="training seed of every evaluation (default %(default)s)")
    p.add_argument("--protocol", type=protocol_spec, default="reduced", help=PROTOCOLS_HELP + " (default %(default)s)")
    add_sampling_budget_arg(p)
    p.add_argument("--population", type=positive_int, default=100, help="evolution: population size (default %(default)s)")
    p.add_argument("--tournament", type=positive_int, default=10, help="evolution: tournament size (default %(default)s)")
    p.add_argument("--mode", choices=("topk", "reject"), default="topk", help="filtered: train the best k of n candidates (topk), or reject those predicted outside the population's top --quantile fraction (reject)")
    p.add_argument("--n-candidates", type=positive_int, default=20, help="filtered: mutants scored per batch (default %(default)s)")
    p.add_argument("--k", type=positive_int, default=5, help="filtered: trained per batch; objective: top k trained at the end")
    p.add_argument("--quantile", type=float, default=0.5, help="filtered, reject mode: keep only candidates predicted in the population's top QUANTILE fraction, e.g. 0.3 keeps about the best 30 %%, 1 keeps all (default %(default)s)")
    p.add_argument("--start-after", type=int, default=None,
                   help="filtered: evaluations before a surrogate fitted during the run is used (default: "
                   "min(100, budget // 3), e.g. 10 for --budget 30); a transfer or saved surrogate is used from the "
                   "first step")
    p.add_argument("--refit-every", type=int, default=20,
                   help="filtered: evaluations between surrogate refits; a transfer surrogate is refitted on its "
                   "sources plus the run's own evaluations (default %(default)s)")
    p.add_argument("--steps", type=int, default=1000, help="objective: mutations scored by the surrogate alone")
    p.add_argument("--n-init", type=int, default=10, help="bo: random architectures before the GP is used")
    p.add_argument("--pool-size", type=int, default=200, help="bo: mutants and crossovers scored by EI per ask")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="evaluations run at once (local process pool or Dask workers; default %(default)s)")
    p.add_argument("--executor", choices=("local", "dask"), default="local", help="where evaluations run (default %(default)s)")
    p.add_argument("--scheduler", default=None, help="dask scheduler address (default: a LocalCluster)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default %(default)s)")
    p.add_argument("--final", action="store_true",
                   help="after the search, retrain the best network on train+valid, report its test accuracy and "
                   "save it to RUN_DIR/final (as nas final --run-dir; not for look-up-table tasks)")
    p.add_argument("--final-protocol", type=protocol_spec, default=None,
                   help="--final: the protocol of the final training (default: --protocol)")
    p.set_defaults(func=cmd_search)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    _add_search_parser(sub)
    p = sub.add_parser("status", help="progress and best so far of a search run directory")
    p.add_argument("run_dir")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
