"""``nas surrogate fit|predict|evaluate`` and ``nas transfer``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

from data.archive import Archive
from data.tasks import get_task
from nas.cli.common import (SURROGATE_MODELS, add_grammar_arg, add_lm_args, deprecated_alias, fit_transfer_surrogate,
                            lm_params, read_architectures, read_text, split_shape_header)
from nas.cli.options import open_fraction, positive_int, seed_int

#: The surrogates a transfer study trains (``surrogates.workflows.transfer_study``: the tabular ones).
TRANSFER_MODELS = ("rf", "xgb", "xgb_tuned", "ensemble")
#: The models a transfer surrogate pools its sources with: ``surrogates.workflows.TRANSFER_BASES``, spelled out so
#: that building the parser imports no surrogate (a test keeps the two equal).
TRANSFER_BASES = ("rf", "xgb", "xgb_tuned")
#: How ``nas transfer`` finds each task's two runs: ``surrogates.task_runs.RUN_CHOICES``, spelled out likewise.
TRANSFER_RUNS = ("auto", "independent", "halves")
#: What ``nas surrogate fit --transfer`` fits: ``surrogates.workflows.TRANSFER_FIT_MODELS`` (a test keeps them equal).
TRANSFER_FIT_MODELS = (*TRANSFER_BASES, "lm")
#: Fewer successfully evaluated architectures than this cannot fit a surrogate worth saving.
MIN_FIT_ARCHITECTURES = 4


def _fit(args: argparse.Namespace) -> int:
    from surrogates import workflows  # deferred: scikit-learn, xgboost, transformers
    from surrogates.persistence import save_surrogate  # deferred: scikit-learn, xgboost, transformers

    if args.transfer:
        if not args.output:
            raise ValueError("nas surrogate fit --transfer needs -o DIR")
        target = [args.task] if args.task else []
        if args.task and os.path.isdir(args.task):  # an Unseen-NAS folder: its evaluations go under its own name
            target.append(get_task(args.task).name)
        surrogate = fit_transfer_surrogate(args.archive, args.model, args.features, args.sources, target,
                                           args.min_source_tau, args.normalise, args.protocol_key, args.seed, args.task,
                                           max_per_source=args.max_per_source, lm_params=lm_params(args, args.model),
                                           size_bands=args.size_bands)
    elif not (args.archive and args.task and args.output):
        raise ValueError("nas surrogate fit needs --archive, --task and -o DIR (or --transfer)")
    else:
        with Archive(args.archive, create=False) as archive:
            _check_enough_to_fit(archive, args.task, args.protocol_key)
            surrogate = workflows.fit_on_archive(archive, args.task, args.model, args.features, args.protocol_key,
                                                 args.seed, **lm_params(args, args.model))
    save_surrogate(surrogate, args.output)
    tau = getattr(surrogate, "train_kendall_tau_", None)  # the LM's check of its own fit
    fit = "" if tau is None else f" (Kendall τ on its training data {tau:.3f})"
    print(f"saved {type(surrogate).__name__} to {args.output}{fit}", file=sys.stderr)
    return 0


def _check_enough_to_fit(archive: Archive, task: str, protocol: str | None) -> None:
    n = len(archive.dataset(task, protocol)[0])
    if n < MIN_FIT_ARCHITECTURES:
        raise ValueError(f"{archive.path}: only {n} successfully evaluated architecture{'s' * (n != 1)} of task "
                         f"{task!r}; a surrogate needs at least {MIN_FIT_ARCHITECTURES} to fit")


def _predict(args: argparse.Namespace) -> int:
    from features.pipeline import uses_proxies  # deferred: scikit-learn, torch
    from surrogates.persistence import load_surrogate  # deferred: scikit-learn, xgboost, transformers

    if not args.dir or not args.input:
        raise ValueError("nas surrogate predict needs DIR and --input FILE")
    # --task: the task the architectures are for; a surrogate featurises them on it (zero-cost proxies on a
    # batch of its data), whatever task it was fitted on
    task = get_task(args.task) if args.task else None
    surrogate = load_surrogate(args.dir, task=task)
    if task is None and surrogate.task_name:
        task = get_task(surrogate.task_name)
    features = getattr(surrogate, "features", None)  # featurised surrogates (not the LM, which reads strings)
    if task is None and features and (uses_proxies(features) or (args.input_shape is None and args.format != "nb201")):
        raise ValueError(f"{args.dir}: this surrogate has no task of its own (fitted on source tasks only); pass "
                         "--task T, the task whose architectures these are")
    text, recorded = split_shape_header(read_text(args.input))  # "# input_shape: ..." as nas sample writes it
    shape = args.input_shape or recorded
    if shape is None and task is not None:
        shape = "x".join(map(str, task.input_shape))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    archs = read_architectures(lines, args.format == "nb201", shape, args.grammar)
    for line, value in zip(lines, surrogate.predict(archs)):
        print(f"{line}\t{float(value):.6g}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from surrogates import workflows  # deferred: scikit-learn, xgboost, transformers
    from surrogates.persistence import load_surrogate  # deferred: scikit-learn, xgboost, transformers

    if not (args.archive and args.task):
        raise ValueError("nas surrogate evaluate needs --archive and --task (and DIR for a saved surrogate)")
    with Archive(args.archive, create=False) as archive:
        if args.dir:
            # featurised on --task, the task of these evaluations (a transfer surrogate has no task of its own)
            metrics = workflows.evaluate_on_archive(load_surrogate(args.dir, task=args.task), archive, args.task,
                                                    args.protocol_key, args.plot)
        else:
            metrics = workflows.evaluate_split(archive, args.task, args.model, args.features, args.test_fraction,
                                               args.protocol_key, args.seed, args.plot, **lm_params(args, args.model))
    print(json.dumps(metrics, indent=2))
    if args.plot:
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


ACTIONS = {"fit": _fit, "predict": _predict, "evaluate": _evaluate}


def cmd_surrogate(args: argparse.Namespace) -> int:
    if args.features is None:  # GRAF + proxies rank best, for transfer too (the shipped archive holds its proxies)
        args.features = "graf,zcp"
    return ACTIONS[args.action](args)


def cmd_transfer(args: argparse.Namespace) -> int:
    from surrogates.task_runs import run_transfer_study  # deferred: scikit-learn, xgboost

    tasks = args.tasks.split(",") if args.tasks else None
    with contextlib.ExitStack() as stack:
        archive = stack.enter_context(Archive(args.archive, create=False))
        test_archive = None if args.test_archive is None else stack.enter_context(
            Archive(args.test_archive, create=False))  # a shipped archive opens read-only
        table = run_transfer_study(archive, args.scheme, args.model, args.features, tasks, args.output, args.seed,
                                   args.normalisation, args.min_source_tau, test_archive, args.runs)
    print(table)
    print(f"wrote tau.md, tau.csv and tau.png to {args.output}", file=sys.stderr)
    return 0


def _add_surrogate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("surrogate", help="fit a surrogate on an archive (or on source tasks, to transfer), predict "
                       "with it, or evaluate it")
    p.add_argument("action", choices=tuple(ACTIONS))
    p.add_argument("dir", nargs="?", help="predict/evaluate: a folder saved by nas surrogate fit")
    p.add_argument("--archive", help="fit/evaluate: the archive (fit --transfer: the source archive; default the "
                   "source archive shipped with the package)")
    p.add_argument("--task", help="fit/evaluate: the task whose evaluations to use (fit --transfer: the target "
                   "task, left out of the sources; optional); predict: the task the architectures are for, whose "
                   "input shape and data they are featurised with (default: the surrogate's own task)")
    p.add_argument("--model", default="rf", choices=SURROGATE_MODELS,
                   help=f"the surrogate (fit --transfer: the model pooling the sources, one of "
                   f"{', '.join(TRANSFER_FIT_MODELS)}; lm is fine-tuned on the pooled strings) (default %(default)s)")
    p.add_argument("--transfer", action="store_true",
                   help="fit: a transfer surrogate on source tasks (--archive, --sources), which predicts for any "
                   "task, of any input shape, and is refitted on a search's own evaluations by nas search")
    p.add_argument("--sources", default="all",
                   help="fit --transfer: comma-separated source tasks, or all tasks of the archive (default %(default)s)")
    p.add_argument("--min-source-tau", type=float, default=None,
                   help="fit --transfer: use only sources whose own half-vs-half τ reaches this (default: all)")
    p.add_argument("--max-per-source", type=positive_int, default=None,
                   help="fit --transfer: at most N rows of each source, a random subset drawn with --seed "
                   "(default: all)")
    p.add_argument("--normalise", "--normalisation", dest="normalise", choices=("minmax", "percentile", "ecdf"),
                   default="minmax", help="fit --transfer: per-task target normalisation of the sources (default "
                   "%(default)s, as published)")
    p.add_argument("--size-bands", type=positive_int, default=1, metavar="N",
                   help="fit --transfer: normalise each source's targets within N equal-count bands of parameter "
                   "count, so the sources teach which networks are good for their size rather than that larger ones "
                   "are (they are on most shipped sources, not on every task); 1: over the whole source (default "
                   "%(default)s)")
    p.add_argument("--features", default=None,
                   help="graf, zcp, graf,zcp or published (the 392 published columns) (default graf,zcp: GRAF plus "
                   "the 13 zero-cost proxies, which rank best; the shipped source archive holds its networks' "
                   "proxies, so --transfer fits in seconds)")
    p.add_argument("--protocol-key", default=None, help="training-protocol key, when the task has several")
    p.add_argument("-o", "--output", help="fit: folder to save the surrogate in")
    p.add_argument("--input", help="predict: a file (or - for stdin) with one architecture per line (lines starting "
                   "with # are comments; '# input_shape: CxHxW', as nas sample writes it, gives the input shape)")
    p.add_argument("--format", choices=("string", "nb201"), default="string", help="predict: input lines")
    p.add_argument("--input-shape", default=None, help="predict: input shape (default: the one --input records, else "
                   "--task's, else the surrogate's task's)")
    add_grammar_arg(p, help="predict: grammar of the architecture strings (default %(default)s)")
    p.add_argument("--test-fraction", type=open_fraction, default=0.25, help="evaluate without DIR: held-out fraction")
    p.add_argument("--plot", default=None, help="evaluate: predicted-vs-true scatter PNG")
    p.add_argument("--seed", type=seed_int, default=0, help="model seed and held-out split seed (default %(default)s)")
    add_lm_args(p, deprecated=True)
    p.set_defaults(func=cmd_surrogate)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    _add_surrogate_parser(sub)
    p = sub.add_parser("transfer", help="transfer surrogates between the tasks of an archive; τ table and heatmap")
    p.add_argument("--archive", required=True, help="the archive of evaluated tasks (read, and its feature cache "
                   "filled); with --test-archive, the runs that train")
    p.add_argument("--test-archive", default=None,
                   help="a second archive with another, independent build of the tasks: --archive's runs train, "
                   "this one's test (read; its feature cache filled unless it is the shipped archive)")
    p.add_argument("--scheme", choices=("one-to-one", "leave-one-out"), default="one-to-one",
                   help="one-to-one: each task's surrogate scored on every other task; leave-one-out: trained on all "
                   "other tasks (default %(default)s)")
    deprecated_alias(p, "--protocol", "--scheme", "scheme", choices=("one-to-one", "leave-one-out"))
    p.add_argument("--runs", choices=TRANSFER_RUNS, default="auto",
                   help="each task's two runs: auto uses two independent runs where a task has them (two random "
                   "builds with different seeds in --archive: the higher seed trains, the lower tests; or "
                   "--test-archive), else two seeded halves of its one run; independent requires them; halves "
                   "always splits (default %(default)s); tau.md says which were used")
    p.add_argument("--model", default="rf", choices=TRANSFER_MODELS, help="the surrogate (default %(default)s)")
    p.add_argument("--features", default="graf,zcp", help="graf, zcp, graf,zcp or published (the 392 published columns) (default %(default)s)")
    p.add_argument("--tasks", default=None, help="comma-separated tasks (default: all in the archive)")
    p.add_argument("--normalisation", choices=("none", "minmax", "percentile", "ecdf"), default=None,
                   help="per-task target normalisation (default: none for one-to-one, percentile for leave-one-out)")
    p.add_argument("--min-source-tau", type=float, default=None,
                   help="leave-one-out: train only on sources whose own half-vs-half τ reaches this (default: all)")
    p.add_argument("-o", "--output", default="runs/transfer", help="folder for tau.md, tau.csv, tau.png (default %(default)s)")
    deprecated_alias(p, "--out", "--output", "output")
    p.add_argument("--seed", type=seed_int, default=0, help="model seed (default %(default)s)")
    p.set_defaults(func=cmd_transfer)
