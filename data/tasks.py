"""The task registry: tasks by name (``get_task``), ``register_task`` for new ones, and their descriptions.

Tasks come from three sources: the offline generators of Unseen-NAS-like tasks (``data.generators``),
folders in the Unseen-NAS format (``data.unseen``), and tabular benchmarks whose evaluation is a look-up
(``data.nb201``).  ``get_task`` resolves a registered name or a folder.  The task value itself lives in
``data.task`` (re-exported here).

A task is its name *and* its data (``Task.fingerprint``).  A registered name stands for the data its factory
makes with the default seed; a task whose name is taken by other data (an Unseen-NAS folder whose metadata
names a built-in task, another generator seed, a second folder of the same name loaded in this process) is
named ``NAME@FINGERPRINT8`` here, so its evaluations are kept apart from the registered task's everywhere
(archives key evaluations by the name).  ``task_fingerprint`` tells the archive which data a name stands for.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Callable

from data import generators, nb201
from data.task import SPLITS, Split, TabularTask, Task
from data.unseen import load_unseen

__all__ = ["SPLITS", "Split", "TabularTask", "Task", "canonical_fingerprint", "get_task", "register_task",
           "task_descriptions", "task_fingerprint", "unregister_task"]

log = logging.getLogger(__name__)

#: joins a task's name and the start of its fingerprint when the name alone stands for other data
FINGERPRINT_MARK = "@"
FINGERPRINT_CHARS = 8

#: name -> (factory(seed=...) -> Task | TabularTask, one-line description)
_TASKS: dict[str, tuple[Callable[..., Any], str]] = {}
_BUILTINS_LOADED: list[bool] = []
#: registered name -> the fingerprint of its factory's default-seed task (computed once per process)
_CANONICAL: dict[str, str] = {}
#: name of every task ``get_task`` returned in this process -> its fingerprint
_LOADED: dict[str, str] = {}


def register_task(name: str, factory: Callable[..., Any], description: str = "") -> None:
    """Make ``get_task(name, seed=s)`` return ``factory(seed=s)``."""
    _builtin()  # so that a later first use does not overwrite this registration
    if FINGERPRINT_MARK in name:
        raise ValueError(f"task name {name!r}: {FINGERPRINT_MARK!r} is reserved for NAME{FINGERPRINT_MARK}FINGERPRINT")
    _TASKS[name] = (factory, description)
    _CANONICAL.pop(name, None)
    _LOADED.pop(name, None)


def unregister_task(name: str) -> None:
    """Forget the task registered as ``name`` (tests register throw-away tasks); unknown names are ignored."""
    _TASKS.pop(name, None)
    _CANONICAL.pop(name, None)
    _LOADED.pop(name, None)


def _builtin() -> None:
    """Register the built-in tasks on first use (not at import: no module-level side effects)."""
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED.append(True)
    generators.register_all(register_task)
    nb201.register_all(register_task)


def task_descriptions() -> dict[str, str]:
    """Every registered task's name and one-line description, sorted by name."""
    _builtin()
    return {k: v[1] for k, v in sorted(_TASKS.items())}


def get_task(spec: str, seed: int = 0) -> "Task | TabularTask":
    """A task by registered name (``"addnist-mini"``, ``"nb201-cifar10"``, ...) or by the path of a folder
    in the Unseen-NAS format.  Generated tasks are deterministic in ``seed``.  A task whose name stands for
    other data is renamed ``NAME@FINGERPRINT8`` (see the module docstring)."""
    _builtin()
    if spec in _TASKS:
        task = _TASKS[spec][0](seed=seed)
    elif os.path.isdir(spec):
        task = load_unseen(spec)
    else:
        raise KeyError(
            f"unknown task {spec!r}: not a registered name ({', '.join(sorted(_TASKS))}) nor an existing folder"
        )
    return _distinct(task, registered=spec in _TASKS and seed == 0)


def _distinct(task: Any, registered: bool) -> Any:
    """``task``, renamed ``NAME@FINGERPRINT8`` when its name stands for other data (a registered task's default
    data, or a task of that name loaded before in this process); its fingerprint is remembered."""
    name = task.name
    fingerprint = task.fingerprint()
    taken = (fingerprint if registered else canonical_fingerprint(name)) if name in _TASKS else _LOADED.get(name)
    if taken is not None and taken != fingerprint:
        if not isinstance(task, Task):
            raise ValueError(f"task {name!r}: these data (fingerprint {fingerprint[:12]}) differ from the registered "
                             f"task's ({taken[:12]}) and a {type(task).__name__} cannot be renamed")
        name = f"{name}{FINGERPRINT_MARK}{fingerprint[:FINGERPRINT_CHARS]}"
        log.info("task %r holds other data than the task of that name (fingerprint %s, not %s): named %r",
                 task.name, fingerprint[:12], taken[:12], name)
        task = dataclasses.replace(task, name=name)
    if registered:
        _CANONICAL[name] = fingerprint
    _LOADED[name] = fingerprint
    return task


def canonical_fingerprint(name: str) -> str | None:
    """The fingerprint of the registered task ``name`` with its default seed (computed once per process), or
    ``None`` for a name that is not registered or whose factory fails here (e.g. missing files)."""
    _builtin()
    if name not in _TASKS:
        return None
    if name not in _CANONICAL:
        try:
            _CANONICAL[name] = _TASKS[name][0](seed=0).fingerprint()
        except (OSError, ValueError, KeyError, ImportError) as exc:
            log.warning("task %r: cannot build it here to fingerprint it (%s)", name, exc)
            return None
    return _CANONICAL[name]


def task_fingerprint(name: str) -> str | None:
    """The fingerprint of the data that the task name ``name`` stands for in this process: the task
    ``get_task`` returned under that name, else the registered task's default data; ``None`` when unknown
    (a name this process has not loaded and cannot resolve)."""
    if name in _LOADED:
        return _LOADED[name]
    return canonical_fingerprint(name)
