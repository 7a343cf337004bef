"""Every surrogate by name, in one place: the command line, the search factory and persistence use this.

``make_surrogate(name, task, features, seed, **params)`` builds a fresh, unfitted surrogate for one of
``SURROGATES``: ``rf``, ``xgb``, ``xgb_tuned`` (tabular), ``ensemble``, ``lm`` (a fine-tuned language model;
``params`` are ``LMSurrogate`` parameters) and ``transfer`` (a transfer surrogate without sources, i.e. fitted on
the current task's normalised targets; fit one on other tasks with ``TransferSurrogate.fit_sources``).
``KINDS`` maps the kind recorded in a saved folder's manifest to the class that loads it.  A new surrogate
goes here: a ``Surrogate`` subclass, its constructor in ``SURROGATES`` and its class in ``KINDS``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from surrogates.base import Surrogate
from surrogates.ensemble import EnsembleSurrogate
from surrogates.lm import LMSurrogate
from surrogates.tabular import TabularSurrogate
from surrogates.transfer import TransferSurrogate

#: ``constructor(task, features, seed, **params)`` of each surrogate name.
SURROGATES: Mapping[str, Callable[..., Surrogate]] = {
    "rf": lambda task, features, seed, **p: TabularSurrogate("rf", features, task, random_state=seed, **p),
    "xgb": lambda task, features, seed, **p: TabularSurrogate("xgb", features, task, random_state=seed, **p),
    "xgb_tuned": lambda task, features, seed, **p: TabularSurrogate("xgb_tuned", features, task, random_state=seed, **p),
    "ensemble": lambda task, features, seed, **p: EnsembleSurrogate(features=features, task=task, random_state=seed, **p),
    "lm": lambda task, features, seed, **p: LMSurrogate(random_state=seed, **{"grammar": _grammar_of(task), **p}),
    "transfer": lambda task, features, seed, **p: TransferSurrogate(features=features, task=task, random_state=seed, **p),
}
#: The class that loads each kind of saved folder.
KINDS: Mapping[str, type[Surrogate]] = {cls.kind: cls for cls in (TabularSurrogate, EnsembleSurrogate,
                                                                    TransferSurrogate, LMSurrogate)}


def _grammar_of(task: Any) -> str | None:
    """The grammar a task object names (the LM's token vocabulary); None for a task name or a task that names
    none, and the LM takes the grammar of the architectures it is fitted on."""
    grammar = getattr(task, "grammar", None)
    return grammar if isinstance(grammar, str) else None


def surrogate_names() -> tuple[str, ...]:
    """The names ``make_surrogate`` accepts (for command-line choices)."""
    return tuple(SURROGATES)


def make_surrogate(name: str, task: Any = None, features: str | None = "graf,zcp", seed: int = 0,
                   **params: Any) -> Surrogate:
    """A fresh surrogate by name (``SURROGATES``); ``params`` go to its constructor."""
    try:
        constructor = SURROGATES[name]
    except KeyError:
        raise ValueError(f"unknown surrogate {name!r}; choose from {', '.join(SURROGATES)}") from None
    return constructor(task, features, seed, **params)

