"""``nas run EXPERIMENT.toml``: a whole study from one file (tasks, strategies, seeds, budgets), each run an ordinary
``nas search`` run directory; re-running the command resumes every run.

The keys are ``nas search``'s options, spelled as the option without ``--`` and with ``-`` as ``_``
(``--time-budget`` → ``time_budget``), so a file says what a command line says (``nas search ... --dump-config``
writes the file of a command line).  ``[study]`` holds the keys every run shares; one ``[strategies.LABEL]`` table
per strategy adds or overrides keys, and LABEL is its runs' label in comparisons.  Beyond the options, ``task`` may
be a list (one run per task), ``seeds`` a list or a range such as ``"0-4"``, and ``[study]`` may name ``out``, the
output folder, where each run gets ``OUT/TASK/LABEL/seed-S``; ``run_dir`` instead names a run's folder exactly
(with ``seeds``: ``RUN_DIR/seed-S``), as on the command line.  Paths are relative to the working directory, as on
the command line.  A bad file is one line naming the file, the line and the key.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
from typing import Any, Callable, Mapping

from nas.cli.search import run_many, search_options, seed_list, toml_value

#: Keys of an experiment file that are no ``nas search`` option (``[study]`` only).
STUDY_ONLY = ("out",)
TABLES = ("study", "strategies")
_INTEGER_TYPES = ("int", "positive_int", "seed_int")
_NUMBER_TYPES = ("float", "positive_float")

#: Where a key sits in a file: ``locate(("strategies", "filtered", "k"))`` is its line (None: unknown).
Locate = Callable[[tuple[str, ...]], "int | None"]


class ExperimentError(ValueError):
    """A bad experiment file (or ``Study`` option): the message names the file, the line and the key."""


def load_experiment(path: str) -> list[argparse.Namespace]:
    """The runs of the experiment file ``path``: one complete set of ``nas search`` options per task ×
    strategy × seed (``experiment_runs``); a file that is not valid TOML, or not a valid experiment, is an
    ``ExperimentError`` naming the line."""
    import tomllib  # deferred: only nas run reads TOML

    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        at = re.search(r"\s*\(at line (\d+), column (\d+)\)", message)
        if at:
            message = f"line {at.group(1)}: invalid TOML: {message[:at.start()]} (column {at.group(2)})"
        else:
            message = f"invalid TOML: {message}"
        raise ExperimentError(f"{path} {message}") from None
    lines = key_lines(text)
    return experiment_runs(data, path, lambda key: _line_of(lines, key))


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """The line (1-based) of each table header and key of a TOML text, by its path (``("study", "budget")``):
    ``tomllib`` gives values, not where they are."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$", line)
        if header:
            table = _key_path(header.group(1))
            lines.setdefault(table, number)
            continue
        key = re.match(r"\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*=",
                       line)
        if key:
            lines.setdefault(table + _key_path(key.group(1)), number)
    return lines


def _key_path(dotted: str) -> tuple[str, ...]:
    parts = re.findall(r"\"[^\"]*\"|'[^']*'|[^.\s]+", dotted)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


def _line_of(lines: Mapping[tuple[str, ...], int], key: tuple[str, ...]) -> int | None:
    """The line of ``key``, else of the nearest table holding it."""
    for end in range(len(key), 0, -1):
        if key[:end] in lines:
            return lines[key[:end]]
    return None


def experiment_runs(data: Mapping[str, Any], source: str, locate: Locate = lambda key: None,
                    command: str = "run") -> list[argparse.Namespace]:
    """One complete set of ``nas search`` options per task × strategy × seed of the experiment ``data`` (the
    parsed file: ``[study]`` and ``[strategies.LABEL]`` tables), each checked as the command line checks it;
    ``source`` and ``locate`` name the file and line in an ``ExperimentError``."""
    def fail(key: tuple[str, ...], problem: str) -> ExperimentError:
        line = locate(key)
        return ExperimentError(f"{source}{f' line {line}' if line else ''}: {'.'.join(key)}: {problem}")

    for name in data:
        if name not in TABLES:
            raise fail((name,), _unknown(name, TABLES, "table"))
    options = search_options()
    study = _checked_table(data.get("study", {}), ("study",), options, fail)
    strategies = data.get("strategies")
    if not isinstance(strategies, Mapping) or not strategies:
        raise fail(("strategies",), "needs one [strategies.LABEL] table per strategy, e.g. [strategies.re]")
    runs: list[argparse.Namespace] = []
    owners: dict[str, str] = {}
    for label, table in strategies.items():
        own = _checked_table(table, ("strategies", label), options, fail)
        shared = dict(study)
        for key, other in (("seed", "seeds"), ("seeds", "seed")):
            if key in own:  # a strategy's seed (or seeds) replaces the study's seeds (or seed)
                shared.pop(other, None)
        values = {**shared, **own}
        for run in _expand(label, values, options, fail):
            run.command = command
            if os.path.normpath(run.run_dir) in owners:
                raise fail(("strategies", label), f"its run folder {run.run_dir} is also that of "
                           f"{owners[os.path.normpath(run.run_dir)]}: give each run its own run_dir, or use out")
            owners[os.path.normpath(run.run_dir)] = f"strategies.{label}"
            runs.append(run)
    return runs


