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
from nas.search.surrogate import OBJECTIVE_PROTOCOLS, SurrogateFilteredEvolution, SurrogateObjective
from surrogates import registry
from surrogates.persistence import load_surrogate

STRATEGIES = ("random", "re", "filtered", "objective", "bo")
SURROGATES = registry.surrogate_names()
#: The features of the default filter (``nas search --strategy filtered``): GRAF, about a millisecond per
#: candidate (1.3 % of a filtered search's wall-clock).  The 13 zero-cost proxies rank better (within-task τ 0.53
#: against 0.28 on addnist-mini) but cost a median 4.6 % of a reduced-protocol training per candidate (p90 11 %),
#: computed in the searching process for every candidate: 40-50 % of the wall-clock with 20 candidates per 5
#: trained, 22 % with ``shortlist=10`` (experiments/results/filter_features.md).
FILTER_FEATURES = "graf"
#: The first stage of a two-stage filter (``shortlist``).
PREFILTER_FEATURES = "graf"
#: The most evaluations a filtered search runs as plain RE before its surrogate, fitted on them, is used.
MAX_START_AFTER = 100


def default_start_after(budget_evals: int | None) -> int:
    """Evaluations before a filtered search starts using a surrogate fitted during the run: ``min(100,
    budget // 3)``, so that it filters for most of any budget (a pre-fitted surrogate filters from the first
    step whatever this is)."""
    if budget_evals is None:
        return MAX_START_AFTER
    return max(0, min(MAX_START_AFTER, int(budget_evals) // 3))


def make_prefilter(task: Any, seed: int = 0) -> Any:
    """The first stage of a two-stage filter: a random forest on ``PREFILTER_FEATURES`` (milliseconds per
    candidate), fitted during the run on the same evaluations as the surrogate."""
    return registry.make_surrogate("rf", task, PREFILTER_FEATURES, seed)


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
    ``filtered`` (``shortlist`` makes it a two-stage filter with ``make_prefilter`` as the first stage);
    ``protocol`` (``topk``, the default, or ``published``: it fits a surrogate that is not ``prefit`` on its
    trained first generation), ``steps``, ``top_k``, ``threshold`` for ``objective``; any
    ``BayesianOptimisation`` argument (``n_init``, ``pool_size``, ``hierarchical``, ``h``, ...) for ``bo``,
    which ignores ``population_size``,
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
        if options.get("shortlist") is not None and options.get("prefilter") is None:
            options["prefilter"] = make_prefilter(task, seed)
        return SurrogateFilteredEvolution(sampler, seed, surrogate, prefit=prefit, population_size=population_size,
                                          tournament_size=tournament_size, seeds=seed_arch, **options)
    if name == "objective":
        options.setdefault("protocol", OBJECTIVE_PROTOCOLS[0])
        if not prefit and options["protocol"] != "published":
            raise ValueError(f"the {options['protocol']} surrogate-as-objective protocol needs a fitted surrogate (a "
                             "saved surrogate folder); the published protocol fits one on its first generation")
        return SurrogateObjective(sampler, seed, surrogate, population_size=population_size,
                                  tournament_size=tournament_size, prefit=prefit, **options)
    raise ValueError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")
