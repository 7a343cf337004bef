"""Strategies and surrogates by name, for the command line and the quickstart.

``make_surrogate("rf", task)`` gives a fresh surrogate of any name in ``surrogates.registry.SURROGATES``
(``rf``, ``xgb``, ``xgb_tuned``, ``ensemble``, ``lm``, ``transfer``); a directory saved by
``surrogates.persistence.save_surrogate`` (e.g. a transfer surrogate trained on other tasks' archives) is
loaded instead, for ``task``, and used from the first step.  ``make_strategy`` builds any of the strategies
for a task (``bo``, Bayesian optimisation with a WL-kernel GP, needs no surrogate: its model is built in);
``default_start_after`` is when a filtered search starts using a surrogate fitted during the run.
"""

from __future__ import annotations

import os
from typing import Any

from data.task import grammar_of
from nas.grammar.core import Budget
from nas.sampler import Sampler
from nas.search.bo import BayesianOptimisation
from nas.search.evolution import RegularizedEvolution
from nas.search.random import RandomSearch
from nas.search.surrogate import SurrogateFilteredEvolution, SurrogateObjective
from surrogates import registry
from surrogates.persistence import load_surrogate

STRATEGIES = ("random", "re", "filtered", "objective", "bo")
SURROGATES = registry.surrogate_names()
#: The most evaluations a filtered search runs as plain RE before its surrogate, fitted on them, is used.
MAX_START_AFTER = 100


def default_start_after(budget_evals: int | None) -> int:
    """Evaluations before a filtered search starts using a surrogate fitted during the run: ``min(100,
    budget // 3)``, so that it filters for most of any budget (a pre-fitted surrogate filters from the first
    step whatever this is)."""
    if budget_evals is None:
        return MAX_START_AFTER
    return max(0, min(MAX_START_AFTER, int(budget_evals) // 3))


def make_surrogate(spec: str, task: Any, features: str = "graf,zcp", seed: int = 0,
                   **params: Any) -> tuple[Any, bool]:
    """``(surrogate, prefitted)``: a fresh surrogate named ``spec`` on ``features`` (``params`` go to its
    constructor, e.g. ``epochs`` for ``lm``), or the one saved in the folder ``spec``, loaded for ``task``."""
    if spec in registry.SURROGATES:
        return registry.make_surrogate(spec, task, features, seed, **params), False
    if os.path.isdir(spec):
        return load_surrogate(spec, task=task), True
    raise ValueError(f"unknown surrogate {spec!r}: expected one of {', '.join(SURROGATES)} or a saved surrogate folder")


def make_strategy(
    name: str,
    task: Any,
    seed: int = 0,
    budget: Budget | None = None,
    grammar: str | None = None,
    seed_arch: str | None = None,
    surrogate: Any = None,
    prefit: bool = False,
    population_size: int = 100,
    tournament_size: int = 10,
    **options: Any,
):
    """A strategy for ``task`` (an object with ``input_shape`` and optionally ``grammar``).  ``options`` go to
    the strategy: ``mode``, ``n_candidates``, ``k``, ``quantile``, ``start_after``, ``refit_every`` for
    ``filtered``; ``steps``, ``top_k`` for ``objective``; any ``BayesianOptimisation`` argument (``n_init``,
    ``pool_size``, ``hierarchical``, ``h``, ...) for ``bo``, which ignores ``population_size``,
    ``tournament_size``, ``seed_arch`` and ``surrogate``."""
    grammar = grammar_of(task, grammar)
    sampler = Sampler(grammar, task.input_shape, budget)
    if name == "random":
        return RandomSearch(sampler, seed)
    if name == "re":
        return RegularizedEvolution(sampler, seed, population_size, tournament_size, seeds=seed_arch)
    if name == "bo":
        return BayesianOptimisation(sampler, seed, **options)
    if surrogate is None:
        raise ValueError(f"strategy {name!r} needs a surrogate")
    if name == "filtered":
        return SurrogateFilteredEvolution(sampler, seed, surrogate, prefit=prefit, population_size=population_size,
                                          tournament_size=tournament_size, seeds=seed_arch, **options)
    if name == "objective":
        if not prefit:
            raise ValueError("the surrogate-as-objective strategy needs a fitted surrogate (a saved surrogate folder)")
        return SurrogateObjective(sampler, seed, surrogate, population_size=population_size,
                                  tournament_size=tournament_size, **options)
    raise ValueError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")
