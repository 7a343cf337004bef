"""Grammars by name: the built-in presets (einspace, einspace-quick, einspace-v1, einspace-v2, nb201, hnb201) and
registered ones."""

from __future__ import annotations

from typing import Callable

from nas.grammar.core import Grammar
from nas.grammar.einspace import build_einspace, build_einspace_v1, build_einspace_v2
from nas.grammar.hnb201 import build_hnb201
from nas.grammar.nb201 import build_nb201

_REGISTRY: dict[str, Callable[[], Grammar]] = {
    "einspace": build_einspace,
    "einspace-quick": lambda: build_einspace(0.9, name="einspace-quick"),
    "einspace-v1": build_einspace_v1,
    "einspace-v2": build_einspace_v2,
    "nb201": build_nb201,
    "hnb201": build_hnb201,
}
_CACHE: dict[str, Grammar] = {}


def register_grammar(name: str, factory: Callable[[], Grammar]) -> None:
    """Make ``get_grammar(name)`` return ``factory()`` (built once, then shared: grammars are immutable)."""
    _REGISTRY[name] = factory
    _CACHE.pop(name, None)


def get_grammar(grammar: "str | Grammar") -> Grammar:
    """Look a grammar up by name (``"einspace"``, ``"einspace-quick"``, ...), or pass one through."""
    if isinstance(grammar, Grammar):
        return grammar
    if grammar not in _REGISTRY:
        raise KeyError(f"unknown grammar {grammar!r}; known: {', '.join(sorted(_REGISTRY))}")
    if grammar not in _CACHE:
        _CACHE[grammar] = _REGISTRY[grammar]()
    return _CACHE[grammar]


def grammar_names() -> list[str]:
    """Names ``get_grammar`` knows, sorted."""
    return sorted(_REGISTRY)
