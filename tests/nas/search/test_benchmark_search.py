"""Smoke test of ``benchmarks/search.py`` on the NB201 look-up task: 2 seeds, budget 30 (a few seconds)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[3] / "benchmarks" / "search.py"


@pytest.fixture(scope="module")
def bench():
    from data.tasks import get_task

    try:
        get_task("nb201-cifar10")
    except FileNotFoundError as exc:
        pytest.skip(f"NB201 data not available: {exc}")
    spec = importlib.util.spec_from_file_location("benchmark_search", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def results(bench):
    cfg = bench.Config(budget=30, population=10, tournament=3, objective_steps=20, objective_top_k=(3, 5))
    return cfg, bench.run_all([0, 1], cfg, workers=1)


def test_runs_are_paired_and_counted(bench, results):
    cfg, runs = results
    assert len(runs) == 2
    for r in runs:
        assert set(r) == set(bench.STRATEGIES)
        for name in ("random", "re", "filtered"):
            rec = r[name]
            assert len(rec.vals) == cfg.budget
            assert all(0.0 < v <= 1.0 for v in rec.vals)
            # A repeat of an architecture already in the run is a look-up, never a trained candidate.
            seen = set()
            for h, trained in zip(rec.hashes, rec.trained):
                assert trained == (h not in seen)
                seen.add(h)
        # Same seed, same initial population for RE, filtered RE and random search.
        assert r["re"].hashes[: cfg.population] == r["filtered"].hashes[: cfg.population]
        assert r["re"].hashes[: cfg.population] == r["random"].hashes[: cfg.population]
        obj = r["objective"]
        assert len(obj.vals) == cfg.population + max(cfg.objective_top_k)
        assert obj.hashes[: cfg.population] == r["re"].hashes[: cfg.population]
        assert r["filtered"].info["fits"] >= 1


def test_curves(bench, results):
    _, runs = results
    rec = runs[0]["re"]
    final = rec.final_best
    assert rec.best_after_steps(len(rec.vals)) == final
    need = rec.trained_to_reach(final)
    assert 1 <= need <= sum(rec.trained)
    assert rec.best_after_trained(int(need)) == final
    assert rec.best_after_trained(int(need) - 1) < final or need == 1
    assert math.isinf(rec.trained_to_reach(2.0))
    assert math.isnan(rec.best_after_trained(sum(rec.trained) + 1))
    assert bench._median_censored([1, math.inf, 3]) == 3
    assert math.isinf(bench._median_censored([1, math.inf]))


def test_figures_and_table(bench, results):
    cfg, runs = results
    lines, summary = bench.figures(runs, cfg)
    names = {name for name, _, _ in lines}
    assert "p10_initial_population_identical_re_filtered" in names
    assert "p10_filtered_trained_to_reach_re_final_best_median" in names
    assert "p10_objective_top5_re_best_at_same_trained" in names
    assert dict((n, v) for n, v, _ in lines)["p10_initial_population_identical_re_filtered"] == "2/2"
    table = bench.markdown([summary], cfg)
    assert table.count("\n|") >= 8 and "Surrogate as objective" in table
