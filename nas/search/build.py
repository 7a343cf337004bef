"""Filling an archive: an archive build is a random-search (or random-mutant) run on the run engine.

Candidate ``i`` of a build with ``seed`` is drawn from its own generator ``default_rng([seed, i])``, so the
stream does not depend on how far an earlier run got; candidates already evaluated on the task under the
protocol and training seed (by this or any run) are skipped, never trained twice.  Every result is written
the moment it arrives, so re-running the same call after a kill resumes: nothing evaluated is lost and at
most the jobs in flight are redone.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import asdict

from data.archive import Archive
from data.task import grammar_of
from data.training import TrainingProtocol
from nas.grammar.core import Budget
from nas.sampler import Sampler
from nas.search.base import Strategy
from nas.search.budgets import sampling_budget
from nas.search.engine import SearchRun
from nas.search.evaluators import TaskEvaluator
from nas.search.executors import worker_threads
from nas.search.random import MutantSearch, RandomSearch

SAMPLERS = ("random", "mutants")


def build_archive(
    archive: Archive,
    task: str,
    n: int,
    seed: int = 0,
    sampler: str = "random",
    protocol: "TrainingProtocol | str" = "reduced",
    budget: "Budget | str" = "cpu",
    grammar: str | None = None,
    task_seed: int = 0,
    train_seed: int = 0,
    workers: int = 1,
    executor: Executor | None = None,
    device: str = "cpu",
    run: str | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Fill ``archive`` with ``n`` evaluations of fresh architectures on ``task`` (a name or folder).

    ``sampler`` is ``random`` (grammar samples) or ``mutants`` (mutations of the archive's successful
    architectures on this task and protocol, and of the build's own).  Resumable: the run is recorded in the
    archive with its configuration; re-running the same call counts what the run already holds and goes on.
    Returns counts: ``evaluated`` (this call), ``total`` (the run's), ``skipped`` (duplicates seen)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; expected 'random' or 'mutants'")
    evaluator = TaskEvaluator(task, protocol, train_seed, task_seed, device, worker_threads(workers))
    task_obj = evaluator.task_obj
    grammar = grammar_of(task_obj, grammar)
    budget = sampling_budget(budget, task_obj, grammar)
    # a training seed other than 0 is part of the name, so two builds differing only in it are two runs
    suffix = f":train{train_seed}" if train_seed else ""
    run = run or f"build:{evaluator.task}:{evaluator.protocol}:{sampler}:seed{seed}{suffix}"
    config = {**evaluator.config(), "seed": seed, "sampler": sampler, "budget": asdict(budget), "grammar": grammar}
    smp = Sampler(grammar, task_obj.input_shape, budget)
    strategy: Strategy = RandomSearch(smp, seed)
    if sampler == "mutants":
        strategy = MutantSearch(smp, seed, archive.dataset(evaluator.task, evaluator.protocol)[0], budget)
    engine = SearchRun(archive, run, evaluator, history=False, executor=executor, workers=workers,
                       progress=progress, label=f"archive {evaluator.task}")
    session = engine.run(strategy, budget_evals=n, config=config)
    return {"evaluated": session["trained"], "total": session["done"], "skipped": session["duplicates"]}
