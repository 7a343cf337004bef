"""``nas search`` (one run; ``--seeds`` one run per seed with their mean ± sd; ``--dump-config`` the experiment file
of a command line; ``--final`` the best network retrained and exported) and ``nas status``.  The one place the CLI
builds strategies and runs searches: ``search_once`` runs one set of ``nas search`` options, and ``nas run``
(experiment files) and ``nas.study.Study`` call it too."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import statistics
import sys
from typing import Any, Sequence

from data.archive import Archive
from data.final import require_trainable
from data.tasks import get_task
from nas.cli.archive import final_outcome, final_to_folder, report_final_failure, run_best, writable_archive
from nas.cli.common import (PROTOCOLS_HELP, SURROGATE_MODELS, add_lm_args, add_sampling_budget_arg, add_task_args,
                            fit_transfer_surrogate, lm_params, read_run_ref, write_run_ref)
from nas.cli.options import Parser, pool_count, positive_float, positive_int, protocol_spec, seed_int

#: ``nas.search.factory.STRATEGIES``, spelled out so that building the parser imports no search code (a test
#: keeps the two equal).
STRATEGIES = ("random", "re", "filtered", "objective", "bo")
#: Options that describe a strategy: ``--dump-config`` writes them into the experiment file's
#: ``[strategies.LABEL]`` table and every other option into ``[study]`` (``nas run`` reads either anywhere).
STRATEGY_KEYS = ("strategy", "label", "run_name", "seed_arch", "surrogate", "source_archive", "features",
                 "lm_encoding", "lm_target", "lm_lr", "lm_epochs", "lm_layers", "lm_path", "population",
                 "tournament", "mode", "n_candidates", "k", "quantile", "start_after", "refit_every", "steps",
                 "n_init", "pool_size", "initial_pool")
#: Options of ``nas search`` that are actions rather than settings of a run: no experiment-file key.
ACTION_OPTIONS = ("help", "dump_config")


def search_surrogate(spec: str, task: Any, features: str = "graf", seed: int = 0,
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
                         surrogate: str | None = None, features: str = "graf",
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
               evaluator: Any = None, seed: int | None = None, command: str | None = None,
               **options: Any) -> dict:
    """Run (or resume) ``strategy`` on ``task`` as run ``run`` of ``archive_path`` (default
    ``RUN_DIR/archive.sqlite``), with ``RUN_DIR/run.json`` written for and ``nas status``;
    ``evaluator`` (a ``nas.search.Evaluator``) replaces training on ``task``; ``options`` go to
    ``nas.search.run_search``."""
    from nas.search import make_dask_executor, run_search  # deferred: the search engine (scipy, networkx)

    archive_path = archive_path or os.path.join(run_dir, "archive.sqlite")
    write_run_ref(run_dir, archive_path, run, label or run, task, strategy_name, seed=seed, command=command)
    pool, close = (None, None)
    if executor == "dask":
        pool, close = make_dask_executor(scheduler, options.get("workers", 1))
    try:
        with Archive(archive_path) as archive:
            return run_search(strategy, task, archive, run, executor=pool, run_dir=run_dir, evaluator=evaluator,
                              **options)
    finally:
        if close is not None:
            close()


def _strategy_options(args: argparse.Namespace) -> dict[str, Any]:
    if args.strategy == "filtered":
        from nas.search.factory import default_start_after  # deferred: the search engine

        start_after = args.start_after if args.start_after is not None else default_start_after(args.budget)
        return dict(mode=args.mode, n_candidates=args.n_candidates, k=args.k, quantile=args.quantile,
                    start_after=start_after, refit_every=args.refit_every, shortlist=args.shortlist,
                    initial_candidates=args.initial_pool or None)
    if args.strategy == "objective":
        return dict(steps=args.steps, top_k=args.k, protocol=args.objective_protocol)
    if args.strategy == "bo":
        return dict(n_init=args.n_init, pool_size=args.pool_size)
    return {}


def search_once(args: argparse.Namespace, evaluator: Any = None) -> tuple[dict, int]:
    """Run (or resume) one search from a complete set of ``nas search`` options (``args``: every option of the
    parser, ``seeds`` unset): ``(summary, exit status)``.  ``evaluator`` (a ``nas.search.Evaluator``) replaces
    training on the task (``nas.study.Study``'s own training function).  ``nas search``, ``nas run`` and
    ``Study.run`` all run their searches here."""
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
                         archive_path=writable_archive(args.archive) if args.archive else None,
                         executor=args.executor, scheduler=args.scheduler, evaluator=evaluator,
                         seed=args.seed, command=shlex.join(["nas", *sys.argv[1:]]), budget_evals=args.budget, budget_seconds=args.time_budget,
                         protocol=args.protocol, train_seed=args.train_seed, workers=args.workers,
                         task_seed=args.task_seed, device=args.device)
    plot_best_so_far([read_run_ref(args.run_dir)], os.path.join(args.run_dir, "best_so_far.png"))
    if not args.final:
        return summary, 0
    result, output = _final_after_search(args, task)
    summary["final"] = final_outcome(result, output)
    return summary, report_final_failure(args.command, result, output)


def cmd_search(args: argparse.Namespace) -> int:
    if args.dump_config:
        print(dump_config(args), end="")
        return 0
    if args.seeds:
        return run_many(seed_runs(args), args.run_dir)
    summary, status = search_once(args)
    print(json.dumps(summary, indent=2))
    return status


def seed_list(text: str) -> list[int]:
    """``--seeds``: a range ``0-4`` (both ends included), a list ``0,2,5``, or both (``0-2,7``); no repeats."""
    seeds: list[int] = []
    for part in str(text).split(","):
        bounds = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not bounds:
            raise argparse.ArgumentTypeError(f"must be seeds such as 0-4 or 0,2,5, got {text!r}")
        low, high = int(bounds.group(1)), int(bounds.group(2) or bounds.group(1))
        if high < low:
            raise argparse.ArgumentTypeError(f"must be an increasing range such as 0-4, got {part.strip()!r}")
        if high >= 2**63 or high - low >= 10_000:
            raise argparse.ArgumentTypeError(f"must be at most 10,000 seeds below 2**63, got {part.strip()!r}")
        seeds.extend(range(low, high + 1))
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"repeats a seed: {text!r}")
    return seeds


def seed_runs(args: argparse.Namespace) -> list[argparse.Namespace]:
    """The runs of ``--seeds``: one complete set of options per seed, in ``RUN_DIR/seed-S``, labelled ``--label``
    or the strategy (one label for every seed, so that ``nas compare`` groups them)."""
    return [argparse.Namespace(**{**vars(args), "seed": seed, "seeds": None, "label": args.label or args.strategy,
                                  "run_dir": os.path.join(args.run_dir, f"seed-{seed}")})
            for seed in args.seeds]


def run_many(runs: Sequence[argparse.Namespace], compare_dir: str) -> int:
    """Run each of ``runs`` in turn (``search_once``), print one line per run, then the mean ± sd of the best
    validation accuracy of each (task, label) group over its seeds and the ``nas compare`` command for the
    table and plot; the exit status is the worst of the runs'."""
    status, results = 0, []
    for args in runs:
        summary, code = search_once(args)
        status = max(status, code)
        results.append((args, summary))
        best = summary.get("best") or {}
        print(f"{args.task} {args.label} seed {args.seed}: best val_acc {_acc(best.get('val_acc'))} after "
              f"{summary.get('evaluations', 0)} steps ({args.run_dir})", flush=True)
    for line in seed_statistics(results):
        print(line)
    print(f"table and plot: nas compare {compare_dir}")
    return status


def _acc(value: Any) -> str:
    return "none" if value is None or not math.isfinite(value) else f"{value:.4f}"


def seed_statistics(results: Sequence[tuple[argparse.Namespace, dict]]) -> list[str]:
    """One line per (task, label): mean ± sd (sample standard deviation) of the runs' best validation
    accuracy over their seeds; runs without a successful evaluation are counted but left out of the mean."""
    groups: dict[tuple[str, str], list[tuple[int, float | None]]] = {}
    for args, summary in results:
        best = (summary.get("best") or {}).get("val_acc")
        groups.setdefault((args.task, args.label), []).append((args.seed, best))
    lines = []
    for (task, label), rows in groups.items():
        accs = [acc for _, acc in rows if acc is not None and math.isfinite(acc)]
        seeds = ", ".join(str(seed) for seed, _ in rows)
        sd = f"{statistics.stdev(accs):.4f}" if len(accs) > 1 else "n/a"
        mean = f"{statistics.fmean(accs):.4f}" if accs else "none"
        missing = f"; {len(rows) - len(accs)} without a result" if len(accs) < len(rows) else ""
        lines.append(f"{task} {label}: best val_acc {mean} ± {sd} (mean ± sd over {len(rows)} seeds: {seeds}{missing})")
    return lines


def search_parser() -> argparse.ArgumentParser:
    """The ``nas search`` parser on its own: its options are the keys of an experiment file."""
    sub = Parser(prog="nas").add_subparsers(dest="command")
    _add_search_parser(sub)
    return sub.choices["search"]


def search_options() -> dict[str, argparse.Action]:
    """``nas search``'s settings by key (the option's name without ``--``, ``-`` as ``_``): its parser actions."""
    return {a.dest: a for a in search_parser()._actions if a.dest not in ACTION_OPTIONS}


def dump_config(args: argparse.Namespace) -> str:
    """The experiment file (TOML) of a ``nas search`` command line: the options that differ from their
    defaults, strategy options in ``[strategies.LABEL]`` and the rest in ``[study]``, where LABEL is the
    label the run gets (``--label``, else the run name, or the strategy with ``--seeds``), so ``nas run`` on
    it makes exactly the run(s) of the command line."""
    defaults = {key: action.default for key, action in search_options().items()}
    label = args.label or (args.strategy if args.seeds else args.run_name or f"{args.strategy}-seed{args.seed}")
    tables: dict[str, dict[str, Any]] = {"study": {}, "strategy": {}}
    for key, default in defaults.items():
        value = getattr(args, key)
        if key == "label" or value is None or (value == default and key not in ("task", "run_dir", "strategy")):
            continue
        tables["strategy" if key in STRATEGY_KEYS else "study"][key] = value
    lines = ["# the experiment file of a nas search command line: nas run FILE makes the same run(s)", "[study]"]
    lines += [f"{key} = {toml_value(value)}" for key, value in tables["study"].items()]
    lines += ["", f"[strategies.{toml_key(label)}]"]
    lines += [f"{key} = {toml_value(value)}" for key, value in tables["strategy"].items()]
    return "\n".join(lines) + "\n"


def toml_key(name: str) -> str:
    """``name`` as a TOML key: bare when it can be, else quoted."""
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name, ensure_ascii=False)


