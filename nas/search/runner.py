"""Driving a strategy with an executor and an archive; resume by re-running.

``run_search`` records the run in the archive, rebuilds the strategy by telling it the run's history in
order, then loops: ask; if the archive already holds an evaluation of that architecture for this task,
protocol and training seed (from any run), tell it without training (*duplicates are never trained twice*);
otherwise submit ``data.evaluate.run_job`` to the executor and, the moment a result arrives, store it in the
archive, append it to the run's history and tell the strategy.  Candidate failures are ordinary results.

The run's history is an ordered table ``search_history`` in the archive's SQLite file: one row per told
result (trained by this run or looked up), with the cumulative wall-clock and strategy time and what the
strategy said about the ask.  The archive's ``evaluations`` table keeps one row per (architecture, task,
protocol, seed), so a look-up cannot be a second evaluation row; the history table links the run to it.
An evaluation written by the run whose history row was not (a kill between the two writes) is appended to
the history on resume, so nothing trained is lost.

Budgets: ``budget_evals`` counts the run's history rows (trained and looked up: one row per step, as
the published "iteration"); ``budget_seconds`` is the run's wall-clock, summed over its sessions.  Once a
budget is reached no new candidate is asked; evaluations in flight are waited for and recorded.

Worker errors (an exception from a future: a killed Dask worker, a broken process pool, a job that could
not be set up) record nothing: the job is logged and submitted again up to ``max_retries`` times, then
skipped (the strategy is never told about it, and another candidate is asked).  A locally created process
pool that breaks is replaced.  ``max_consecutive_errors`` errors in a row abort the run with the last error.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Executor, Future, wait
from dataclasses import dataclass, field
from typing import Any, Callable

from data.archive import Archive
from data.evaluate import EvaluationJob, make_executor, run_job
from data.training import Evaluation, TrainingProtocol, get_protocol
from nas.architecture import Architecture
from nas.search.base import Strategy

log = logging.getLogger(__name__)

TRAINED = "trained"
DUPLICATE = "duplicate"



@dataclass(frozen=True)
class HistoryEntry:
    """One told result of a search run: ``source`` is ``trained`` (evaluated by this run) or ``duplicate``
    (looked up); ``wall`` and ``strategy_seconds`` are the run's cumulative clocks when it was recorded."""

    seq: int
    arch_hash: str
    evaluation: Evaluation
    source: str
    wall: float
    strategy_seconds: float
    info: dict = field(default_factory=dict)


