"""``nas sample`` and ``nas show``: draw architectures from a grammar, show one."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from tqdm import tqdm

from nas.cli.common import DEFAULT_SHAPE, add_grammar_arg, read_architecture, read_text
from nas.cli.options import positive_int
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


def cmd_sample(args: argparse.Namespace) -> int:
    sampler = Sampler(args.grammar, args.input_shape, budget_from_args(args))
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


def cmd_show(args: argparse.Namespace) -> int:
    arch = read_architecture(read_text(args.arch), args.input_shape, args.grammar)
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
    add_grammar_arg(p)
    p.add_argument("--input-shape", default=DEFAULT_SHAPE, help="C×H×W image or S×D sequence (default %(default)s)")
    p.add_argument("--classes", type=positive_int, default=10, help="number of classes (reported with --json)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default %(default)s)")
    p.add_argument("-n", "--n", type=positive_int, default=1, help="how many architectures (default %(default)s)")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of strings")
    add_budget_args(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("show", help="show an architecture: tree with shapes, parameters, FLOPs")
    p.add_argument("arch", nargs="?", help="a string, a file, '-' for stdin, or a seed name "
                   "(resnet18, wrn16_4, vit, mlp_mixer)")
    add_grammar_arg(p)
    p.add_argument("--input-shape", default=None, help=f"C×H×W or S×D (default {DEFAULT_SHAPE})")
    p.add_argument("--classes", type=positive_int, default=10, help="number of classes for the head (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--graph", metavar="PNG", help="also draw the operation graph to this PNG file")
    p.set_defaults(func=cmd_show)
