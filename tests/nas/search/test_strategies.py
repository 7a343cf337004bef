"""Ask/tell contract of the search strategies, on the NB201 cell grammar with a synthetic fitness (instant)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from data.training import Evaluation
from nas.architecture import Architecture
from nas.cells import cell_architecture
from nas.grammar.nb201 import cell_ops
from nas.sampler import Sampler
from nas.mutation import mutate
from nas.search import (
    Member,
    RandomSearch,
    RegularizedEvolution,
    SurrogateFilteredEvolution,
    SurrogateObjective,
)
from nas.seeds import get_seed

SHAPE = (3, 32, 32)


@pytest.fixture(scope="module")
def sampler() -> Sampler:
    return Sampler("nb201", SHAPE)


def conv3(arch: Architecture) -> int:
    return cell_ops(arch).count("nor_conv_3x3")


def fake_eval(arch: Architecture, fail_pool_first: bool = True) -> Evaluation:
    """Instant synthetic evaluation: more 3x3 convolutions are better; cells starting with a pooling
    edge 'fail' (so failures flow through every strategy)."""
    ops = cell_ops(arch)
    if fail_pool_first and ops[0] == "avg_pool_3x3":
        return Evaluation(arch.hash, "synthetic", "test", 0, "failed", reason="synthetic failure")
    noise = int(arch.hash[:6], 16) / 16**6
    acc = 0.1 + 0.1 * ops.count("nor_conv_3x3") + 0.05 * ops.count("nor_conv_1x1") + 0.02 * noise
    return Evaluation(arch.hash, "synthetic", "test", 0, "ok", {"val_acc": acc})


class ConvCount:
    """Stub surrogate with known scores: the number of 3x3 convolutions in the cell; records its fits."""

    def __init__(self) -> None:
        self.fits: list[int] = []

    def fit(self, archs, y) -> "ConvCount":
        assert len(archs) == len(y) and np.all(np.isfinite(y))
        self.fits.append(len(archs))
        return self

    def predict(self, archs) -> np.ndarray:
        return np.array([conv3(a) for a in archs], dtype=float)


def drive(strategy, steps: int, evaluate=fake_eval) -> list[tuple[Architecture, dict]]:
    out = []
    for _ in range(steps):
        arch = strategy.ask()
        if arch is None:
            break
        out.append((arch, dict(strategy.last_ask_info)))
        strategy.tell(arch, evaluate(arch))
    return out


def small_re(sampler, seed=0, **kw):
    return RegularizedEvolution(sampler, seed, population_size=10, tournament_size=3, **kw)


def small_sfe(sampler, seed=0, **kw):
    args = dict(population_size=10, tournament_size=3, start_after=10, n_candidates=8, k=3, refit_every=7)
    args.update(kw)
    return SurrogateFilteredEvolution(sampler, seed, ConvCount(), **args)


FACTORIES = {
    "random": lambda s: RandomSearch(s, 0),
    "re": lambda s: small_re(s),
    "re-seeded": lambda s: small_re(s, seeds=[cell_architecture(["nor_conv_1x1"] * 6, SHAPE),
                                             cell_architecture(["skip_connect"] * 6, SHAPE)]),
    "sfe-topk": lambda s: small_sfe(s),
    "sfe-reject": lambda s: small_sfe(s, mode="reject", quantile=0.5),
    "sfe-ground-truth": lambda s: small_sfe(s, ground_truth_every=3),
    "sfe-prefit": lambda s: small_sfe(s, prefit=True, refit_every=5),
    "sfe-initial-pool": lambda s: small_sfe(s, prefit=True, refit_every=5, initial_candidates=40),
    "sfe-population": lambda s: small_sfe(s, fit_on="population"),
    "objective": lambda s: SurrogateObjective(s, 0, ConvCount(), population_size=10, tournament_size=3, steps=30,
                                              top_k=6),
}


# -- the contract -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FACTORIES)
def test_asks_are_valid_architectures_of_the_grammar(sampler, name):
    for arch, info in drive(FACTORIES[name](sampler), 25):
        assert arch.grammar.name == "nb201" and arch.input_shape == SHAPE
        assert Architecture.from_string(arch.to_string(), SHAPE, "nb201") == arch
        assert info["kind"] and info["proposed"] >= 0


@pytest.mark.parametrize("name", FACTORIES)
def test_deterministic_for_a_seed(sampler, name):
    a = [x.hash for x, _ in drive(FACTORIES[name](sampler), 30)]
    b = [x.hash for x, _ in drive(FACTORIES[name](sampler), 30)]
    assert a == b


def test_seeds_give_different_streams(sampler):
    a = [x.hash for x, _ in drive(RandomSearch(sampler, 1), 10)]
    b = [x.hash for x, _ in drive(RandomSearch(sampler, 2), 10)]
    assert a != b


@pytest.mark.parametrize("name", FACTORIES)
@pytest.mark.parametrize("cut", [0, 11, 17, 23])
def test_replaying_the_history_reproduces_the_uninterrupted_run(sampler, name, cut):
    """Resume contract: tell the first ``cut`` results to a fresh strategy, then asking continues exactly as
    the uninterrupted run (one evaluation in flight), mid-batch included."""
    full = drive(FACTORIES[name](sampler), 40)
    resumed = FACTORIES[name](sampler)
    for arch, _ in full[:cut]:
        resumed.tell(arch, fake_eval(arch))
    rest = drive(resumed, 40 - cut)
    assert [a.hash for a, _ in full[cut:]] == [a.hash for a, _ in rest]


def test_tell_accepts_failures_and_checks_the_pair(sampler):
    rs = RandomSearch(sampler, 0)
    arch = rs.ask()
    rs.tell(arch, Evaluation(arch.hash, "t", "p", 0, "failed", reason="boom"))
    assert rs.num_told == 1 and rs.best() is None
    other = cell_architecture(["none"] * 6, SHAPE)
    with pytest.raises(ValueError, match="evaluation is for"):
        rs.tell(other, Evaluation(arch.hash, "t", "p", 0, "ok", {"val_acc": 0.5}))
    with pytest.raises(TypeError):
        rs.tell(arch, {"val_acc": 0.5})


def test_strategies_survive_all_failures(sampler):
    def always_fail(arch):
        return Evaluation(arch.hash, "t", "p", 0, "failed", reason="x")

    for name in ("re", "sfe-topk", "sfe-reject"):
        steps = drive(FACTORIES[name](sampler), 30, always_fail)
        assert len(steps) == 30


# -- regularised evolution --------------------------------------------------------------------------


def test_population_size_and_aging(sampler):
    re = RegularizedEvolution(sampler, 0, population_size=5, tournament_size=2)
    first = drive(re, 5)
    assert [i["kind"] for _, i in first] == ["random"] * 5
    assert [m.index for m in re.population()] == [0, 1, 2, 3, 4]
    (child, info), = drive(re, 1)
    assert info["kind"] == "mutant"
    assert [m.index for m in re.population()] == [1, 2, 3, 4, 5]  # the oldest left, the child joined
    drive(re, 20)
    assert [m.index for m in re.population()] == list(range(21, 26))
    assert [m.index for m in re.population(upto=7)] == [2, 3, 4, 5, 6]


def _members(fitnesses) -> list[Member]:
    out = []
    for i, f in enumerate(fitnesses):
        arch = cell_architecture([["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"][i % 5]] * 6
                                 if i < 5 else ["nor_conv_3x3"] * 5 + ["none"], SHAPE)
        ev = (Evaluation(arch.hash, "t", "p", 0, "ok", {"val_acc": f}) if math.isfinite(f)
              else Evaluation(arch.hash, "t", "p", 0, "failed", reason="x"))
        out.append(Member(i, arch, ev))
    return out


@pytest.mark.parametrize("size", [4, 20])
def test_tournament_draws_with_replacement_and_picks_the_best(sampler, size):
    re = RegularizedEvolution(sampler, 0, population_size=6, tournament_size=size)
    population = _members([0.1, 0.5, -math.inf, 0.9, 0.3, 0.2])
    repeated = 0
    for s in range(60):
        draws = np.random.default_rng(s).integers(6, size=size)
        repeated += len(set(draws.tolist())) < size
        expected = max(draws, key=lambda i: (population[i].fitness, -list(draws).index(i)))
        assert re.tournament(population, np.random.default_rng(s)) is population[expected]
    assert repeated > 0  # draws repeat: with replacement (size 20 > 6 members could not be drawn otherwise)


def test_failures_count_as_worst(sampler):
    re = RegularizedEvolution(sampler, 0, population_size=6, tournament_size=6)
    population = _members([-math.inf, -math.inf, 0.01, -math.inf, -math.inf, -math.inf])
    for s in range(30):
        draws = np.random.default_rng(s).integers(6, size=6)
        winner = re.tournament(population, np.random.default_rng(s))
        assert (winner is population[2]) == (2 in draws)


def test_child_is_a_mutant_of_the_tournament_winner(sampler):
    re = small_re(sampler)
    drive(re, 15)
    population = re.population()
    rng = np.random.default_rng([0, 15])
    winner = re.tournament(population, rng)
    expected = mutate(winner.arch, rng, sampler.budget)
    assert re.ask() == expected and expected != winner.arch


def test_seeded_evolution_starts_from_the_seeds_einspace():
    shape = (3, 16, 16)
    smp = Sampler("einspace", shape)
    re = RegularizedEvolution(smp, 0, population_size=8, tournament_size=3, seeds="mixed")
    names = ["resnet18", "wrn16_4", "vit", "mlp_mixer"]
    seeds = [get_seed(n, shape) for n in names]
    asked = []
    for i in range(4):
        arch = re.ask()
        assert re.last_ask_info["kind"] == "seed"
        asked.append(arch)
        re.tell(arch, Evaluation(arch.hash, "t", "p", 0, "ok", {"val_acc": 0.1 * (i + 1)}))
    assert asked == seeds
    population = re.population()
    assert [m.arch for m in population] == seeds + seeds  # round-robin copies, 2 each
    child = re.ask()
    assert re.last_ask_info["kind"] == "mutant" and child not in seeds and child.grammar.name == "einspace"
    re.tell(child, Evaluation(child.hash, "t", "p", 0, "ok", {"val_acc": 0.0}))
    population = re.population()
    assert len(population) == 8 and population[-1].arch == child
    assert [m.arch for m in population[:7]] == (seeds + seeds)[1:]


def test_single_seed_fills_the_population_with_copies():
    shape = (3, 16, 16)
    re = RegularizedEvolution(Sampler("einspace", shape), 0, population_size=5, tournament_size=2, seeds="resnet18")
    arch = re.ask()
    assert arch == get_seed("resnet18", shape)
    re.tell(arch, Evaluation(arch.hash, "t", "p", 0, "failed", reason="x"))
    assert [m.index for m in re.population()] == [0] * 5
    assert re.ask() != arch  # a mutant of the (failed) seed: the search goes on


def test_bad_seeds(sampler):
    with pytest.raises(ValueError, match="grammar"):
        RegularizedEvolution(sampler, 0, seeds="resnet18")  # an einspace seed for the nb201 grammar
    with pytest.raises(ValueError, match="do not fit"):
        RegularizedEvolution(Sampler("einspace", (3, 16, 16)), 0, population_size=3, seeds="mixed")
    with pytest.raises(KeyError):
        RegularizedEvolution(Sampler("einspace", (3, 16, 16)), 0, seeds="alexnet")


# -- surrogate filter -------------------------------------------------------------------------------


def beaten_only_by_known(sfe, batch, index):
    """Every candidate predicted above candidate ``index`` of ``batch`` was already told before the batch,
    or repeats a better-ranked candidate: the top-k is taken among fresh candidates."""
    known = {m.arch.hash for m in sfe.history[: batch.upto]}
    seen = set()
    for j in np.argsort(-batch.predictions, kind="stable"):
        if j == index:
            return True
        c = batch.candidates[j]
        if c.hash not in known and c.hash not in seen and j not in batch.chosen:
            return False
        seen.add(c.hash)
    return True


def test_topk_trains_only_the_surrogates_top_k(sampler):
    sfe = small_sfe(sampler)
    steps = drive(sfe, 46)
    assert [i["kind"] for _, i in steps[:10]] == ["random"] * 10
    batches = {b.start: b for b in sfe.batches}
    assert len(batches) == 12 and all(b.proposed == 8 for b in batches.values())
    for arch, info in steps[10:]:
        assert info["kind"] == "filtered"
        batch = batches[info["batch"]]
        assert arch is batch.candidates[batch.chosen[info["position"]]]
        scores = [conv3(c) for c in batch.candidates]
        assert info["predicted"] == conv3(arch) == batch.predictions[batch.chosen[info["position"]]]
        assert beaten_only_by_known(sfe, batch, batch.chosen[info["position"]])  # top-k of the fresh candidates
    chosen = np.mean([conv3(a) for a, _ in steps[10:]])
    offered = np.mean([conv3(c) for b in batches.values() for c in b.candidates])
    assert chosen > offered
    assert sfe.stats == {"asked": 46, "proposed": 10 + 12 * 8, "filtered": 12 * 8 - 36, "told": 46}
    # lazy refits: first at start_after, then at multiples of refit_every
    assert sorted({b.fit_point for b in batches.values()}) == [10, 14, 21, 28, 35, 42]
    assert sfe.num_fits == len(sfe.surrogate.fits) == 6


def test_reject_mode_never_trains_below_the_quantile(sampler):
    sfe = small_sfe(sampler, mode="reject", quantile=0.5)  # the bar is the 1 - 0.5 quantile of the population
    steps = drive(sfe, 46)
    batches = {b.start: b for b in sfe.batches}
    rejected = 0
    for b in batches.values():
        pop = [conv3(m.arch) for m in sfe.population(b.upto)]
        assert b.threshold == pytest.approx(float(np.quantile(pop, 0.5)))
        known = {m.arch.hash for m in sfe.history[: b.upto]}
        passing, taken = [], set()
        for i, p in enumerate(b.predictions):  # passing and fresh (not told before, not repeated)
            h = b.candidates[i].hash
            if p >= b.threshold and h not in known and h not in taken:
                passing.append(i)
                taken.add(h)
        kept = 3 - b.shortfall
        assert b.chosen[:kept] == passing[:kept]  # the first passing candidates, in generation order
        rejected += sum(1 for i in range(max(b.chosen[:kept], default=-1)) if b.predictions[i] < b.threshold)
    assert rejected > 0  # the filter really rejected something
    for arch, info in steps[10:]:
        assert info["kind"] == "filtered"
        if not info["shortfall"]:
            assert conv3(arch) >= info["threshold"]


class HashScore:
    """Stub surrogate whose scores are known and spread evenly over [0, 1): a fixed function of the
    architecture's hash, so a mutant's score is independent of its parent's (unlike ``ConvCount``)."""

    def fit(self, archs, y) -> "HashScore":
        return self

    def predict(self, archs) -> np.ndarray:
        return np.array([int(a.hash[:8], 16) / 16**8 for a in archs])


