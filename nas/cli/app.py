"""The ``nas`` parser and entry point: each command group adds its subcommands."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from typing import Sequence

from nas.cli import archive, features, quickstart, report, run, search, space, surrogate, tasks
from nas.cli.options import Parser, print_error
from nas.errors import ArchitectureSyntaxError, InvalidArchitectureError, SamplingError
from nas.progress import LOGGER_NAME as PROGRESS_LOGGER

COMMAND_GROUPS = (space, tasks, archive, features, search, run, report, surrogate, quickstart)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="nas", description="Neural architecture search in grammar-based spaces.")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="-v logs info messages, -vv debug messages (default: warnings and progress lines)")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger(PROGRESS_LOGGER).setLevel(min(level, logging.INFO))  # progress lines show by default
    try:
        return args.func(args)
    except BrokenPipeError:  # e.g. `nas sample -n 1000 | head -1`: the reader has gone; exit quietly
        _silence_stdout()
        return 0
    except KeyboardInterrupt:  # Ctrl-C: the shell's convention, 128 + SIGINT, without a traceback
        return 130
    except (ArchitectureSyntaxError, InvalidArchitectureError, SamplingError, ValueError, KeyError, OSError,
            MemoryError) as exc:
        print_error(args.command, exc)
        return 2
    except Exception as exc:  # noqa: BLE001 - a bug: one line for the user, the traceback with -vv
        if args.verbose >= 2:
            traceback.print_exc(file=sys.stderr)
        hint = "" if args.verbose >= 2 else " — rerun with -vv for the traceback"
        print_error(args.command, f"internal error ({type(exc).__name__}): {exc}{hint}")
        return 2


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit does not raise (and print) a second time."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError):  # stdout is not a file (e.g. captured by a test)
        pass
