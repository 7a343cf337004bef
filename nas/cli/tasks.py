"""``nas tasks list|show|export``."""

from __future__ import annotations

import argparse
import json
import sys

from data.tasks import get_task, task_descriptions
from data.unseen import export_unseen
from nas.cli.common import deprecated_alias
from nas.cli.options import seed_int


def cmd_tasks(args: argparse.Namespace) -> int:
    if args.action == "list":
        for name, desc in task_descriptions().items():
            print(f"{name:<20} {desc}")
        return 0
    if not args.name:
        raise ValueError(f"nas tasks {args.action} needs a task name or folder")
    task = get_task(args.name, seed=args.task_seed)
    if args.action == "show":
        print(json.dumps(task.describe(), indent=2))
        return 0
    if getattr(task, "is_tabular", False):
        raise ValueError(f"task {task.name!r} is a look-up table: it has no data to export")
    if not args.output:
        raise ValueError("nas tasks export needs -o FOLDER")
    export_unseen(task, args.output)
    print(f"wrote {task.name} to {args.output} (Unseen-NAS format)", file=sys.stderr)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tasks", help="list, show or export tasks")
    p.add_argument("action", choices=("list", "show", "export"))
    p.add_argument("name", nargs="?", help="task name or Unseen-NAS folder")
    p.add_argument("--task-seed", type=seed_int, default=0, help="generator seed of a generated task (default %(default)s)")
    deprecated_alias(p, "--seed", "--task-seed", "task_seed", type=seed_int)
    p.add_argument("-o", "--output", help="folder to export to (Unseen-NAS format)")
    p.set_defaults(func=cmd_tasks)