def toml_value(value: Any) -> str:
    """A bool, number, string or list of them in TOML (JSON's string escapes are TOML's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as TOML")


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
    p.add_argument("--seed-arch", default=None, help="RE seeds: a seed (resnet18, wrn16_4, vit, mlp_mixer, or the NeurIPS resnet18_v1, wrn16_4_v1, vit_v1, mlp_mixer_v1) or a set (mixed, mixed-v1); default: random start")
    p.add_argument("--surrogate", default="rf",
                   help=f"filtered/objective: {', '.join(m for m in SURROGATE_MODELS if m != 'transfer')} (fitted on "
                   "the run's own evaluations from --start-after on); transfer (fitted on the source archive's tasks, "
                   "the target task left out, and used from the first step); or a folder saved by nas surrogate fit, "
                   "e.g. with --transfer (used from the first step) (default %(default)s)")
    p.add_argument("--source-archive", default=None,
                   help="--surrogate transfer: the archive of evaluated source tasks (default: the source archive "
                   "shipped with the package)")
    p.add_argument("--features", default="graf",
                   help="surrogate features (default %(default)s: GRAF, about a millisecond per candidate; graf,zcp "
                   "adds the 13 zero-cost proxies, about 5 %% of a reduced-protocol training each)")
    p.add_argument("--shortlist", type=positive_int, default=None,
                   help="filtered, topk mode: two-stage filter: a forest on GRAF keeps the best SHORTLIST of the "
                   "--n-candidates; only those are featurised with --features and scored by the surrogate (e.g. "
                   "--features graf,zcp --shortlist 10)")
    p.add_argument("--objective-protocol", choices=("topk", "published"), default="topk",
                   help="objective: topk (1,000 predicted steps from a predicted population, the top --k trained) "
                   "or published (the first generation of --population trained, 200 predicted steps from it, the "
                   "running-best trajectory trained; a model name is fitted on the first generation)")
    add_lm_args(p)
    p.add_argument("--budget", type=positive_int, default=100, help="evaluations (steps) of the run (default %(default)s)")
    p.add_argument("--time-budget", type=positive_float, default=None, help="wall-clock seconds of the run")
    p.add_argument("--run-dir", required=True, help="folder for run.json, summary.json, plots and (by default) the archive")
    p.add_argument("--archive", default=None, help="archive file to use (default RUN_DIR/archive.sqlite); share one to reuse evaluations")
    p.add_argument("--run-name", default=None, help="default: STRATEGY-seedSEED")
    p.add_argument("--label", default=None, help="name in comparisons")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=seed_int, default=0,
                       help="search seed: sampling, mutation and selection (default %(default)s)")
    seeds.add_argument("--seeds", type=seed_list, default=None,
                       help="one run per seed, e.g. 0-4 or 0,2,5, in RUN_DIR/seed-S (one after the other), then the "
                       "mean ± sd of their best validation accuracy; nas compare RUN_DIR shows them together")
    p.add_argument("--train-seed", type=seed_int, default=0, help="training seed of every evaluation (default %(default)s)")
    p.add_argument("--protocol", type=protocol_spec, default="reduced", help=PROTOCOLS_HELP + " (default %(default)s)")
    add_sampling_budget_arg(p)
    p.add_argument("--population", type=positive_int, default=100, help="evolution: population size (default %(default)s)")
    p.add_argument("--tournament", type=positive_int, default=10, help="evolution: tournament size (default %(default)s)")
    p.add_argument("--mode", choices=("topk", "reject"), default="topk", help="filtered: train the best k of n candidates (topk), or reject those predicted outside the population's top --quantile fraction (reject)")
    p.add_argument("--n-candidates", type=positive_int, default=20, help="filtered: mutants scored per batch (default %(default)s)")
    p.add_argument("--k", type=positive_int, default=5, help="filtered: trained per batch; objective: top k trained at the end")
    p.add_argument("--initial-pool", type=pool_count, default=None, metavar="N",
                   help="filtered, with a pre-fitted surrogate (transfer or a saved folder): the initial population is "
                   "the best-predicted of N random samples, at least --population (default: none, chosen --k of "
                   "--n-candidates at a time like later batches)")
    p.add_argument("--quantile", type=float, default=0.5, help="filtered, reject mode: keep only candidates predicted in the population's top QUANTILE fraction, e.g. 0.3 keeps about the best 30 %%, 1 keeps all (default %(default)s)")
    p.add_argument("--start-after", type=int, default=None,
                   help="filtered: evaluations before a surrogate fitted during the run is used (default: "
                   "min(100, budget // 3), e.g. 10 for --budget 30); a transfer or saved surrogate is used from the "
                   "first step")
    p.add_argument("--refit-every", type=int, default=20,
                   help="filtered: evaluations between surrogate refits; a transfer surrogate is refitted on its "
                   "sources plus the run's own evaluations (default %(default)s)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="objective: mutations scored by the surrogate alone (default: 1000 for topk, 200 for published)")
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
    p.add_argument("--dump-config", action="store_true",
                   help="print the experiment file (TOML) of this command line and exit without running; "
                   "nas run FILE makes the same run(s)")
    p.set_defaults(func=cmd_search)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    _add_search_parser(sub)
    p = sub.add_parser("status", help="progress and best so far of a search run directory")
    p.add_argument("run_dir")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
