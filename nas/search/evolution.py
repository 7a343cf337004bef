"""Regularised (aging) evolution, unseeded or seeded, as in einspace.

Unseeded, the first ``population_size`` asks are random samples.  Seeded, each distinct seed is asked
(evaluated) once, then the population starts as ``population_size`` copies of the evaluated seeds filled
round-robin in seed order (``"mixed"``: 25 copies each of ResNet-18, WRN-16-4, ViT and MLP-Mixer at the
default size 100).  The copies are not evaluated again and are not asks: a published seeded run of 1,000
"samples" counts the copies, i.e. it evaluates the seeds plus ``1000 - population_size`` children, so pass
``budget_evals = 1000 - population_size + len(seeds)`` to ``run_search`` to match it.

Every later ask runs a tournament of ``tournament_size`` members drawn *with replacement* from the
population (the winner has the best validation accuracy; failures count as worst; ties go to the earliest
draw) and returns ``mutate(winner)``.  Every told result joins the population as its newest member and the
oldest is dropped once it holds more than ``population_size`` (aging, FIFO).  The population is a pure
function of the told history, so it is rebuilt exactly by replay.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from data.training import Evaluation
from nas.architecture import Architecture
from nas.errors import InvalidArchitectureError, MutationError
from nas.grammar.core import Budget
from nas.mutation import mutate
from nas.search.base import Member, Strategy, describe
from nas.seeds import get_seed, seed_set

log = logging.getLogger(__name__)

def resolve_seeds(seeds: Any, input_shape: Sequence[int], grammar: Any = "einspace") -> list[Architecture]:
    """The distinct seed architectures of a spec (``None``, a seed name, a seed set such as ``"mixed"``
    (``nas.seeds.SEED_SETS``), an Architecture, or a list of names and Architectures), in order, as
    architectures of ``grammar``."""
    if seeds is None:
        return []
    if isinstance(seeds, (str, Architecture)):
        seeds = list(seed_set(seeds) or (seeds,)) if isinstance(seeds, str) else [seeds]
    out: list[Architecture] = []
    seen: set[str] = set()
    for item in seeds:
        if isinstance(item, str):
            if seed_set(item) is not None:
                raise ValueError(f"seed set {item!r} cannot appear inside a list of seeds")
            try:
                arch = get_seed(item, input_shape, grammar)
            except InvalidArchitectureError as exc:
                name = getattr(grammar, "name", grammar)
                raise ValueError(f"seed {item!r} is not an architecture of grammar {name!r}: {exc}") from None
        elif isinstance(item, Architecture):
            arch = item
        else:
            raise TypeError(f"a seed must be a seed name or an Architecture, got {type(item).__name__}")
        if arch.hash not in seen:
            seen.add(arch.hash)
            out.append(arch)
    if not out:
        raise ValueError("seeds: empty list; pass None for an unseeded search")
    return out


def tournament_index(fitnesses: Sequence[float], size: int, rng: np.random.Generator) -> int:
    """Index of the winner of a tournament of ``size`` draws with replacement among ``fitnesses``: the
    highest fitness wins, the earliest draw on ties."""
    if not len(fitnesses):
        raise ValueError("tournament on an empty population")
    draws = rng.integers(len(fitnesses), size=size)
    best = int(draws[0])
    for i in draws[1:]:
        if fitnesses[int(i)] > fitnesses[best]:
            best = int(i)
    return best


def mutate_or_sample(
    parent: Architecture, rng: np.random.Generator, sampler, budget: Budget, max_tries: int
) -> Architecture:
    """One mutation of ``parent`` within ``budget``; a random sample if no valid mutant is found."""
    try:
        return mutate(parent, rng, budget, max_tries=max_tries)
    except MutationError as exc:
        log.warning("mutation failed (%s); sampling a random architecture instead", exc)
        return sampler.sample(rng)


class RegularizedEvolution(Strategy):
    """Aging evolution with tournament selection and one subtree-resampling mutation per child.

    ``budget`` is the sampling ``Budget`` mutants must respect (default: the sampler's); a parent whose
    mutation fails ``max_mutation_tries`` times is replaced by a random sample."""

    def __init__(
        self,
        sampler,
        seed: int,
        population_size: int = 100,
        tournament_size: int = 10,
        seeds: Any = None,
        budget: Budget | None = None,
        max_mutation_tries: int = 100,
    ) -> None:
        super().__init__(sampler, seed)
        if population_size < 1 or tournament_size < 1:
            raise ValueError(
                f"population_size and tournament_size must be positive, got {population_size}, {tournament_size}"
            )
        self.population_size = int(population_size)
        self.tournament_size = int(tournament_size)
        self.budget = budget if budget is not None else sampler.budget
        self.max_mutation_tries = int(max_mutation_tries)
        self.seeds = [self._check_arch(a, "seed") for a in resolve_seeds(seeds, sampler.input_shape, sampler.grammar)]
        if len(self.seeds) > self.population_size:
            raise ValueError(f"{len(self.seeds)} seeds do not fit a population of {self.population_size}")
        for i, arch in enumerate(self.seeds):
            try:
                arch.check_budget(self.budget)
            except ValueError as exc:
                raise ValueError(f"seed {i} ({arch!r}) is over the mutation budget: {exc}") from None
        self._seed_pos = {a.hash: i for i, a in enumerate(self.seeds)}
        self._seed_first: dict[int, int] = {}  # seed position -> history index of its first tell

    # -- state -----------------------------------------------------------------------------------

    def tell(self, arch: Architecture, evaluation: Evaluation) -> None:
        super().tell(arch, evaluation)
        pos = self._seed_pos.get(arch.hash)
        if pos is not None and pos not in self._seed_first:
            self._seed_first[pos] = len(self.history) - 1

    def population(self, upto: int | None = None) -> list[Member]:
        """The population after the first ``upto`` tells (default: all), oldest first."""
        upto = len(self.history) if upto is None else max(0, min(int(upto), len(self.history)))
        size = self.population_size
        if not self.seeds:
            return self.history[max(0, upto - size) : upto]
        firsts = {pos: i for pos, i in self._seed_first.items() if i < upto}
        seed_rows = set(firsts.values())
        children: list[Member] = []
        i = upto - 1
        while i >= 0 and len(children) < size:
            if i not in seed_rows:
                children.append(self.history[i])
            i -= 1
        children.reverse()
        d = len(self.seeds)
        copies = [self.history[firsts[j % d]] for j in range(size) if (j % d) in firsts]
        return (copies + children)[-size:]

    # -- asking ----------------------------------------------------------------------------------

    def _ask(self, step: int) -> tuple[Architecture | None, dict[str, Any]]:
        if step < len(self.seeds):
            return self.seeds[step], {"kind": "seed", "proposed": 1}
        arch, kind = self.propose(step, self.rng(step), self.population())
        return arch, {"kind": kind, "proposed": 1}

    def propose(self, step: int, rng: np.random.Generator, population: Sequence[Member]) -> tuple[Architecture, str]:
        """Plain RE's candidate for ask ``step`` from ``population``: a random sample while an unseeded
        initial population is being built, else a mutant of a tournament winner."""
        if not self.seeds and step < self.population_size:
            return self.sampler.sample(rng), "random"
        if not population:  # nothing told yet (several evaluations in flight)
            if self.seeds:
                return self.mutate(self.seeds[int(rng.integers(len(self.seeds)))], rng), "mutant"
            return self.sampler.sample(rng), "random"
        return self.mutate(self.tournament(population, rng).arch, rng), "mutant"

    def tournament(self, population: Sequence[Member], rng: np.random.Generator) -> Member:
        """Draw ``tournament_size`` members with replacement; the fittest wins (earliest draw on ties)."""
        return population[tournament_index([m.fitness for m in population], self.tournament_size, rng)]

    def mutate(self, parent: Architecture, rng: np.random.Generator) -> Architecture:
        """One mutation of ``parent``; a random sample if no valid mutant is found."""
        return mutate_or_sample(parent, rng, self.sampler, self.budget, self.max_mutation_tries)

    def config(self) -> dict[str, Any]:
        return super().config() | {
            "population_size": self.population_size,
            "tournament_size": self.tournament_size,
            "seeds": [a.hash for a in self.seeds],
            "budget": describe(self.budget),
            "max_mutation_tries": self.max_mutation_tries,
        }
