"""Bayesian optimisation with the WL kernel (``nas.search.bo``): the GP and EI against direct formulas, the
ask/tell contract on the NB201 grammar with a synthetic fitness, batches, failures, and runs through the
runner, the factory and the CLI on the NB201 look-up task."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal, norm

from data.training import Evaluation
from nas.architecture import Architecture
from nas.cells import cell_architecture
from nas.grammar.nb201 import cell_ops
from nas.sampler import Sampler
from nas.search.bo import BayesianOptimisation, KernelGP, expected_improvement, log_error, log_marginal_likelihood_grid
from tests.nas.search.test_strategies import drive as _drive

SHAPE = (3, 32, 32)


@pytest.fixture(scope="module")
def sampler() -> Sampler:
    return Sampler("nb201", SHAPE)


def fake_eval(arch: Architecture, fail_pool_first: bool = True) -> Evaluation:
    """Instant synthetic evaluation: more 3x3 convolutions are better; cells whose first edge is a pooling
    'fail'."""
    ops = cell_ops(arch)
    if fail_pool_first and ops[0] == "avg_pool_3x3":
        return Evaluation(arch.hash, "synthetic", "test", 0, "failed", reason="synthetic failure")
    noise = int(arch.hash[:6], 16) / 16**6
    acc = 0.1 + 0.1 * ops.count("nor_conv_3x3") + 0.05 * ops.count("nor_conv_1x1") + 0.02 * noise
    return Evaluation(arch.hash, "synthetic", "test", 0, "ok", {"val_acc": acc})


def drive(strategy, steps: int, evaluate=fake_eval) -> list[tuple[Architecture, dict]]:
    return _drive(strategy, steps, evaluate)


def small_bo(sampler, seed=0, **kw) -> BayesianOptimisation:
    args = dict(n_init=6, pool_size=30, n_random=4, n_parents=5)
    args.update(kw)
    return BayesianOptimisation(sampler, seed, **args)


# -- expected improvement and the GP against direct formulas ----------------------------------------


def test_expected_improvement_by_hand():
    # best = 0.5.  Point 0: certain value 1.0 -> EI = 0.5.  Point 1: N(0, 1): gain = -0.5, z = -0.5,
    # EI = -0.5 * Phi(-0.5) + phi(-0.5) = -0.5 * 0.3085375 + 0.3520653 = 0.1977966.  Point 2: certain 0.5 -> 0.
    ei = expected_improvement(np.array([1.0, 0.0, 0.5]), np.array([0.0, 1.0, 0.0]), best=0.5)
    assert ei[0] == pytest.approx(0.5)
    assert ei[1] == pytest.approx(-0.5 * 0.3085375387 + 0.3520653268, abs=1e-9)
    assert ei[2] == 0.0
    # against a numerical integral of max(f - best - xi, 0) under N(mean, std^2)
    from scipy.integrate import quad

    for mean, std, xi in [(0.2, 0.3, 0.0), (0.7, 0.05, 0.01), (-1.0, 2.0, 0.1)]:
        direct = quad(lambda f: (f - 0.5 - xi) * norm.pdf(f, mean, std), 0.5 + xi, mean + 12 * std)[0]
        assert expected_improvement(np.array([mean]), np.array([std]), 0.5, xi)[0] == pytest.approx(direct, abs=1e-8)


def _tiny_kernel() -> np.ndarray:
    x = np.array([[1.0, 0.0, 0.0, 0.0], [0.8, 0.6, 0.0, 0.0], [0.0, 0.6, 0.8, 0.0], [0.6, 0.0, 0.0, 0.8]])
    return x @ x.T  # unit diagonal, PSD


def test_gp_posterior_matches_the_direct_formula():
    K = _tiny_kernel()
    train, test = [0, 1, 2], [3]
    y = np.array([0.3, 0.5, 0.9])
    s, n = 2.0, 0.01
    gp = KernelGP(signal_grid=[s], noise_grid=[n], jitter=0.0).fit(K[np.ix_(train, train)], y)
    assert (gp.signal, gp.noise) == (s, n)  # the mean diagonal is 1, so the grid value is the signal
    mean, std = gp.predict(K[np.ix_(train, test)], np.diag(K)[test])
    # direct: standardise y, then  mu = m + sd * s k*^T (sK + nI)^-1 z,  var = sd^2 (s k** - s^2 k*^T (sK + nI)^-1 k*)
    m, sd = y.mean(), y.std()
    z = (y - m) / sd
    C = s * K[np.ix_(train, train)] + n * np.eye(3)
    ks = K[np.ix_(train, test)][:, 0]
    mu = m + sd * s * ks @ np.linalg.solve(C, z)
    var = sd**2 * (s * K[3, 3] - s**2 * ks @ np.linalg.solve(C, ks))
    assert mean[0] == pytest.approx(mu, rel=1e-10)
    assert std[0] == pytest.approx(math.sqrt(var), rel=1e-8)
    # at a training point the posterior mean is close to the observation (little noise)
    m0, s0 = gp.predict(K[np.ix_(train, [0])], [1.0])
    assert abs(m0[0] - 0.3) < 0.05 and s0[0] < 0.05


def test_log_marginal_likelihood_grid_matches_scipy():
    K = _tiny_kernel()
    z = np.array([0.1, -1.2, 0.7, 0.4])
    signals, noises = np.array([0.5, 3.0]), np.array([1e-3, 0.2, 1.0])
    grid = log_marginal_likelihood_grid(K, z, signals, noises)
    for i, s in enumerate(signals):
        for j, n in enumerate(noises):
            direct = multivariate_normal(np.zeros(4), s * K + n * np.eye(4)).logpdf(z)
            assert grid[i, j] == pytest.approx(direct, rel=1e-9)


def test_gp_picks_the_grid_maximum_and_handles_degenerate_data():
    K = _tiny_kernel()
    y = np.array([0.1, 0.2, 0.9, 0.4])
    gp = KernelGP().fit(K, y)
    z = (y - y.mean()) / y.std()
    grid = log_marginal_likelihood_grid(K, z, gp.signal_grid, gp.noise_grid)
    assert gp.lml == pytest.approx(grid.max())
    # one point, equal targets, a singular kernel: still fits and predicts finite values
    for K1, y1 in [(np.ones((1, 1)), [0.5]), (np.ones((3, 3)), [0.4, 0.4, 0.4])]:
        gp1 = KernelGP().fit(K1, y1)
        mean, std = gp1.predict(np.ones((len(y1), 2)), np.ones(2))
        assert np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.allclose(mean, y1[0])


def test_kriging_believer_fantasy_shrinks_the_variance():
    K = _tiny_kernel()
    gp = KernelGP(signal_grid=[1.0], noise_grid=[1e-4]).fit(K[:2, :2], np.array([0.2, 0.6]))
    mean, std = gp.predict(K[:2, [2]], [1.0])
    fantasy = gp.with_data(K[:3, :3], np.array([0.2, 0.6, mean[0]]))
    mean2, std2 = fantasy.predict(K[:3, [2]], [1.0])
    assert mean2[0] == pytest.approx(mean[0], abs=1e-3)  # the believer keeps the mean
    assert std2[0] < 0.1 * std[0]  # but is nearly certain there now
    assert (fantasy.signal, fantasy.noise, fantasy.y_mean) == (gp.signal, gp.noise, gp.y_mean)


def test_log_error_target():
    assert np.allclose(log_error([0.0, 0.5, 0.9]), [0.0, math.log(2), math.log(10)])
    assert np.isfinite(log_error([1.0]))[0]


# -- the ask/tell contract --------------------------------------------------------------------------


def test_asks_are_valid_distinct_and_improve(sampler):
    bo = small_bo(sampler)
    steps = drive(bo, 40)
    archs = [a for a, _ in steps]
    assert all(a.grammar.name == "nb201" and a.input_shape == SHAPE for a in archs)
    assert len({a.hash for a in archs}) == 40  # never asks a known architecture
    kinds = [i["kind"] for _, i in steps]
    assert kinds[:6] == ["random"] * 6 and set(kinds[6:]) == {"bo"}
    for _, info in steps[6:]:
        assert info["proposed"] > 0 and info["ei"] >= 0 and info["std"] >= 0 and info["pending"] == 0
    # the model-guided asks are better than random ones under the synthetic fitness
    random_asks = [a for a, _ in drive(small_bo(sampler, n_init=1000), 40)]

    def mean_fit(xs):
        return np.mean([fake_eval(a, False).val_acc for a in xs])

    assert mean_fit(archs[20:]) > mean_fit(random_asks[20:])
    assert bo.num_fits == 34 and bo.surrogate_seconds > 0
    assert bo.stats["asked"] == 40 and bo.stats["proposed"] > 40


def test_initial_design_matches_random_search(sampler):
    from nas.search import RandomSearch

    bo = [a.hash for a, _ in drive(small_bo(sampler, seed=3), 6)]
    rs = [a.hash for a, _ in drive(RandomSearch(sampler, 3), 6)]
    assert bo == rs or len(set(rs)) < 6  # same cells unless random search repeated one (then BO redraws)


def test_deterministic_for_a_seed(sampler):
    a = [x.hash for x, _ in drive(small_bo(sampler, seed=1), 25)]
    b = [x.hash for x, _ in drive(small_bo(sampler, seed=1), 25)]
    c = [x.hash for x, _ in drive(small_bo(sampler, seed=2), 25)]
    assert a == b and a != c


@pytest.mark.parametrize("cut", [0, 5, 11, 17])
def test_replaying_the_history_reproduces_the_uninterrupted_run(sampler, cut):
    full = drive(small_bo(sampler), 24)
    resumed = small_bo(sampler)
    for arch, _ in full[:cut]:
        resumed.tell(arch, fake_eval(arch))
    rest = drive(resumed, 24 - cut)
    assert [a.hash for a, _ in full[cut:]] == [a.hash for a, _ in rest]


def test_batch_asks_are_distinct_and_use_fantasies(sampler):
    bo = small_bo(sampler)
    drive(bo, 10)
    batch = [bo.ask() for _ in range(4)]
    infos_pending = len({a.hash for a in batch})
    assert infos_pending == 4
    assert bo.last_ask_info["pending"] == 3 and bo.last_ask_info["kind"] == "bo"
    known = {m.arch.hash for m in bo.history}
    assert not known & {a.hash for a in batch}
    for a in reversed(batch):  # results may come back in any order
        bo.tell(a, fake_eval(a))
    assert bo.ask().hash not in {m.arch.hash for m in bo.history}
    assert bo.last_ask_info["pending"] == 0


@pytest.mark.parametrize("failures", ["ignore", "worst"])
def test_failures(sampler, failures):
    bo = small_bo(sampler, failures=failures)
    steps = drive(bo, 30)
    failed = [a for a, _ in steps if not fake_eval(a).ok]
    assert failed and len({a.hash for a, _ in steps}) == 30
    archs, y = bo.training_set()
    hashes = {a.hash for a in archs}
    if failures == "ignore":
        assert not hashes & {a.hash for a in failed}
    else:
        assert {a.hash for a in failed} <= hashes
        ok_y = [fake_eval(a).val_acc for a, _ in steps if fake_eval(a).ok]
        assert np.allclose(y[-len(failed):], min(ok_y))


def test_survives_all_failures(sampler):
    def always_fail(arch):
        return Evaluation(arch.hash, "t", "p", 0, "failed", reason="x")

    bo = small_bo(sampler)
    steps = drive(bo, 15, always_fail)
    assert len(steps) == 15 and all(i["kind"] == "random" for _, i in steps)
    assert len({a.hash for a, _ in steps}) == 15 and bo.model() is None


def test_options_and_config(sampler):
    for kw in ({"hierarchical": False}, {"target": "log_error"}, {"h": 0}, {"h": [1, 2], "direction": "in"},
               {"p_crossover": 0.0, "n_random": 0}, {"pool_size": 0, "n_random": 10}):
        bo = small_bo(sampler, **kw)
        steps = drive(bo, 12)
        assert len({a.hash for a, _ in steps}) == 12 and steps[-1][1]["kind"] == "bo"
    cfg = small_bo(sampler, target="log_error").config()
    json.dumps(cfg)
    assert cfg["class"] == "BayesianOptimisation" and cfg["target"] == "log_error"
    assert cfg["kernel"]["params"]["h"] == [2]
    for bad in ({"target": "rank"}, {"failures": "skip"}, {"p_crossover": 2.0}, {"n_init": 0},
                {"pool_size": 0, "n_random": 0}):
        with pytest.raises(ValueError):
            small_bo(sampler, **bad)


def test_custom_graphs_are_used(sampler):
    import networkx as nx

    calls = []

    def graphs(arch):
        calls.append(arch.hash)
        g = nx.DiGraph()
        for i, op in enumerate(cell_ops(arch)):
            g.add_node(i, label=op)
        return [g]

    bo = small_bo(sampler, graphs=graphs)
    drive(bo, 12)
    assert calls and len(calls) == len(set(calls))  # features are cached per architecture
    assert bo.config()["graphs"] == "custom"


def test_exhausted_space_still_answers(sampler):
    # a one-cell "space": every pool candidate and random sample is already known
    only = cell_architecture(["nor_conv_3x3"] * 6, SHAPE)

    class One:
        grammar, input_shape, budget = sampler.grammar, SHAPE, sampler.budget

        def sample(self, rng):
            return only

    bo = BayesianOptimisation(One(), 0, n_init=1, pool_size=0, n_random=3, max_sample_tries=3)
    drive(bo, 3)
    assert bo.last_ask_info["kind"] == "random"


def test_einspace(tmp_path):
    smp = Sampler("einspace", (3, 16, 16))

    def evaluate(arch):
        return Evaluation(arch.hash, "t", "p", 0, "ok", {"val_acc": 1.0 / (1.0 + abs(arch.num_layers - 8))})

    bo = BayesianOptimisation(smp, 0, n_init=5, pool_size=15, n_random=3, n_parents=3)
    steps = drive(bo, 12, evaluate)
    assert len({a.hash for a, _ in steps}) == 12 and steps[-1][1]["kind"] == "bo"
    assert all(a.grammar.name == "einspace" for a, _ in steps)


def test_hierarchical_nb201():
    smp = Sampler("hnb201", SHAPE)

    def evaluate(arch):
        return Evaluation(arch.hash, "t", "p", 0, "ok", {"val_acc": 1.0 / (1.0 + arch.num_nodes)})

    bo = BayesianOptimisation(smp, 0, n_init=4, pool_size=10, n_random=2, n_parents=3)
    steps = drive(bo, 8, evaluate)
    assert len({a.hash for a, _ in steps}) == 8 and steps[-1][1]["kind"] == "bo"


# -- runner, factory, CLI on the NB201 look-up task --------------------------------------------------


@pytest.fixture(scope="module")
def nb201_task():
    from data.tasks import get_task

    try:
        return get_task("nb201-cifar10")
    except FileNotFoundError as exc:
        pytest.skip(f"NB201 data not available: {exc}")


def test_factory_and_runner_on_the_table(nb201_task, tmp_path):
    from data.archive import Archive
    from nas.search import run_history, run_search
    from nas.search.factory import STRATEGIES, make_strategy

    assert "bo" in STRATEGIES
    strategy = make_strategy("bo", nb201_task, seed=0, n_init=5, pool_size=40)
    assert isinstance(strategy, BayesianOptimisation) and strategy.pool_size == 40
    with Archive(tmp_path / "a.sqlite") as archive:
        summary = run_search(strategy, "nb201-cifar10", archive, "bo", budget_evals=25, progress=False)
        entries = run_history(archive, "bo")
        assert summary["evaluations"] == 25 and summary["counts"]["duplicates"] == 0
        assert len({e.arch_hash for e in entries}) == 25
        assert [e.info["kind"] for e in entries[:5]] == ["random"] * 5
        assert {e.info["kind"] for e in entries[5:]} == {"bo"}
        # resume: a fresh strategy replays the history and goes on
        more = run_search(make_strategy("bo", nb201_task, seed=0, n_init=5, pool_size=40), "nb201-cifar10", archive,
                          "bo", budget_evals=30, progress=False)
        assert more["evaluations"] == 30 and more["session"]["new"] == 5
        # with two evaluations in flight (kriging believer) nothing is asked twice either
        s2 = make_strategy("bo", nb201_task, seed=1, n_init=5, pool_size=40)
        run_search(s2, "nb201-cifar10", archive, "bo2", budget_evals=20, progress=False, max_in_flight=2)
        assert len({e.arch_hash for e in run_history(archive, "bo2")}) == 20


def test_cli_search_with_bo(nb201_task, tmp_path, capsys):
    from nas.cli import main

    code = main(["search", "--task", "nb201-cifar10", "--strategy", "bo", "--budget", "15", "--sampling-budget",
                 "default", "--n-init", "5", "--pool-size", "30", "--run-dir", str(tmp_path / "bo")])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out)
    assert summary["evaluations"] == 15 and summary["strategy"] == "BayesianOptimisation"


def test_benchmark_nb201_mode(nb201_task):
    """``benchmarks/search.py --nb201`` on one seed and a tiny budget: BO runs there and the figures print."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "benchmarks" / "search.py"
    spec = importlib.util.spec_from_file_location("benchmark_search_bo", path)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # dataclasses look their module up
    try:
        spec.loader.exec_module(bench)
        cfg = bench.Config(budget=16, population=5, tournament=2, bo_n_init=4, bo_pool_size=20)
        results = bench.run_all([0], cfg, 1, ("random", "bo"))
        lines, summary = bench.nb201_figures(results, cfg, (10, 16))
    finally:
        sys.modules.pop(spec.name, None)
    rec = results[0]["bo"]
    assert len(rec.vals) == 16 and all(rec.trained) and rec.info["fits"] == 12
    assert rec.hashes[:4] == results[0]["random"].hashes[:4]  # the same initial cells as random search
    assert any(line.startswith("nb201 bo best@10: ") and line.split(": ")[1].split()[1] == "%" for line in lines)
    assert any(line.startswith("nb201 bo_vs_random@16: ") for line in lines)
    table = bench.nb201_markdown(summary, cfg)
    assert "| bo |" in table and "| random |" in table and "better / equal / worse" in table
