"""``nas evaluate``, ``nas final`` and ``nas archive build|info|export|import|upgrade``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import nullcontext
from typing import Any

from data.archive import Archive, read_csv_evaluations, upgrade_archive
from data.final import FINAL_FILE, FinalEvaluation, check_target, final_evaluate, require_trainable, save_final
from data.task import grammar_of
from data.tasks import get_task
from data.training import Evaluation, TrainingProtocol, get_protocol, train_and_evaluate
from nas.architecture import Architecture
from nas.cli.common import (PROTOCOLS_HELP, SAMPLING_BUDGETS, add_grammar_arg, add_sampling_budget_arg, add_task_args,
                            deprecated_alias, read_run_ref, task_architecture)
from nas.cli.options import positive_int, print_error, protocol_spec, seed_int
from nas.grammar import get_grammar
from nas.grammar.core import Grammar


#: ``nas.search.build.SAMPLERS``, spelled out so that building the parser imports no search code (a test keeps
#: the two equal).
SAMPLERS = ("random", "mutants")
#: ``--grammar`` help of the commands that read an architecture for a task.
GRAMMAR_HELP = "grammar of an architecture string (default: the task's grammar, else %(default)s)"


def writable_archive(path: str, option: str = "--archive") -> str:
    """``path`` for a verb that writes an archive (creating the file when absent): its folder must exist, so
    that a mistyped path is refused in one line instead of creating folders and an empty archive there."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{option} {path}: the folder {folder} does not exist (a mistyped path?); create it first")
    return path


def cmd_evaluate(args: argparse.Namespace) -> int:
    task = get_task(args.task, seed=args.task_seed)
    arch = task_architecture(args.arch, task, args.grammar)
    protocol = get_protocol(args.protocol)
    if args.threads:
        import torch  # deferred: torch

        torch.set_num_threads(args.threads)
    # the archive is opened (and checked) before training, so that a bad --archive costs no training
    with Archive(writable_archive(args.archive)) if args.archive else nullcontext() as archive:
        ev = train_and_evaluate(arch, task, protocol, seed=args.train_seed, device=args.device)
        if archive is not None:
            archive.add_evaluation(ev, arch)
    record = ev.to_dict() | {"arch": arch.to_string()}
    print(json.dumps(record, indent=2 if not args.json else None))
    return 0 if ev.ok else 1


def final_to_folder(arch: Architecture, task: Any, protocol: "TrainingProtocol | str", seed: int, device: str,
                    output: str, validation: Evaluation | None = None, replace: bool = False) -> FinalEvaluation:
    """Final evaluation of ``arch`` on ``task`` (``data.final.final_evaluate``) saved to the folder ``output``;
    a task without data and an existing ``output`` (unless ``replace``) are refused before any training."""
    require_trainable(task)
    check_target(output, replace)
    result = final_evaluate(arch, task, protocol, seed=seed, device=device, validation=validation)
    save_final(result, output, replace=replace)
    return result


def final_outcome(result: FinalEvaluation, output: str) -> dict[str, Any]:
    """The short record of a final evaluation that commands print: folder, status, accuracies, reason."""
    return {"dir": output, "status": result.status, "test_acc": result.metrics.get("test_acc"),
            "val_acc": result.metrics.get("val_acc"), "protocol": result.protocol.key, "seed": result.seed,
            "reason": result.reason}


def report_final_failure(command: str, result: FinalEvaluation, output: str) -> int:
    """Exit status 0 for a final evaluation that succeeded; else one line on stderr and 2."""
    if result.ok:
        return 0
    print_error(command, f"final evaluation of {result.arch.hash[:12]} failed: {result.reason} "
                         f"(recorded in {os.path.join(output, FINAL_FILE)})")
    return 2


def run_best(run_dir: str) -> tuple[Architecture, Evaluation, dict[str, Any]]:
    """The best architecture of the search run in ``run_dir`` by validation accuracy, its evaluation and the
    run's configuration (task, task seed, protocol fields, training seed)."""
    from nas.search import summarize  # deferred: the search engine (scipy, networkx)

    archive_path, run, _ = read_run_ref(run_dir)
    if not os.path.isfile(archive_path):
        raise ValueError(f"{run_dir}: its archive {archive_path} does not exist")
    with Archive(archive_path, readonly=True) as archive:
        summary = summarize(archive, run)
        config = {r["name"]: r for r in archive.runs()}[run]["config"]
        if not isinstance(config.get("protocol"), dict) or "task_seed" not in config:
            raise ValueError(f"{run_dir}: run {run!r} did not train on a task (an objective function?); "
                             "there is no task to retrain its best network on")
        best = summary["best"]
        if best is None:
            raise ValueError(f"{run_dir}: run {run!r} has no successful evaluation to retrain")
        arch = archive.architecture(best["hash"])
        evaluation = archive.get_evaluation(best["hash"], summary["task"], summary["protocol"], config["train_seed"])
    return arch, evaluation, config


