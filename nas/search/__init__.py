"""Search: ask/tell strategies (which never train), the run engine that drives them, executors and reports.

``RandomSearch``, ``RegularizedEvolution`` (unseeded or seeded), ``SurrogateFilteredEvolution`` (top-k of
n or rejection by prediction quantile), ``SurrogateObjective`` and ``BayesianOptimisation`` (a GP with a
(hierarchical) Weisfeiler–Lehman graph kernel, ``nas.search.wl``).  ``SearchRun`` (``nas.search.engine``)
drives any of them with a ``concurrent.futures`` executor and an ``Archive``, evaluating by training on a task
(``TaskEvaluator``) or with any function ``architecture -> val_acc`` (``FunctionEvaluator``), and resumes by
re-running; ``run_search`` and ``build_archive`` are its entry points.  Importing this package imports
neither torch nor Dask.
"""

from nas.search.base import Member, Strategy, fitness
from nas.search.bo import BayesianOptimisation
from nas.search.budgets import BUDGETS, CPU_BUDGET, sampling_budget
from nas.search.build import build_archive
from nas.search.engine import SearchRun
from nas.search.evaluators import Evaluator, FunctionEvaluator, TaskEvaluator, evaluate_many
from nas.search.evolution import RegularizedEvolution
from nas.search.executors import SerialExecutor, make_dask_executor, make_executor
from nas.search.history import HistoryEntry, run_history, summarize
from nas.search.random import MutantSearch, RandomSearch
from nas.search.runner import run_search
from nas.search.surrogate import SurrogateFilteredEvolution, SurrogateObjective
from nas.search.wl import HierarchicalWLKernel, WLKernel

__all__ = [
    "BUDGETS", "BayesianOptimisation", "CPU_BUDGET", "Evaluator", "FunctionEvaluator", "HierarchicalWLKernel",
    "HistoryEntry", "Member", "MutantSearch", "RandomSearch", "RegularizedEvolution", "SearchRun", "SerialExecutor",
    "Strategy", "SurrogateFilteredEvolution", "SurrogateObjective", "TaskEvaluator", "WLKernel", "build_archive",
    "evaluate_many", "fitness", "make_dask_executor", "make_executor", "run_history", "run_search",
    "sampling_budget", "summarize",
]