class RunHistory:
    """The ordered history of one archive's search runs (``Archive.history`` / ``Archive.append_history``),
    as ``HistoryEntry`` values, with recovery of evaluations stored but not yet linked."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive

    def entries(self, run: str) -> list[HistoryEntry]:
        return [HistoryEntry(seq, ev.arch_hash, ev, source, wall, strat, info)
                for seq, ev, source, wall, strat, info in self.archive.history(run)]

    def append(self, run: str, seq: int, ev: Evaluation, source: str, wall: float, strategy_seconds: float,
               info: dict) -> None:
        self.archive.append_history(run, seq, ev, source, wall, strategy_seconds, _json_safe(info))

    def reconcile(self, run: str, task: str, protocol: str, seed: int) -> int:
        """Append evaluations the run stored but did not link (killed between the two writes); returns
        how many."""
        linked = {e.arch_hash for e in self.entries(run) if e.source == TRAINED}
        entries = self.entries(run)
        seq = len(entries)
        wall = entries[-1].wall if entries else 0.0
        strat = entries[-1].strategy_seconds if entries else 0.0
        added = 0
        for ev in self.archive.evaluations(task=task, protocol=protocol, run=run):
            if ev.seed == seed and ev.arch_hash not in linked:
                log.info("run %s: recovering evaluation of %s stored before the run was interrupted", run,
                         ev.arch_hash[:12])
                self.append(run, seq, ev, TRAINED, wall, strat, {"kind": "recovered"})
                linked.add(ev.arch_hash)
                seq += 1
                added += 1
        return added


def run_history(archive: Archive, run: str) -> list[HistoryEntry]:
    """The told results of search run ``run``, in order."""
    return RunHistory(archive).entries(run)


@dataclass
class _Job:
    arch: Architecture
    info: dict
    job: EvaluationJob
    tries: int = 1
    waiters: list[dict] = field(default_factory=list)  # asks of the same architecture while it is in flight


def make_dask_executor(address: str | None = None, workers: int = 2) -> tuple[Executor, Callable[[], None]]:
    """A ``concurrent.futures`` executor backed by Dask and the function that shuts it down: a client of
    the scheduler at ``address``, or of a new ``LocalCluster`` of ``workers`` single-threaded processes."""
    try:
        from distributed import Client, LocalCluster
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


def run_search(
    strategy: "Strategy | Callable[[], Strategy]",
    task: str,
    archive: Archive,
    run_name: str,
    budget_evals: int | None = None,
    budget_seconds: float | None = None,
    protocol: "TrainingProtocol | str" = "reduced",
    train_seed: int = 0,
    executor: Executor | None = None,
    workers: int = 1,
    max_in_flight: int | None = None,
    progress: bool = True,
    task_seed: int = 0,
    device: str = "cpu",
    run_dir: "str | os.PathLike[str] | None" = None,
    max_retries: int = 1,
    max_consecutive_errors: int = 5,
) -> dict[str, Any]:
    """Run (or resume) the search ``run_name`` on ``task`` until a budget is reached or the strategy stops.

    ``strategy`` is a fresh strategy or a factory making one; re-running the same call resumes the run
    (the archive refuses a different configuration under the same name).  ``executor`` defaults to
    ``data.evaluate.make_executor(workers)``; at most ``max_in_flight`` (default ``workers``) evaluations run
    at once, and with ``workers > 1`` each job gets ``cpu_count // workers`` torch threads (pass ``workers``
    with a Dask executor too).  With one evaluation in flight the search is the same on any executor.

    Returns ``summarize(archive, run_name)`` plus ``session``: why this call stopped (``budget_evals``,
    ``budget_seconds``, ``strategy``), its ``new`` history rows, ``worker_errors``, ``skipped`` jobs and the
    strategy's own counters; with ``run_dir`` it is also written to ``run_dir/summary.json``."""
    from tqdm import tqdm

    from data.tasks import get_task

    if not isinstance(strategy, Strategy):
        if not callable(strategy):
            raise TypeError(f"strategy must be a Strategy or a factory returning one, got {type(strategy).__name__}")
        strategy = strategy()
        if not isinstance(strategy, Strategy):
            raise TypeError(f"the strategy factory returned {type(strategy).__name__}, not a Strategy")
    if strategy.num_told or strategy.num_asked:
        raise ValueError("run_search needs a fresh strategy: its state is rebuilt from the archive")
    if budget_evals is not None and budget_evals < 0 or budget_seconds is not None and budget_seconds < 0:
        raise ValueError("budgets must be non-negative")
    if budget_evals is None and budget_seconds is None:
        log.warning("run %s: no budget given; running until the strategy stops", run_name)
    protocol = get_protocol(protocol)
    task_obj = get_task(task, seed=task_seed)
    task_name = task_obj.name
    sampler = getattr(strategy, "sampler", None)
    if sampler is not None and tuple(sampler.input_shape) != tuple(task_obj.input_shape):
        raise ValueError(f"the strategy samples for input {tuple(sampler.input_shape)} but task {task_name!r} has "
                         f"input {tuple(task_obj.input_shape)}")
    max_in_flight = max(1, max_in_flight if max_in_flight is not None else workers)

    config = {"task": task, "task_seed": task_seed, "protocol": protocol.to_dict(), "train_seed": train_seed,
              "strategy": strategy.config()}
    archive.start_run(run_name, "search", config)
    history = RunHistory(archive)
    history.reconcile(run_name, task_name, protocol.key, train_seed)

    # -- replay ----------------------------------------------------------------------------------
    t0 = time.perf_counter()
    entries = history.entries(run_name)
    for e in entries:
        strategy.tell(archive.architecture(e.arch_hash), e.evaluation)
    replay_seconds = time.perf_counter() - t0
    if entries:
        log.info("run %s: resumed after %d steps (replayed in %.2f s)", run_name, len(entries), replay_seconds)
    seq = len(entries)
    prior_wall = entries[-1].wall if entries else 0.0
    prior_strategy = entries[-1].strategy_seconds if entries else 0.0
    session_start = time.perf_counter()
    strategy_seconds = 0.0

    def wall() -> float:
        return prior_wall + time.perf_counter() - session_start

    own_executor = executor is None
    executor = executor or make_executor(workers)
    threads = max(1, (os.cpu_count() or 1) // max(workers, 1)) if workers > 1 else None
    pending: dict[Future, _Job] = {}
    by_hash: dict[str, _Job] = {}
    counts = {"new": 0, "worker_errors": 0, "skipped": 0}
    consecutive_errors = 0
    stopped: str | None = None
    strategy_done = False

    bar = tqdm(total=budget_evals, initial=min(seq, budget_evals or seq), desc=f"search {run_name}", unit="eval",
               disable=not progress or None)

    def record(arch: Architecture, ev: Evaluation, source: str, info: dict) -> None:
        nonlocal seq, strategy_seconds
        history.append(run_name, seq, ev, source, wall(), prior_strategy + strategy_seconds, info)
        seq += 1
        counts["new"] += 1
        t = time.perf_counter()
        strategy.tell(arch, ev)
        strategy_seconds += time.perf_counter() - t
        bar.update(1)
        bar.set_postfix_str(f"{source} {ev.status}" + (f" {ev.val_acc:.3f}" if ev.ok else ""))

    def submit(job: _Job) -> Future:
        nonlocal executor
        try:
            fut = executor.submit(run_job, job.job)
        except BrokenExecutor:
            if not own_executor:
                raise
            log.warning("run %s: the process pool broke; starting a new one", run_name)
            executor.shutdown(wait=False, cancel_futures=True)
            executor = make_executor(workers)
            fut = executor.submit(run_job, job.job)
        pending[fut] = job
        return fut

    def in_flight() -> int:
        return sum(1 + len(j.waiters) for j in pending.values())

    def budget_reason() -> str | None:
        if budget_evals is not None and seq + in_flight() >= budget_evals:
            return "budget_evals"
        if budget_seconds is not None and wall() >= budget_seconds:
            return "budget_seconds"
        return None

    try:
        while True:
            while not strategy_done and in_flight() < max_in_flight:
                reason = budget_reason()
                if reason:
                    stopped = reason
                    break
                t = time.perf_counter()
                arch = strategy.ask()
                strategy_seconds += time.perf_counter() - t
                if arch is None:
                    strategy_done = True
                    stopped = "strategy"
                    break
                info = dict(strategy.last_ask_info)
                job = by_hash.get(arch.hash)
                if job is not None:
                    job.waiters.append(info)
                    continue
                ev = archive.get_evaluation(arch.hash, task_name, protocol.key, train_seed)
                if ev is not None:
                    record(arch, ev, DUPLICATE, info)
                    continue
                job = _Job(arch, info, EvaluationJob(arch.to_json(), task, task_seed, protocol.to_dict(), train_seed,
                                                     device, threads))
                by_hash[arch.hash] = job
                submit(job)
            if not pending:
                break
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in done:
                job = pending.pop(fut)
                try:
                    result = fut.result()
                except Exception as exc:  # a worker's or the job set-up's fault, not the candidate's
                    counts["worker_errors"] += 1
                    consecutive_errors += 1
                    if consecutive_errors >= max_consecutive_errors:
                        raise RuntimeError(f"run {run_name}: {consecutive_errors} evaluation jobs in a row raised; "
                                           f"last error: {type(exc).__name__}: {exc}") from exc
                    if job.tries <= max_retries:
                        log.warning("run %s: evaluation of %s raised %s: %s; submitting it again (try %d)", run_name,
                                    job.arch.hash[:12], type(exc).__name__, exc, job.tries + 1)
                        job.tries += 1
                        submit(job)
                    else:
                        log.error("run %s: evaluation of %s raised %s: %s; skipping it after %d tries", run_name,
                                  job.arch.hash[:12], type(exc).__name__, exc, job.tries)
                        counts["skipped"] += 1
                        by_hash.pop(job.arch.hash, None)
                    continue
                consecutive_errors = 0
                by_hash.pop(job.arch.hash, None)
                ev = Evaluation.from_dict(result)
                if not archive.add_evaluation(ev, job.arch, run=run_name):
                    # Another process stored this evaluation meanwhile: keep the first, as the archive does.
                    ev = archive.get_evaluation(job.arch.hash, task_name, protocol.key, train_seed) or ev
                record(job.arch, ev, TRAINED, job.info)
                for info in job.waiters:
                    record(job.arch, ev, DUPLICATE, info)
    finally:
        bar.close()
        if own_executor:
            executor.shutdown(wait=False, cancel_futures=True)

    summary = summarize(archive, run_name)
    summary["session"] = {
        "stopped": stopped or "done", "new": counts["new"], "worker_errors": counts["worker_errors"],
        "skipped": counts["skipped"], "replay_seconds": round(replay_seconds, 4), "strategy": strategy.stats,
    }
    if run_dir is not None:
        os.makedirs(run_dir, exist_ok=True)
        path = os.path.join(os.fspath(run_dir), "summary.json")
        with open(path + ".tmp", "w", encoding="utf-8") as fh:
            json.dump(_json_safe(summary), fh, indent=2, sort_keys=True)
        os.replace(path + ".tmp", path)
    log.info("run %s: %d steps (%d new), best val_acc %s, stopped: %s", run_name, summary["evaluations"],
             counts["new"], summary["best"]["val_acc"] if summary["best"] else None, stopped or "done")
    return summary


def summarize(archive: Archive, run: str) -> dict[str, Any]:
    """A search run's summary from the archive alone: the best architecture, counts (``proposed``: candidates
    the strategy generated, scored ones included; ``filtered``: proposed but never told; ``trained``;
    ``duplicates``: looked up; ``failed``) and seconds (``training``: the trained evaluations' own time;
    ``strategy``: time inside ``ask``/``tell``, surrogate fits and predictions included; ``wall_clock``)."""
    stored = {r["name"]: r for r in archive.runs()}
    if run not in stored:
        raise KeyError(f"{archive.path}: no run named {run!r}")
    entries = run_history(archive, run)
    config = stored[run]["config"]
    best: HistoryEntry | None = None
    for e in entries:
        if e.evaluation.ok and math.isfinite(e.evaluation.val_acc) and (
            best is None or e.evaluation.val_acc > best.evaluation.val_acc
        ):
            best = e
    best_out = None
    if best is not None:
        arch = archive.architecture(best.arch_hash)
        best_out = {"arch": arch.to_string(), "hash": arch.hash, "val_acc": best.evaluation.val_acc,
                    "metrics": dict(best.evaluation.metrics), "step": best.seq,
                    "trained_before": sum(1 for e in entries[: best.seq + 1] if e.source == TRAINED)}
    trained = [e for e in entries if e.source == TRAINED]
    proposed = sum(int(e.info.get("proposed", 1)) for e in entries)
    return {
        "run": run,
        "task": entries[0].evaluation.task if entries else config.get("task"),
        "protocol": entries[0].evaluation.protocol if entries else None,
        "train_seed": config.get("train_seed"),
        "strategy": config.get("strategy", {}).get("class"),
        "evaluations": len(entries),
        "best": best_out,
        "counts": {
            "proposed": proposed,
            "filtered": max(0, proposed - len(entries)),
            "trained": len(trained),
            "duplicates": len(entries) - len(trained),
            "failed": sum(1 for e in entries if not e.evaluation.ok),
        },
        "seconds": {
            "training": round(sum(e.evaluation.seconds for e in trained), 4),
            "strategy": round(entries[-1].strategy_seconds, 4) if entries else 0.0,
            "wall_clock": round(entries[-1].wall, 4) if entries else 0.0,
        },
    }


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _json_safe(value.item())
    return value
