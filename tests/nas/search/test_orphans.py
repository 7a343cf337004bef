"""Worker processes exit when their parent dies: kill -9 of a run with ``--workers 2`` leaves nothing behind."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas.search.executors import PARENT_POLL_SECONDS

#: The issue's bound: no process of a killed run outlives it by more than this.
GRACE_SECONDS = 10.0


def _stat(pid):
    """``(ppid, state, starttime)`` of a live process from /proc/PID/stat, else None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    return int(fields[1]), fields[0], fields[19]


def _descendants(root):
    """``{pid: starttime}`` of every live descendant of ``root`` (children, grandchildren, ...)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            parents[int(entry)] = stat
    found, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _, start) in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = start
                frontier.append(pid)
    return found


def _alive(pid, start):
    stat = _stat(pid)
    return stat is not None and stat[1] != "Z" and stat[2] == start  # same process, not a zombie or a reused pid


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_workers_die_with_a_killed_run(tmp_path):
    """Start ``nas archive build --workers 2``, wait for its two spawned workers (and multiprocessing's resource
    tracker), kill -9 the parent only, and check that every process it had started is gone 10 s later."""
    cmd = [sys.executable, "-m", "nas.cli", "archive", "build", "--archive", str(tmp_path / "a.sqlite"),
           "--task", "language-mini", "-n", "50", "--workers", "2", "--protocol", "smoke"]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        deadline, tree = time.time() + 120, {}
        while time.time() < deadline and proc.poll() is None:
            tree = _descendants(proc.pid)
            workers = [pid for pid in tree if "spawn_main" in _cmdline(pid)]
            if len(workers) >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, f"the build ended before its workers started: {proc.stderr.read().decode()}"
        assert len([pid for pid in tree if "spawn_main" in _cmdline(pid)]) >= 2, "no two workers within 120 s"
        time.sleep(1.0)  # let the workers run their initializer (which arms the parent-death signal)
        tree.update(_descendants(proc.pid))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.time() + GRACE_SECONDS
        while time.time() < deadline and any(_alive(pid, start) for pid, start in tree.items()):
            time.sleep(0.2)
        survivors = {pid: _cmdline(pid) for pid, start in tree.items() if _alive(pid, start)}
        assert not survivors, f"processes of the killed run still alive after {GRACE_SECONDS:g} s: {survivors}"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the run's own process group: whatever is left of it
        except ProcessLookupError:
            pass
        proc.wait()


def _run_child(code, timeout=120):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)


def test_initializer_leaves_a_worker_with_a_live_parent_running():
    child = _run_child("import os\nfrom nas.search.executors import exit_with_parent\n"
                       "exit_with_parent(os.getppid())\nprint('alive')")
    assert child.returncode == 0 and child.stdout.strip() == "alive", child.stderr


def test_initializer_exits_when_the_parent_is_already_gone():
    # a worker whose parent died before the initializer ran exits at once (the signal would never come)
    child = _run_child("import os\nfrom nas.search.executors import exit_with_parent\n"
                       "exit_with_parent(os.getppid() + 1)\nprint('alive')")
    assert child.returncode == 1 and child.stdout == "", child.stderr


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_watchdog_thread_ends_a_worker_whose_parent_died():
    """Where the kernel cannot signal (the fallback, forced here): a middle process starts a worker and dies;
    the worker's watchdog thread sees it re-parented and exits within a few polls."""
    worker = ("import os, time\nimport nas.search.executors as ex\nex._parent_death_signal = lambda: False\n"
              "ex.exit_with_parent(os.getppid())\nprint('armed', flush=True)\ntime.sleep(60)")
    middle = ("import subprocess, sys\n"
              f"p = subprocess.Popen([sys.executable, '-c', {worker!r}], stdout=subprocess.PIPE, text=True)\n"
              "assert p.stdout.readline().strip() == 'armed'\nprint(p.pid, flush=True)")
    done = _run_child(middle)
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.strip())
    start = _stat(pid)
    deadline = time.time() + 5 * PARENT_POLL_SECONDS
    while time.time() < deadline and start is not None and _alive(pid, start[2]):
        time.sleep(0.1)
    alive = start is not None and _alive(pid, start[2])
    if alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, "the worker outlived its parent"

