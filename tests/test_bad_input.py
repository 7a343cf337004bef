"""Bad input to the ``nas`` command: every case is refused with exit code 2 and one line on stderr naming what
was wrong, never a traceback; read-only verbs create no file; a bad file changes no archive."""

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data.archive import Archive, ArchiveError
from data.training import Evaluation, TrainingProtocol
from nas.cli import main

CELL = "|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
#: A network small enough for a protocol test on ``language-mini`` (old code trained it before failing).
TINY = "sequential(computation<linear(16)>, computation<relu>)"
OTHER = "sequential(computation<linear(32)>, computation<relu>)"
#: A protocol that trains in about a second: only the field under test is made bad.
QUICK = {"name": "quick", "epochs": 1, "batch_size": 32, "train_subset": 64, "valid_subset": 32}


def nas(capsys, *argv):
    """``(exit code, stdout, stderr)`` of ``nas ARGV`` run in this process (argparse's exit included)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(code, err, *words):
    """Exit code 2 and exactly one line on stderr, holding every one of ``words``."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for word in words:
        assert str(word) in lines[0], lines[0]


def files(folder):
    """Every path under ``folder`` (what a command created shows up as a difference)."""
    return sorted(p.relative_to(folder) for p in folder.rglob("*"))


@pytest.fixture
def one_eval_archive(tmp_path, capsys):
    path = tmp_path / "one.sqlite"
    assert nas(capsys, "evaluate", CELL, "--task", "nb201-cifar10", "--archive", path)[0] == 0
    return path


# -- option values, refused when the command line is parsed ------------------------------------------------

@pytest.mark.parametrize("argv, option", [
    (["sample", "-n", "-5"], "--n"),
    (["sample", "--classes", "-3", "--json"], "--classes"),
    (["sample", "--classes", "0", "--json"], "--classes"),
    (["show", "resnet18", "--classes", "0"], "--classes"),
    (["evaluate", "resnet18", "--task", "language-mini", "--threads", "-1"], "--threads"),
    (["surrogate", "evaluate", "--archive", "{tmp}/a.sqlite", "--task", "t", "--test-fraction", "0"], "--test-fraction"),
    (["surrogate", "evaluate", "--archive", "{tmp}/a.sqlite", "--task", "t", "--test-fraction", "-1"], "--test-fraction"),
    (["surrogate", "evaluate", "--archive", "{tmp}/a.sqlite", "--task", "t", "--test-fraction", "1.5"], "--test-fraction"),
    (["archive", "build", "--archive", "{tmp}/a.sqlite", "--task", "nb201-cifar10", "--n", "-5"], "--n"),
    (["search", "--task", "language-mini", "--run-dir", "{tmp}/r", "--budget", "0"], "--budget"),
])
def test_bad_option_values_are_refused_when_parsed(capsys, tmp_path, argv, option):
    code, out, err = nas(capsys, *(a.format(tmp=tmp_path) for a in argv))
    assert_refused(code, err, option)
    assert out == "" and files(tmp_path) == []


@pytest.mark.parametrize("n", ["16000", str(10**21)])
def test_a_build_larger_than_the_space_is_refused_at_once(capsys, tmp_path, n):
    code, _, err = nas(capsys, "archive", "build", "--archive", tmp_path / "a.sqlite", "--task", "nb201-cifar10",
                       "--n", n)
    assert_refused(code, err, f"{int(n):,}", "15,625", "nb201")
    assert files(tmp_path) == []


def test_the_space_size_of_the_grammars():
    from nas.cli.archive import count_architectures
    from nas.grammar import get_grammar

    assert count_architectures(get_grammar("nb201")) == 5 ** 6
    assert count_architectures(get_grammar("einspace")) is None  # recursive: unbounded
    assert count_architectures(get_grammar("hnb201")) > 10 ** 100


# -- files the commands read ------------------------------------------------------------------------------

def test_an_npy_header_claiming_a_terabyte(capsys, tmp_path):
    folder = tmp_path / "lm"
    assert nas(capsys, "tasks", "export", "language-mini", "-o", folder)[0] == 0
    with open(folder / "train_x.npy", "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": (10**12,)})
        fh.write(bytes(64))
    code, _, err = nas(capsys, "tasks", "show", folder)
    assert_refused(code, err, "train_x.npy", "1,000,000,000,000 elements", "64 bytes")