def reject_sfe(sampler, quantile, n_candidates=20):
    return SurrogateFilteredEvolution(sampler, 0, HashScore(), mode="reject", quantile=quantile, population_size=100,
                                      tournament_size=3, start_after=100, n_candidates=n_candidates, k=5,
                                      max_rounds=1)


@pytest.mark.parametrize("q", [0.3, 0.7])
def test_reject_mode_keeps_the_top_quantile_fraction(sampler, q):
    """quantile=q keeps the candidates predicted in the population's top q fraction: with q = 0.3 about 30 % of
    the candidates pass (the inverted rule, a bar at the q quantile, would pass about 70 %).  One batch of 200
    candidates scored against the random initial population, whose scores are distributed like theirs."""
    sfe = reject_sfe(sampler, q, n_candidates=200)
    steps = drive(sfe, 105)
    (batch,) = sfe.batches
    pop = batch.population_predictions
    assert len(pop) == 100 and batch.threshold == pytest.approx(float(np.quantile(pop, 1 - q)))
    assert np.mean(pop >= batch.threshold) == pytest.approx(q, abs=0.01)
    assert np.mean(batch.predictions >= batch.threshold) == pytest.approx(q, abs=0.1)
    assert batch.shortfall == 0
    for arch, info in steps[100:]:
        assert info["kind"] == "filtered" and not info["shortfall"]
        assert info["predicted"] >= info["threshold"]
        assert np.mean(pop <= info["predicted"]) >= 1 - q  # ranked in the population's top q


