"""``nas compare`` (and, later, ``nas report``): tables and plots over finished or running search runs."""

from __future__ import annotations

import argparse
import sys

from nas.cli.common import read_run_ref


def cmd_compare(args: argparse.Namespace) -> int:
    from nas.search.report import compare, plot_best_so_far  # deferred: the search engine, matplotlib

    refs = [read_run_ref(d) for d in args.run_dirs]
    print(compare(refs))
    if args.plot:
        plot_best_so_far(refs, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="compare search runs: a Markdown table and a best-so-far plot")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--plot", default=None, help="PNG file for the best-so-far plot")
    p.set_defaults(func=cmd_compare)
