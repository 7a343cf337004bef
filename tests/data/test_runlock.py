"""The run lock: one writer per run, claimed in the archive; stale holders (dead pid, old heartbeat) taken over."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import time

import pytest

from data.archive import Archive, ArchiveError
from data.runlock import RunBusy, RunHolder, process_start, stale_reason, this_machine

HOLD = """
import sys
from data.archive import Archive
a = Archive(sys.argv[1])
a.claim_run("r")
print("claimed", flush=True)
if sys.argv[2] == "exit":
    import os
    os._exit(0)  # as a kill -9 would: the lock is never released
sys.stdin.read()  # hold the run until the test closes stdin
"""


def holder_process(path, how: str) -> subprocess.Popen:
    """A second process that claims run ``r`` of ``path``; ``how``: ``exit`` (dies holding it) or ``hold``."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), how], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "claimed"
    return proc


def put_holder(archive: Archive, **fields) -> RunHolder:
    """Write a holder row as another process (or machine) would."""
    holder = RunHolder(**{**RunHolder.for_this_process("r").__dict__, **fields})
    archive._db.execute("INSERT OR REPLACE INTO run_locks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        tuple(holder.__dict__.values()))
    return holder


@pytest.fixture
def archive(tmp_path):
    with Archive(tmp_path / "a.sqlite") as a:
        yield a


def test_one_holder_at_a_time_with_a_one_line_message(archive):
    me = archive.claim_run("r")
    assert archive.run_holder("r") == me and (me.pid, me.machine) == (os.getpid(), this_machine())
    with pytest.raises(RunBusy) as err:
        archive.claim_run("r")
    msg = str(err.value)
    assert "\n" not in msg and "'r'" in msg and f"pid {os.getpid()}" in msg and "since" in msg
    assert isinstance(err.value, ValueError)  # the CLI's one-line error, exit 2
    other = archive.claim_run("other")  # other runs are independent
    assert archive.release_run(me) and archive.run_holder("r") is None
    assert archive.claim_run("r").owner != me.owner  # free again
    assert archive.run_holder("other") == other


def test_a_live_process_keeps_the_run_and_its_death_frees_it_at_once(archive):
    proc = holder_process(archive.path, "hold")
    try:
        with pytest.raises(RunBusy, match=f"pid {proc.pid} on"):
            archive.claim_run("r")
    finally:
        proc.kill()
        proc.wait()
    assert archive.claim_run("r").pid == os.getpid()  # a dead pid on this machine: taken over at once


def test_a_holder_that_exited_without_releasing_is_taken_over(archive, caplog):
    proc = holder_process(archive.path, "exit")  # not reaped yet: a zombie is as dead as a reaped process
    try:
        deadline = time.time() + 10
        while process_start(proc.pid) not in (None, "zombie") and time.time() < deadline:
            time.sleep(0.01)
        with caplog.at_level(logging.WARNING, logger="data.archive"):
            me = archive.claim_run("r")
    finally:
        proc.wait()
    assert me.pid == os.getpid() and f"pid {proc.pid}" in caplog.text and "has exited" in caplog.text


def test_a_reused_pid_is_not_the_holder(archive):
    if process_start(os.getpid()) is None:
        pytest.skip("no /proc: process start times unknown")
    put_holder(archive, owner="old", pid=os.getppid(), pid_start="1")  # a live pid that started at another time
    assert archive.claim_run("r").owner != "old"


def test_another_machine_is_judged_by_its_heartbeat(archive):
    old = put_holder(archive, owner="far", host="far-away", machine="far-away/boot/pid:[1]", pid=1)
    with pytest.raises(RunBusy, match="pid 1 on far-away"):
        archive.claim_run("r")
    assert stale_reason(old, old.heartbeat + 60, stale_after=120) is None
    put_holder(archive, owner="far", host="far-away", machine="far-away/boot/pid:[1]", pid=1,
               heartbeat=time.time() - 121)
    me = archive.claim_run("r", stale_after=120)
    assert archive.run_holder("r") == me
    assert not archive.beat_run(old) and not archive.release_run(old)  # the old holder lost it
    assert archive.run_holder("r") == me


def test_a_live_holder_without_heartbeat_is_stale(archive):
    put_holder(archive, owner="hung", pid=os.getppid(), pid_start=process_start(os.getppid()) or "",
               heartbeat=time.time() - 5)
    with pytest.raises(RunBusy):
        archive.claim_run("r", stale_after=10)
    assert archive.claim_run("r", stale_after=1).owner != "hung"


def test_heartbeat_moves_and_release_is_by_owner(archive):
    me = archive.claim_run("r")
    time.sleep(0.01)
    assert archive.beat_run(me) and archive.run_holder("r").heartbeat > me.heartbeat
    assert archive.run_holder("r").since == me.since


def test_old_archives_get_the_table_on_a_writing_open_only(tmp_path):
    path = tmp_path / "old.sqlite"
    Archive(path).close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE run_locks")  # as written before run locks existed
    with Archive(path, readonly=True) as ro:
        assert ro.run_holder("r") is None
        with pytest.raises(ArchiveError, match="read-only"):
            ro.claim_run("r")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'run_locks'").fetchone() is None
    with Archive(path) as rw:
        assert rw.claim_run("r").run == "r"
