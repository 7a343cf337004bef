"""Smoke test of ``benchmarks/search.py`` on the NB201 look-up task: 2 seeds, budget 30 (a few seconds)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
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


def test_bootstrap_interval_of_a_censored_median(bench):
    assert bench._bootstrap_median([0.5] * 7) == (0.5, 0.5)  # no spread, no interval
    lo, hi = bench._bootstrap_median([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    assert 0.1 <= lo < 0.5 < hi <= 0.9  # the interval holds the median and stays inside the data
    lo, hi = bench._bootstrap_median([0.2, 0.3, math.inf, math.inf, math.inf])  # "never" in most pairs
    assert lo == 0.2 and math.isinf(hi)  # three of five draws are 0.2 with probability 5.8 % > 2.5 %
    assert bench._bootstrap_median([1.0, 2.0, 3.0], seed=1) == bench._bootstrap_median([1.0, 2.0, 3.0], seed=1)
    assert all(math.isnan(v) for v in bench._bootstrap_median([]))


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


# -- --einspace: real training at toy size ------------------------------------------------------------


@pytest.fixture(scope="module")
def bench_any():
    spec = importlib.util.spec_from_file_location("benchmark_search_einspace", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def toy_source_archive(path) -> str:
    """Two source tasks (the target's siblings) with synthetic accuracies that grow with parameters."""
    from data.archive import Archive
    from data.tasks import get_task
    from data.training import Evaluation
    from nas.sampler import Sampler
    from nas.search import CPU_BUDGET

    with Archive(path) as archive:
        for name in ("gutenberg-mini", "addnist-mini"):
            sampler = Sampler("einspace", get_task(name, seed=0).input_shape, CPU_BUDGET)
            for seed in range(12):
                arch = sampler.sample(seed)
                acc = 0.2 + 0.6 * min(1.0, arch.num_params / 3e5)
                archive.add_evaluation(Evaluation(arch.hash, name, "reduced-toy", 0, "ok", {"val_acc": acc}), arch)
    return str(path)


@pytest.mark.e2e
def test_einspace_mode_at_toy_size(bench_any, tmp_path, capsys):
    """Every variant trains for real (a tiny protocol), the transfer surrogate comes from a source archive
    without the target, re-running resumes (nothing is trained again), and the figures and table come out."""
    from data.training import TrainingProtocol

    bench = bench_any
    protocol = TrainingProtocol(name="toy", epochs=1, batch_size=32, train_subset=64, valid_subset=64,
                                max_seconds=60.0)
    cfg = bench.EinspaceConfig(budget=6, population=3, tournament=2, n_candidates=4, k=2, refit_every=2,
                               protocol=protocol, workers=1, source_archive=toy_source_archive(tmp_path / "src.db"))
    out = tmp_path / "out"
    results = bench.run_einspace(str(out), ["language-mini"], [0], cfg)
    recs = results["language-mini"][0]
    assert set(recs) == {"re", "filtered", "transfer"}
    for name, rec in recs.items():
        assert len(rec.vals) == 6 and len(rec.walls) == 6 and rec.wall > 0
        assert np.all(np.diff(rec.walls) >= 0)
    assert recs["re"].surrogate_seconds == 0.0
    assert recs["filtered"].surrogate_seconds > 0 and recs["transfer"].surrogate_seconds > 0
    # Same seed: plain and within-task filtered RE share the initial population.
    assert recs["re"].hashes[:3] == recs["filtered"].hashes[:3]
    # The transfer surrogate filters from the first ask, so its first asks are filtered.
    from data.archive import Archive
    with Archive(out / "archives" / "language-mini-transfer-s0.sqlite") as archive:
        kinds = [e[-1]["kind"] for e in archive.history("transfer")]
    assert kinds[0] == "filtered"
    again = bench.run_einspace(str(out), ["language-mini"], [0], cfg)["language-mini"][0]
    assert {n: r.hashes for n, r in again.items()} == {n: r.hashes for n, r in recs.items()}
    assert again["re"].wall == pytest.approx(recs["re"].wall)  # finished runs are not run again
    lines, rows = bench.einspace_figures(results, cfg)
    text = "\n".join(lines)
    for needle in ("einspace language-mini transfer surrogate_share", "einspace overall filtered best@",
                   "einspace overall transfer trained_to_reach_re_final_best", "wall_ratio_to_re"):
        assert needle in text
    table = bench.einspace_markdown(rows, cfg, 1, "python benchmarks/search.py --einspace")
    assert table.count("\n| language-mini | ") == 3 and table.count("\n| overall | ") == 3
    assert "surrogate share" in table
    # One figure per task with a band per variant, read from the archives.
    (png,) = bench.einspace_plots(str(out), {"language-mini": [0]}, ["re", "filtered", "transfer"])
    with open(png, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    # --report-only reads the finished seeds and trains nothing: seed 1 has no runs, and a budget beyond what
    # the runs reached leaves seed 0 out too.
    read, finished = bench.collect_einspace(str(out), ["language-mini"], [0, 1], ["re", "filtered", "transfer"], 6)
    assert finished == {"language-mini": [0]}
    assert {n: r.hashes for n, r in read["language-mini"][0].items()} == {n: r.hashes for n, r in recs.items()}
    _, unfinished = bench.collect_einspace(str(out), ["language-mini"], [0], ["re", "filtered", "transfer"], 7)
    assert unfinished == {"language-mini": []}


def test_sized_and_pooled_variants_filter_with_size_banded_sources(bench_any, tmp_path):
    """``--variants sized``: the transfer filter fitted on sources whose targets are normalised within bands of
    parameter count.  On the toy sources accuracy grows with parameters: normalised over each whole source the
    targets keep that order (ρ = 1); within size bands most of it is gone.  ``pooled`` is ``sized`` whose initial
    population is chosen from ``INITIAL_POOL`` × population random samples at once."""
    from scipy.stats import spearmanr

    from data.tasks import get_task

    cfg = bench_any.EinspaceConfig(source_archive=toy_source_archive(tmp_path / "src.db"))
    plain = bench_any.fit_transfer_for("language-mini", cfg)
    sized = bench_any.fit_transfer_for("language-mini", cfg, size_bands=bench_any.TRANSFER_VARIANTS["sized"])
    assert plain.size_bands == 1 and sized.size_bands == bench_any.SIZE_BANDS > 1
    from data.archive import Archive
    from surrogates.workflows import surrogate_dataset

    with Archive(cfg.source_archive, readonly=True) as archive:
        archs, _ = surrogate_dataset(archive, "addnist-mini")  # the first source block (sorted task names)
    params = [a.num_params for a in archs]
    rho = {name: spearmanr(params, model.source_y_[:len(archs)]).correlation for name, model in
           (("plain", plain), ("sized", sized))}
    assert rho["plain"] > 0.95 and rho["sized"] < rho["plain"] - 0.3, rho
    strategy = bench_any.einspace_strategy("sized", get_task("language-mini", seed=0), 0, cfg, sized)
    assert strategy.prefit and strategy.refit_every == cfg.transfer_refit_every
    assert strategy.surrogate is not sized and strategy.surrogate.size_bands == sized.size_bands  # a copy per run
    assert strategy.initial_candidates is None and strategy.initial_end == 0
    pooled = bench_any.einspace_strategy("pooled", get_task("language-mini", seed=0), 0, cfg, sized)
    assert bench_any.TRANSFER_VARIANTS["pooled"] == bench_any.SIZE_BANDS and pooled.prefit
    assert pooled.initial_candidates == bench_any.INITIAL_POOL * cfg.population and pooled.initial_end == cfg.population