def test_reject_mode_at_the_ends_of_the_quantile(sampler):
    """quantile=1 keeps every candidate (no bar); quantile=0 keeps only those matching the population's best."""
    keep_all = reject_sfe(sampler, 1.0)
    drive(keep_all, 110)
    for b in keep_all.batches:
        assert b.threshold == -math.inf and b.shortfall == 0 and b.proposed == 20
        assert b.chosen == list(range(5))  # the first five candidates, in generation order (all fresh here)
    only_best = reject_sfe(sampler, 0.0)
    drive(only_best, 110)
    for b in only_best.batches:
        assert b.threshold == max(b.population_predictions)
        kept = 5 - b.shortfall
        assert all(b.predictions[i] >= b.threshold for i in b.chosen[:kept])
    assert sum(b.shortfall for b in only_best.batches) > 0  # beating the best is rare: the bar really binds


def test_prefit_surrogate_filters_from_the_first_ask(sampler):
    sfe = small_sfe(sampler, prefit=True, refit=False, start_after=1000)
    steps = drive(sfe, 12)
    assert all(i["kind"] == "filtered" for _, i in steps)
    assert sfe.surrogate.fits == []  # never refitted
    for b in sfe.batches:
        assert all(beaten_only_by_known(sfe, b, i) for i in b.chosen)


