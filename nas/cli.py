"""The ``nas`` command: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Sequence

from nas.architecture import Architecture, parse_shape
from nas.errors import ArchitectureSyntaxError, InvalidArchitectureError, SamplingError
from nas.grammar.core import Budget, grammar_names

log = logging.getLogger("nas")

DEFAULT_SHAPE = "3x32x32"


def _budget_args(p: argparse.ArgumentParser) -> None:
    d = Budget()
    g = p.add_argument_group("budgets (never exceeded)")
    g.add_argument("--max-nodes", type=int, default=None,
                   help=f"derivation-tree nodes (default: the grammar's; {d.max_nodes} for einspace)")
    g.add_argument("--max-depth", type=int, default=d.max_depth, help="derivation-tree depth (default %(default)s)")
    g.add_argument("--max-params", type=int, default=d.max_params, help="backbone parameters (default %(default)s)")
    g.add_argument("--max-flops", type=float, default=d.max_flops, help="forward FLOPs per sample (default %(default)g)")
    g.add_argument("--max-activation", type=int, default=d.max_activation,
                   help="elements of the largest tensor at --batch-size (default %(default)s)")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help="batch size for the activation budget")
    g.add_argument("--max-layers", type=int, default=d.max_layers,
                   help="layer instances of the compiled network, replicated branches counted per copy (default %(default)s)")


def _budget(args: argparse.Namespace) -> Budget:
    from nas.grammar import get_grammar

    max_nodes = args.max_nodes if args.max_nodes is not None else get_grammar(args.grammar).budget().max_nodes
    return Budget(max_nodes, args.max_depth, args.max_params, args.max_flops, args.max_activation, args.batch_size,
                  args.max_layers)


def cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from nas.grammar.sampler import Sampler

    sampler = Sampler(args.grammar, args.input_shape, _budget(args))
    rng = np.random.default_rng(args.seed)
    out = sys.stdout
    for arch in tqdm(sampler.sample_many(args.n, rng), total=args.n, desc="sampling", unit="arch",
                     disable=None if args.n >= 100 else True, file=sys.stderr):
        if args.json:
            record = arch.summary()
            record["tree"] = arch.root.to_dict()
            if args.classes:
                record["params_with_head"] = arch.num_params + arch.head_params(args.classes)
            out.write(json.dumps(record) + "\n")
        else:
            out.write(arch.to_string() + "\n")
    return 0


def _read_architecture(text: str, input_shape: str | None, grammar: str) -> Architecture:
    from nas.seeds import SEEDS, get_seed

    shape = input_shape or DEFAULT_SHAPE
    if text.strip().lower().replace("-", "_") in SEEDS:
        return get_seed(text.strip(), shape)
    stripped = text.strip()
    if stripped.startswith("{") and '"input_shape"' in stripped.split("\n", 1)[0]:
        data = json.loads(stripped.split("\n", 1)[0])
        if input_shape:
            data["input_shape"] = list(parse_shape(input_shape))
        return Architecture.from_json(data)
    return Architecture.from_string(stripped, shape, grammar)


def _read_text(source: str | None) -> str:
    """An argument that is a string, a file name, or '-'/absent for standard input."""
    if source is None or source == "-":
        return sys.stdin.read()
    if os.path.isfile(source):
        with open(source, encoding="utf-8") as fh:
            return fh.read()
    return source


def cmd_show(args: argparse.Namespace) -> int:
    arch = _read_architecture(_read_text(args.arch), args.input_shape, args.grammar)
    if args.graph:
        from nas.graph import draw_graph

        draw_graph(arch, args.graph)
        print(f"wrote the graph to {args.graph}", file=sys.stderr)
    if args.json:
        record = arch.summary()
        record["long_string"] = arch.long_string()
        print(json.dumps(record, indent=2))
        return 0
    print(arch.to_string())
    print()
    print(arch.pretty(num_classes=args.classes))
    return 0


# -- tasks, evaluation, archives ---------------------------------------------------------------------


def cmd_tasks(args: argparse.Namespace) -> int:
    from data.tasks import get_task, task_descriptions

    if args.action == "list":
        for name, desc in task_descriptions().items():
            print(f"{name:<20} {desc}")
        return 0
    if not args.name:
        raise ValueError(f"nas tasks {args.action} needs a task name or folder")
    task = get_task(args.name, seed=args.seed)
    if args.action == "show":
        print(json.dumps(task.describe(), indent=2))
        return 0
    if getattr(task, "is_tabular", False):
        raise ValueError(f"task {task.name!r} is a look-up table: it has no data to export")
    from data.unseen import export_unseen

    if not args.output:
        raise ValueError("nas tasks export needs -o FOLDER")
    export_unseen(task, args.output)
    print(f"wrote {task.name} to {args.output} (Unseen-NAS format)", file=sys.stderr)
    return 0


def _task_arch(args: argparse.Namespace, task) -> Architecture:
    grammar = getattr(task, "grammar", None) or args.grammar
    text = _read_text(args.arch)
    if grammar == "nb201" and text.strip().startswith("|"):
        from nas.grammar.nb201 import from_cell_string

        return from_cell_string(text.strip(), task.input_shape)
    shape = "x".join(map(str, task.input_shape))
    return _read_architecture(text, shape, grammar)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from data.tasks import get_task
    from data.training import get_protocol, train_and_evaluate

    task = get_task(args.task, seed=args.task_seed)
    arch = _task_arch(args, task)
    protocol = get_protocol(args.protocol)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    ev = train_and_evaluate(arch, task, protocol, seed=args.seed, device=args.device)
    if args.archive:
        from data.archive import Archive

        with Archive(args.archive) as archive:
            archive.add_evaluation(ev, arch)
    record = ev.to_dict() | {"arch": arch.to_string()}
    print(json.dumps(record, indent=2 if not args.json else None))
    return 0 if ev.ok else 1


def cmd_archive(args: argparse.Namespace) -> int:
    from data.archive import Archive

    if args.action == "upgrade":
        return cmd_archive_upgrade(args)
    with Archive(args.archive) as archive:
        if args.action == "build":
            from data.evaluate import build_archive

            if not args.task:
                raise ValueError("nas archive build needs --task")
            counts = build_archive(
                archive, args.task, args.n, seed=args.seed, sampler=args.sampler, protocol=args.protocol,
                budget=args.budget, grammar=args.grammar, task_seed=args.task_seed, train_seed=args.train_seed,
                workers=args.workers, device=args.device, run=args.run,
            )
            print(json.dumps(counts))
        elif args.action == "info":
            print(f"{archive.path}: {archive.num_architectures()} architectures")
            for task, protocol, n in archive.tasks():
                ok = archive.count(task=task, protocol=protocol, status="ok")
                _, y = archive.dataset(task, protocol)
                best = f", best val_acc {y.max():.4f}, mean {y.mean():.4f}" if len(y) else ""
                print(f"  {task:<20} {protocol:<22} {n:>6} evaluations ({n - ok} failed){best}")
            for run in archive.runs():
                print(f"  run {run['name']} ({run['kind']}, since {run['created']})")
        elif args.action == "export":
            if not args.output:
                raise ValueError("nas archive export needs -o FILE.csv")
            n = archive.export_csv(args.output, task=args.task, protocol=args.protocol_key)
            print(f"wrote {n} evaluations to {args.output}", file=sys.stderr)
        elif args.action == "import":
            if not args.input:
                raise ValueError("nas archive import needs -i FILE.csv")
            n = archive.import_csv(args.input, task=args.task, protocol=args.protocol_key or "imported",
                                   input_shape=args.input_shape, grammar=args.grammar or "einspace")
            print(f"added {n} evaluations from {args.input}", file=sys.stderr)
    return 0


def cmd_archive_upgrade(args: argparse.Namespace) -> int:
    """``nas archive upgrade``: the one action that must not open ``--archive`` as a current archive."""
    from data.archive import upgrade_archive

    if not args.output:
        raise ValueError("nas archive upgrade needs -o NEW.sqlite")
    counts = upgrade_archive(args.archive, args.output)
    print(json.dumps(counts))
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    import numpy as np

    from data.tasks import get_task
    from features.pipeline import cached, make_featuriser

    task = get_task(args.task, seed=args.task_seed) if args.task else None
    if args.action == "compute":
        from data.archive import Archive

        if task is None or not args.archive:
            raise ValueError("nas features compute needs --archive and --task")
        with Archive(args.archive) as archive:
            hashes = list(dict.fromkeys(e.arch_hash for e in archive.evaluations(task=task.name)))
            if not hashes:
                raise ValueError(f"{args.archive} holds no evaluation on task {task.name!r}")
            archs = [archive.architecture(h) for h in hashes]
            featuriser = cached(make_featuriser(args.features, task, archs[0].grammar.name), archive, task.name,
                                progress=True)
            X = featuriser.fit(archs).transform(archs)
        finite = np.isfinite(X)
        print(json.dumps({"architectures": len(archs), "columns": X.shape[1],
                          "non_finite_values": int((~finite).sum())}))
        return 0
    arch = _task_arch(args, task) if task is not None else _read_architecture(_read_text(args.arch), args.input_shape,
                                                                                args.grammar)
    featuriser = make_featuriser(args.features, task, arch.grammar.name)
    row = featuriser.fit([arch]).transform([arch])[0]
    names = featuriser.get_feature_names_out()
    shown = {str(n): float(v) for n, v in zip(names, row) if args.all or v != 0}
    if args.json:
        print(json.dumps(shown))
    else:
        width = max((len(n) for n in shown), default=0)
        for name, value in shown.items():
            print(f"{name:<{width}}  {value:.6g}")
        print(f"({len(shown)} of {len(names)} columns shown{'' if args.all else '; zeros hidden, --all shows them'})",
              file=sys.stderr)
    return 0


def _run_ref(path: str) -> tuple[str, str, str]:
    """``(archive, run name, label)`` of a run directory written by ``nas search``."""
    with open(os.path.join(path, "run.json"), encoding="utf-8") as fh:
        info = json.load(fh)
    return os.path.join(path, info["archive"]), info["run"], info.get("label", os.path.basename(os.path.normpath(path)))


def cmd_search(args: argparse.Namespace) -> int:
    from data.archive import Archive
    from data.evaluate import sampling_budget
    from data.tasks import get_task
    from nas.search import make_dask_executor, run_search
    from nas.search.factory import make_strategy, make_surrogate
    from nas.search.report import plot_best_so_far

    task = get_task(args.task, seed=args.task_seed)
    surrogate, prefit = (None, False)
    if args.strategy in ("filtered", "objective"):
        surrogate, prefit = make_surrogate(args.surrogate, args.task, args.features, args.seed)
    options = {}
    if args.strategy == "filtered":
        options = dict(mode=args.mode, n_candidates=args.n_candidates, k=args.k, quantile=args.quantile,
                       start_after=args.start_after, refit_every=args.refit_every)
    elif args.strategy == "objective":
        options = dict(steps=args.steps, top_k=args.k)
    elif args.strategy == "bo":
        options = dict(n_init=args.n_init, pool_size=args.pool_size)
    strategy = make_strategy(args.strategy, task, args.seed, sampling_budget(args.sampling_budget, task), None, args.seed_arch,
                             surrogate, prefit, args.population, args.tournament, **options)
    os.makedirs(args.run_dir, exist_ok=True)
    archive_path = args.archive or os.path.join(args.run_dir, "archive.sqlite")
    run = args.run_name or f"{args.strategy}-seed{args.seed}"
    with open(os.path.join(args.run_dir, "run.json"), "w", encoding="utf-8") as fh:
        json.dump({"archive": os.path.relpath(archive_path, args.run_dir), "run": run, "label": args.label or run,
                   "task": args.task, "strategy": args.strategy}, fh, indent=2)
    executor, close = None, None
    if args.executor == "dask":
        executor, close = make_dask_executor(args.scheduler, args.workers)
    try:
        with Archive(archive_path) as archive:
            summary = run_search(strategy, args.task, archive, run, budget_evals=args.budget,
                                 budget_seconds=args.time_budget, protocol=args.protocol, train_seed=args.train_seed,
                                 executor=executor, workers=args.workers, task_seed=args.task_seed,
                                 device=args.device, run_dir=args.run_dir)
    finally:
        if close is not None:
            close()
    plot_best_so_far([_run_ref(args.run_dir)], os.path.join(args.run_dir, "best_so_far.png"))
    print(json.dumps(summary, indent=2))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from data.archive import Archive
    from nas.search import summarize

    archive_path, run, label = _run_ref(args.run_dir)
    with Archive(archive_path) as archive:
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


def cmd_compare(args: argparse.Namespace) -> int:
    from nas.search.report import compare, plot_best_so_far

    refs = [_run_ref(d) for d in args.run_dirs]
    print(compare(refs))
    if args.plot:
        plot_best_so_far(refs, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def cmd_surrogate(args: argparse.Namespace) -> int:
    from data.archive import Archive
    from surrogates import workflows
    from surrogates.persistence import load_surrogate, save_surrogate

    lm = {k: v for k, v in (("encoding", args.encoding), ("epochs", args.epochs), ("num_layers", args.num_layers),
                            ("model_path", args.lm_path)) if v is not None} if args.model == "lm" else {}
    if args.action == "fit":
        if not (args.archive and args.task and args.output):
            raise ValueError("nas surrogate fit needs --archive, --task and -o DIR")
        with Archive(args.archive) as archive:
            surrogate = workflows.fit_on_archive(archive, args.task, args.model, args.features, args.protocol_key,
                                                 args.seed, **lm)
        save_surrogate(surrogate, args.output)
        print(f"saved {type(surrogate).__name__} to {args.output}", file=sys.stderr)
        return 0
    if args.action == "predict":
        if not args.dir or not args.input:
            raise ValueError("nas surrogate predict needs DIR and --input FILE")
        surrogate = load_surrogate(args.dir)
        task = getattr(surrogate, "task", None)
        shape = args.input_shape
        if shape is None and task is not None:
            from data.tasks import get_task

            shape = "x".join(map(str, get_task(task).input_shape)) if isinstance(task, str) else None
        lines = [line.strip() for line in _read_text(args.input).splitlines() if line.strip()]
        if args.format == "nb201":
            from nas.grammar.nb201 import from_cell_string

            archs = [from_cell_string(line) for line in lines]
        else:
            archs = [_read_architecture(line, shape, args.grammar) for line in lines]
        for line, value in zip(lines, surrogate.predict(archs)):
            print(f"{line}\t{float(value):.6g}")
        return 0
    # evaluate
    if not (args.archive and args.task):
        raise ValueError("nas surrogate evaluate needs --archive and --task (and DIR for a saved surrogate)")
    with Archive(args.archive) as archive:
        if args.dir:
            metrics = workflows.evaluate_on_archive(load_surrogate(args.dir), archive, args.task, args.protocol_key,
                                                    args.plot)
        else:
            metrics = workflows.evaluate_split(archive, args.task, args.model, args.features, args.test_fraction,
                                               args.protocol_key, args.seed, args.plot, **lm)
    print(json.dumps(metrics, indent=2))
    if args.plot:
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def cmd_transfer(args: argparse.Namespace) -> int:
    from data.archive import Archive
    from surrogates.workflows import transfer_study

    with Archive(args.archive) as archive:
        table = transfer_study(archive, args.protocol, args.model, args.features,
                               args.tasks.split(",") if args.tasks else None, args.out, args.seed, args.normalisation,
                               args.min_source_tau)
    print(table)
    print(f"wrote tau.md, tau.csv and tau.png to {args.out}", file=sys.stderr)
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from experiments.quickstart import QuickstartConfig, run_quickstart

    cfg = QuickstartConfig(task=args.task, out=args.out, archive_size=args.archive_size,
                           search_budget=args.budget, workers=args.workers, seed=args.seed)
    run_quickstart(cfg)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nas", description="Neural architecture search in grammar-based spaces.")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="-v logs progress messages, -vv debug messages (default: warnings only)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sample", help="sample architectures from a grammar, one canonical string per line")
    p.add_argument("--grammar", default="einspace", choices=grammar_names())
    p.add_argument("--input-shape", default=DEFAULT_SHAPE, help="C×H×W image or S×D sequence (default %(default)s)")
    p.add_argument("--classes", type=int, default=10, help="number of classes (reported with --json)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    p.add_argument("-n", type=int, default=1, help="how many architectures (default %(default)s)")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of strings")
    _budget_args(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("show", help="show an architecture: tree with shapes, parameters, FLOPs")
    p.add_argument("arch", nargs="?", help="a string, a file, '-' for stdin, or a seed name "
                   "(resnet18, wrn16_4, vit, mlp_mixer)")
    p.add_argument("--grammar", default="einspace", choices=grammar_names())
    p.add_argument("--input-shape", default=None, help=f"C×H×W or S×D (default {DEFAULT_SHAPE})")
    p.add_argument("--classes", type=int, default=10, help="number of classes for the head (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--graph", metavar="PNG", help="also draw the operation graph to this PNG file")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("tasks", help="list, show or export tasks")
    p.add_argument("action", choices=("list", "show", "export"))
    p.add_argument("name", nargs="?", help="task name or Unseen-NAS folder")
    p.add_argument("--seed", type=int, default=0, help="generator seed of generated tasks (default %(default)s)")
    p.add_argument("-o", "--output", help="folder to export to (Unseen-NAS format)")
    p.set_defaults(func=cmd_tasks)

    protocols = "published (the paper's: 8 epochs, batch 256), reduced (CPU: 5 epochs on 2,000 examples, batch 32), smoke, or a .json file"
    p = sub.add_parser("evaluate", help="train one architecture on a task and print its evaluation")
    p.add_argument("arch", help="a string, a file, '-' for stdin, a seed name, or an NB201 cell string")
    p.add_argument("--task", required=True, help="task name (nas tasks list) or Unseen-NAS folder")
    p.add_argument("--task-seed", type=int, default=0)
    p.add_argument("--protocol", default="published", help=protocols + " (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default %(default)s)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--grammar", default="einspace", choices=grammar_names())
    p.add_argument("--archive", help="also store the evaluation in this archive")
    p.add_argument("--json", action="store_true", help="one-line JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("archive", help="build, inspect, export or import an archive of evaluated networks")
    p.add_argument("action", choices=("build", "info", "export", "import", "upgrade"),
                   help="upgrade: copy an archive of an older schema into a new file (-o)")
    p.add_argument("--archive", required=True, help="SQLite archive file (created if absent)")
    p.add_argument("--task", help="task name or Unseen-NAS folder")
    p.add_argument("--task-seed", type=int, default=0)
    p.add_argument("--n", type=int, default=100, help="evaluations the build run should hold (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default %(default)s)")
    p.add_argument("--train-seed", type=int, default=0, help="training seed of every evaluation (default %(default)s)")
    p.add_argument("--sampler", choices=("random", "mutants"), default="random")
    p.add_argument("--protocol", default="reduced", help=protocols + " (default %(default)s)")
    p.add_argument("--budget", choices=("cpu", "default"), default="cpu",
                   help="sampling budgets: cpu (CPU-sized networks) or the grammar default (default %(default)s)")
    p.add_argument("--grammar", default=None, choices=grammar_names(), help="default: the task's grammar, else einspace")
    p.add_argument("--workers", type=int, default=1, help="parallel evaluations (process pool; default %(default)s)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--run", default=None, help="run name (default derived from task, protocol, sampler and seed)")
    p.add_argument("--protocol-key", default=None, help="export/import: protocol key to filter or assign")
    p.add_argument("--input-shape", default=None, help="import: input shape when the CSV has none")
    p.add_argument("-o", "--output", help="export: CSV file to write; upgrade: the new archive")
    p.add_argument("-i", "--input", help="import: CSV file to read")
    p.set_defaults(func=cmd_archive)

    p = sub.add_parser("features", help="compute features of an archive's architectures (cached), or show one's")
    p.add_argument("action", choices=("compute", "show"))
    p.add_argument("arch", nargs="?", help="show: a string, a file, '-' for stdin, a seed name or an NB201 cell")
    p.add_argument("--archive", help="compute: the archive whose architectures to featurise (vectors are cached in it)")
    p.add_argument("--task", help="task name or folder (zcp needs its training data)")
    p.add_argument("--task-seed", type=int, default=0)
    p.add_argument("--features", default="graf", help="graf, zcp or graf,zcp (default %(default)s)")
    p.add_argument("--grammar", default="einspace", choices=grammar_names())
    p.add_argument("--input-shape", default=None, help=f"show without --task: C×H×W or S×D (default {DEFAULT_SHAPE})")
    p.add_argument("--all", action="store_true", help="show: also the zero columns")
    p.add_argument("--json", action="store_true", help="show: one JSON object")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("search", help="run (or resume) a search on a task; re-running the same command resumes it")
    p.add_argument("--task", required=True, help="task name or Unseen-NAS folder")
    p.add_argument("--task-seed", type=int, default=0)
    p.add_argument("--strategy", choices=("random", "re", "filtered", "objective", "bo"), default="re",
                   help="bo: Bayesian optimisation, GP with a (hierarchical) WL graph kernel")
    p.add_argument("--seed-arch", default=None, help="RE seeds: resnet18, wrn16_4, vit, mlp_mixer or mixed (default: random start)")
    p.add_argument("--surrogate", default="rf", help="rf, xgb, ensemble, or a folder saved by nas surrogate fit (used from the start)")
    p.add_argument("--features", default="graf,zcp", help="surrogate features (default %(default)s)")
    p.add_argument("--budget", type=int, default=100, help="evaluations (steps) of the run (default %(default)s)")
    p.add_argument("--time-budget", type=float, default=None, help="wall-clock seconds of the run")
    p.add_argument("--run-dir", required=True, help="folder for run.json, summary.json, plots and (by default) the archive")
    p.add_argument("--archive", default=None, help="archive file to use (default RUN_DIR/archive.sqlite); share one to reuse evaluations")
    p.add_argument("--run-name", default=None, help="default: STRATEGY-seedSEED")
    p.add_argument("--label", default=None, help="name in comparisons")
    p.add_argument("--seed", type=int, default=0, help="search seed (default %(default)s)")
    p.add_argument("--train-seed", type=int, default=0)
    p.add_argument("--protocol", default="reduced", help=protocols + " (default %(default)s)")
    p.add_argument("--sampling-budget", choices=("cpu", "default"), default="cpu")
    p.add_argument("--population", type=int, default=100)
    p.add_argument("--tournament", type=int, default=10)
    p.add_argument("--mode", choices=("topk", "reject"), default="topk", help="filtered: train the best k of n, or reject below a quantile")
    p.add_argument("--n-candidates", type=int, default=20)
    p.add_argument("--k", type=int, default=5, help="filtered: trained per batch; objective: top k trained at the end")
    p.add_argument("--quantile", type=float, default=0.5)
    p.add_argument("--start-after", type=int, default=100, help="filtered: evaluations before the surrogate is used")
    p.add_argument("--refit-every", type=int, default=20)
    p.add_argument("--steps", type=int, default=1000, help="objective: mutations scored by the surrogate alone")
    p.add_argument("--n-init", type=int, default=10, help="bo: random architectures before the GP is used")
    p.add_argument("--pool-size", type=int, default=200, help="bo: mutants and crossovers scored by EI per ask")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--executor", choices=("local", "dask"), default="local")
    p.add_argument("--scheduler", default=None, help="dask scheduler address (default: a LocalCluster)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("status", help="progress and best so far of a search run directory")
    p.add_argument("run_dir")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("compare", help="compare search runs: a Markdown table and a best-so-far plot")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--plot", default=None, help="PNG file for the best-so-far plot")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("surrogate", help="fit a surrogate on an archive, predict with it, or evaluate it")
    p.add_argument("action", choices=("fit", "predict", "evaluate"))
    p.add_argument("dir", nargs="?", help="predict/evaluate: a folder saved by nas surrogate fit")
    p.add_argument("--archive", help="fit/evaluate: the archive")
    p.add_argument("--task", help="fit/evaluate: the task whose evaluations to use")
    p.add_argument("--model", default="rf", choices=("rf", "xgb", "xgb_tuned", "ensemble", "lm"))
    p.add_argument("--features", default="graf,zcp", help="graf, zcp or graf,zcp (default %(default)s)")
    p.add_argument("--protocol-key", default=None, help="training-protocol key, when the task has several")
    p.add_argument("-o", "--output", help="fit: folder to save the surrogate in")
    p.add_argument("--input", help="predict: a file (or - for stdin) with one architecture per line")
    p.add_argument("--format", choices=("string", "nb201"), default="string", help="predict: input lines")
    p.add_argument("--input-shape", default=None, help="predict: input shape (default: the surrogate's task's)")
    p.add_argument("--grammar", default="einspace", choices=grammar_names())
    p.add_argument("--test-fraction", type=float, default=0.25, help="evaluate without DIR: held-out fraction")
    p.add_argument("--plot", default=None, help="evaluate: predicted-vs-true scatter PNG")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--encoding", default=None, choices=("long", "compact", "tokens"), help="lm: input encoding")
    p.add_argument("--epochs", type=int, default=None, help="lm: fine-tuning epochs")
    p.add_argument("--num-layers", type=int, default=None, help="lm: keep the first N encoder layers")
    p.add_argument("--lm-path", default=None, help="lm: a local Hugging Face model folder (default: packaged MiniLM)")
    p.set_defaults(func=cmd_surrogate)

    p = sub.add_parser("transfer", help="transfer surrogates between the tasks of an archive; τ table and heatmap")
    p.add_argument("--archive", required=True)
    p.add_argument("--protocol", choices=("one-to-one", "leave-one-out"), default="one-to-one")
    p.add_argument("--model", default="rf", choices=("rf", "xgb", "xgb_tuned", "ensemble"))
    p.add_argument("--features", default="graf,zcp")
    p.add_argument("--tasks", default=None, help="comma-separated tasks (default: all in the archive)")
    p.add_argument("--normalisation", choices=("none", "minmax", "percentile"), default=None,
                   help="per-task target normalisation (default: none for one-to-one, percentile for leave-one-out)")
    p.add_argument("--min-source-tau", type=float, default=None,
                   help="leave-one-out: train only on sources whose own half-vs-half τ reaches this (default: all)")
    p.add_argument("--out", default="runs/transfer")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_transfer)

    p = sub.add_parser("quickstart", help="the whole loop on a built-in task in a few minutes: archive, surrogate, "
                       "plain vs filtered evolution")
    p.add_argument("--task", default="language-mini", help="task (default %(default)s)")
    p.add_argument("--out", default="runs/quickstart", help="output folder (default %(default)s); re-running resumes")
    p.add_argument("--archive-size", type=int, default=60)
    p.add_argument("--budget", type=int, default=40, help="trained candidates per search (default %(default)s)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_quickstart)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ArchitectureSyntaxError, InvalidArchitectureError, SamplingError, ValueError, KeyError, OSError) as exc:
        print(f"nas {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `nas sample -n 1000 | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
