"""Which two runs of each task a transfer study trains and tests on.

The published one-to-one protocol trains on one run of a task (seed 1, failures dropped) and tests on an
independent run (seed 0, failures kept), so its diagonal is within-task *across runs*.  An archive here holds
independent runs of a task when two random archive builds of it were made with different seeds
(``nas.search.build.build_archive``, runs named ``build:TASK:PROTOCOL:random:seedS``), or when a second
archive holds another build of it (``test_archive``).  ``transfer_datasets`` pairs them per task: the build
with the lowest (sampling seed, training seed) is the test run and the next one the training run (as published:
seed 1 trains, seed 0 tests); with a second archive, the first archive's rows train and the second's test.  A
task with one run is split into two seeded halves (``surrogates.transfer.TaskData.runs``), unless halves are
forced (``runs="halves"``) or forbidden (``runs="independent"``).  ``runs_note`` says in one line which was
used; ``run_transfer_study`` writes it under the table of ``surrogates.workflows.transfer_study``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from surrogates.base import build_featuriser
from surrogates.sources import feature_store_of
from surrogates.transfer import TaskData
from surrogates.workflows import surrogate_dataset, task_datasets, transfer_study

log = logging.getLogger(__name__)

#: How a study finds each task's two runs: ``auto`` (independent runs where there are two, else halves),
#: ``independent`` (an error where a task has no two independent runs) or ``halves`` (always two halves of one run).
RUN_CHOICES: tuple[str, ...] = ("auto", "independent", "halves")
#: Fewer rows than this in a run cannot train or score a surrogate (as ``task_datasets`` requires of a task).
MIN_RUN_ROWS = 4


@dataclass(frozen=True)
class BuildRun:
    """One archive build of a task: its run name, sampling seed and training seed."""

    name: str
    seed: int
    train_seed: int

    @property
    def label(self) -> str:
        return f"build seed {self.seed} (training seed {self.train_seed})"


@dataclass(frozen=True)
class TaskRuns:
    """What a task's two runs are: ``independent`` (``train`` and ``test`` say which runs) or ``halves``."""

    task: str
    kind: str
    train: str
    test: str
    n_train: int
    n_test: int


def _task_protocol(archive: Any, task: str, protocol: str | None) -> str | None:
    """``protocol``, or the task's one protocol in ``archive`` (None where it has none or several)."""
    if protocol is not None:
        return protocol
    found = sorted({p for t, p, _ in archive.tasks() if t == task})
    return found[0] if len(found) == 1 else None


def build_runs(archive: Any, task: str, protocol: str | None = None) -> list[BuildRun]:
    """The random-sampler archive builds in ``archive`` with evaluations of ``task`` under ``protocol`` (default:
    the task's one protocol), sorted by (sampling seed, training seed).  Mutant builds are left out: they
    sample around the archive's own networks, so they are not independent of it."""
    protocol = _task_protocol(archive, task, protocol)
    if protocol is None:
        return []
    out = []
    for run in archive.runs():
        config = run["config"]
        if run["kind"] != "build" or config.get("sampler", "random") != "random":
            continue
        if archive.count(task=task, protocol=protocol, run=run["name"]):
            out.append(BuildRun(run["name"], int(config.get("seed", 0)), int(config.get("train_seed", 0))))
    return sorted(out, key=lambda b: (b.seed, b.train_seed, b.name))


def run_dataset(archive: Any, task: str, run: str, protocol: str | None = None) -> tuple[list, np.ndarray]:
    """``surrogate_dataset`` of one run: each distinct architecture that run ``run`` evaluated on ``task``."""
    return surrogate_dataset(archive, task, _task_protocol(archive, task, protocol), run)


def _rows(archive: Any, task: str, protocol: str | None, run: str | None = None) -> tuple[list, np.ndarray]:
    return surrogate_dataset(archive, task, protocol) if run is None else run_dataset(archive, task, run, protocol)


def _pair(archive: Any, task: str, protocol: str | None, test_archive: Any) -> "tuple[tuple, tuple] | None":
    """``((archs, y, label), (archs, y, label))``: the training and test runs of ``task``, or None where it has
    no two independent runs with ``MIN_RUN_ROWS`` rows each."""
    if test_archive is not None:
        if not any(t == task for t, _, _ in test_archive.tasks()):
            log.info("task %s: not in the test archive %s", task, test_archive.path)
            return None
        protocols = {_task_protocol(a, task, protocol) for a in (archive, test_archive)}
        if len(protocols) > 1:
            log.warning("task %s: the two archives hold it under different training protocols %s", task,
                        sorted(map(str, protocols)))
        train = (*_rows(archive, task, protocol), os.fspath(archive.path))
        test = (*_rows(test_archive, task, protocol), os.fspath(test_archive.path))
    else:
        builds = build_runs(archive, task, protocol)
        if len(builds) < 2:
            return None
        if len(builds) > 2:
            log.info("task %s: %d builds; training on %s, testing on %s, the others unused", task, len(builds),
                     builds[1].name, builds[0].name)
        train = (*_rows(archive, task, protocol, builds[1].name), builds[1].label)
        test = (*_rows(archive, task, protocol, builds[0].name), builds[0].label)
    small = [label for archs, _, label in (train, test) if len(archs) < MIN_RUN_ROWS]
    if small:
        log.warning("task %s: fewer than %d networks in %s; not used as an independent run", task, MIN_RUN_ROWS,
                    ", ".join(small))
        return None
    return train, test


