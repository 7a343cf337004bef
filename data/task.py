"""The task value: a named classification dataset with train/valid/test splits, and its fingerprint.

A ``Task`` holds its arrays in memory (``x``: float32, ``N×C×H×W`` images or ``N×S×D`` sequences; ``y``:
int64 class labels).  A ``TabularTask`` is a task whose evaluation is a table look-up (NAS-Bench-201).  The
registry that names tasks is ``data.tasks``.

A task's identity is its name and its fingerprint (evaluations are stored under both, see ``data.archive``).
The fingerprint must be the same on every machine, because archives built on one machine are used on others:
a task built by code from a recipe (the offline generators) is fingerprinted by its recipe (generator, version,
every parameter, the bytes of any input files), never by float data that another CPU might round differently;
a task read from files (Unseen-NAS folders) by the bytes of its arrays, which are the files' bytes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Split:
    """One split of a task: inputs ``x`` (float32, first axis = examples) and labels ``y`` (int64)."""

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"split has {len(self.x)} inputs but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.y)

    def head(self, n: int | None) -> "Split":
        """The first ``n`` examples (all when ``n`` is None or larger than the split)."""
        if n is None or n >= len(self):
            return self
        return Split(self.x[:n], self.y[:n])


@dataclass(frozen=True)
class Task:
    """A classification task.  ``metadata`` holds free-form facts (source, recipe, seed, chance level).
    ``recipe``: for a task built by code, canonical JSON of everything that determines its data (see
    ``fingerprint``); ``None`` for data read from files or made by hand."""

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    train: Split
    valid: Split
    test: Split
    metadata: Mapping[str, Any] = field(default_factory=dict)
    recipe: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for split in SPLITS:
            s: Split = getattr(self, split)
            if tuple(s.x.shape[1:]) != tuple(self.input_shape):
                raise ValueError(
                    f"task {self.name!r}: {split}_x has example shape {tuple(s.x.shape[1:])}, "
                    f"expected {tuple(self.input_shape)}"
                )
            if len(s) and (s.y.min() < 0 or s.y.max() >= self.num_classes):
                raise ValueError(
                    f"task {self.name!r}: {split}_y has labels outside 0..{self.num_classes - 1} "
                    f"(min {s.y.min()}, max {s.y.max()})"
                )

    is_tabular = False

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise KeyError(f"unknown split {name!r}; expected one of {SPLITS}")
        return getattr(self, name)

    def chance_level(self, split: str = "valid") -> float:
        """Accuracy of always predicting the most common training class, measured on ``split``."""
        s = self.split(split)
        if not len(s):
            return float("nan")
        majority = np.bincount(self.train.y, minlength=self.num_classes).argmax()
        return float(np.mean(s.y == majority))

    def fingerprint(self) -> str:
        """The identity of the task's data, the same on every machine (computed once, then cached): SHA-256 of
        the ``recipe`` when the task has one, else over every array's bytes, shapes and the class count (equal
        fingerprints, equal data).  The name is not part of it (a renamed task keeps its fingerprint)."""
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            cached = recipe_fingerprint(self.recipe) if self.recipe is not None else self._data_fingerprint()
            object.__setattr__(self, "_fingerprint", cached)  # a cache on a frozen value, not a field
        return cached

    def _data_fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(repr(("data", tuple(self.input_shape), self.num_classes)).encode())
        for split in SPLITS:
            s = self.split(split)
            for a in (np.ascontiguousarray(s.x), np.ascontiguousarray(s.y)):
                h.update(repr((a.dtype.str, a.shape)).encode())
                h.update(a.tobytes())
        return h.hexdigest()

    def describe(self) -> dict:
        """A JSON-able summary (no arrays)."""
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "sizes": {s: len(self.split(s)) for s in SPLITS},
            "chance_level": round(self.chance_level(), 4),
            "fingerprint": self.fingerprint(),
            "metadata": dict(self.metadata),
        }


class TabularTask:
    """A task whose evaluations are looked up in a table instead of trained (e.g. NAS-Bench-201).
    Subclasses provide ``grammar``, ``input_shape`` and ``lookup(arch) -> metrics``."""

    is_tabular = True
    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    grammar: str
    #: the grammars whose architectures ``lookup`` finds (default: ``grammar`` alone)
    grammars: tuple[str, ...] = ()
    metadata: Mapping[str, Any]

    def lookup(self, arch) -> dict[str, float]:  # pragma: no cover - interface
        raise NotImplementedError

    def fingerprint(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> dict:
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "tabular": True,
            "grammar": self.grammar,
            "fingerprint": self.fingerprint(),
            "metadata": dict(self.metadata),
        }


def recipe_fingerprint(recipe: str) -> str:
    """The fingerprint of a task built from ``recipe`` (see ``Task.fingerprint``)."""
    return hashlib.sha256(("recipe\n" + recipe).encode()).hexdigest()


def make_recipe(generator: str, version: int, parameters: Mapping[str, Any]) -> str:
    """Canonical JSON of a generator's name, version and parameters (numbers as Python writes them, which is
    the same on every machine): the ``recipe`` of the task it builds."""
    return json.dumps({"generator": generator, "version": int(version), "parameters": dict(parameters)},
                      sort_keys=True, separators=(",", ":"), allow_nan=False)


def grammar_of(task: Any, grammar: str | None = None) -> str:
    """The grammar to use for ``task``'s architectures: ``grammar`` when given, else the task's own (tabular tasks
    name one), else einspace.  ``task`` may be a ``Task``, a name or ``None``.  A grammar whose architectures a
    tabular task cannot look up is a ``ValueError`` (before any candidate is drawn)."""
    own = getattr(task, "grammar", None)
    accepted = tuple(getattr(task, "grammars", None) or (own,))
    if grammar and own and grammar not in accepted:
        raise ValueError(f"task {getattr(task, 'name', task)!r} looks up {' and '.join(accepted)} architectures in "
                         f"a table; grammar {grammar!r} cannot be evaluated on it")
    return grammar or own or "einspace"