def test_ground_truth_children_are_interleaved(sampler):
    sfe = small_sfe(sampler, ground_truth_every=3)
    kinds = [i["kind"] for _, i in drive(sfe, 28)][10:]
    assert kinds == ["filtered", "filtered", "plain"] * 6


def test_bad_surrogate_arguments(sampler):
    with pytest.raises(ValueError, match="mode"):
        small_sfe(sampler, mode="best")
    with pytest.raises(ValueError, match="k <= n_candidates"):
        small_sfe(sampler, k=9)
    with pytest.raises(ValueError, match="never fitted"):
        small_sfe(sampler, refit=False)
    with pytest.raises(TypeError, match="predict"):
        SurrogateFilteredEvolution(sampler, 0, object())

    class Bad(ConvCount):
        def predict(self, archs):
            return np.zeros((len(archs), 2))

    sfe = SurrogateFilteredEvolution(sampler, 0, Bad(), population_size=4, start_after=0, prefit=True)
    with pytest.raises(ValueError, match="1-D array"):
        sfe.ask()


# -- surrogate as the objective -----------------------------------------------------------------------


def test_surrogate_objective_asks_only_the_top_k_then_stops(sampler):
    surrogate = ConvCount()
    so = SurrogateObjective(sampler, 0, surrogate, population_size=10, tournament_size=3, steps=40, top_k=4)
    steps = drive(so, 10)
    assert len(steps) == 4 and so.ask() is None and so.ask() is None
    assert surrogate.fits == []
    ranked = sorted(so.scored.values(), key=lambda r: (-r.predicted, r.first_step))
    assert [a for a, _ in steps] == [r.arch for r in ranked[:4]]
    assert len(so.scored) > 10 and steps[0][1]["proposed"] == 50 and steps[1][1]["proposed"] == 0
    assert all(conv3(a) >= max(r.predicted for r in ranked[4:]) for a, _ in steps)
    for rec, (arch, _) in zip(so.records, steps):
        ev = fake_eval(arch)
        assert rec["predicted"] == conv3(arch)
        assert rec["val_acc"] == (ev.val_acc if ev.ok else None)
