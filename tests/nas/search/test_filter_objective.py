"""The surrogate-as-objective strategy's published protocol: a trained first generation, predicted steps from it,
the running-best trajectory trained."""

from __future__ import annotations

import numpy as np
import pytest

from nas.sampler import Sampler
from nas.search import RegularizedEvolution, SurrogateObjective
from nas.search.factory import make_strategy
from nas.search.surrogate import running_best_trajectory
from tests.nas.search.test_strategies import ConvCount, conv3, drive, fake_eval

SHAPE = (3, 32, 32)


@pytest.fixture(scope="module")
def sampler() -> Sampler:
    return Sampler("nb201", SHAPE)


def test_running_best_trajectory_rule():
    scores = [0.1, 0.3, 0.302, 0.2, 0.5, 0.504, 0.503, 0.52]
    # 0.302 beats 0.3 by less than 0.005: it replaces it; 0.504 replaces 0.5; 0.503 is no new best.
    assert running_best_trajectory(scores, 0.005) == [0, 2, 5, 7]
    assert running_best_trajectory(scores, 0.0) == [0, 1, 2, 4, 5, 7]
    assert running_best_trajectory([-2.0, -1.5], 0.005) == []  # nothing beats the start at -1
    assert running_best_trajectory([], 0.005) == []


def published(sampler, surrogate, **kw):
    args = dict(population_size=10, tournament_size=3, steps=30, protocol="published", prefit=False)
    return SurrogateObjective(sampler, 0, surrogate, **(args | kw))


def test_published_protocol_trains_the_first_generation_then_the_trajectory(sampler):
    surrogate = ConvCount()
    so = published(sampler, surrogate)
    steps = drive(so, 100)
    re = RegularizedEvolution(sampler, 0, population_size=10, tournament_size=3)
    first = [a for a, _ in drive(re, 10)]
    # The first generation: the same random samples as RE's initial population, trained for real.
    assert [a for a, _ in steps[:10]] == first and all(i["kind"] == "random" for _, i in steps[:10])
    # The surrogate was fitted once, on the first generation's successful results.
    assert surrogate.fits == [sum(fake_eval(a).ok for a in first)]
    assert len(so.children) == 30
    trajectory = running_best_trajectory([c.predicted for c in so.children], 0.005)
    expected = list(dict.fromkeys(so.children[i].arch.hash for i in trajectory))
    asked = [a.hash for a, _ in steps[10:]]
    assert asked == expected and len(steps) == 10 + len(expected) and so.ask() is None
    assert all(i["kind"] == "objective" for _, i in steps[10:]) and steps[10][1]["proposed"] == 30
    # The trajectory's predictions rise; the records pair them with the true fitness.
    preds = [r["predicted"] for r in so.records]
    assert preds == sorted(preds) and all(r["predicted"] == conv3(a) for r, (a, _) in zip(so.records, steps[10:]))


def test_no_prediction_above_the_start_trains_nothing_more(sampler):
    """The running best starts at -1: predictions that never beat it leave the trajectory empty, and the run
    stops after the first generation."""
    class Low(ConvCount):
        def predict(self, archs):
            return np.full(len(archs), -5.0)

    so = published(sampler, Low())
    steps = drive(so, 50)
    assert len(steps) == 10 and so.ask() is None and len(so.children) == 30
    assert so.ranked == [] and so.records == []


def test_published_protocol_is_replayed_exactly(sampler):
    so = published(sampler, ConvCount(), prefit=True)
    steps = drive(so, 100)
    for cut in (10, 12):
        again = published(sampler, ConvCount(), prefit=True)
        for arch, _ in steps[:cut]:
            again.tell(arch, fake_eval(arch))
        rest = drive(again, 100)
        assert [a.hash for a, _ in rest] == [a.hash for a, _ in steps[cut:]]


def test_objective_protocol_arguments_and_factory(sampler):
    with pytest.raises(ValueError, match="protocol"):
        published(sampler, ConvCount(), protocol="nope")
    with pytest.raises(ValueError, match="prefit"):
        published(sampler, ConvCount(), protocol="topk")
    with pytest.raises(ValueError, match="threshold"):
        published(sampler, ConvCount(), threshold=-1)
    assert published(sampler, ConvCount(), steps=None).steps == 200
    assert published(sampler, ConvCount(), steps=None, protocol="topk", prefit=True).steps == 1000

    class Task:
        input_shape = SHAPE
        grammar = "nb201"

    strategy = make_strategy("objective", Task(), 0, surrogate=ConvCount(), prefit=False, population_size=10,
                             protocol="published")
    assert strategy.protocol == "published" and strategy.steps == 200 and not strategy.prefit
    assert strategy.config()["protocol"] == "published"
    with pytest.raises(ValueError, match="published protocol fits"):
        make_strategy("objective", Task(), 0, surrogate=ConvCount(), prefit=False)  # the default: top-k
    topk = make_strategy("objective", Task(), 0, surrogate=ConvCount(), prefit=True, steps=5)
    assert topk.protocol == "topk"
    assert "protocol" not in topk.config()  # a top-k run's stored configuration is unchanged
