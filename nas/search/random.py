"""Random search (every ask a fresh sample from the grammar) and random mutants of known architectures."""

from __future__ import annotations

from typing import Any, Sequence

from data.training import Evaluation
from nas.architecture import Architecture
from nas.grammar.core import Budget
from nas.mutation import mutate
from nas.search.base import Strategy


class RandomSearch(Strategy):
    """Samples architecture ``k`` from ``default_rng([seed, k])``; what it is told changes nothing, so its
    stream is the same however a run was interrupted or parallelised."""

    def _ask(self, step: int) -> tuple[Architecture | None, dict[str, Any]]:
        return self.sampler.sample(self.rng(step)), {"kind": "random", "proposed": 1}


class MutantSearch(Strategy):
    """Ask ``k`` mutates a parent drawn uniformly from ``parents`` plus every successful result told so far,
    with ``default_rng([seed, k])``; a fresh sample while there is no parent.  An archive build's
    ``mutants`` sampler."""

    def __init__(self, sampler, seed: int, parents: Sequence[Architecture] = (), budget: Budget | None = None) -> None:
        super().__init__(sampler, seed)
        self.parents = list(parents)
        self.budget = budget

    def tell(self, arch: Architecture, evaluation: Evaluation) -> None:
        super().tell(arch, evaluation)
        if evaluation.ok:
            self.parents.append(arch)

    def _ask(self, step: int) -> tuple[Architecture | None, dict[str, Any]]:
        rng = self.rng(step)
        if not self.parents:
            return self.sampler.sample(rng), {"kind": "random", "proposed": 1}
        parent = self.parents[int(rng.integers(len(self.parents)))]
        return mutate(parent, rng, self.budget), {"kind": "mutant", "proposed": 1}
