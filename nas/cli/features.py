"""``nas features compute|show``."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from data.archive import Archive
from data.tasks import get_task
from nas.cli.common import DEFAULT_SHAPE, add_grammar_arg, add_task_args, read_architecture, read_text, task_architecture


def _compute(args: argparse.Namespace, task) -> int:
    from features.pipeline import cached, make_featuriser  # deferred: scikit-learn, torch

    if task is None or not args.archive:
        raise ValueError("nas features compute needs --archive and --task")
    with Archive(args.archive, create=False) as archive:
        hashes = list(dict.fromkeys(e.arch_hash for e in archive.evaluations(task=task.name)))
        if not hashes:
            raise ValueError(f"{args.archive} holds no evaluation on task {task.name!r}")
        archs = [archive.architecture(h) for h in hashes]
        featuriser = cached(make_featuriser(args.features, task, archs[0].grammar.name), archive, task.name,
                            progress=True)
        X = featuriser.fit(archs).transform(archs)
    finite = np.isfinite(X)
    print(json.dumps({"architectures": len(archs), "columns": X.shape[1], "non_finite_values": int((~finite).sum())}))
    return 0


def _show(args: argparse.Namespace, task) -> int:
    from features.pipeline import make_featuriser  # deferred: scikit-learn, torch

    if task is not None:
        arch = task_architecture(args.arch, task, args.grammar)
    else:
        arch = read_architecture(read_text(args.arch), args.input_shape, args.grammar)
    featuriser = make_featuriser(args.features, task, arch.grammar.name)
    row = featuriser.fit([arch]).transform([arch])[0]
    names = featuriser.get_feature_names_out()
    shown = {str(n): float(v) for n, v in zip(names, row) if args.all or v != 0}
    if args.json:
        print(json.dumps(shown))
        return 0
    width = max((len(n) for n in shown), default=0)
    for name, value in shown.items():
        print(f"{name:<{width}}  {value:.6g}")
    print(f"({len(shown)} of {len(names)} columns shown{'' if args.all else '; zeros hidden, --all shows them'})",
          file=sys.stderr)
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    task = get_task(args.task, seed=args.task_seed) if args.task else None
    return (_compute if args.action == "compute" else _show)(args, task)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("features", help="compute features of an archive's architectures (cached), or show one's")
    p.add_argument("action", choices=("compute", "show"))
    p.add_argument("arch", nargs="?", help="show: a string, a file, '-' for stdin, a seed name or an NB201 cell")
    p.add_argument("--archive", help="compute: the archive whose architectures to featurise (vectors are cached in it)")
    add_task_args(p, help="task name or folder (zcp needs its training data)")
    p.add_argument("--features", default="graf", help="graf, zcp, graf,zcp or published (the 392 published columns) (default %(default)s)")
    add_grammar_arg(p)
    p.add_argument("--input-shape", default=None, help=f"show without --task: C×H×W or S×D (default {DEFAULT_SHAPE})")
    p.add_argument("--all", action="store_true", help="show: also the zero columns")
    p.add_argument("--json", action="store_true", help="show: one JSON object")
    p.set_defaults(func=cmd_features)
