"""How the run engine evaluates an architecture: train on a task (the default), or call your own function.

An ``Evaluator`` names what its results are stored under in the archive (``task``, ``protocol``, ``seed``:
the key of an evaluation, so duplicates are looked up rather than evaluated twice) and turns an architecture
into one call an executor can run, whose return value becomes an ``Evaluation``:

- ``TaskEvaluator`` trains the architecture on a task under a training protocol, or looks it up in a tabular
  task (NAS-Bench-201), in whichever process the executor chose (``data.evaluate.run_job``).
- ``FunctionEvaluator`` calls ``fn(architecture)``, as an Optuna objective: ``fn`` returns the validation
  accuracy (a float) or a dict of metrics holding ``val_acc``; an exception, or a missing or non-finite
  ``val_acc``, is recorded as a failed evaluation.  With a process pool ``fn`` must be picklable (a
  module-level function).
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from concurrent.futures import Executor
from typing import Any, Callable, Iterable, Iterator, Mapping, Union

from data.evaluate import EvaluationJob, load_task, run_job
from data.training import FAILED, OK, Evaluation, TrainingProtocol, get_protocol, timestamp
from nas.architecture import Architecture
from nas.search.executors import JobPool, SerialExecutor
from nas.versions import software_version

#: What a user's objective may return: the validation accuracy, or metrics holding ``val_acc``.
ObjectiveResult = Union[float, Mapping[str, float]]


class Evaluator(ABC):
    """Evaluates architectures for the run engine; results are stored under ``(task, protocol, seed)``."""

    task: str
    protocol: str
    seed: int
    #: The input shape the architectures must have (checked against the strategy's sampler), if any.
    input_shape: tuple[int, ...] | None = None

    @abstractmethod
    def call(self, arch: Architecture) -> tuple[Callable[..., Any], tuple]:
        """The picklable function and arguments that evaluate ``arch`` on a worker."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-able description, stored with the run (a resumed run must have the same one)."""

    def evaluation(self, result: Any) -> Evaluation:
        """The ``Evaluation`` from what the worker returned (an evaluation's dict)."""
        return Evaluation.from_dict(result)


class TaskEvaluator(Evaluator):
    """Train on a task (by registered name or Unseen-NAS folder) under ``protocol`` with training seed
    ``seed``; a tabular task is looked up instead.  ``threads``: torch threads per job (None: torch's
    default)."""

    def __init__(self, task: str, protocol: "TrainingProtocol | str" = "reduced", seed: int = 0, task_seed: int = 0,
                 device: str = "cpu", threads: int | None = None) -> None:
        self.spec = task
        self.task_seed = task_seed
        self.training = get_protocol(protocol)
        self.task_obj = load_task(task, task_seed)
        self.task = self.task_obj.name
        self.protocol = self.training.key
        self.seed = seed
        self.device = device
        self.threads = threads
        self.input_shape = tuple(self.task_obj.input_shape)

    def call(self, arch: Architecture) -> tuple[Callable[..., Any], tuple]:
        job = EvaluationJob(arch.to_json(), self.spec, self.task_seed, self.training.to_dict(), self.seed,
                            self.device, self.threads)
        return run_job, (job,)

    def config(self) -> dict[str, Any]:
        return {"task": self.spec, "task_seed": self.task_seed, "protocol": self.training.to_dict(),
                "train_seed": self.seed}


class FunctionEvaluator(Evaluator):
    """Evaluate with ``fn(architecture) -> val_acc | {"val_acc": ..., ...}``; results are stored under task
    ``task`` and protocol ``protocol`` (name them so that different objectives do not share results)."""

    def __init__(self, fn: Callable[[Architecture], ObjectiveResult], task: str = "objective",
                 protocol: str = "function", seed: int = 0) -> None:
        if not callable(fn):
            raise TypeError(f"the objective must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.task = task
        self.protocol = protocol
        self.seed = seed

    def call(self, arch: Architecture) -> tuple[Callable[..., Any], tuple]:
        return call_objective, (self.fn, arch.to_json(), self.task, self.protocol, self.seed)

    def config(self) -> dict[str, Any]:
        name = f"{getattr(self.fn, '__module__', '?')}.{getattr(self.fn, '__qualname__', type(self.fn).__name__)}"
        return {"task": self.task, "protocol": self.protocol, "train_seed": self.seed, "objective": name}


def objective_metrics(value: Any) -> dict[str, float]:
    """An objective's return value as metrics: a number is ``val_acc``; a mapping must hold a finite
    ``val_acc``.  Anything else raises ``ValueError``."""
    if isinstance(value, Mapping):
        metrics = {str(k): float(v) for k, v in value.items()}
    elif not isinstance(value, bool) and hasattr(value, "__float__"):  # Python and numpy numbers
        metrics = {"val_acc": float(value)}
    else:
        raise ValueError(f"the objective returned a {type(value).__name__}; expected a float or a dict with val_acc")
    if not math.isfinite(metrics.get("val_acc", math.nan)):
        raise ValueError(f"the objective returned val_acc={metrics.get('val_acc')!r}; expected a finite number")
    return metrics


def call_objective(fn: Callable[[Architecture], ObjectiveResult], arch_json: str, task: str, protocol: str,
                   seed: int) -> dict:
    """Worker entry point of ``FunctionEvaluator``: rebuild the architecture, call ``fn`` and return the
    evaluation as a dict; whatever ``fn`` raises becomes a failed evaluation with the exception as reason."""
    arch = Architecture.from_json(arch_json)
    start = time.perf_counter()
    try:
        metrics, status, reason = objective_metrics(fn(arch)), OK, ""
    except Exception as exc:  # the candidate's (or the objective's) fault: recorded, the run goes on
        metrics, status, reason = {}, FAILED, f"exception: {type(exc).__name__}: {exc}"[:2000]
    return Evaluation(arch.hash, task, protocol, int(seed), status, metrics, reason,
                      round(time.perf_counter() - start, 4), "function", timestamp(), software_version()).to_dict()


def as_evaluator(evaluation: "Evaluator | Callable[[Architecture], ObjectiveResult]") -> Evaluator:
    """``evaluation`` itself, or a ``FunctionEvaluator`` of a plain callable."""
    return evaluation if isinstance(evaluation, Evaluator) else FunctionEvaluator(evaluation)


def evaluate_many(
    archs: Iterable[Architecture],
    task: str,
    protocol: "TrainingProtocol | str" = "reduced",
    seed: int = 0,
    executor: Executor | None = None,
    task_seed: int = 0,
    device: str = "cpu",
    threads: int | None = None,
    max_in_flight: int = 4,
) -> Iterator[tuple[Architecture, Evaluation]]:
    """Evaluate architectures on a task (by name or folder) without an archive, yielding ``(arch,
    evaluation)`` as each finishes (completion order).  A worker error is raised."""
    evaluator = TaskEvaluator(task, protocol, seed, task_seed, device, threads)
    pool: JobPool[Architecture] = JobPool(executor or SerialExecutor())
    it = iter(archs)
    exhausted = False
    while True:
        while not exhausted and len(pool) < max_in_flight:
            arch = next(it, None)
            if arch is None:
                exhausted = True
                break
            fn, args = evaluator.call(arch)
            pool.submit(arch, fn, *args)
        if not len(pool):
            return
        for arch, future in pool.wait():
            yield arch, evaluator.evaluation(future.result())