def cmd_final(args: argparse.Namespace) -> int:
    if args.threads:
        import torch  # deferred: torch

        torch.set_num_threads(args.threads)
    if args.run_dir:
        if args.arch or args.task:
            raise ValueError("give either ARCH with --task, or --run-dir (its task and best architecture), not both")
        arch, validation, config = run_best(args.run_dir)
        task = get_task(config["task"], seed=config["task_seed"])
        protocol = args.protocol or TrainingProtocol.from_dict(config["protocol"])
        seed = config["train_seed"] if args.train_seed is None else args.train_seed
        output = args.output or os.path.join(args.run_dir, "final")
    else:
        if not args.arch or not args.task or not args.output:
            raise ValueError("nas final needs ARCH, --task and -o DIR (or --run-dir RUN_DIR)")
        task = get_task(args.task, seed=args.task_seed)
        require_trainable(task)
        arch, validation = task_architecture(args.arch, task, args.grammar), None
        protocol, seed, output = args.protocol or "reduced", args.train_seed or 0, args.output
    result = final_to_folder(arch, task, protocol, seed, args.device, output, validation)
    print(json.dumps(final_outcome(result, output), indent=2))
    return report_final_failure(args.command, result, output)


def fill_archive(archive: Archive, task: str, n: int, **options: Any) -> dict:
    """Evaluate random (or mutated) architectures until the build run holds ``n``; resumes; ``options`` as for
    the run engine's ``build_archive``."""
    from nas.search import build_archive  # deferred: the search engine (scipy, networkx)

    return build_archive(archive, task, n, **options)


def count_architectures(grammar: Grammar) -> int | None:
    """How many distinct derivation trees the sampler can draw from ``grammar`` (options of positive weight,
    budgets ignored: an upper bound), or ``None`` when the grammar is recursive (unbounded)."""
    counts: dict[str, int] = {}
    open_levels: set[str] = set()

    def level(name: str) -> int | None:
        if name in counts:
            return counts[name]
        if name in open_levels:
            return None
        open_levels.add(name)
        total = 0
        for op in grammar.levels[name]:
            if op.weight <= 0:
                continue
            product = 1
            for child in op.children:
                n = level(child)
                if n is None:
                    return None
                product *= n
            total += product
        open_levels.discard(name)
        counts[name] = total
        return total

    return level(grammar.start)


def _check_build_size(args: argparse.Namespace) -> None:
    """Refuse at once a build of more architectures than the task's grammar has."""
    grammar = get_grammar(grammar_of(get_task(args.task, seed=args.task_seed), args.grammar))
    size = count_architectures(grammar)
    if size is not None and args.n > size:
        raise ValueError(f"--n {args.n:,} is more than the {size:,} distinct architectures of grammar "
                         f"{grammar.name!r}; a build holds each at most once")


def _build(archive: Archive, args: argparse.Namespace) -> None:
    if not args.task:
        raise ValueError("nas archive build needs --task")
    counts = fill_archive(
        archive, args.task, args.n, seed=args.seed, sampler=args.sampler, protocol=args.protocol,
        budget=args.sampling_budget, grammar=args.grammar, task_seed=args.task_seed, train_seed=args.train_seed,
        workers=args.workers, device=args.device, run=args.run,
    )
    print(json.dumps(counts))


def _info(archive: Archive, args: argparse.Namespace) -> None:
    print(f"{archive.path}: {archive.num_architectures()} architectures")
    fingerprints = archive.task_fingerprints()
    for task, protocol, n in archive.tasks():
        ok = archive.count(task=task, protocol=protocol, status="ok")
        _, y = archive.dataset(task, protocol)
        best = f", best val_acc {y.max():.4f}, mean {y.mean():.4f}" if len(y) else ""
        data = (fingerprints.get(task) or "unknown")[:12]
        print(f"  {task:<20} {protocol:<22} {n:>6} evaluations ({n - ok} failed){best}, data {data}")
    for run in archive.runs():
        print(f"  run {run['name']} ({run['kind']}, since {run['created']})")


def _export(archive: Archive, args: argparse.Namespace) -> None:
    if not args.output:
        raise ValueError("nas archive export needs -o FILE.csv")
    n = archive.export_csv(args.output, task=args.task, protocol=args.protocol_key)
    print(f"wrote {n} evaluations to {args.output}", file=sys.stderr)


def _import(args: argparse.Namespace) -> None:
    if not args.input:
        raise ValueError("nas archive import needs -i FILE.csv")
    # every row is read and checked before the archive is opened: a bad file creates and changes nothing
    rows = read_csv_evaluations(args.input, task=args.task, protocol=args.protocol_key or "imported",
                                input_shape=args.input_shape, grammar=args.grammar or "einspace")
    with Archive(writable_archive(args.archive)) as archive:
        n = archive.import_rows(rows)
    print(f"added {n} evaluations from {args.input}", file=sys.stderr)


ACTIONS = {"build": _build, "info": _info, "export": _export}
#: Actions that only read the archive: it is opened read-only and must exist.
READ_ONLY = ("info", "export")


