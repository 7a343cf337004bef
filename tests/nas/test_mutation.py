"""Mutation and crossover: valid, within budget, different from the parent, deterministic."""

import numpy as np
import pytest

from nas.architecture import Architecture
from nas.errors import MutationError
from nas.grammar import Budget
from nas.grammar.derive import subtree_at
from nas.sampler import Sampler
from nas.mutation import crossover, mutate
from nas.seeds import get_seed


def revalidated(a: Architecture) -> Architecture:
    return Architecture.from_string(a.to_string(), a.input_shape)


@pytest.mark.parametrize("shape", [(3, 32, 32), (64, 32)])
def test_mutants_are_valid_in_budget_and_different(shape):
    budget = Budget(max_nodes=80, max_params=500_000)
    sampler = Sampler("einspace", shape, budget)
    rng = np.random.default_rng(0)
    for _ in range(40):
        parent = sampler.sample(rng)
        child = mutate(parent, rng, budget)
        assert child != parent
        assert revalidated(child) == child
        assert child.num_nodes <= 80 and child.num_params <= 500_000


def test_mutation_is_deterministic_for_a_seed():
    parent = get_seed("resnet18")
    assert mutate(parent, 5) == mutate(parent, 5)
    kids = {mutate(parent, s).to_string() for s in range(10)}
    assert len(kids) >= 8


def test_seeds_mutate_under_the_default_budget():
    rng = np.random.default_rng(1)
    for shape in [(3, 32, 32), (3, 64, 64)]:
        for name in ("resnet18", "wrn16_4", "vit", "mlp_mixer"):
            parent = get_seed(name, shape)
            child = mutate(parent, rng)
            assert child != parent and revalidated(child) == child


def test_mutating_a_terminal_changes_its_operation():
    parent = Architecture.from_string("routing[identity, computation<relu>, identity]", (3, 8, 8))
    rng = np.random.default_rng(0)
    for _ in range(30):
        child = mutate(parent, rng)
        assert child != parent


def test_mutation_gives_up_cleanly():
    parent = Architecture.from_string("routing[identity, computation<identity>, identity]", (3, 8, 8))
    with pytest.raises(MutationError, match="no valid in-budget mutant"):
        mutate(parent, 0, max_tries=0)
    # under a budget the parent already breaks, every mutant that keeps the big layer is refused
    big = Architecture.from_string("routing[identity, computation<linear(2048)>, identity]", (3, 8, 8))
    for seed in range(10):
        child = mutate(big, seed, Budget(max_params=20_000), max_tries=500)
        assert child.num_params <= 20_000


def test_crossover_swaps_a_compatible_subtree():
    rng = np.random.default_rng(3)
    sampler = Sampler(budget=Budget(max_nodes=60))
    for _ in range(20):
        a, b = sampler.sample(rng), sampler.sample(rng)
        try:
            child = crossover(a, b, rng, Budget(max_nodes=120))
        except MutationError:
            continue
        assert child != a and revalidated(child) == child
        # every subtree of the child either comes from a or from b
        strings_b = {str(subtree_at(b.root, i.path)) for i in b.nodes}
        assert any(str(subtree_at(child.root, i.path)) in strings_b for i in child.nodes if i.path)
    rn, wrn = get_seed("resnet18"), get_seed("wrn16_4")
    child = crossover(rn, wrn, 0)
    assert child not in (rn, wrn)
    with pytest.raises(ValueError, match="same grammar and input shape"):
        crossover(rn, get_seed("resnet18", (3, 16, 16)), 0)