def _checked_table(table: Any, where: tuple[str, ...], options: Mapping[str, argparse.Action],
                   fail: Callable[..., ExperimentError]) -> dict[str, Any]:
    """The keys of one table, each value checked (``_checked``); unknown keys are refused with the nearest name."""
    if not isinstance(table, Mapping):
        raise fail(where, f"must be a table ([{'.'.join(where)}]), got {toml_value_or_type(table)}")
    valid = list(options) + (list(STUDY_ONLY) if where == ("study",) else [])
    values = {}
    for key, value in table.items():
        if key not in valid:
            raise fail(where + (key,), _unknown(key, valid, "key"))
        if key in STUDY_ONLY:
            if not isinstance(value, str) or not value:
                raise fail(where + (key,), f"must be a folder name, got {toml_value_or_type(value)}")
            values[key] = value
            continue
        try:
            values[key] = _checked(key, value, options)
        except ValueError as exc:
            raise fail(where + (key,), str(exc)) from None
    if "seed" in values and "seeds" in values:
        raise fail(where + ("seeds",), "give seed (one run) or seeds (one run per seed), not both")
    return values


def _unknown(name: str, valid: Any, what: str) -> str:
    near = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.5)
    hint = f"did you mean {near[0]!r}?" if near else f"expected one of {', '.join(sorted(valid))}"
    return f"unknown {what}; {hint}"


def toml_value_or_type(value: Any) -> str:
    """How an error shows a value: its TOML spelling and type (``"5" (a string)``)."""
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array"}.get(
        type(value), "a table" if isinstance(value, Mapping) else type(value).__name__)
    try:
        return f"{toml_value(value)} ({kind})"
    except TypeError:
        return kind


def _checked(key: str, value: Any, options: Mapping[str, argparse.Action]) -> Any:
    """``value`` for the option ``key``, checked as the command line checks the option's text (its type
    function and choices); ``task`` may be a list, ``seeds`` a list or a range such as ``"0-4"``."""
    action = options[key]
    if key == "task" and isinstance(value, list):
        if not value or not all(isinstance(v, str) and v for v in value):
            raise ValueError(f"must be a task name or folder, or a non-empty array of them, got {toml_value_or_type(value)}")
        return list(value)
    if key == "seeds":
        if isinstance(value, list) and value and all(type(v) is int and v >= 0 for v in value):
            if len(set(value)) != len(value):
                raise ValueError(f"repeats a seed: {toml_value(value)}")
            return list(value)
        if isinstance(value, str):
            return _convert(seed_list, value, value)
        raise ValueError(f"must be an array of seeds or a range such as \"0-4\", got {toml_value_or_type(value)}")
    if action.nargs == 0:  # a flag such as --final
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {toml_value_or_type(value)}")
        return value
    kind = getattr(action.type, "__name__", "str")
    if kind in _INTEGER_TYPES and type(value) is not int:
        raise ValueError(f"must be an integer, got {toml_value_or_type(value)}")
    if kind in _NUMBER_TYPES and type(value) not in (int, float):
        raise ValueError(f"must be a number, got {toml_value_or_type(value)}")
    if kind not in _INTEGER_TYPES + _NUMBER_TYPES and not isinstance(value, str):
        raise ValueError(f"must be a string, got {toml_value_or_type(value)}")
    if action.type is not None:
        value = _convert(action.type, str(value), value)
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"must be one of {', '.join(map(str, action.choices))}, got {toml_value(value)}")
    return value


