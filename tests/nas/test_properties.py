"""Property tests over random samples: compiled shapes and parameter counts equal the symbolic ones,
string and JSON round trips are the identity, mutation preserves validity.  The default run keeps a small
sample; ``pytest -m slow`` runs thousands."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.architecture import Architecture
from nas.compile import build_backbone
from nas.grammar import Budget
from nas.sampler import Sampler
from nas.mutation import mutate

SHAPES = [(3, 32, 32), (1, 24, 24), (3, 64, 64), (12, 8, 8), (64, 32)]
IDS = ["3x32x32", "1x24x24", "3x64x64", "12x8x8", "seq64x32"]
# Small enough that a forward pass on CPU takes milliseconds; the structure of samples is unaffected.
COMPILE_BUDGET = Budget(max_nodes=120, max_params=1_000_000, max_flops=5e7, max_activation=2**20, batch_size=2)
SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


def check_compiled(arch: Architecture) -> None:
    for fuse in (True, False):
        module = build_backbone(arch, fuse=fuse)
        assert sum(p.numel() for p in module.parameters()) == arch.num_params
        with torch.no_grad():
            y = module(torch.randn(2, *arch.input_shape))
        assert tuple(y.shape) == (2, *arch.output_shape)


def check_round_trips(arch: Architecture) -> None:
    assert Architecture.from_string(arch.to_string(), arch.input_shape) == arch
    assert Architecture.from_string(arch.long_string(), arch.input_shape) == arch
    again = Architecture.from_json(arch.to_json())
    assert again == arch and again.to_string() == arch.to_string() and again.hash == arch.hash
    assert [i.outputs for i in again.nodes] == [i.outputs for i in arch.nodes]


def check_mutation(arch: Architecture, seed: int, budget: Budget) -> None:
    child = mutate(arch, np.random.default_rng(seed), budget)
    assert child != arch
    assert Architecture.from_string(child.to_string(), arch.input_shape) == child
    assert child.num_nodes <= budget.max_nodes and child.depth <= budget.max_depth
    assert child.num_params <= budget.max_params and child.flops <= budget.max_flops
    assert child.max_activation * budget.batch_size <= budget.max_activation


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@settings(max_examples=12)
@given(seed=SEEDS)
def test_compiled_module_matches_symbolic_shapes_and_params(shape, seed):
    arch = Sampler("einspace", shape, COMPILE_BUDGET).sample(seed)
    check_compiled(arch)


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@settings(max_examples=25)
@given(seed=SEEDS)
def test_round_trips_and_mutation_with_default_budgets(shape, seed):
    budget = Budget()
    arch = Sampler("einspace", shape, budget).sample(seed)
    check_round_trips(arch)
    check_mutation(arch, seed, budget)


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@settings(max_examples=600)
@given(seed=SEEDS)
def test_many_compiled_samples(shape, seed):
    arch = Sampler("einspace", shape, COMPILE_BUDGET).sample(seed)
    check_compiled(arch)
    check_mutation(arch, seed, COMPILE_BUDGET)
    check_compiled(mutate(arch, np.random.default_rng(seed + 1), COMPILE_BUDGET))


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@settings(max_examples=2000)
@given(seed=SEEDS)
def test_many_round_trips_and_mutations(shape, seed):
    budget = Budget()
    arch = Sampler("einspace", shape, budget).sample(seed)
    check_round_trips(arch)
    check_mutation(arch, seed, budget)


MATMUL_OPS = ("linear", "dot_product")


@settings(max_examples=15)
@given(seed=SEEDS)
def test_matmul_flops_agree_with_torch_flop_counter(seed):
    """Independent check of the FLOP estimates: torch counts 2·M·N·K per matmul; our linear and
    dot-product estimates must add up to exactly that (element-wise ops torch does not count)."""
    from torch.utils.flop_counter import FlopCounterMode

    arch = Sampler("einspace", (3, 16, 16), COMPILE_BUDGET).sample(seed)
    ours = 0
    for info in arch.terminals():
        if info.op.name.startswith(MATMUL_OPS):
            extra = info.outputs[0].numel if info.op.name == "dot_product(scaled)" else 0
            ours += (info.flops - extra) * info.copies
    module = build_backbone(arch, fuse=False)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(torch.randn(1, 3, 16, 16))
    assert counter.get_total_flops() == ours