@pytest.mark.parametrize("content, words", [
    ("[1]", ["run.json", "got list"]),
    ("5", ["run.json", "got int"]),
    ("{", ["run.json", "not valid JSON"]),
    ('{"archive": 3, "run": "x"}', ["run.json", "'archive'"]),
    ('{"archive": "a.sqlite"}', ["run.json", "'run'"]),
])
@pytest.mark.parametrize("verb", ["status", "compare"])
def test_a_bad_run_json(capsys, tmp_path, content, words, verb):
    (tmp_path / "run.json").write_text(content)
    code, _, err = nas(capsys, verb, tmp_path)
    assert_refused(code, err, *words)
    assert [str(p) for p in files(tmp_path)] == ["run.json"]


# -- training protocols, checked field by field -------------------------------------------------------------

@pytest.mark.parametrize("content, words", [
    (QUICK | {"valid_subset": 0}, ["'valid_subset'", "positive integer", "got 0"]),
    (QUICK | {"train_subset": -5}, ["'train_subset'", "got -5"]),
    (QUICK | {"epochs": "3"}, ["'epochs'", "got '3'"]),
    (QUICK | {"lr": -0.1}, ["'lr'"]),
    (QUICK | {"normalize": "yes"}, ["'normalize'"]),
    ([1, 2], ["JSON object", "list"]),
    (5, ["JSON object", "int"]),
])
def test_a_bad_protocol_file(capsys, tmp_path, monkeypatch, content, words):
    path = tmp_path / "protocol.json"
    path.write_text(json.dumps(content))
    code, _, err = nas(capsys, "evaluate", TINY, "--task", "language-mini", "--protocol", path)
    assert_refused(code, err, "--protocol", path, *words)


@pytest.mark.parametrize("field, value", [
    ("epochs", 0), ("epochs", 2.0), ("epochs", True), ("batch_size", "32"), ("lr", float("nan")),
    ("lr", float("inf")), ("momentum", 1.5), ("weight_decay", -1), ("schedule", "step"), ("train_subset", 0),
    ("valid_subset", -1), ("normalize", 1), ("max_seconds", 0), ("max_memory_mb", -5.0), ("col_pool", "mean"),
    ("name", ""), ("evaluate_test", None),
])
def test_protocol_fields_are_checked_with_the_field_named(field, value):
    with pytest.raises(ValueError, match=f"field '{field}'"):
        TrainingProtocol.from_dict({field: value})


# -- read-only verbs ----------------------------------------------------------------------------------------

READERS = [
    ["archive", "info", "--archive", "{archive}"],
    ["archive", "export", "--archive", "{archive}", "-o", "{tmp}/out.csv"],
    ["surrogate", "fit", "--archive", "{archive}", "--task", "nb201-cifar10", "-o", "{tmp}/saved"],
    ["surrogate", "evaluate", "--archive", "{archive}", "--task", "nb201-cifar10"],
    ["transfer", "--archive", "{archive}", "-o", "{tmp}/transfer"],
    ["features", "compute", "--archive", "{archive}", "--task", "nb201-cifar10"],
]


@pytest.mark.parametrize("argv", READERS, ids=lambda a: " ".join(a[:2]))
def test_readers_of_a_missing_archive_create_nothing(capsys, tmp_path, argv):
    archive = tmp_path / "typo" / "nothere.sqlite"
    code, _, err = nas(capsys, *(a.format(archive=archive, tmp=tmp_path) for a in argv))
    assert_refused(code, err, archive)
    assert files(tmp_path) == []


@pytest.mark.parametrize("argv", READERS[:2], ids=lambda a: " ".join(a[:2]))
def test_readers_of_an_archive_leave_no_file_behind(capsys, tmp_path, one_eval_archive, argv):
    """No ``-wal``/``-shm`` files either (a ``mode=ro`` SQLite reader of a WAL archive leaves them)."""
    before = files(tmp_path)
    code, _, err = nas(capsys, *(a.format(archive=one_eval_archive, tmp=tmp_path) for a in argv))
    assert code == 0, err
    assert set(files(tmp_path)) - set(before) <= {Path("out.csv")}  # export writes its -o, nothing else


