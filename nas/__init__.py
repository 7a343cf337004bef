"""Neural architecture search in grammar-based search spaces: grammar, architectures, compiler, search.

``from nas import Study`` is the Python entry point of a whole study (``nas.study``); it is imported on first
use, so that ``import nas.grammar`` and ``nas --help`` stay light (no torch)."""

from typing import Any

__all__ = ["Study"]


def __getattr__(name: str) -> Any:
    if name == "Study":
        from nas.study import Study  # deferred: the study imports the search engine and torch

        return Study
    raise AttributeError(f"module 'nas' has no attribute {name!r}")
