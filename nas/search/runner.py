"""``run_search``: run (or resume) a search on a task, the entry point of ``nas search``, the quickstart and
the benchmarks.  The loop itself is the run engine (``nas.search.engine.SearchRun``); the history and
summary live in ``nas.search.history``."""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import Executor
from typing import Any, Callable

from data.archive import Archive
from data.training import TrainingProtocol
from nas.jsonsafe import jsonable
from nas.search.base import Strategy
from nas.search.engine import SearchRun
from nas.search.evaluators import Evaluator, TaskEvaluator
from nas.search.executors import worker_threads
from nas.search.history import summarize

log = logging.getLogger(__name__)


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
    evaluator: Evaluator | None = None,
) -> dict[str, Any]:
    """Run (or resume) the search ``run_name`` on ``task`` until a budget is reached or the strategy stops.

    ``strategy`` is a fresh strategy or a factory making one; re-running the same call resumes the run
    (the archive refuses a different configuration under the same name).  ``executor`` defaults to
    ``nas.search.executors.make_executor(workers)``; at most ``max_in_flight`` (default ``workers``)
    evaluations run at once, and with ``workers > 1`` each job gets ``cpu_count // workers`` torch threads
    (pass ``workers`` with a Dask executor too).  With one evaluation in flight the search is the same on any
    executor.  ``budget_evals`` counts the run's steps (trained and looked up); ``budget_seconds`` its
    wall-clock over all sessions.  To evaluate with your own function instead of training, use
    ``SearchRun(archive, run_name, fn).run(strategy, ...)``, or pass ``evaluator`` (e.g. a ``FunctionEvaluator``),
    which then replaces training on ``task``.

    Returns ``summarize(archive, run_name)`` plus ``session``: why this call stopped (``budget_evals``,
    ``budget_seconds``, ``strategy``), its ``new`` history rows, ``worker_errors``, ``skipped`` jobs and the
    strategy's own counters; with ``run_dir`` it is also written to ``run_dir/summary.json``."""
    if evaluator is None:
        evaluator = TaskEvaluator(task, protocol, train_seed, task_seed, device, worker_threads(workers))
    engine = SearchRun(archive, run_name, evaluator, executor=executor, workers=workers,
                       max_in_flight=max_in_flight, max_retries=max_retries,
                       max_consecutive_errors=max_consecutive_errors, progress=progress, label=f"search {run_name}")
    session = engine.run(strategy, budget_evals, budget_seconds)
    summary = summarize(archive, run_name)
    summary["session"] = {k: session[k] for k in ("stopped", "new", "worker_errors", "skipped", "replay_seconds",
                                                  "strategy")}
    if run_dir is not None:
        write_summary(summary, run_dir)
    log.info("run %s: %d steps (%d new), best val_acc %s, stopped: %s", run_name, summary["evaluations"],
             session["new"], summary["best"]["val_acc"] if summary["best"] else None, session["stopped"])
    return summary


def write_summary(summary: dict[str, Any], run_dir: "str | os.PathLike[str]") -> str:
    """Write ``summary`` to ``run_dir/summary.json`` atomically (via a temporary file); returns the path."""
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(os.fspath(run_dir), "summary.json")
    with open(path + ".tmp", "w", encoding="utf-8") as fh:
        json.dump(jsonable(summary, "summary"), fh, indent=2, sort_keys=True)
    os.replace(path + ".tmp", path)
    return path
