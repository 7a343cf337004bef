"""The task registry: tasks by name (``get_task``), ``register_task`` for new ones, and their descriptions.

Tasks come from three sources: the offline generators of Unseen-NAS-like tasks (``data.generators``),
folders in the Unseen-NAS format (``data.unseen``), and tabular benchmarks whose evaluation is a look-up
(``data.nb201``).  ``get_task`` resolves a registered name or a folder.  The task value itself lives in
``data.task`` (re-exported here).
"""

from __future__ import annotations

import os
from typing import Any, Callable

from data import generators, nb201
from data.task import SPLITS, Split, TabularTask, Task
from data.unseen import load_unseen

__all__ = ["SPLITS", "Split", "TabularTask", "Task", "get_task", "register_task", "task_descriptions",
           "unregister_task"]

#: name -> (factory(seed=...) -> Task | TabularTask, one-line description)
_TASKS: dict[str, tuple[Callable[..., Any], str]] = {}
_BUILTINS_LOADED: list[bool] = []


def register_task(name: str, factory: Callable[..., Any], description: str = "") -> None:
    """Make ``get_task(name, seed=s)`` return ``factory(seed=s)``."""
    _builtin()  # so that a later first use does not overwrite this registration
    _TASKS[name] = (factory, description)


def unregister_task(name: str) -> None:
    """Forget the task registered as ``name`` (tests register throw-away tasks); unknown names are ignored."""
    _TASKS.pop(name, None)


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
    in the Unseen-NAS format.  Generated tasks are deterministic in ``seed``."""
    _builtin()
    if spec in _TASKS:
        return _TASKS[spec][0](seed=seed)
    if os.path.isdir(spec):
        return load_unseen(spec)
    raise KeyError(
        f"unknown task {spec!r}: not a registered name ({', '.join(sorted(_TASKS))}) nor an existing folder"
    )
