"""Where evaluations run: ``concurrent.futures`` executors and the pool of jobs in flight on one.

The run engine depends on ``concurrent.futures.Executor`` only: the in-process ``SerialExecutor`` (one
worker), a local process pool (``make_executor(workers)``) or a Dask client's executor
(``make_dask_executor``).  ``JobPool`` is the one submit/wait loop: it keeps the futures in flight, hands
back finished ones, and replaces a process pool it created when that pool breaks.  A process pool's workers
exit when the process that created them dies (``exit_with_parent``), so a killed run leaves no process behind.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Executor, Future, ProcessPoolExecutor, wait
from typing import Any, Callable, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: ``prctl`` option of Linux: the signal a process gets when its parent dies (``<linux/prctl.h>``).
PR_SET_PDEATHSIG = 1
#: Seconds between two looks at the parent by the watchdog thread (where the kernel cannot signal).
PARENT_POLL_SECONDS = 1.0


class SerialExecutor(Executor):
    """Runs each submitted call at once in the calling process: the executor for ``workers <= 1``."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # delivered through the future, like any executor
            future.set_exception(exc)
        return future


def make_executor(workers: int = 1) -> Executor:
    """``SerialExecutor`` for one worker, else a process pool of ``workers`` (spawned processes, so no
    torch state is inherited by fork)."""
    if workers <= 1:
        return SerialExecutor()
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=exit_with_parent, initargs=(os.getpid(),))


def exit_with_parent(parent: int) -> None:
    """Make this (worker) process exit when process ``parent`` dies, however it dies (kill -9 included): a
    process pool's initializer.  On Linux the kernel kills it (``prctl(PR_SET_PDEATHSIG, SIGKILL)``; strictly,
    when the thread that started it ends: a pool starts its workers in the thread that submits to it, which
    for the run engine is the thread that runs and closes the pool); elsewhere a daemon thread checks the
    parent every ``PARENT_POLL_SECONDS``.  Once the workers are gone, multiprocessing's resource tracker
    exits too (it ends when the last process holding its pipe does)."""
    if not _parent_death_signal():
        threading.Thread(target=_watch_parent, args=(parent,), name="exit-with-parent", daemon=True).start()
    if _parent_gone(parent):  # died before the signal was armed
        os._exit(1)


def _parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _parent_gone(parent: int) -> bool:
    """Whether process ``parent`` has died: this process was re-parented (POSIX), or the pipe to the parent
    that multiprocessing keeps in every child closed (elsewhere, where the parent pid stays the same)."""
    if os.getppid() != parent:
        return True
    handle = multiprocessing.parent_process()
    return os.name == "nt" and handle is not None and not handle.is_alive()


def _watch_parent(parent: int) -> None:
    while not _parent_gone(parent):
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)


def worker_threads(workers: int) -> int | None:
    """Torch threads for each job when ``workers`` jobs share this machine: ``cpu_count // workers``; ``None``
    (leave torch's default) for a single worker."""
    if workers <= 1:
        return None
    return max(1, (os.cpu_count() or 1) // workers)


def make_dask_executor(address: str | None = None, workers: int = 2) -> tuple[Executor, Callable[[], None]]:
    """A ``concurrent.futures`` executor backed by Dask and the function that shuts it down: a client of
    the scheduler at ``address``, or of a new ``LocalCluster`` of ``workers`` single-threaded processes."""
    try:
        from distributed import Client, LocalCluster  # deferred: dask is optional and heavy
    except ImportError:
        raise ImportError("Dask is not installed; install it with: pip install 'surrogate-nas[dask]'") from None
    cluster = None
    if address:
        client = Client(address)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    executor = client.get_executor()

    def close() -> None:
        client.close()
        if cluster is not None:
            cluster.close()

    return executor, close


class JobPool(Generic[T]):
    """Calls in flight on an executor, each tagged with a caller's value.

    ``executor=None`` creates ``make_executor(workers)``, owns it (shut down by ``close``) and replaces it
    when it breaks; a caller's executor is used as given and a broken one is an error."""

    def __init__(self, executor: Executor | None = None, workers: int = 1) -> None:
        self.own = executor is None
        self.workers = workers
        self.executor = executor or make_executor(workers)
        self.pending: dict[Future, T] = {}

    def __len__(self) -> int:
        return len(self.pending)

    def tags(self) -> list[T]:
        return list(self.pending.values())

    def submit(self, tag: T, fn: Callable[..., Any], *args: Any) -> None:
        try:
            future = self.executor.submit(fn, *args)
        except BrokenExecutor:
            if not self.own:
                raise
            log.warning("the process pool broke; starting a new one")
            self.executor.shutdown(wait=False, cancel_futures=True)
            self.executor = make_executor(self.workers)
            future = self.executor.submit(fn, *args)
        self.pending[future] = tag

    def wait(self) -> list[tuple[T, Future]]:
        """Block until at least one call has finished; return the finished ones (no longer pending)."""
        done, _ = wait(list(self.pending), return_when=FIRST_COMPLETED)
        return [(self.pending.pop(f), f) for f in done]

    def close(self) -> None:
        """Shut down an executor this pool created (pending calls are cancelled)."""
        if self.own:
            self.executor.shutdown(wait=False, cancel_futures=True)