def _features(features: str, task: str, archs: list, store: Any) -> np.ndarray:
    featuriser = build_featuriser(features, task, archs[0].grammar.name, store, progress=True)
    return np.asarray(featuriser.fit(archs).transform(archs), dtype=np.float64)


def _task_names(archive: Any, tasks: Sequence[str] | None) -> list[str]:
    available = sorted({t for t, _, _ in archive.tasks()})
    names = list(dict.fromkeys(tasks)) if tasks else available
    missing = [n for n in names if n not in available]
    if missing:
        raise ValueError(f"{archive.path}: no evaluations of task(s) {', '.join(missing)}")
    return names


def transfer_datasets(archive: Any, tasks: Sequence[str] | None = None, features: str = "graf,zcp",
                      protocol: str | None = None, test_archive: Any = None, runs: str = "auto",
                      seed: int = 0) -> tuple[list[TaskData], list[TaskRuns]]:
    """One ``TaskData`` per task of ``archive`` (``tasks``: default all), with a test run where the task has
    two independent runs (module docstring), and what each task's runs are.  ``seed`` seeds the halves."""
    if runs not in RUN_CHOICES:
        raise ValueError(f"unknown runs {runs!r}; choose from {', '.join(RUN_CHOICES)}")
    if runs == "halves" and test_archive is not None:
        raise ValueError("runs='halves' splits each task's one run in two; it takes no test archive")
    store = feature_store_of(archive)
    test_store = None if test_archive is None else feature_store_of(test_archive)
    data, described = [], []
    for name in _task_names(archive, tasks):
        pair = None if runs == "halves" else _pair(archive, name, protocol, test_archive)
        if pair is None:
            if runs == "independent":
                where = f"in {test_archive.path}" if test_archive is not None else "(two random builds)"
                raise ValueError(f"{archive.path}: task {name!r} has no second independent run {where} with at "
                                 f"least {MIN_RUN_ROWS} networks; use runs 'auto' to split its one run in halves")
            halves = task_datasets(archive, [name], features, protocol, store)
            if halves:
                n = len(halves[0].y)
                data += halves
                described.append(TaskRuns(name, "halves", f"halves of one run (seed {seed})", "", n - n // 2, n // 2))
            continue
        (tr_archs, tr_y, tr_label), (te_archs, te_y, te_label) = pair
        data.append(TaskData(name, _features(features, name, tr_archs, store), tr_y,
                             _features(features, name, te_archs, test_store or store), te_y))
        described.append(TaskRuns(name, "independent", tr_label, te_label, len(tr_y), len(te_y)))
        log.info("task %s: independent runs, training on %s (%d), testing on %s (%d)", name, tr_label, len(tr_y),
                 te_label, len(te_y))
    return data, described


def runs_note(described: Sequence[TaskRuns], scheme: str = "one-to-one") -> str:
    """One line saying which runs the study used per task (independent runs or halves, with the networks in
    each: training/test) and how the scheme uses them."""
    groups: dict[tuple[str, str, str], list[TaskRuns]] = {}
    for r in described:
        groups.setdefault((r.kind, r.train, r.test), []).append(r)
    parts = []
    for (kind, train, test), group in groups.items():
        names = ", ".join(f"{r.task} ({r.n_train}/{r.n_test})" for r in group)
        if kind == "independent":
            parts.append(f"independent runs, trained on {train} and tested on {test}, for {names}")
        else:
            parts.append(f"two seeded {train} for {names}")
    how = ("the diagonal is within-task across the two runs" if scheme == "one-to-one" else
           "each held-out task is tested on both its runs, the model trained on both runs of every other task")
    return f"Runs (networks training/test): {'; '.join(parts)}; {how}."


def run_transfer_study(archive: Any, scheme: str = "one-to-one", model: str = "rf", features: str = "graf,zcp",
                       tasks: Sequence[str] | None = None, out: str = "runs/transfer", seed: int = 0,
                       normalisation: str | None = None, min_source_tau: float | None = None,
                       test_archive: Any = None, runs: str = "auto") -> str:
    """``surrogates.workflows.transfer_study`` on each task's two runs (``transfer_datasets``), with
    ``runs_note`` logged and written under the table in ``out/tau.md``; returns the Markdown text."""
    data, described = transfer_datasets(archive, tasks, features, test_archive=test_archive, runs=runs, seed=seed)
    table = transfer_study(archive, scheme, model, features, tasks, out, seed, normalisation, min_source_tau,
                           data=data)
    note = runs_note(described, scheme)
    log.info("%s", note)
    with open(os.path.join(out, "tau.md"), "a", encoding="utf-8") as fh:
        fh.write(f"\n{note}\n")
    return f"{table}\n{note}\n"
