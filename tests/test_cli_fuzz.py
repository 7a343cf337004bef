"""Fuzzing the ``nas`` command line: random argument vectors drawn from each verb's own options (read from
``nas.cli.app.build_parser``), with malformed values (negative, zero, huge, NaN, non-numeric, empty) and bad
paths (missing, a folder, a file that is not SQLite, nested missing folders).  Every run must end with exit
code 0 or 2 (1 only where a verb documents it), never a traceback on stderr, and a read-only verb must leave
its folder exactly as it was.

Commands run in this process (``main(argv)``), each in a fresh copy of a small prepared folder (an NB201
archive, a fitted surrogate, a search run, bad files), so an example costs milliseconds to a second.  Verbs
that train networks or run long are left out, and the options that size work get only small or malformed
values; the ``slow`` variant draws more examples and adds the verbs of ``SLOW_ONLY`` on the NAS-Bench-201 look-up
task (searches and builds of a few cells, random-forest and XGBoost surrogates).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.cli.app import build_parser, main

CELL = "|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"

#: Verbs (and actions) that only read: with none of ``WRITING_OPTIONS`` they must create or change no file.
READ_ONLY = {("sample",), ("show",), ("tasks", "list"), ("tasks", "show"), ("archive", "info"), ("features", "show"),
             ("status",), ("compare",), ("surrogate", "predict"), ("surrogate", "evaluate"), ("evaluate",)}
#: Verbs that write files whatever their options (run by the fuzzer, not checked for files).
WRITERS = {("archive", "export"), ("archive", "import"), ("archive", "upgrade"), ("tasks", "export")}
#: Options that make a read-only verb write (a graph, a plot, an output file, an archive to add to).
WRITING_OPTIONS = {"--graph", "--plot", "-o", "--output", "--archive"}
#: Verbs that train networks, fit language models or run for minutes whatever their options: left out.
LONG = {("final",), ("run",), ("quickstart",), ("transfer",), ("features", "compute"), ("surrogate", "fit"),
        ("search",), ("archive", "build"), ("report",)}
#: Verbs that run long only with some values: the slow variant runs them on the look-up task, with tiny budgets
#: and quick models.
SLOW_ONLY = {("search",), ("archive", "build"), ("surrogate", "fit"), ("features", "compute"), ("transfer",),
             ("final",), ("run",)}
#: Options that draw a figure (seconds each): the slow variant only.
DRAWING_OPTIONS = {"--graph", "--plot"}
#: Exit code 1 is a documented outcome of these verbs (``nas evaluate``: the evaluation failed).
EXIT_ONE = {("evaluate",)}

#: Options whose value sizes the work (a count, a budget, a number of workers): small or malformed values only.
WORK_OPTIONS = {"-n", "--n", "--budget", "--archive-size", "--workers", "--steps", "--pool-size", "--n-candidates",
                "--n-init", "--population", "--time-budget", "--lm-epochs", "--lm-layers", "--epochs", "--num-layers",
                "--k", "--tournament", "--refit-every", "--start-after"}
#: Options that name a task: only look-up tasks or bad names (a built-in image task would train).
TASK_OPTIONS = {"--task", "name"}
#: Options and positionals that are paths.
PATH_OPTIONS = {"--archive", "--test-archive", "-o", "--output", "-i", "--input", "--run-dir", "run_dirs", "run_dir",
                "dir", "--graph", "--plot", "--source-archive", "--lm-path", "experiment", "--seed-arch"}
#: Models whose fit takes seconds on the prepared archive (the others fit language models or tune for long).
QUICK_MODELS = ["rf", "xgb"]

#: Malformed values of a number; huge ones are added for numbers that do not size work.
MALFORMED = ["-5", "-1", "0", "nan", "inf", "-inf", "abc", "", " ", "1e3", "0x10", "--", "3.5"]
HUGE = ["10000000000", str(10**21), "1e308"]
#: Valid values by the option's type (its ``type`` function's name).
VALID_NUMBERS = {"int": ["0", "1", "3", "42"], "positive_int": ["1", "2", "3"], "float": ["0.1", "0.5", "2"],
                 "positive_float": ["0.5", "2"], "open_fraction": ["0.2", "0.5"], "seed_list": ["0,1", "3"]}
#: Paths a command may be given that are wrong for every option.
BAD_PATHS = ["missing.sqlite", "nested/missing/deep/x.sqlite", "folder", "notsqlite.sqlite", "empty.sqlite",
             "bad.json", "bad.csv", ""]
#: A valid value of each path option in the prepared folder (outputs: paths that do not exist yet).
GOOD_PATHS = {"--archive": ["a.sqlite"], "--test-archive": ["a.sqlite"], "--source-archive": ["a.sqlite"],
              "run_dirs": ["run"], "run_dir": ["run"],
              "--run-dir": ["new-run"], "dir": ["surrogate"], "-i": ["good.csv"], "--input": ["good.csv", "cells.txt"],
              "-o": ["out/x.csv"], "--output": ["out/x.csv"], "--graph": ["g.png"], "--plot": ["p.png"],
              "--lm-path": ["folder"], "experiment": ["bad.json"], "--seed-arch": ["resnet18"]}
ARCHS = ["resnet18", CELL, "sequential(computation<linear(16)>, computation<relu>)"]
BAD_ARCHS = ["|bogus~0|", "sequential(", "garbage", "", "{\"input_shape\": [3]}", "{}", "-", "cells.txt"]
SHAPES = ["3x32x32", "1x24x24", "3x8x8"]
BAD_SHAPES = ["0x0x0", "3x-1x4", "abc", "", "3x100000x100000", "1", "3x32x32x32x32", "3x1x1"]
TASKS = ["nb201-cifar10"]
BAD_TASKS = ["no-such-task", "", "bogus@1234", "missing/folder", "folder", "notsqlite.sqlite"]
#: The share of options given a malformed value, drawn per vector: half the vectors are all valid, so that
#: they get past the parser and run.
BAD_SHARES = (0.0, 0.0, 0.05, 0.3)


def prepare(root: Path) -> None:
    """The files a fuzzed command may be pointed at: a small NB201 archive, a fitted surrogate and a search run
    on it, and bad files."""
    archive = root / "a.sqlite"
    steps = [
        ["archive", "build", "--archive", archive, "--task", "nb201-cifar10", "--n", "24", "--workers", "1"],
        ["surrogate", "fit", "--archive", archive, "--task", "nb201-cifar10", "--model", "rf", "--features", "graf",
         "-o", root / "surrogate"],
        ["search", "--task", "nb201-cifar10", "--strategy", "random", "--budget", "3", "--run-dir", root / "run",
         "--archive", archive],
    ]
    for argv in steps:
        code, _, err = run_nas([str(a) for a in argv])
        assert code == 0, err
    (root / "notsqlite.sqlite").write_text("this is not a database\n")
    (root / "empty.sqlite").write_bytes(b"")
    (root / "folder").mkdir()
    (root / "bad.csv").write_text("arch,acc\ngarbage,2\n")
    (root / "bad.json").write_text("[1]")
    (root / "cells.txt").write_text(CELL + "\n")
    code, _, err = run_nas(["archive", "export", "--archive", str(archive), "-o", str(root / "good.csv")])
    assert code == 0, err


def run_nas(argv: list[str]) -> tuple[int, str, str]:
    """``(exit code, stdout, stderr)`` of ``main(argv)`` run here; argparse's ``SystemExit`` is an exit code."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return code, out.getvalue(), err.getvalue()


