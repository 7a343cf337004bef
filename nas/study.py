"""``Study``: the experiment file as a Python object, for searching your own data without an Unseen-NAS folder.

A study is tasks × strategies × seeds of ordinary ``nas search`` runs, with the experiment file's keys as
options (``nas run --help`` lists them), run one after the other by the same code as ``nas search`` and
``nas run`` (``nas.cli.search.search_once``), so its run folders work with ``nas status``, ``nas compare`` and
``nas final``, and calling ``run()`` again resumes them.  Data given as arrays (or torch ``Dataset``s) is
written once as an Unseen-NAS folder under ``OUT/data/NAME`` and searched like any task folder.  A training
function ``train_fn(model, task, protocol) -> val_acc`` (or a dict of metrics holding ``val_acc``) replaces the
built-in training: ``model`` is the compiled network (``torch.nn.Module``, head for the task's classes, weights
from the training seed), ``task`` the ``data.task.Task`` (numpy splits) and ``protocol`` the
``TrainingProtocol`` named by the ``protocol`` option.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from data.evaluate import load_task
from data.task import Split, Task
from data.training import get_protocol
from data.unseen import METADATA_FILE, export_unseen, load_unseen
from nas.architecture import Architecture
from nas.cli.run import experiment_runs, load_experiment
from nas.cli.search import search_once
from nas.search.evaluators import FunctionEvaluator

#: What a split may be given as: ``(x, y)`` arrays, or a dataset of ``(x, y)`` items (e.g. a torch ``Dataset``).
SplitData = Any
TrainFn = Callable[[Any, Task, Any], Any]


@dataclass(frozen=True)
class RunResult:
    """One finished (or resumed) run of a study: where it is and what it found."""

    task: str
    label: str
    seed: int
    run_dir: str
    best_arch: str | None
    best_val_acc: float | None
    summary: dict = field(repr=False)


class Study:
    """Tasks × strategies × seeds of searches, as an experiment file describes them.

    ``task``: a task name or Unseen-NAS folder (or a list of them), a ``data.task.Task``, or left out when the
    data is given as ``train`` and ``valid`` (and optionally ``test``): each ``(x, y)`` numpy arrays (``x``:
    N×C×H×W images or N×S×D sequences, ``y``: class labels) or a dataset of ``(x, y)`` items such as a torch
    ``Dataset``; ``name`` names that data and ``num_classes`` defaults to the largest label + 1.
    ``strategies``: label → that strategy's keys (``{"re": {"strategy": "re"}, "filtered": {"strategy":
    "filtered", "surrogate": "rf"}}``; default plain regularised evolution).  ``out``: the output folder (runs
    in ``OUT/TASK/LABEL/seed-S``).  ``options``: any other experiment-file key shared by every strategy
    (``budget``, ``seeds``, ``protocol``, ``surrogate``, ``workers``, ...), checked as in a file."""

    def __init__(self, task: Any = None, *, train: SplitData = None, valid: SplitData = None, test: SplitData = None,
                 name: str = "data", num_classes: int | None = None, train_fn: TrainFn | None = None,
                 strategies: Mapping[str, Mapping[str, Any]] | None = None, out: str = "runs/study",
                 **options: Any) -> None:
        if train_fn is not None and not callable(train_fn):
            raise TypeError(f"train_fn must be callable, got {type(train_fn).__name__}")
        self.train_fn = train_fn
        if (train is None) != (valid is None) or (train is not None and task is not None):
            raise ValueError("give the data as task=..., or as train=(x, y) and valid=(x, y)")
        if train is not None:
            task = array_task(name, train, valid, test, num_classes)
        if isinstance(task, Task):
            task = task_folder(task, os.path.join(out, "data"))
        if task is not None:
            options["task"] = task
        study = {**options, "out": out}
        tables = {label: dict(keys) for label, keys in (strategies or {"re": {"strategy": "re"}}).items()}
        self.runs = experiment_runs({"study": study, "strategies": tables}, "Study", command="study")

    @classmethod
    def from_toml(cls, path: str, train_fn: TrainFn | None = None) -> "Study":
        """The study of the experiment file ``path`` (what ``nas run path`` runs)."""
        study = cls.__new__(cls)
        study.train_fn = train_fn
        study.runs = load_experiment(path)
        return study

    def run(self) -> list[RunResult]:
        """Run (or resume) every run, one after the other; an error stops the study (finished runs are kept,
        and calling ``run()`` again resumes)."""
        results = []
        for args in self.runs:
            summary, _ = search_once(args, self._evaluator(args))
            best = summary.get("best") or {}
            results.append(RunResult(args.task, args.label, args.seed, args.run_dir, best.get("arch"),
                                     best.get("val_acc"), summary))
        return results

    def _evaluator(self, args: Any) -> FunctionEvaluator | None:
        """The user's training function as the run's evaluator (None: the built-in training)."""
        if self.train_fn is None:
            return None
        task = load_task(args.task, args.task_seed)
        protocol = get_protocol(args.protocol)
        fn = functools.partial(call_train_fn, self.train_fn, args.task, args.task_seed, args.protocol, args.train_seed,
                               args.device)
        name = getattr(self.train_fn, "__qualname__", type(self.train_fn).__name__)
        return FunctionEvaluator(fn, task=task.name, protocol=f"train_fn:{name}:{protocol.key}", seed=args.train_seed)


def call_train_fn(train_fn: TrainFn, task_spec: str, task_seed: int, protocol: str, seed: int, device: str,
                  arch: Architecture) -> Any:
    """Evaluate ``arch`` with the user's ``train_fn`` on a worker: compile it for the task (weights from
    ``seed``), move it to ``device`` and return what ``train_fn(model, task, protocol)`` returns."""
    from nas.compile import compile_architecture  # deferred: torch

    task = load_task(task_spec, task_seed)
    model = compile_architecture(arch, task.num_classes, seed=seed).to(device)
    return train_fn(model, task, get_protocol(protocol))


def array_task(name: str, train: SplitData, valid: SplitData, test: SplitData = None,
               num_classes: int | None = None) -> Task:
    """A ``Task`` from in-memory splits (``(x, y)`` arrays or datasets of ``(x, y)`` items); no ``test``: an
    empty test split."""
    splits = {"train": as_split(train, "train"), "valid": as_split(valid, "valid")}
    splits["test"] = as_split(test, "test") if test is not None else Split(splits["train"].x[:0], splits["train"].y[:0])
    labels = np.concatenate([s.y for s in splits.values()])
    classes = int(num_classes) if num_classes is not None else int(labels.max()) + 1
    return Task(name, tuple(splits["train"].x.shape[1:]), classes, **splits, metadata={"source": "arrays"})


def as_split(data: SplitData, split: str) -> Split:
    """One split from ``(x, y)`` arrays or a dataset of ``(x, y)`` items (tensors or arrays), as float32
    inputs and int64 labels."""
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
    elif hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        items = [data[i] for i in range(len(data))]
        if not items:
            raise ValueError(f"{split}: the dataset is empty")
        x, y = np.stack([np.asarray(item[0]) for item in items]), np.asarray([int(item[1]) for item in items])
    else:
        raise TypeError(f"{split}: expected (x, y) arrays or a dataset of (x, y) items, got {type(data).__name__}")
    x, y = np.asarray(x, dtype=np.float32), np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{split}: labels must be a 1-D array of integers, got {y.dtype} of shape {y.shape}")
    return Split(x, y.astype(np.int64))


def task_folder(task: Task, root: str) -> str:
    """``task`` as the Unseen-NAS folder ``ROOT/NAME`` (written on first use; an existing folder must hold the
    same data), so that workers and later sessions find it by path."""
    folder = os.path.join(root, task.name)
    if not os.path.exists(os.path.join(folder, METADATA_FILE)):
        export_unseen(task, folder, overwrite=True)
    elif load_unseen(folder).fingerprint() != task.fingerprint():
        raise ValueError(f"{folder} holds other data named {task.name!r}: give the study another name or out")
    return folder

