"""The run engine: one object that drives the ask → evaluate → tell loop of a strategy against an archive.

``SearchRun`` records the run in the archive, rebuilds the strategy by telling it the run's history in order
(resume by re-running), then loops: ask; if the archive already holds an evaluation of that architecture
under the evaluator's (task, protocol, seed) (from any run), it is a duplicate and is never evaluated twice;
otherwise the evaluator's call goes to the executor and, the moment a result arrives, it is stored in the
archive, appended to the run's history and told to the strategy (so a kill loses at most the evaluations in
flight).  Candidate failures are ordinary results.

Two kinds of run share the loop.  A *search* (``history=True``) keeps its ordered history in the archive
(``nas.search.history``): a duplicate is told to the strategy and recorded as a history row, an evaluation
stored but not linked (a kill between the two writes) is appended on resume, ``budget_evals`` counts
history rows and ``budget_seconds`` the run's wall-clock summed over its sessions.  An archive *build*
(``history=False``) only stores evaluations: duplicates are skipped (the strategy asks again),
``budget_evals`` counts the run's stored evaluations, and nothing is replayed.  Once a budget is reached no
new candidate is asked; evaluations in flight are waited for and recorded.

One process writes a run at a time: the engine claims the run's lock in the archive (``Archive.claim_run``)
before reading anything of the run, so a second process on the same run refuses at once with ``RunBusy``
(naming the holder).  It heartbeats on every result and from a background thread every
``heartbeat_every`` seconds, and releases the lock when the run ends, normally or by an exception; a holder
killed with -9 leaves a stale lock that the next run takes over (at once on the same machine).  A run
whose lock was taken over (it stalled for longer than ``stale_after``) stops with ``RunBusy``.

Worker errors (an exception from a future: a killed Dask worker, a broken process pool, a job that could
not be set up) record nothing: the job is logged and submitted again up to ``max_retries`` times, then
dropped (the strategy is never told about it, and another candidate is asked).  A process pool the engine
created that breaks is replaced.  ``max_consecutive_errors`` errors in a row abort the run with the last
error.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from data.archive import Archive, ArchiveError
from data.runlock import HEARTBEAT_SECONDS, STALE_SECONDS, RunBusy, RunHolder
from data.training import Evaluation
from nas.architecture import Architecture
from nas.progress import Progress
from nas.search.base import Strategy
from nas.search.evaluators import Evaluator, ObjectiveResult, as_evaluator
from nas.search.executors import JobPool
from nas.search.history import DUPLICATE, TRAINED, RunHistory

log = logging.getLogger(__name__)

#: Consecutive already-evaluated candidates after which a build gives up (the space looks exhausted).
MAX_MISSES = 10_000


@dataclass
class _Job:
    arch: Architecture
    info: dict
    call: tuple[Callable[..., Any], tuple]
    tries: int = 1
    waiters: list[dict] = field(default_factory=list)  # asks of the same architecture while it is in flight


class _Heartbeat:
    """Heartbeats ``holder``'s lock every ``every`` seconds from a thread with its own connection, so a run
    whose evaluations take longer than the stale time keeps its lock; ``lost`` once another process took it."""

    def __init__(self, path: str, holder: RunHolder, every: float) -> None:
        self.path, self.holder, self.every = path, holder, every
        self.lost = False
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat {holder.run}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        archive = None
        try:
            while not self._stopping.wait(self.every):
                try:
                    archive = archive or Archive(self.path, create=False)
                    if not archive.beat_run(self.holder):
                        self.lost = True
                        return
                except (sqlite3.Error, ArchiveError, OSError) as exc:  # e.g. the file busy: try again next time
                    log.warning("run %s: heartbeat failed: %s", self.holder.run, exc)
        finally:
            if archive is not None:
                archive.close()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()


def fresh_strategy(strategy: "Strategy | Callable[[], Strategy]") -> Strategy:
    """``strategy``, or what the factory ``strategy`` makes; it must not have asked or been told anything."""
    if not isinstance(strategy, Strategy):
        if not callable(strategy):
            raise TypeError(f"strategy must be a Strategy or a factory returning one, got {type(strategy).__name__}")
        strategy = strategy()
        if not isinstance(strategy, Strategy):
            raise TypeError(f"the strategy factory returned {type(strategy).__name__}, not a Strategy")
    if strategy.num_told or strategy.num_asked:
        raise ValueError("a run needs a fresh strategy: its state is rebuilt from the archive")
    return strategy


def _best_val_acc(evaluations: Iterable[Evaluation]) -> float | None:
    """The highest finite validation accuracy of the successful ``evaluations`` (``None``: none)."""
    accs = [ev.val_acc for ev in evaluations if ev.ok and math.isfinite(ev.val_acc)]
    return max(accs) if accs else None


class SearchRun:
    """Run (or resume) the run ``name`` in ``archive``, evaluating with ``evaluation``: an ``Evaluator``
    (``TaskEvaluator`` trains on a task) or any callable ``architecture -> val_acc | metrics``.

    ``executor`` defaults to ``make_executor(workers)`` (created, replaced when broken and shut down by the
    engine); at most ``max_in_flight`` (default ``workers``) evaluations run at once.  With one evaluation in
    flight the run is the same on any executor.  ``history=False`` makes an archive build (see the module).
    ``progress`` reports the steps, ``label`` naming them, through ``nas.progress.Progress`` (a bar on a
    terminal, a log line at most every 30 s otherwise, with the best val_acc of the run so far).
    ``stale_after`` and ``heartbeat_every`` (seconds) tune the run lock (see the module)."""

    def __init__(self, archive: Archive, name: str,
                 evaluation: "Evaluator | Callable[[Architecture], ObjectiveResult]", *, history: bool = True,
                 executor: Executor | None = None, workers: int = 1, max_in_flight: int | None = None,
                 max_retries: int = 1, max_consecutive_errors: int = 5, progress: bool = True,
                 label: str | None = None, stale_after: float = STALE_SECONDS,
                 heartbeat_every: float = HEARTBEAT_SECONDS) -> None:
        self.archive = archive
        self.name = name
        self.evaluator = as_evaluator(evaluation)
        self.history = history
        self.kind = "search" if history else "build"
        self.rows = RunHistory(archive)
        self.executor = executor
        self.workers = workers
        self.max_in_flight = max(1, max_in_flight if max_in_flight is not None else workers)
        self.max_retries = max_retries
        self.max_consecutive_errors = max_consecutive_errors
        self.progress = progress
        self.label = label or f"{self.kind} {name}"
        self.stale_after, self.heartbeat_every = stale_after, heartbeat_every

    # -- the public entry -------------------------------------------------------------------------

    def run(self, strategy: "Strategy | Callable[[], Strategy]", budget_evals: int | None = None,
            budget_seconds: float | None = None, config: dict[str, Any] | None = None) -> dict[str, Any]:
        """Drive ``strategy`` (fresh, or a factory) until a budget is reached or it stops asking.  ``config``
        is the run's stored configuration (default: the evaluator's plus the strategy's).  Returns this
        session's counts: ``stopped`` (``budget_evals``, ``budget_seconds``, ``strategy`` or ``done``),
        ``done`` (the run's steps so far), ``new``, ``trained``, ``duplicates``, ``worker_errors``,
        ``skipped`` (jobs dropped after worker errors), ``replay_seconds`` and the strategy's own counters."""
        strategy = fresh_strategy(strategy)
        if budget_evals is not None and budget_evals < 0 or budget_seconds is not None and budget_seconds < 0:
            raise ValueError("budgets must be non-negative")
        if budget_evals is None and budget_seconds is None:
            log.warning("run %s: no budget given; running until the strategy stops", self.name)
        self.budget_evals, self.budget_seconds = budget_evals, budget_seconds
        self.lock = self.archive.claim_run(self.name, self.stale_after)
        self.heartbeat = _Heartbeat(self.archive.path, self.lock, self.heartbeat_every)
        try:
            self._start(strategy, config)
            self.pool: JobPool[_Job] = JobPool(self.executor, self.workers)
            self.bar = Progress(budget_evals, self.label, "eval", initial=min(self.done, budget_evals or self.done),
                                enabled=self.progress, best=self.prior_best, best_name="val_acc")
            try:
                self._loop(strategy)
            finally:
                self.bar.close()
                self.pool.close()
        finally:
            self._release()
        return {"stopped": self.stopped or "done", "done": self.done, **self.counts,
                "replay_seconds": round(self.replay_seconds, 4), "strategy": strategy.stats}

    # -- the run lock ------------------------------------------------------------------------------

    def _beat(self) -> None:
        """Heartbeat before writing a result; ``RunBusy`` when another process has taken the run over."""
        if self.heartbeat.lost or not self.archive.beat_run(self.lock):
            raise RunBusy(f"run {self.name!r} of {self.archive.path}: another process took the run over after this "
                          f"one gave no heartbeat for {self.stale_after:.0f} s; stopping")

    def _release(self) -> None:
        self.heartbeat.stop()
        try:
            self.archive.release_run(self.lock)
        except (sqlite3.Error, ArchiveError) as exc:  # the lock goes stale and is taken over later
            log.warning("run %s: could not release its lock: %s", self.name, exc)

    # -- start: record the run, replay its history --------------------------------------------------

    def _start(self, strategy: Strategy, config: dict[str, Any] | None) -> None:
        ev = self.evaluator
        sampler = getattr(strategy, "sampler", None)
        if ev.input_shape is not None and sampler is not None and tuple(sampler.input_shape) != ev.input_shape:
            raise ValueError(f"the strategy samples for input {tuple(sampler.input_shape)} but task {ev.task!r} has "
                             f"input {ev.input_shape}")
        self.archive.start_run(self.name, self.kind, config or {**ev.config(), "strategy": strategy.config()})
        self.counts = {"new": 0, "trained": 0, "duplicates": 0, "worker_errors": 0, "skipped": 0}
        self.by_hash: dict[str, _Job] = {}
        self.stopped: str | None = None
        self.strategy_done = False
        self.consecutive_errors = self.misses = 0
        self.strategy_seconds = self.prior_wall = self.prior_strategy = 0.0
        t0 = time.perf_counter()
        if self.history:
            self._replay(strategy)
        else:
            stored = self.archive.evaluations(task=ev.task, protocol=ev.protocol, run=self.name)
            self.done, self.prior_best = len(stored), _best_val_acc(stored)
        self.replay_seconds = time.perf_counter() - t0
        self.session_start = time.perf_counter()

    def _replay(self, strategy: Strategy) -> None:
        self.rows.reconcile(self.name, self.evaluator.task, self.evaluator.protocol, self.evaluator.seed)
        entries = self.rows.entries(self.name)
        for e in entries:
            strategy.tell(self.archive.architecture(e.arch_hash), e.evaluation)
        if entries:
            log.info("run %s: resumed after %d steps", self.name, len(entries))
            self.prior_wall, self.prior_strategy = entries[-1].wall, entries[-1].strategy_seconds
        self.done = len(entries)
        self.prior_best = _best_val_acc(e.evaluation for e in entries)

    # -- the loop ------------------------------------------------------------------------------------

    def _loop(self, strategy: Strategy) -> None:
        while True:
            self._fill(strategy)
            if not len(self.pool):
                return
            for job, future in self.pool.wait():
                self._finish(strategy, job, future)

    def _fill(self, strategy: Strategy) -> None:
        """Ask until the executor is full, a budget is reached or the strategy stops."""
        while not self.strategy_done and self._in_flight() < self.max_in_flight:
            reason = self._budget_reason()
            if reason:
                self.stopped = reason
                return
            t = time.perf_counter()
            arch = strategy.ask()
            self.strategy_seconds += time.perf_counter() - t
            if arch is None:
                self.strategy_done, self.stopped = True, "strategy"
                return
            self._propose(strategy, arch, dict(strategy.last_ask_info))

    def _propose(self, strategy: Strategy, arch: Architecture, info: dict) -> None:
        """Submit ``arch``, or deal with it as a duplicate (in flight, or in the archive)."""
        ev = self.evaluator
        job = self.by_hash.get(arch.hash)
        stored = None if job is not None else self.archive.get_evaluation(arch.hash, ev.task, ev.protocol, ev.seed)
        if job is None and stored is None:
            self.misses = 0
            job = _Job(arch, info, ev.call(arch))
            self.by_hash[arch.hash] = job
            self.pool.submit(job, job.call[0], *job.call[1])
        elif not self.history:  # a build skips what is already evaluated or in flight
            self.counts["duplicates"] += 1
            self.misses += 1
            if self.misses > MAX_MISSES:
                raise RuntimeError(f"{MAX_MISSES:,} candidates in a row were already evaluated on {ev.task!r}: the "
                                   "search space (under this budget) looks exhausted")
        elif job is not None:
            job.waiters.append(info)
        else:
            self._beat()
            self._record(strategy, arch, stored, DUPLICATE, info)

    def _finish(self, strategy: Strategy, job: _Job, future: Future) -> None:
        """Store a finished evaluation and tell it (and its waiting duplicates); retry a worker error."""
        try:
            result = future.result()
        except Exception as exc:  # a worker's or the job set-up's fault, not the candidate's
            self._worker_error(job, exc)
            return
        self.consecutive_errors = 0
        self.by_hash.pop(job.arch.hash, None)
        ev = self.evaluator.evaluation(result)
        self._beat()
        if not self.archive.add_evaluation(ev, job.arch, run=self.name):
            # Another run stored this evaluation meanwhile: keep the first, as the archive does.  A build
            # counts only its own rows, so for a build it is a duplicate (counts always match rows).
            e = self.evaluator
            ev = self.archive.get_evaluation(job.arch.hash, e.task, e.protocol, e.seed) or ev
            if not self.history:
                self.counts["duplicates"] += 1
                return
        self._record(strategy, job.arch, ev, TRAINED, job.info)
        for info in job.waiters:
            self._record(strategy, job.arch, ev, DUPLICATE, info)

    def _worker_error(self, job: _Job, exc: Exception) -> None:
        self.counts["worker_errors"] += 1
        self.consecutive_errors += 1
        if self.consecutive_errors >= self.max_consecutive_errors:
            raise RuntimeError(f"run {self.name}: {self.consecutive_errors} evaluation jobs in a row raised; "
                               f"last error: {type(exc).__name__}: {exc}") from exc
        if job.tries <= self.max_retries:
            log.warning("run %s: evaluation of %s raised %s: %s; submitting it again (try %d)", self.name,
                        job.arch.hash[:12], type(exc).__name__, exc, job.tries + 1)
            job.tries += 1
            self.pool.submit(job, job.call[0], *job.call[1])
        else:
            log.error("run %s: evaluation of %s raised %s: %s; skipping it after %d tries", self.name,
                      job.arch.hash[:12], type(exc).__name__, exc, job.tries)
            self.counts["skipped"] += 1
            self.by_hash.pop(job.arch.hash, None)

    def _record(self, strategy: Strategy, arch: Architecture, ev: Evaluation, source: str, info: dict) -> None:
        """Write one told result (history row of a search) and tell the strategy."""
        if self.history:
            strategy_seconds = self.prior_strategy + self.strategy_seconds
            self.rows.append(self.name, self.done, ev, source, self._wall(), strategy_seconds, info)
        self.done += 1
        self.counts["new"] += 1
        self.counts["trained" if source == TRAINED else "duplicates"] += 1
        t = time.perf_counter()
        strategy.tell(arch, ev)
        self.strategy_seconds += time.perf_counter() - t
        self.bar.update(1, score=ev.val_acc if ev.ok else None,
                        note=f"{source} {ev.status}" + (f" {ev.val_acc:.3f}" if ev.ok else ""))

    # -- clocks and budgets --------------------------------------------------------------------------

    def _wall(self) -> float:
        return self.prior_wall + time.perf_counter() - self.session_start

    def _in_flight(self) -> int:
        return sum(1 + len(j.waiters) for j in self.pool.tags())

    def _budget_reason(self) -> str | None:
        if self.budget_evals is not None and self.done + self._in_flight() >= self.budget_evals:
            return "budget_evals"
        if self.budget_seconds is not None and self._wall() >= self.budget_seconds:
            return "budget_seconds"
        return None
