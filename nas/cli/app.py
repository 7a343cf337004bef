"""The ``nas`` parser and entry point: each command group adds its subcommands."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from nas.cli import archive, features, quickstart, search, space, surrogate, tasks
from nas.errors import ArchitectureSyntaxError, InvalidArchitectureError, SamplingError

COMMAND_GROUPS = (space, tasks, archive, features, search, surrogate, quickstart)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nas", description="Neural architecture search in grammar-based spaces.")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="-v logs progress messages, -vv debug messages (default: warnings only)")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.add_parsers(sub)
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
