"""Where evaluations run: ``concurrent.futures`` executors and the pool of jobs in flight on one.

The run engine depends on ``concurrent.futures.Executor`` only: the in-process ``SerialExecutor`` (one
worker), a local process pool (``make_executor(workers)``) or a Dask client's executor
(``make_dask_executor``).  ``JobPool`` is the one submit/wait loop: it keeps the futures in flight, hands
back finished ones, and replaces a process pool it created when that pool breaks.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Executor, Future, ProcessPoolExecutor, wait
from typing import Any, Callable, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


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
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


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
