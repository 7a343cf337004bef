"""A pre-fitted surrogate chooses the whole initial population from a wide pool (``initial_candidates``)."""

from __future__ import annotations

import numpy as np
import pytest

from nas.sampler import Sampler
from nas.search import RegularizedEvolution
from nas.search.factory import make_strategy
from nas.cells import cell_architecture
from tests.nas.search.test_strategies import ConvCount, beaten_only_by_known, conv3, drive, small_sfe

SHAPE = (3, 32, 32)


@pytest.fixture(scope="module")
def sampler() -> Sampler:
    return Sampler("nb201", SHAPE)


def test_the_initial_population_is_the_best_predicted_of_the_pool(sampler):
    sfe = small_sfe(sampler, prefit=True, refit=False, initial_candidates=40)
    steps = drive(sfe, 16)
    first = sfe.batches[0]
    assert first.start == 0 and first.proposed == 40 and len(first.chosen) == 10
    # Asks 0-9 are the pool's 10 best-predicted fresh samples, in prediction order.
    assert [a.hash for a, _ in steps[:10]] == [first.candidates[i].hash for i in first.chosen]
    assert all(beaten_only_by_known(sfe, first, i) for i in first.chosen)
    preds = [conv3(a) for a, _ in steps[:10]]
    assert preds == sorted(preds, reverse=True) and preds[-1] >= np.sort([conv3(c) for c in first.candidates])[-10]
    assert [i["batch"] for _, i in steps[:10]] == [0] * 10 and steps[0][1]["proposed"] == 40
    assert all(i["proposed"] == 0 for _, i in steps[1:10])
    # Then the usual batches of k=3 of n_candidates=8, counted from the end of the initial batch.
    assert [i["batch"] for _, i in steps[10:16]] == [10, 10, 10, 13, 13, 13]
    assert steps[10][1]["proposed"] == 8 and [b.proposed for b in sfe.batches[1:]] == [8, 8]


def test_the_pool_beats_a_random_initial_population(sampler):
    """The same stub surrogate scores a pool of 40: its 10 best have more 3x3 convolutions than RE's 10 random
    samples (by construction of the top 10; the test fails if the pool is not used)."""
    pooled = [conv3(a) for a, _ in drive(small_sfe(sampler, prefit=True, refit=False, initial_candidates=40), 10)]
    plain = [conv3(a) for a, _ in drive(RegularizedEvolution(sampler, 0, population_size=10, tournament_size=3), 10)]
    batched = [conv3(a) for a, _ in drive(small_sfe(sampler, prefit=True, refit=False), 10)]
    assert np.mean(pooled) > np.mean(batched) >= np.mean(plain)


def test_seeds_come_first_and_the_pool_fills_the_rest(sampler):
    seeds = [cell_architecture(["skip_connect"] * 6, SHAPE), cell_architecture(["nor_conv_1x1"] * 6, SHAPE)]
    sfe = small_sfe(sampler, prefit=True, refit=False, initial_candidates=20, seeds=seeds)
    steps = drive(sfe, 12)
    assert [a.hash for a, _ in steps[:2]] == [s.hash for s in seeds] and steps[0][1]["kind"] == "seed"
    assert sfe.batches[0].start == 2 and len(sfe.batches[0].chosen) == 8
    assert [i["batch"] for _, i in steps[2:10]] == [2] * 8 and steps[10][1]["batch"] == 10


def test_ground_truth_children_count_from_the_end_of_the_initial_batch(sampler):
    sfe = small_sfe(sampler, prefit=True, refit=False, initial_candidates=30, ground_truth_every=3)
    kinds = [i["kind"] for _, i in drive(sfe, 22)]
    assert kinds[:10] == ["filtered"] * 10 and kinds[10:] == ["filtered", "filtered", "plain"] * 4


def test_bad_initial_pools_are_refused(sampler):
    with pytest.raises(ValueError, match="needs a pre-fitted surrogate"):
        small_sfe(sampler, initial_candidates=40)
    with pytest.raises(ValueError, match="of 9 cannot fill the 10 initial members"):
        small_sfe(sampler, prefit=True, initial_candidates=9)
    strategy = make_strategy("filtered", type("T", (), {"input_shape": SHAPE, "grammar": "nb201"})(), 0,
                             surrogate=ConvCount(), prefit=True, population_size=10, initial_candidates=50)
    assert strategy.config()["initial_candidates"] == 50
    assert "initial_candidates" not in small_sfe(sampler, prefit=True).config()