# -- the verbs and their options, read from the parser -------------------------------------------------------


def _sub_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def verbs() -> dict[tuple[str, ...], list[argparse.Action]]:
    """``(command, action?) -> its options and positionals`` for every verb of ``nas``; a positional named
    ``action`` with choices makes one verb per choice."""
    out = {}
    for name, sub in _sub_parsers(build_parser()).items():
        actions = [a for a in sub._actions if not isinstance(a, argparse._HelpAction)]
        choice = next((a for a in actions if a.dest == "action" and a.choices), None)
        for verb in ([(name, c) for c in choice.choices] if choice else [(name,)]):
            out[verb] = [a for a in actions if a is not choice]
    return out


VERBS = verbs()


def _choices(action: argparse.Action, verb: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """``(valid, malformed)`` values for one option or positional of ``verb``."""
    names = set(action.option_strings) | {action.dest}
    typename = getattr(action.type, "__name__", "")
    if names & TASK_OPTIONS:
        valid = TASKS + (["language-mini", "chesseract-mini"] if verb in (("tasks", "show"), ("tasks", "export")) else [])
        return valid, BAD_TASKS
    if action.dest == "model":
        return QUICK_MODELS, ["bogus", ""]
    if action.choices:
        return [str(c) for c in action.choices], ["bogus", ""]
    if names & PATH_OPTIONS:
        good = next((GOOD_PATHS[n] for n in sorted(names) if n in GOOD_PATHS), ["out/x"])
        return good, BAD_PATHS
    if action.dest == "arch":
        return ARCHS, BAD_ARCHS
    if action.dest == "input_shape":
        return SHAPES, BAD_SHAPES
    if action.dest in ("protocol", "final_protocol"):
        return ["smoke", "reduced"], ["bogus", "bad.json", "folder", "missing.json", ""]
    if action.dest == "device":
        return ["cpu"], ["cuda:7", "bogus", ""]
    if action.dest == "features":
        return ["graf", "graf,zcp"], ["bogus", "", ",", "graf,graf"]
    if typename in VALID_NUMBERS:
        valid = VALID_NUMBERS[typename]
        return valid, MALFORMED + ([] if names & WORK_OPTIONS else HUGE)
    return ["x", "nb201-cifar10", "1"], ["", "-", "bogus", "a,b"]


def _values(action: argparse.Action, verb: tuple[str, ...], bad_share: float) -> st.SearchStrategy[str]:
    """A malformed value with probability ``bad_share``, else a valid one."""
    valid, bad = _choices(action, verb)
    return st.floats(0, 1).flatmap(lambda r: st.sampled_from(bad if r < bad_share else valid))


@st.composite
def argument_vectors(draw, slow: bool = False) -> tuple[tuple[str, ...], list[str]]:
    """A verb and an argument vector for it: some of its options (each with a drawn value) and its positionals
    (present or not) in a drawn order, now and then a stray token."""
    allowed = sorted(v for v in VERBS if v not in LONG or (slow and v in SLOW_ONLY))
    verb = draw(st.sampled_from(allowed))
    argv: list[str] = list(verb)
    bad_share = draw(st.sampled_from(BAD_SHARES))
    for action in VERBS[verb]:
        if set(action.option_strings) & DRAWING_OPTIONS and not slow:
            continue
        wanted = action.required or not action.option_strings  # required options and positionals, mostly
        if draw(st.floats(0, 1)) > (0.9 if wanted else 0.3):
            continue
        if not action.option_strings:  # a positional
            argv.append(draw(_values(action, verb, bad_share)))
            continue
        option = draw(st.sampled_from(action.option_strings))
        if action.nargs == 0:
            argv.append(option)
        else:
            argv += [option, draw(_values(action, verb, bad_share))]
    if bad_share and draw(st.integers(0, 9)) == 0:
        argv.insert(draw(st.integers(1, len(argv))), draw(st.sampled_from(["--bogus", "-x", "extra", "--", "-"])))
    return verb, argv


# -- the property ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz-prepared")
    prepare(root)
    return root


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``folder`` with its size and modification time (what a command changed shows up)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def check(prepared: Path, verb: tuple[str, ...], argv: list[str]) -> None:
    work = Path(tempfile.mkdtemp(prefix="nas-fuzz-"))
    try:
        shutil.copytree(prepared, work, dirs_exist_ok=True)
        before = snapshot(work)
        cwd = os.getcwd()
        os.chdir(work)
        try:
            code, out, err = run_nas(argv)
        finally:
            os.chdir(cwd)
        assert "Traceback" not in err, f"nas {' '.join(map(repr, argv))}:\n{err}"
        assert "internal error" not in err, f"nas {' '.join(map(repr, argv))}:\n{err}"
        allowed = {0, 2} | ({1} if verb in EXIT_ONE else set())
        assert code in allowed, f"nas {' '.join(map(repr, argv))}: exit {code}\n{err}"
        if code == 2:
            assert err.strip(), f"nas {' '.join(map(repr, argv))}: exit 2 without a message"
        if verb in READ_ONLY and not WRITING_OPTIONS & set(argv):
            assert snapshot(work) == before, f"nas {' '.join(map(repr, argv))} (read-only) changed files"
    finally:
        shutil.rmtree(work, ignore_errors=True)


@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=argument_vectors())
def test_random_command_lines_end_in_a_clean_exit(prepared, case):
    check(prepared, *case)


@pytest.mark.slow
@settings(max_examples=2000, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=argument_vectors(slow=True))
def test_random_command_lines_end_in_a_clean_exit_many(prepared, case):
    check(prepared, *case)


def test_every_verb_is_classified():
    """A new verb (or action) must be put in one of the classes above, so that the fuzzer knows whether it may
    run it and whether it must leave files alone."""
    assert set(VERBS) == READ_ONLY | LONG | WRITERS
    assert not READ_ONLY & LONG and not READ_ONLY & WRITERS and not LONG & WRITERS and SLOW_ONLY <= LONG
