"""Evaluation jobs as plain data, and the worker entry point that runs one.

A job is the architecture's JSON, the task's name or folder, the protocol's fields and a seed, so any
``concurrent.futures`` executor can run it in any process; each job carries its own seed, so a result does
not depend on which worker ran it.  Choosing *what* to evaluate is the search's business (``nas.search``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from data.tasks import get_task
from data.training import TrainingProtocol, train_and_evaluate
from nas.architecture import Architecture


@dataclass(frozen=True)
class EvaluationJob:
    """Everything a worker needs, as plain data."""

    arch_json: str
    task: str
    task_seed: int
    protocol: dict
    seed: int
    device: str = "cpu"
    threads: int | None = None


_TASKS: dict[tuple[str, int], Any] = {}


def load_task(spec: str, seed: int = 0) -> Any:
    """``get_task(spec, seed)``, cached per process (a worker builds each task once)."""
    key = (spec, seed)
    if key not in _TASKS:
        _TASKS[key] = get_task(spec, seed=seed)
    return _TASKS[key]


def run_job(job: EvaluationJob) -> dict:
    """Worker entry point: rebuild the architecture and task (tasks cached per process), train (or look up
    a tabular task), and return the evaluation as a dict.  Setting up the job is the caller's fault and may
    raise; the candidate's own failures come back as ``failed`` evaluations."""
    if job.threads:
        import torch  # deferred: torch is heavy and only the worker needs it

        torch.set_num_threads(job.threads)
    arch = Architecture.from_json(job.arch_json)
    task = load_task(job.task, job.task_seed)
    protocol = TrainingProtocol.from_dict(job.protocol)
    return train_and_evaluate(arch, task, protocol, seed=job.seed, device=job.device).to_dict()
