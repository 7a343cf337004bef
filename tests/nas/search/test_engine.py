"""The run engine with a user's own evaluation function (an Optuna-like objective) instead of training."""

from __future__ import annotations

import math

import pytest

from data.archive import Archive
from nas.sampler import Sampler
from nas.search import CPU_BUDGET, FunctionEvaluator, RandomSearch, SearchRun, run_history, summarize
from nas.search.best import best_index, running_best
from nas.search.evaluators import objective_metrics

SHAPE = (3, 8, 8)
BUDGET = CPU_BUDGET.__class__(max_nodes=40, max_depth=12, max_params=20_000, max_flops=2e6, batch_size=32)


def size_objective(arch) -> float:
    """A made-up score in (0, 1); raises for deep networks, which the engine must record as failures."""
    if arch.depth > 6:
        raise ValueError("too deep for this objective")
    return 1.0 / (1.0 + arch.num_nodes)


def metrics_objective(arch) -> dict:
    return {"val_acc": size_objective(arch), "nodes": arch.num_nodes}


@pytest.fixture
def sampler() -> Sampler:
    return Sampler("einspace", SHAPE, BUDGET)


def test_a_plain_function_is_the_objective(sampler, tmp_path):
    with Archive(tmp_path / "a.db") as a:
        session = SearchRun(a, "fn", size_objective, progress=False).run(RandomSearch(sampler, 0), budget_evals=12)
        assert session["stopped"] == "budget_evals" and session["new"] == 12
        entries = run_history(a, "fn")
        assert len(entries) == 12
        for e in entries:
            arch = a.architecture(e.arch_hash)
            assert (e.evaluation.task, e.evaluation.protocol) == ("objective", "function")
            if arch.depth > 6:  # the objective raised: a recorded failure, not an aborted run
                assert not e.evaluation.ok and "too deep" in e.evaluation.reason
            else:
                assert e.evaluation.ok and e.evaluation.val_acc == pytest.approx(size_objective(arch))
        assert any(not e.evaluation.ok for e in entries) and any(e.evaluation.ok for e in entries)
        best = summarize(a, "fn")["best"]
        assert best["val_acc"] == max(e.evaluation.val_acc for e in entries if e.evaluation.ok)
        # resume by re-running: the first twelve steps stay, four are added
        again = SearchRun(a, "fn", size_objective, progress=False).run(RandomSearch(sampler, 0), budget_evals=16)
        assert again["new"] == 4 and run_history(a, "fn")[:12] == entries


def test_metrics_dict_and_process_pool(sampler, tmp_path):
    objective = FunctionEvaluator(metrics_objective, task="toy", protocol="nodes-v1")
    with Archive(tmp_path / "serial.db") as a:
        SearchRun(a, "r", objective, progress=False).run(RandomSearch(sampler, 1), budget_evals=6)
        serial = [(e.arch_hash, dict(e.evaluation.metrics), e.evaluation.status) for e in run_history(a, "r")]
        assert all(m["nodes"] > 0 for _, m, status in serial if status == "ok")
    with Archive(tmp_path / "pool.db") as a:  # a module-level function pickles to spawned workers
        SearchRun(a, "r", objective, workers=2, max_in_flight=1, progress=False).run(RandomSearch(sampler, 1),
                                                                                    budget_evals=6)
        pooled = [(e.arch_hash, dict(e.evaluation.metrics), e.evaluation.status) for e in run_history(a, "r")]
    assert pooled == serial


def test_objective_results_are_checked():
    assert objective_metrics(0.5) == {"val_acc": 0.5}
    assert objective_metrics({"val_acc": 1, "loss": 2}) == {"val_acc": 1.0, "loss": 2.0}
    for bad in (math.nan, {"loss": 1.0}, "0.5", None, True):
        with pytest.raises(ValueError):
            objective_metrics(bad)


def test_running_best_is_the_one_best_so_far():
    values = [math.nan, 0.2, -math.inf, 0.5, 0.4, 0.5]
    curve = running_best(values)
    assert math.isnan(curve[0]) and list(curve[1:]) == [0.2, 0.2, 0.5, 0.5, 0.5]
    assert best_index(values) == 3 and best_index([math.nan, -math.inf]) is None and best_index([]) is None
