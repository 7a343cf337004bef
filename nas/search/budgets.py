"""Named sampling budgets: how large the architectures a search or an archive build draws may be."""

from __future__ import annotations

from typing import Any

from data.task import grammar_of
from nas.grammar import Budget, get_grammar

#: Sampling budgets that keep random networks CPU-sized, so that an evaluation under the reduced protocol
#: takes seconds: at most 300k parameters, 3 MFLOPs per sample, 300 layers, 8M activation elements at
#: batch 64.
CPU_BUDGET = Budget(max_nodes=120, max_depth=30, max_params=300_000, max_flops=3e6,
                    max_activation=8 * 2**20, batch_size=64, max_layers=300)
BUDGETS = {"default": Budget(), "cpu": CPU_BUDGET}


def sampling_budget(budget: "Budget | str", task: Any = None, grammar: str | None = None) -> Budget:
    """The ``Budget`` named ``budget`` (or ``budget`` itself) for sampling architectures of ``grammar`` (default:
    the task's, else einspace) for ``task``.  ``default`` is the grammar's own default budget
    (``Grammar.budget()``: ``Budget()`` for einspace).  ``cpu`` bounds the cost of *training* on a CPU, so a
    tabular task (a look-up, nothing trained, e.g. NAS-Bench-201, whose networks have up to 1.5M parameters)
    gets the grammar's default instead."""
    if isinstance(budget, Budget):
        return budget
    if budget not in BUDGETS:
        raise KeyError(f"unknown budget {budget!r}; known: {', '.join(sorted(BUDGETS))}")
    if budget == "default" or getattr(task, "is_tabular", False):
        return get_grammar(grammar_of(task, grammar)).budget()
    return BUDGETS[budget]
