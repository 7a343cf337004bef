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
    g.add_argument("--max-nodes", type=int, default=d.max_nodes, help="derivation-tree nodes (default %(default)s)")
    g.add_argument("--max-depth", type=int, default=d.max_depth, help="derivation-tree depth (default %(default)s)")
    g.add_argument("--max-params", type=int, default=d.max_params, help="backbone parameters (default %(default)s)")
    g.add_argument("--max-flops", type=float, default=d.max_flops, help="forward FLOPs per sample (default %(default)g)")
    g.add_argument("--max-activation", type=int, default=d.max_activation,
                   help="elements of the largest tensor at --batch-size (default %(default)s)")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help="batch size for the activation budget")


def _budget(args: argparse.Namespace) -> Budget:
    return Budget(args.max_nodes, args.max_depth, args.max_params, args.max_flops, args.max_activation, args.batch_size)


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


def cmd_show(args: argparse.Namespace) -> int:
    source = args.arch
    if source is None or source == "-":
        text = sys.stdin.read()
    elif os.path.isfile(source):
        with open(source, encoding="utf-8") as fh:
            text = fh.read()
    else:
        text = source
    arch = _read_architecture(text, args.input_shape, args.grammar)
    if args.json:
        record = arch.summary()
        record["long_string"] = arch.long_string()
        print(json.dumps(record, indent=2))
        return 0
    print(arch.to_string())
    print()
    print(arch.pretty(num_classes=args.classes))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nas", description="Neural architecture search in grammar-based spaces.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
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
    p.set_defaults(func=cmd_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ArchitectureSyntaxError, InvalidArchitectureError, SamplingError, ValueError, KeyError) as exc:
        print(f"nas {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `nas sample -n 1000 | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
