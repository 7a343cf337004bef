"""The task value: a named classification dataset with train/valid/test splits, and its fingerprint.

A ``Task`` holds its arrays in memory (``x``: float32, ``N×C×H×W`` images or ``N×S×D`` sequences; ``y``:
int64 class labels).  A ``TabularTask`` is a task whose evaluation is a table look-up (NAS-Bench-201).  The
registry that names tasks is ``data.tasks``.
"""

from __future__ import annotations

import hashlib
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
    """A classification task.  ``metadata`` holds free-form facts (source, recipe, seed, chance level)."""

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    train: Split
    valid: Split
    test: Split
    metadata: Mapping[str, Any] = field(default_factory=dict)

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
        """SHA-256 over every array's bytes, shapes and the class count: equal fingerprints, equal data."""
        h = hashlib.sha256()
        h.update(repr((self.name, tuple(self.input_shape), self.num_classes)).encode())
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
            "metadata": dict(self.metadata),
        }


def grammar_of(task: Any, grammar: str | None = None) -> str:
    """The grammar to use for ``task``'s architectures: ``grammar`` when given, else the task's own (tabular tasks
    name one), else einspace.  ``task`` may be a ``Task``, a name or ``None``."""
    return grammar or getattr(task, "grammar", None) or "einspace"