def _convert(convert: Callable[[str], Any], text: str, value: Any) -> Any:
    """``convert(text)`` with its complaint about ``text`` phrased about the file's ``value``."""
    try:
        return convert(text)
    except (argparse.ArgumentTypeError, ValueError) as exc:
        raise ValueError(str(exc).replace(repr(text), toml_value(value))) from None


def _expand(label: str, values: Mapping[str, Any], options: Mapping[str, argparse.Action],
            fail: Callable[..., ExperimentError]) -> list[argparse.Namespace]:
    """The runs of one strategy table (with the study's keys merged in): one per task × seed."""
    where = ("strategies", label)
    if "task" not in values:
        raise fail(where, "no task: set task (a task name or folder, or an array of them) in [study] or here")
    tasks = values["task"] if isinstance(values["task"], list) else [values["task"]]
    seeds = values.get("seeds") or [values.get("seed", options["seed"].default)]
    label = values.get("label", label)
    if "run_dir" not in values and "out" not in values:
        raise fail(where, "no output folder: set out in [study] (runs go to OUT/TASK/LABEL/seed-S) or run_dir")
    if "run_dir" in values and len(tasks) > 1:
        raise fail(where + ("run_dir",), f"one run_dir for {len(tasks)} tasks: use out in [study] instead")
    runs = []
    for task in tasks:
        for seed in seeds:
            run = {key: action.default for key, action in options.items()}
            run.update({k: v for k, v in values.items() if k not in STUDY_ONLY})
            run.update(task=task, seed=seed, seeds=None, label=label)
            if "run_dir" in values:
                run["run_dir"] = os.path.join(values["run_dir"], f"seed-{seed}") if "seeds" in values else values["run_dir"]
            else:
                run["run_dir"] = os.path.join(values["out"], _folder_name(task), _folder_name(label), f"seed-{seed}")
            runs.append(argparse.Namespace(**run))
    return runs


def _folder_name(name: str) -> str:
    """A task (name or folder) or label as one folder name."""
    base = os.path.basename(os.path.normpath(name)) or name
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", base)


def cmd_run(args: argparse.Namespace) -> int:
    runs = load_experiment(args.experiment)
    if args.list:
        for run in runs:
            print(f"{run.task}\t{run.label}\tseed {run.seed}\t{run.run_dir}")
        return 0
    compare_dir = os.path.commonpath([os.path.abspath(run.run_dir) for run in runs])
    return run_many(runs, os.path.relpath(compare_dir) if not os.path.isabs(runs[0].run_dir) else compare_dir)


def key_mapping() -> str:
    """``nas run --help``'s table of ``nas search`` options and experiment-file keys."""
    rows = []
    for key, action in search_options().items():
        flag = next(s for s in action.option_strings if s.startswith("--"))
        default = "" if action.default is None or action.default is False else toml_value(action.default)
        rows.append(f"  {flag:<20} {key:<17} {default}".rstrip())
    return "\n".join(rows)


EPILOG = """\
An experiment file (TOML):

  [study]                      # keys every run shares
  task = "language-mini"       # or an array: one run per task
  budget = 40
  protocol = "reduced"
  seeds = "0-4"                # or [0, 1, 2], or seed = 0 for one run
  out = "runs/study"           # runs go to OUT/TASK/LABEL/seed-S

  [strategies.re]              # one table per strategy; LABEL (re) names its runs
  strategy = "re"

  [strategies.filtered]
  strategy = "filtered"
  surrogate = "rf"

Each key is a nas search option without -- and with - as _ (nas search ... --dump-config prints the file of a
command line); a strategy table adds or overrides [study] keys.  Beyond the options: out ([study] only), task as
an array, seeds as an array or range.  run_dir names one run's folder exactly (RUN_DIR/seed-S with seeds).  Paths
are relative to the working directory.  Re-running the command resumes every run.

nas search option      key               default
"""


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run (or resume) every search of an experiment file (TOML)",
                       description="Run every task × strategy × seed of an experiment file, one nas search run "
                       "folder each, one after the other; re-running resumes.",
                       epilog=EPILOG + key_mapping(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiment", help="the experiment file (TOML)")
    p.add_argument("--list", action="store_true", help="print the runs (task, label, seed, folder) and exit")
    p.set_defaults(func=cmd_run)
