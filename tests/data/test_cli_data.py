"""The ``nas`` command line for tasks, evaluation and archives, including resume after SIGKILL."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from data.archive import Archive
from nas.cli import main

TASK = "language-mini"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_tasks_list_and_show(capsys):
    code, out, _ = run(capsys, "tasks", "list")
    assert code == 0 and TASK in out and "nb201-cifar10" in out
    code, out, _ = run(capsys, "tasks", "show", TASK)
    info = json.loads(out)
    assert code == 0 and info["name"] == TASK and info["sizes"]["train"] > 0
    code, _, err = run(capsys, "tasks", "show", "no-such-task")
    assert code == 2 and "unknown task 'no-such-task'" in err


def test_tasks_export_then_evaluate_from_the_folder(capsys, tmp_path):
    folder = tmp_path / "lang"
    assert run(capsys, "tasks", "export", TASK, "-o", str(folder))[0] == 0
    assert (folder / "train_x.npy").exists() and (folder / "metadata").exists()
    arch = "sequential(computation<linear(16)>, computation<relu>)"
    archive = tmp_path / "a.sqlite"
    code, out, _ = run(capsys, "evaluate", arch, "--task", str(folder), "--protocol", "smoke", "--archive", str(archive))
    ev = json.loads(out)
    assert code == 0 and ev["status"] == "ok" and 0 <= ev["metrics"]["val_acc"] <= 1
    with Archive(archive) as a:
        assert a.count() == 1


def test_evaluate_nb201_cell_is_a_look_up(capsys):
    cell = "|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
    code, out, _ = run(capsys, "evaluate", cell, "--task", "nb201-cifar10", "--json")
    ev = json.loads(out)
    assert code == 0 and ev["metrics"]["val_acc"] == pytest.approx(0.9052) and ev["device"] == "table"


def test_archive_build_info_export_import(capsys, tmp_path):
    archive = str(tmp_path / "nb.sqlite")
    code, out, _ = run(capsys, "archive", "build", "--archive", archive, "--task", "nb201-cifar10", "--n", "25")
    assert code == 0 and json.loads(out)["total"] == 25
    code, out, _ = run(capsys, "archive", "info", "--archive", archive)
    assert "nb201-cifar10" in out and "25 evaluations" in out
    csv_path = str(tmp_path / "nb.csv")
    assert run(capsys, "archive", "export", "--archive", archive, "-o", csv_path)[0] == 0
    other = str(tmp_path / "other.sqlite")
    assert run(capsys, "archive", "import", "--archive", other, "-i", csv_path)[0] == 0
    with Archive(archive) as a, Archive(other) as b:
        assert a.dataset("nb201-cifar10")[1].tolist() == b.dataset("nb201-cifar10")[1].tolist()


def _count(path):
    if not os.path.exists(path):
        return 0
    try:
        with sqlite3.connect(path, timeout=10) as db:
            return db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.e2e
def test_archive_build_survives_sigkill(tmp_path):
    """Kill ``nas archive build`` mid-run, re-run it: every completed evaluation is kept, none is
    duplicated, and the requested total is reached."""
    archive = str(tmp_path / "a.sqlite")
    n = 8
    cmd = [sys.executable, "-m", "nas.cli", "archive", "build", "--archive", archive, "--task", TASK,
           "--n", str(n), "--protocol", "smoke", "--seed", "5"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 120
    while _count(archive) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Archive(archive) as a:
        before = [(e.arch_hash, e.status, e.metrics.get("val_acc"), e.created) for e in a.evaluations()]
    assert 3 <= len(before) < n, "the build should have been killed mid-run"
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["evaluated"] == n - len(before)
    with Archive(archive) as a:
        after = [(e.arch_hash, e.status, e.metrics.get("val_acc"), e.created) for e in a.evaluations()]
    assert after[: len(before)] == before  # nothing lost or rewritten
    assert len(after) == n and len({h for h, *_ in after}) == n  # total reached, nothing trained twice
