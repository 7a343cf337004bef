"""``nas sample`` and ``nas show``: draw architectures from a grammar, show one.

``nas sample`` writes one canonical string per line; a string does not say which input shape its network was
sampled for, so when that is not the default (3×32×32) the output starts with a comment line
``# input_shape: 1x24x24``, which ``nas show``, ``nas surrogate predict``, ``nas evaluate`` and ``nas final`` read.  ``--json`` lines carry the
shape in each object."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from tqdm import tqdm

from data.tasks import get_task
from nas.cli.common import (DEFAULT_SHAPE, SHAPE_HEADER, add_grammar_arg, read_architecture, read_text, shape_text,
                            split_shape_header)
from nas.cli.options import positive_int, seed_int
from nas.grammar import get_grammar
from nas.grammar.core import Budget
from nas.sampler import Sampler


def add_budget_args(p: argparse.ArgumentParser) -> None:
    """The size budgets of sampling (``--max-nodes`` ... ``--max-layers``)."""
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


def budget_from_args(args: argparse.Namespace) -> Budget:
    max_nodes = args.max_nodes if args.max_nodes is not None else get_grammar(args.grammar).budget().max_nodes
    return Budget(max_nodes, args.max_depth, args.max_params, args.max_flops, args.max_activation, args.batch_size,
                  args.max_layers)


#: The comment line that records the input shape of sampled strings.
def cmd_sample(args: argparse.Namespace) -> int:
    sampler = Sampler(args.grammar, args.input_shape, budget_from_args(args))
    rng = np.random.default_rng(args.seed)
    out = sys.stdout
    if not args.json and shape_text(args.input_shape) != shape_text(DEFAULT_SHAPE):
        out.write(f"{SHAPE_HEADER} {shape_text(args.input_shape)}\n")
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


def show_shape(args: argparse.Namespace, text: str, recorded: str | None) -> tuple[str | None, str]:
    """``(input shape, grammar)`` of ``nas show``: ``--input-shape``, else the shape the text records (a
    header line, or a JSON line's own: None), else ``--task``'s (with its grammar), else None (the default)."""
    task = get_task(args.task) if args.task else None
    grammar = (getattr(task, "grammar", None) or args.grammar) if task is not None else args.grammar
    if args.input_shape or recorded or text.lstrip().startswith("{"):
        return args.input_shape or recorded, grammar
    return (shape_text(tuple(task.input_shape)) if task is not None else None), grammar


def cmd_show(args: argparse.Namespace) -> int:
    text, recorded = split_shape_header(read_text(args.arch))
    shape, grammar = show_shape(args, text, recorded)
    arch = read_architecture(text, shape, grammar)
    if args.graph:
        from nas.graph import draw_graph  # deferred: networkx, matplotlib

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


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="sample architectures from a grammar, one canonical string per line")
    add_grammar_arg(p, help="the grammar to sample (default %(default)s)")
    p.add_argument("--input-shape", default=DEFAULT_SHAPE,
                   help="C×H×W image or S×D sequence; another than the default is recorded in a first line "
                   "'# input_shape: ...' (default %(default)s)")
    p.add_argument("--classes", type=positive_int, default=10, help="number of classes (reported with --json)")
    p.add_argument("--seed", type=seed_int, default=0, help="sampling seed (default %(default)s)")
    p.add_argument("-n", "--n", type=positive_int, default=1, help="how many architectures (default %(default)s)")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of strings")
    add_budget_args(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("show", help="show an architecture: tree with shapes, parameters, FLOPs")
    p.add_argument("arch", nargs="?", help="a string, a file, '-' for stdin, or a seed name "
                   "(resnet18, wrn16_4, vit, mlp_mixer)")
    add_grammar_arg(p, help="grammar of the architecture string (default: --task's grammar, else %(default)s)")
    p.add_argument("--input-shape", default=None,
                   help=f"C×H×W or S×D (default: the shape the file records, as nas sample writes it, else "
                   f"--task's, else {DEFAULT_SHAPE})")
    p.add_argument("--task", default=None, help="a task whose input shape and grammar to use (a name or an "
                   "Unseen-NAS folder)")
    p.add_argument("--classes", type=positive_int, default=10, help="number of classes for the head (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--graph", metavar="PNG", help="also draw the operation graph to this PNG file")
    p.set_defaults(func=cmd_show)