@pytest.mark.parametrize("argv", [
    ["archive", "info", "--archive", "{db}"],
    ["archive", "export", "--archive", "{db}", "-o", "{tmp}/out.csv"],
    ["archive", "build", "--archive", "{db}", "--task", "nb201-cifar10", "--n", "1"],
    ["surrogate", "evaluate", "--archive", "{db}", "--task", "nb201-cifar10"],
], ids=lambda a: " ".join(a[:2]))
def test_another_programs_sqlite_file_is_refused_and_left_alone(capsys, tmp_path, argv):
    db = tmp_path / "people.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE people (name TEXT)")
    con.close()
    before = files(tmp_path)
    code, _, err = nas(capsys, *(a.format(db=db, tmp=tmp_path) for a in argv))
    assert_refused(code, err, db, "not a surrogate-nas archive", "people")
    with sqlite3.connect(db) as con:
        assert [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["people"]
    con.close()
    assert files(tmp_path) == before


def test_status_does_not_create_the_archive_of_run_json(capsys, tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"archive": "sub/archive.sqlite", "run": "re-seed0"}))
    code, _, err = nas(capsys, "status", tmp_path)
    assert_refused(code, err, "archive.sqlite")
    assert [str(p) for p in files(tmp_path)] == ["run.json"]


def test_evaluate_opens_the_archive_before_training(capsys, tmp_path, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("trained before opening --archive")

    monkeypatch.setattr("nas.cli.archive.train_and_evaluate", no_training)
    bad = tmp_path / "notsqlite"
    bad.write_text("this is not a database\n" * 10)
    code, _, err = nas(capsys, "evaluate", TINY, "--task", "language-mini", "--protocol", "smoke", "--archive", bad)
    assert_refused(code, err, bad, "not a surrogate-nas archive")
    assert bad.read_text() == "this is not a database\n" * 10


def test_surrogate_fit_on_one_evaluation_is_refused(capsys, tmp_path, one_eval_archive):
    code, _, err = nas(capsys, "surrogate", "fit", "--archive", one_eval_archive, "--task", "nb201-cifar10",
                       "-o", tmp_path / "saved")
    assert_refused(code, err, one_eval_archive, "only 1", "at least")
    assert not (tmp_path / "saved").exists()


# -- archive writes --------------------------------------------------------------------------------------------

def write_csv(path, *rows):
    path.write_text("arch,acc\n" + "".join(f'"{arch}",{acc}\n' for arch, acc in rows))
    return path


@pytest.mark.parametrize("rows, words", [
    ([(TINY, "0.5"), (OTHER, "nan")], ["line 3", "'nan'", "not an accuracy"]),
    ([(TINY, "0.5"), (OTHER, "inf")], ["line 3", "'inf'"]),
    ([(TINY, "0.5"), (OTHER, "-3")], ["line 3", "'-3'"]),
    ([(TINY, "0.5"), (OTHER, "150")], ["line 3", "'150'"]),
    ([(TINY, "0.5"), (OTHER, "1.5")], ["line 3", "1.5", "line 2", "0.5", "one scale"]),  # > 1 among fractions
    ([(TINY, "0.5"), (TINY, "0.9")], ["line 3", "conflicts with line 2", "0.5", "0.9"]),
    ([(TINY, "0.5"), (OTHER, "high")], ["line 3", "'high'", "not a number"]),
])
def test_csv_import_refuses_bad_values_and_imports_nothing(capsys, tmp_path, rows, words):
    archive = tmp_path / "a.sqlite"
    good = write_csv(tmp_path / "good.csv", ("sequential(computation<linear(64)>, computation<relu>)", "0.25"))
    options = ("--task", "t", "--input-shape", "3x8x8")
    assert nas(capsys, "archive", "import", "--archive", archive, "-i", good, *options)[0] == 0
    bad = write_csv(tmp_path / "bad.csv", *rows)
    code, _, err = nas(capsys, "archive", "import", "--archive", archive, "-i", bad, *options)
    assert_refused(code, err, bad, *words)
    with Archive(archive, readonly=True) as a:
        assert a.count() == 1  # all or nothing: line 2 was good, and is not there either
    assert nas(capsys, "archive", "import", "--archive", tmp_path / "new.sqlite", "-i", bad, *options)[0] == 2
    assert not (tmp_path / "new.sqlite").exists()  # the file is checked before the archive is created


def test_csv_import_reports_a_conflict_with_the_archive(capsys, tmp_path):
    archive, options = tmp_path / "a.sqlite", ("--task", "t", "--input-shape", "3x8x8")
    first = write_csv(tmp_path / "first.csv", (TINY, "0.5"))
    assert nas(capsys, "archive", "import", "--archive", archive, "-i", first, *options)[0] == 0
    assert nas(capsys, "archive", "import", "--archive", archive, "-i", first, *options)[0] == 0  # the same: skipped
    second = write_csv(tmp_path / "second.csv", (OTHER, "0.4"), (TINY, "0.9"))
    code, _, err = nas(capsys, "archive", "import", "--archive", archive, "-i", second, *options)
    assert_refused(code, err, "line 3", "conflicts with the archive", "0.5", "0.9")
    with Archive(archive, readonly=True) as a:
        assert a.count() == 1 and a.dataset("t")[1].tolist() == [0.5]


# -- output --------------------------------------------------------------------------------------------------

def test_a_closed_pipe_ends_sample_quietly():
    """``nas sample -n 1000 | head -1``: the reader goes away after one line."""
    proc = subprocess.Popen([sys.executable, "-m", "nas.cli", "sample", "-n", "1000"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err
    assert first.strip() and err == b""


# -- unexpected errors ----------------------------------------------------------------------------------------

def _raising(exc):
    def command(args):
        raise exc

    return command


def test_an_internal_error_is_one_line_and_the_traceback_is_behind_vv(capsys, monkeypatch):
    monkeypatch.setattr("nas.cli.space.cmd_sample", _raising(RuntimeError("the sampler broke")))
    code, out, err = nas(capsys, "sample", "-n", "1")
    assert_refused(code, err, "nas sample: error: internal error (RuntimeError): the sampler broke",
                   "rerun with -vv for the traceback")
    code, out, err = nas(capsys, "-vv", "sample", "-n", "1")
    assert code == 2 and "Traceback" in err and 'raise exc' in err and "RuntimeError: the sampler broke" in err
    assert err.strip().splitlines()[-1] == "nas sample: error: internal error (RuntimeError): the sampler broke"


def test_ctrl_c_exits_130_quietly(capsys, monkeypatch):
    monkeypatch.setattr("nas.cli.space.cmd_sample", _raising(KeyboardInterrupt()))
    code, out, err = nas(capsys, "sample", "-n", "1")
    assert (code, out, err) == (130, "", "")


# -- task identity ----------------------------------------------------------------------------------------------

def test_a_folder_named_like_a_builtin_task_is_shown_with_its_fingerprint(capsys, tmp_path):
    """``nas tasks show`` of an Unseen-NAS folder whose metadata names a built-in task: another task, whose name
    carries its fingerprint, and whose evaluations go under that name."""
    folder = tmp_path / "gutenberg"
    assert nas(capsys, "tasks", "export", "gutenberg-mini", "-o", folder)[0] == 0
    code, out, err = nas(capsys, "tasks", "show", folder)
    shown = json.loads(out)
    assert code == 0 and shown["name"] == "gutenberg-mini@" + shown["fingerprint"][:8]
    code, out, _ = nas(capsys, "tasks", "show", "gutenberg-mini")
    builtin = json.loads(out)
    assert builtin["name"] == "gutenberg-mini" and builtin["fingerprint"] != shown["fingerprint"]


def test_a_grammar_the_table_cannot_look_up_is_refused_at_once(capsys, tmp_path):
    """Old code drew einspace networks for the NB201 table, failed five look-ups and ended in a RuntimeError."""
    code, _, err = nas(capsys, "archive", "build", "--archive", tmp_path / "a.sqlite", "--task", "nb201-cifar10",
                       "--grammar", "einspace", "--n", "1")
    assert_refused(code, err, "nb201-cifar10", "grammar 'einspace'", "nb201 and hnb201")


@pytest.mark.parametrize("option", ["--task-seed"])
@pytest.mark.parametrize("value", ["-1", str(2**63)])
def test_seeds_out_of_range_are_refused_when_parsed(capsys, tmp_path, option, value):
    code, out, err = nas(capsys, "evaluate", CELL, "--task", "nb201-cifar10", option, value)
    assert_refused(code, err, option, "from 0 to 2**63 - 1")


def test_a_seed_sqlite_cannot_store_is_refused_by_the_archive(capsys, tmp_path):
    """Old code: an OverflowError traceback from SQLite after the evaluation.  The command line refuses it
    when parsed; the archive refuses it from Python too."""
    archive = tmp_path / "a.sqlite"
    code, _, err = nas(capsys, "evaluate", CELL, "--task", "nb201-cifar10", "--train-seed", str(10**20),
                       "--archive", archive)
    assert_refused(code, err, "--train-seed", "from 0 to 2**63 - 1")
    with Archive(archive) as a, pytest.raises(ArchiveError, match="64 bits"):
        a.add_evaluation(Evaluation("0" * 64, "nb201-cifar10", "p", 10**20, "ok", {"val_acc": 0.5}))
    with Archive(archive, readonly=True) as a:
        assert a.count() == 0
