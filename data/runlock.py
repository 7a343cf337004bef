"""Who holds a run: the identity a run lock records, and when a recorded holder is gone.

A run (a search or an archive build) has one writer at a time.  The holder is a row of the archive's
``run_locks`` table (``Archive.claim_run``), claimed in a write transaction, so the lock works across
machines that share nothing but the archive file.  A holder heartbeats while it runs; a row is *stale*, and
the next claimer takes it over, when its heartbeat is older than ``STALE_SECONDS`` or its process is gone
from this machine (checked at once, so re-running right after a kill -9 resumes).  Another machine's
holder can only go stale by its heartbeat, which assumes the machines' clocks agree to well within
``STALE_SECONDS``.
"""

from __future__ import annotations

import datetime
import os
import socket
import time
import uuid
from dataclasses import dataclass

#: A holder that has not heartbeaten for this many seconds is taken over.
STALE_SECONDS = 120.0
#: How often a running holder heartbeats (besides on every recorded result).
HEARTBEAT_SECONDS = 30.0


class RunBusy(ValueError):
    """Another live process holds the run."""


@dataclass(frozen=True)
class RunHolder:
    """One holder of a run's lock: ``owner`` is unique to one claim; ``machine`` identifies the kernel and
    process namespace its ``pid`` lives in (``pid_start`` tells a reused pid apart); ``since`` and
    ``heartbeat`` are Unix times."""

    run: str
    owner: str
    host: str
    machine: str
    pid: int
    pid_start: str
    since: float
    heartbeat: float

    @classmethod
    def for_this_process(cls, run: str) -> "RunHolder":
        now = time.time()
        return cls(run, uuid.uuid4().hex, socket.gethostname(), this_machine(), os.getpid(),
                   process_start(os.getpid()) or "", now, now)

    def describe(self) -> str:
        since = datetime.datetime.fromtimestamp(self.since).astimezone().isoformat(timespec="seconds")
        ago = max(0.0, time.time() - self.heartbeat)
        return f"pid {self.pid} on {self.host}, since {since}, last heartbeat {ago:.0f} s ago"


def this_machine() -> str:
    """The host name, Linux boot id and pid namespace: two holders with the same value see the same pids."""
    parts = [socket.gethostname()]
    for read in (lambda: open("/proc/sys/kernel/random/boot_id", encoding="ascii").read().strip(),
                 lambda: os.readlink("/proc/self/ns/pid")):
        try:
            parts.append(read())
        except OSError:
            pass
    return "/".join(parts)


def process_start(pid: int) -> str | None:
    """The start time (clock ticks since boot) of process ``pid`` from ``/proc``; ``None`` where there is no
    ``/proc`` or no such process; ``"zombie"`` for one that has exited but not been reaped."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return "zombie" if fields[0] in ("Z", "X") else fields[19]


def _process_gone(pid: int, pid_start: str) -> bool:
    """Whether process ``pid`` (started at ``pid_start``, where known) no longer runs on this machine."""
    if os.path.isdir("/proc/self"):
        started = process_start(pid)
        return started is None or started == "zombie" or bool(pid_start) and started != pid_start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's live process
        return False
    return False


def stale_reason(holder: RunHolder, now: float, stale_after: float = STALE_SECONDS) -> str | None:
    """Why ``holder`` no longer holds its run (``None``: it does): no heartbeat for ``stale_after`` seconds,
    or its process is gone from this machine."""
    if now - holder.heartbeat > stale_after:
        return f"no heartbeat for {now - holder.heartbeat:.0f} s"
    if holder.machine == this_machine() and _process_gone(holder.pid, holder.pid_start):
        return f"pid {holder.pid} on {holder.host} has exited"
    return None