def cmd_archive(args: argparse.Namespace) -> int:
    if args.action == "upgrade":  # the one action that must not open --archive as a current archive
        if not args.output:
            raise ValueError("nas archive upgrade needs -o NEW.sqlite")
        print(json.dumps(upgrade_archive(args.archive, args.output)))
        return 0
    if args.action == "build" and args.task:
        _check_build_size(args)
    if args.action == "import":
        _import(args)
        return 0
    readonly = args.action in READ_ONLY
    with Archive(args.archive if readonly else writable_archive(args.archive), readonly=readonly) as archive:
        ACTIONS[args.action](archive, args)
    return 0


def _add_training_parsers(sub: argparse._SubParsersAction) -> None:
    """``nas evaluate`` and ``nas final``."""
    p = sub.add_parser("evaluate", help="train one architecture on a task and print its evaluation")
    p.add_argument("arch", help="a string, a file, '-' for stdin, a seed name, or an NB201 cell string")
    add_task_args(p, required=True, help="task name (nas tasks list) or Unseen-NAS folder")
    p.add_argument("--protocol", type=protocol_spec, default="reduced",
                   help=PROTOCOLS_HELP + " (default %(default)s, as for nas archive build and nas search)")
    p.add_argument("--train-seed", type=seed_int, default=0, help="training seed (default %(default)s)")
    deprecated_alias(p, "--seed", "--train-seed", "train_seed", type=seed_int)
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default %(default)s)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    add_grammar_arg(p, help=GRAMMAR_HELP)
    p.add_argument("--archive", help="also store the evaluation in this archive (created if absent; its folder must "
                   "exist)")
    p.add_argument("--json", action="store_true", help="one-line JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("final", help="retrain an architecture on train+valid, report test accuracy, save the network",
                       description="Final evaluation: train ARCH (or the best architecture of a search run) on the "
                       "task's training and validation examples together and score it on the test split. Writes DIR/"
                       "arch.txt, DIR/model.safetensors and DIR/final.json (test and validation accuracy, protocol, "
                       "task fingerprint, seed, versions); data.final.load_network(DIR) rebuilds the network.")
    p.add_argument("arch", nargs="?", help="a string, a file, '-' for stdin, a seed name, or an NB201 cell string")
    add_task_args(p, help="task name or Unseen-NAS folder (with ARCH)")
    p.add_argument("--run-dir", default=None,
                   help="instead of ARCH and --task: retrain the best architecture (by validation accuracy) of the "
                   "search run in this folder, on its task, with its protocol and training seed")
    p.add_argument("-o", "--output", default=None, help="folder to write; must not exist (default with --run-dir: "
                   "RUN_DIR/final)")
    p.add_argument("--protocol", type=protocol_spec, default=None,
                   help=PROTOCOLS_HELP + " (default: the run's protocol with --run-dir, else reduced)")
    p.add_argument("--train-seed", type=seed_int, default=None,
                   help="training seed (default: the run's with --run-dir, else 0)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default %(default)s)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    add_grammar_arg(p, help=GRAMMAR_HELP)
    p.set_defaults(func=cmd_final)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    _add_training_parsers(sub)
    p = sub.add_parser("archive", help="build, inspect, export or import an archive of evaluated networks")
    p.add_argument("action", choices=(*ACTIONS, "import", "upgrade"),
                   help="upgrade: copy an archive of an older schema into a new file (-o)")
    p.add_argument("--archive", required=True,
                   help="SQLite archive file (build and import create it if absent; its folder must exist)")
    add_task_args(p)
    p.add_argument("-n", "--n", type=positive_int, default=100, help="evaluations the build run should hold (default %(default)s)")
    p.add_argument("--seed", type=seed_int, default=0, help="sampling seed (default %(default)s)")
    p.add_argument("--train-seed", type=seed_int, default=0, help="training seed of every evaluation (default %(default)s)")
    p.add_argument("--sampler", choices=SAMPLERS, default="random",
                   help="build: random grammar samples, or mutants of the archive's successful architectures on the "
                   "task (default %(default)s)")
    p.add_argument("--protocol", type=protocol_spec, default="reduced", help=PROTOCOLS_HELP + " (default %(default)s)")
    add_sampling_budget_arg(p)
    deprecated_alias(p, "--budget", "--sampling-budget", "sampling_budget", choices=SAMPLING_BUDGETS)
    add_grammar_arg(p, default=None, help="default: the task's grammar, else einspace")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="build: evaluations run at once, each in its own process (default %(default)s)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default %(default)s)")
    p.add_argument("--run", default=None, help="run name (default derived from task, protocol, sampler and seed)")
    p.add_argument("--protocol-key", default=None, help="export/import: protocol key to filter or assign")
    p.add_argument("--input-shape", default=None, help="import: input shape when the CSV has none")
    p.add_argument("-o", "--output", help="export: CSV file to write; upgrade: the new archive")
    p.add_argument("-i", "--input", help="import: CSV file to read")
    p.set_defaults(func=cmd_archive)
