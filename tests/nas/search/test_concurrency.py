"""One writer per run: the engine holds the run's lock while it runs, and two identical commands at once give
one result and one clear refusal, with counts that match the archive's rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import Executor

import pytest

from tests.data.test_runlock import holder_process

from data.archive import Archive
from data.runlock import RunBusy
from data.training import Evaluation
from nas.sampler import Sampler
from nas.search import CPU_BUDGET, FunctionEvaluator, RandomSearch, SearchRun, run_history

SHAPE = (3, 8, 8)
BUDGET = CPU_BUDGET.__class__(max_nodes=40, max_depth=12, max_params=20_000, max_flops=2e6, batch_size=32)


def score(arch) -> float:
    return 1.0 / (1.0 + arch.num_nodes)


@pytest.fixture
def sampler() -> Sampler:
    return Sampler("einspace", SHAPE, BUDGET)


@pytest.fixture
def archive(tmp_path):
    with Archive(tmp_path / "a.sqlite") as a:
        yield a


def test_a_run_held_by_a_live_process_is_refused_before_anything_is_written(sampler, archive):
    proc = holder_process(archive.path, "hold")  # claims run "r"
    try:
        with pytest.raises(RunBusy, match=rf"run 'r' of .*\(pid {proc.pid} on \S+, since"):
            SearchRun(archive, "r", score, progress=False).run(RandomSearch(sampler, 0), budget_evals=5)
        assert archive.runs() == [] and run_history(archive, "r") == []
    finally:
        proc.kill()
        proc.wait()
    # kill -9 leaves the lock behind; re-running takes it over at once and runs
    assert SearchRun(archive, "r", score, progress=False).run(RandomSearch(sampler, 0), budget_evals=5)["new"] == 5
    assert archive.run_holder("r") is None  # released at the end


class Interrupting(Executor):
    def submit(self, fn, /, *args, **kwargs):
        raise KeyboardInterrupt


def test_the_lock_is_released_on_exceptions(sampler, archive):
    with pytest.raises(KeyboardInterrupt):
        SearchRun(archive, "r", score, executor=Interrupting(), progress=False).run(RandomSearch(sampler, 0), 5)
    assert archive.run_holder("r") is None
    with pytest.raises(ValueError, match="different configuration"):  # refused in the start-up: released too
        SearchRun(archive, "r", FunctionEvaluator(score, task="other"), progress=False).run(RandomSearch(sampler, 0), 5)
    assert archive.run_holder("r") is None


def test_the_lock_heartbeats_during_long_evaluations(sampler, archive):
    beats = []

    def slow(arch):
        with Archive(archive.path, readonly=True) as other:
            first = other.run_holder("r").heartbeat
            time.sleep(0.3)
            beats.append((first, other.run_holder("r").heartbeat))
        return score(arch)

    SearchRun(archive, "r", slow, progress=False, heartbeat_every=0.05).run(RandomSearch(sampler, 0), 3)
    assert len(beats) == 3 and all(after > before for before, after in beats)  # the thread beat meanwhile


def test_a_run_taken_over_stops_without_writing(sampler, archive):
    calls = []

    def objective(arch):
        calls.append(arch)
        if len(calls) == 3:  # this process stalled; another one found the lock stale and took the run over
            with Archive(archive.path) as other:
                other._db.execute("UPDATE run_locks SET owner = 'thief' WHERE run = 'r'")
        return score(arch)

    with pytest.raises(RunBusy, match="another process took the run over"):
        SearchRun(archive, "r", objective, progress=False).run(RandomSearch(sampler, 0), 10)
    assert len(run_history(archive, "r")) == 2 and archive.count(run="r") == 2
    assert archive.run_holder("r").owner == "thief"  # the new holder's lock is left alone


def test_a_build_counts_only_the_rows_it_wrote(sampler, archive):
    """An evaluation another run stored first is the other run's row: not counted by this build."""
    raced = []

    def objective(arch):
        if len(raced) < 2:  # another build stores this architecture while this one evaluates it
            raced.append(arch.hash)
            with Archive(archive.path) as other:
                other.add_evaluation(Evaluation(arch.hash, "objective", "function", 0, "ok", {"val_acc": 0.5}),
                                     arch, run="other")
        return score(arch)

    session = SearchRun(archive, "b", objective, history=False, progress=False).run(RandomSearch(sampler, 0), 6)
    assert session["done"] == archive.count(run="b") == 6
    assert session["duplicates"] >= 2 and archive.count(run="other") == 2


# -- two identical commands at once ----------------------------------------------------------------


def _nb201_available() -> bool:
    from data.tasks import get_task

    try:
        get_task("nb201-cifar10")
    except FileNotFoundError:
        return False
    return True


def _twice(args: list[str]) -> list[subprocess.CompletedProcess]:
    """Run ``nas ARGS`` in two processes started together."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-m", "nas.cli", *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


def _one_ran_one_refused(results: list[subprocess.CompletedProcess], run: str) -> subprocess.CompletedProcess:
    """The process that ran (exit 0), after checking that the other refused (exit 2) with one line naming the
    run (whose name starts with ``run``) and the holder."""
    assert sorted(r.returncode for r in results) == [0, 2], [r.stderr[-2000:] for r in results]
    ran, refused = sorted(results, key=lambda r: r.returncode)
    errors = [line for line in refused.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert f"run '{run}" in errors[0] and "another process" in errors[0] and "pid" in errors[0], errors[0]
    assert refused.stdout == ""
    return ran


@pytest.mark.skipif(not _nb201_available(), reason="NB201 data not available")
def test_two_identical_archive_builds(tmp_path):
    archive = str(tmp_path / "a.sqlite")
    ran = _one_ran_one_refused(_twice(["archive", "build", "--archive", archive, "--task", "nb201-cifar10",
                                        "-n", "1000"]), "build:nb201-cifar10:")
    reported = json.loads(ran.stdout)
    with Archive(archive, readonly=True) as a:
        [run] = [r["name"] for r in a.runs()]
        assert reported["total"] == reported["evaluated"] == a.count(run=run) == a.count() == 1000
        assert a.run_holder(run) is None


@pytest.mark.skipif(not _nb201_available(), reason="NB201 data not available")
def test_two_identical_searches(tmp_path):
    run_dir = tmp_path / "run"
    ran = _one_ran_one_refused(_twice(["search", "--task", "nb201-cifar10", "--strategy", "re", "--budget", "1000",
                                       "--seed", "3", "--run-dir", str(run_dir)]), "re-seed3")
    summary = json.loads(ran.stdout)
    with Archive(run_dir / "archive.sqlite", readonly=True) as a:
        history = run_history(a, "re-seed3")
        assert summary["evaluations"] == summary["session"]["new"] == len(history) == 1000
        assert [h.seq for h in history] == list(range(1000))
        assert summary["counts"]["trained"] == sum(h.source == "trained" for h in history) == a.count()
