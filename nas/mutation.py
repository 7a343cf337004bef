"""Mutation (subtree resampling) and crossover (subtree exchange) with full re-validation.

Both always return a valid architecture, within the budget and different from its parent(s), or raise
``MutationError`` after ``max_tries`` attempts.
"""

from __future__ import annotations

import numpy as np

from nas.architecture import Architecture
from nas.errors import InvalidArchitectureError, MutationError
from nas.grammar.core import Budget, Signal
from nas.grammar.derive import DeadEnd, Derivation, Hole, OverBudget, Restart, replace_at, subtree_at
from nas.sampler import as_generator

_RETRY = (DeadEnd, Restart, OverBudget, InvalidArchitectureError)


def mutate(
    arch: Architecture,
    rng: "np.random.Generator | int",
    budget: Budget | None = None,
    max_tries: int = 100,
) -> Architecture:
    """Pick a node uniformly, resample its subtree from the grammar with that node's input shape (a
    terminal must change op; a nonterminal's new subtree must differ), then re-infer the whole tree,
    since downstream shapes may change.  Retries with a fresh node when the result is invalid or over
    budget (by default the grammar's, ``Grammar.budget()``)."""
    rng = as_generator(rng)
    budget = budget if budget is not None else arch.grammar.budget()
    infos = arch.nodes
    flow = (Signal(arch.input_shape),)
    max_attempts = 20 * budget.max_nodes + 1000
    for _ in range(max_tries):
        info = infos[int(rng.integers(len(infos)))]
        old = subtree_at(arch.root, info.path)
        after = len(infos) - info.index - old.size()
        hole = Hole(exclude=info.op.name if info.op.is_terminal else None, reserve=after)
        template = replace_at(arch.root, info.path, hole)  # type: ignore[arg-type]
        derivation = Derivation(arch.grammar, budget, rng, max_attempts)
        try:
            root, _ = derivation.run(template, flow)
        except _RETRY:
            continue
        if subtree_at(root, info.path) == old:
            continue
        return Architecture._trusted(root, arch.input_shape, arch.grammar, derivation.infos)
    raise MutationError(f"no valid in-budget mutant of {arch!r} after {max_tries} tries")


def crossover(
    a: Architecture,
    b: Architecture,
    rng: "np.random.Generator | int",
    budget: Budget | None = None,
    max_tries: int = 100,
) -> Architecture:
    """Replace a uniformly chosen subtree of ``a`` by a compatible subtree of ``b``: the same input signal
    and the same level, or, unless the grammar has ``strict_levels`` (levels that are positions, such as
    NAS-Bench-201's edges, where an op must stay on its edge), any level that has the subtree's op as an
    option of ``a``'s level.  The child is re-validated whole."""
    rng = as_generator(rng)
    budget = budget if budget is not None else a.grammar.budget()
    if a.grammar.name != b.grammar.name or a.input_shape != b.input_shape:
        raise ValueError("crossover needs parents of the same grammar and input shape")
    grammar = a.grammar
    strict = grammar.strict_levels
    flow = (Signal(a.input_shape),)
    for _ in range(max_tries):
        ia = a.nodes[int(rng.integers(a.num_nodes))]
        old = subtree_at(a.root, ia.path)
        candidates = [
            ib
            for ib in b.nodes
            if ib.inputs == ia.inputs
            and (ib.level == ia.level if strict else grammar.operation(ia.level, ib.op.name) is not None)
            and subtree_at(b.root, ib.path) != old
        ]
        if not candidates:
            continue
        ib = candidates[int(rng.integers(len(candidates)))]
        root = replace_at(a.root, ia.path, subtree_at(b.root, ib.path))
        derivation = Derivation(grammar, budget)
        try:
            derivation.run(root, flow)
        except _RETRY:
            continue
        return Architecture._trusted(root, a.input_shape, grammar, derivation.infos)
    raise MutationError(f"no valid in-budget crossover of {a!r} and {b!r} after {max_tries} tries")
