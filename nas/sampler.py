"""Budgeted top-down sampling of architectures from a grammar.

Options are drawn left to right in data-flow order, each given the exact input shapes; an option whose
subtree cannot be completed (no valid aggregation for the branch shapes, a budget would be exceeded, ...)
is removed and another drawn, v1-style.  Node and depth budgets are respected without dead ends by
reserving the smallest completion of every pending sibling.  A cap on draws bounds the work; past it the
sampler starts over with the same generator, and after ``max_restarts`` it gives up with a clear error.
"""

from __future__ import annotations

import logging
import math
from typing import Iterator, Sequence

import numpy as np

from nas.architecture import Architecture, parse_shape
from nas.errors import SamplingError
from nas.grammar.core import Budget, Grammar, Signal
from nas.grammar.derive import MAX_TREE_DEPTH, DeadEnd, Derivation, Restart
from nas.grammar.registry import get_grammar

log = logging.getLogger(__name__)


def as_generator(rng: "np.random.Generator | int | None") -> np.random.Generator:
    """Accept a ``Generator`` or an integer seed; refuse ``None`` so no hidden global state is used."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be a numpy.random.Generator or an int seed, got {rng!r}")


class Sampler:
    """Samples architectures of ``grammar`` for one input shape under a ``Budget``."""

    def __init__(
        self,
        grammar: "str | Grammar" = "einspace",
        input_shape: "str | Sequence[int]" = (3, 32, 32),
        budget: Budget | None = None,
        max_attempts: int | None = None,
        max_restarts: int = 50,
    ) -> None:
        self.grammar = get_grammar(grammar)
        self.input_shape = parse_shape(input_shape)
        self.budget = budget if budget is not None else self.grammar.budget()
        if self.budget.max_depth > MAX_TREE_DEPTH:
            raise ValueError(f"Budget.max_depth must be at most {MAX_TREE_DEPTH}, got {self.budget.max_depth}")
        self.max_attempts = max_attempts if max_attempts is not None else 20 * self.budget.max_nodes + 1000
        self.max_restarts = max_restarts
        self._check_feasible()

    def _check_feasible(self) -> None:
        b, g = self.budget, self.grammar
        reason = g.check_input(self.input_shape)
        if reason is not None:
            raise SamplingError(reason)
        roots = [op for op in g.options(g.start) if op.weight > 0]
        if min((g.min_nodes(op) for op in roots), default=math.inf) > b.max_nodes:
            raise SamplingError(f"max_nodes={b.max_nodes} is below the smallest network of {g.name!r}")
        if min((g.min_height(op) for op in roots), default=math.inf) > b.max_depth:
            raise SamplingError(f"max_depth={b.max_depth} is below the shallowest network of {g.name!r}")
        if math.prod(self.input_shape) * b.batch_size > b.max_activation:
            raise SamplingError(
                f"max_activation={b.max_activation:,} is below the input itself "
                f"({math.prod(self.input_shape):,} elements × batch {b.batch_size})"
            )

    def sample(self, rng: "np.random.Generator | int") -> Architecture:
        """One architecture; the same generator state gives the same architecture on any machine."""
        rng = as_generator(rng)
        flow = (Signal(self.input_shape),)
        attempts = 0
        for restart in range(self.max_restarts):
            derivation = Derivation(self.grammar, self.budget, rng, self.max_attempts)
            try:
                root, _ = derivation.run(None, flow)
            except (Restart, DeadEnd):
                attempts += derivation.attempts
                log.debug("sampling restart %d after %d draws", restart + 1, derivation.attempts)
                continue
            return Architecture._trusted(root, self.input_shape, self.grammar, derivation.infos)
        raise SamplingError(
            f"no architecture of {self.grammar.name!r} for input {self.input_shape} within the budget "
            f"({self.budget.describe()}) after {self.max_restarts} restarts and {attempts:,} draws; "
            "loosen the tightest budget"
        )

    def sample_many(self, n: int, rng: "np.random.Generator | int") -> Iterator[Architecture]:
        rng = as_generator(rng)
        for _ in range(n):
            yield self.sample(rng)


def sample_architecture(
    rng: "np.random.Generator | int",
    grammar: "str | Grammar" = "einspace",
    input_shape: "str | Sequence[int]" = (3, 32, 32),
    budget: Budget | None = None,
) -> Architecture:
    """Convenience wrapper: one architecture from a fresh ``Sampler``."""
    return Sampler(grammar, input_shape, budget).sample(rng)
