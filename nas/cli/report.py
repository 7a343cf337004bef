"""``nas compare`` and ``nas report``: tables, plots and a self-contained HTML page over search runs, each
run folder given directly, found below a folder or named by an experiment file, runs grouped by (task, group)
across seeds."""

from __future__ import annotations

import argparse
import os
import sys

from nas.cli.run import load_experiment


def _runs(paths: list[str]) -> list:
    """The runs at or below ``paths``; an experiment file (``.toml``, as ``nas run`` reads) stands for the
    folders of its runs that have started."""
    from nas.search.rundirs import RUN_FILE, find_run_dirs  # deferred: the search engine

    folders = []
    for p in paths:
        if p.endswith(".toml") and os.path.isfile(p):
            started = [ns.run_dir for ns in load_experiment(p) if os.path.isfile(os.path.join(ns.run_dir, RUN_FILE))]
            if not started:
                raise ValueError(f"{p}: none of the experiment's runs has started yet (run it with nas run {p})")
            folders += started
        else:
            folders.append(p)
    return find_run_dirs(folders)


def cmd_compare(args: argparse.Namespace) -> int:
    from nas.search.report import ArchiveSet, compare, compare_groups, plot_group_curves  # deferred: matplotlib
    from nas.search.rundirs import group_runs  # deferred: the search engine

    runs = _runs(args.run_dirs)
    groups = group_runs(runs)
    print(compare_groups(groups))
    if args.per_run:
        print(compare([(r.archive, r.run, r.name) for r in runs]))
    if args.plot:
        tasks = list(dict.fromkeys(t for t, _ in groups))
        root, ext = os.path.splitext(args.plot)
        with ArchiveSet() as archives:
            for task in tasks:  # one figure per task: PLOT, or PLOT-TASK.png with several tasks
                path = args.plot if len(tasks) == 1 else f"{root}-{_safe(task)}{ext or '.png'}"
                plot_group_curves(archives, groups, task, path)
                print(f"wrote {path}", file=sys.stderr)
    return 0


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in os.path.basename(os.path.normpath(name)))


def cmd_report(args: argparse.Namespace) -> int:
    from nas.search.html_report import write_report  # deferred: the search engine, matplotlib

    runs = _runs(args.run_dirs)
    path = write_report(runs, args.output, title=args.title)
    print(f"wrote {path} ({len(runs)} runs)", file=sys.stderr)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="compare search runs: Markdown tables per task (mean ± sd over seeds) and "
                       "best-so-far curves with ± sd bands")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR_OR_FOLDER",
                   help="run folders (with run.json), folders searched for them, or experiment files (.toml, "
                   "nas run); runs that differ only in their seed form one group")
    p.add_argument("--plot", default=None, help="PNG file for the best-so-far curves (with several tasks, one "
                   "file per task: PLOT-TASK.png)")
    p.add_argument("--per-run", action="store_true", help="also print one row per run")
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser("report", help="one self-contained HTML page over search runs (tables, curves, surrogate, "
                       "top architectures, failures, configuration)")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR_OR_FOLDER",
                   help="run folders (with run.json), folders searched for them, or experiment files (.toml, "
                   "nas run)")
    p.add_argument("-o", "--output", default="report.html", help="the HTML file to write (default %(default)s)")
    p.add_argument("--title", default=None, help="page title (default: the tasks)")
    p.set_defaults(func=cmd_report)
