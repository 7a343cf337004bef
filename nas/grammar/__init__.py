"""Probabilistic context-free grammars of neural architectures (no torch at import time)."""

from nas.grammar.core import (
    Branch,
    Budget,
    Chain,
    Dag,
    Flow,
    Grammar,
    Operation,
    Signal,
    Terminal,
    Vocabulary,
)
from nas.grammar.derive import Node, NodeInfo
from nas.grammar.registry import get_grammar, grammar_names, register_grammar

__all__ = [
    "Branch",
    "Budget",
    "Chain",
    "Dag",
    "Flow",
    "Grammar",
    "Node",
    "NodeInfo",
    "Operation",
    "Signal",
    "Terminal",
    "Vocabulary",
    "get_grammar",
    "grammar_names",
    "register_grammar",
]
