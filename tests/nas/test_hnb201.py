"""The hierarchical NAS-Bench-201 grammar: the published space, sampling, strings, compiled shapes and costs,
the NAS-Bench-201 subset and its table look-up, mutation and crossover."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.architecture import Architecture
from nas.compile import build_terminal, compile_architecture
from nas.errors import InvalidArchitectureError, SamplingError
from nas.grammar import get_grammar, grammar_names
from nas.grammar.derive import subtree_at
from nas.cells import from_cell_string, from_nb201_cell
from nas.grammar.hnb201 import to_nb201_cell
from nas.grammar.nb201 import OPS, canonical_cell, iter_cells, to_cell_string
from nas.sampler import Sampler
from nas.graph import to_graph
from nas.mutation import crossover, mutate
from tests.nas.test_nb201_net import count_flops, n_params

SHAPE = (3, 32, 32)
CELL = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"


@pytest.fixture(scope="module")
def sampler() -> Sampler:
    return Sampler("hnb201", SHAPE)


def cells_of(arch: Architecture) -> list:
    return [i for i in arch.nodes if i.level == "CELL"]


def test_grammar_is_the_published_space():
    g = get_grammar("hnb201")
    assert "hnb201" in grammar_names() and g.strict_levels
    names = {lv: [o.name for o in g.options(lv)] for lv in g.levels}
    assert names["D2"] == ["Linear3(D1,D1,D0)", "Linear3(D0,D1,D1)", "Linear4(D1,D1,D0,D0)"]
    assert names["D1"] == names["D0"] == ["Linear3", "Linear4", "Residual3"]
    assert names["DOWN"] == names["C"] == ["Linear2", "Linear3", "Residual2"]
    assert [o.children for o in g.options("DOWN")] == [("CELL", "RES"), ("CELL", "CELL", "RES"), ("CELL", "RES", "RES")]
    assert [o.children for o in g.options("D1")][2] == ("C", "C", "DOWN", "DOWN")
    assert names["OPS"] == ["id", "zero", "Linear1", "avg_pool"]
    assert [o.weight for o in g.options("OPS")] == [1.0, 1.0, 2.0, 1.0]  # the duplicated conv-block production
    assert names["ACT"] == ["relu", "hardswish", "mish"] and names["CONV"] == ["conv3x3o", "conv1x1o", "dconv3x3o"]
    assert names["NORM"] == ["batch", "instance", "layer"] and names["RES"] == ["resBlock"]
    (cell,) = g.options("CELL")
    assert cell.kind == "dag" and cell.edges == ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
    res2, res3 = g.operation("C", "Residual2"), g.operation("D1", "Residual3")
    assert res2.edges == ((0, 1), (0, 2), (1, 2)) and res3.edges == ((0, 1), (1, 2), (0, 3), (2, 3))


def test_sampling_is_deterministic_and_strings_round_trip(sampler):
    a = list(sampler.sample_many(25, np.random.default_rng(0)))
    assert a == list(sampler.sample_many(25, np.random.default_rng(0)))
    assert len({x.to_string() for x in a}) == 25
    for arch in a:
        again = Architecture.from_string(arch.to_string(), SHAPE, "hnb201")
        assert again == arch and again.hash == arch.hash
        assert Architecture.from_json(arch.to_json()) == arch
        assert Architecture.from_string(arch.long_string(), SHAPE, "hnb201") == arch
        assert arch.output_shape == (64, 8, 8)
        for info in cells_of(arch):  # NePS's constraint: a path of non-zero edges through every cell
            assert info.op.live_path([c.op for c in subtree_at(arch.root, info.path).children])


def test_sampled_distribution_covers_the_options(sampler):
    seen: dict[str, set[str]] = {}
    for arch in sampler.sample_many(40, np.random.default_rng(1)):
        for info in arch.nodes:
            seen.setdefault(info.level, set()).add(info.op.name)
    g = get_grammar("hnb201")
    for level, ops in g.levels.items():
        assert seen[level] == {o.name for o in ops}, level


@settings(max_examples=30)
@given(st.integers(0, 2**32 - 1))
def test_symbolic_shapes_are_the_tensor_shapes(seed):
    """Every terminal's module maps a tensor of its inferred input shape to its inferred output shape, and the
    compiled network's output is the architecture's output shape (so every DAG sum adds equal shapes)."""
    shape = (3, 16, 16) if seed % 2 else (1, 8, 12)
    arch = Sampler("hnb201", shape).sample(seed)
    with torch.no_grad():
        for info in arch.terminals():
            module = build_terminal(info.op, info.inputs, info.outputs).eval()
            y = module(torch.randn(2, *info.inputs[0].shape))
            assert tuple(y.shape[1:]) == info.outputs[0].shape, (info.op.name, info.path)
        net = compile_architecture(arch, 5, seed=0).eval()
        assert tuple(net.backbone(torch.randn(2, *shape)).shape[1:]) == arch.output_shape


def test_closed_form_costs_match_the_modules():
    for seed in range(12):
        arch = Sampler("hnb201", (3, 16, 16)).sample(seed)
        net = compile_architecture(arch, 10, seed=0)
        assert n_params(net.backbone) == arch.num_params, seed
        assert n_params(net) == arch.num_params + arch.head_params(10)
        assert count_flops(net.backbone, torch.randn(1, 3, 16, 16)) == arch.flops, seed


def test_nb201_subset_maps_onto_the_cell():
    arch = from_nb201_cell(CELL)
    assert to_nb201_cell(arch) == CELL
    assert len(cells_of(arch)) == 15 and arch.node_at((1,)).op.name == "Linear3(D1,D1,D0)"
    flat = from_cell_string(CELL)
    assert arch.num_params == flat.num_params and arch.flops == flat.flops  # the same network
    assert arch.output_shape == flat.output_shape and arch.max_activation == flat.max_activation
    net = compile_architecture(arch, 10, seed=0)
    assert n_params(net) == n_params(compile_architecture(flat, 10, seed=0))
    rng = np.random.default_rng(2)
    cells = list(iter_cells())
    for i in rng.choice(len(cells), 60, replace=False):
        ops = cells[int(i)]
        if canonical_cell(ops) == ("none",) * 6:  # no live path: not in the hierarchical space
            with pytest.raises(InvalidArchitectureError, match="no path from input to output avoids zero"):
                from_nb201_cell(ops)
            continue
        h = from_nb201_cell(ops)
        assert to_nb201_cell(h) == to_cell_string(ops)
        assert (h.num_params, h.flops) == (from_cell_string(to_cell_string(ops)).num_params,
                                           from_cell_string(to_cell_string(ops)).flops)


FIRST_CELL = "Cell(Linear1(Linear3(relu, conv3x3o, batch)), zero, id, avg_pool, zero, Linear1(Linear3(relu, conv1x1o, batch)))"


def test_outside_the_subset_is_none(sampler):
    text = from_nb201_cell(CELL).to_string()
    assert text.count(FIRST_CELL) == 15
    other_norm = FIRST_CELL.replace("conv3x3o, batch", "conv3x3o, instance")
    other_act = FIRST_CELL.replace("relu, conv1x1o", "mish, conv1x1o")
    for cell in (other_norm, other_act):
        assert to_nb201_cell(Architecture.from_string(text.replace(FIRST_CELL, cell, 1), SHAPE, "hnb201")) is None
        everywhere = Architecture.from_string(text.replace(FIRST_CELL, cell), SHAPE, "hnb201")
        assert to_nb201_cell(everywhere) is None  # one cell everywhere, but not an NB201 operation
    other_cell = FIRST_CELL.replace("zero, id, avg_pool", "id, id, avg_pool")
    same = Architecture.from_string(text.replace(FIRST_CELL, other_cell), SHAPE, "hnb201")
    assert to_nb201_cell(same) == CELL.replace("none~0|skip", "skip_connect~0|skip")
    assert all(to_nb201_cell(a) is None for a in sampler.sample_many(10, np.random.default_rng(3)))
    assert to_nb201_cell(from_cell_string(CELL)) is None  # another grammar


def test_the_table_task_looks_the_subset_up(sampler):
    from data.nb201 import NB201Task

    try:
        task = NB201Task()
    except FileNotFoundError as exc:
        pytest.skip(f"NB201 data not available: {exc}")
    arch = from_nb201_cell(CELL)
    assert task.lookup(arch) == task.lookup(CELL) == task.lookup(arch.to_string())
    with pytest.raises(ValueError, match="not in the NAS-Bench-201 subset"):
        task.lookup(sampler.sample(0))


def test_dead_cells_are_invalid_and_never_sampled():
    arch = from_nb201_cell(CELL)
    dead = arch.to_string().replace(FIRST_CELL, "Cell(zero, zero, id, zero, id, id)", 1)
    with pytest.raises(InvalidArchitectureError, match="no path from input to output avoids zero"):
        Architecture.from_string(dead, SHAPE, "hnb201")
    # mutating edges never cuts a cell: zero is refused where it would
    rng = np.random.default_rng(4)
    for _ in range(60):
        arch = mutate(arch, rng)
        for info in cells_of(arch):
            assert info.op.live_path([c.op for c in subtree_at(arch.root, info.path).children])


def test_inputs_the_network_cannot_take():
    with pytest.raises(SamplingError, match="grammar 'hnb201' needs an image input C×H×W"):
        Sampler("hnb201", (64, 32))
    with pytest.raises(SamplingError, match="divisible by 4"):
        Sampler("hnb201", (3, 30, 30))
    with pytest.raises(InvalidArchitectureError, match="divisible by 4"):
        Architecture.from_string(from_nb201_cell(CELL).to_string(), (3, 30, 30), "hnb201")


def test_mutation_and_crossover(sampler):
    rng = np.random.default_rng(5)
    a, b = sampler.sample(rng), sampler.sample(rng)
    for _ in range(20):
        child = mutate(a, rng)
        assert child != a and Architecture.from_string(child.to_string(), SHAPE, "hnb201") == child
        a = child
    assert mutate(a, 7) == mutate(a, 7)
    for _ in range(10):
        child = crossover(a, b, rng)
        assert child != a and Architecture.from_string(child.to_string(), SHAPE, "hnb201") == child
        levels_a = [i.level for i in a.nodes if len(i.path) <= 1]
        assert [i.level for i in child.nodes if len(i.path) <= 1] == levels_a


def test_crossover_keeps_nb201_ops_on_their_edges():
    rng = np.random.default_rng(6)
    s = Sampler("nb201", SHAPE)
    for _ in range(30):
        a, b = s.sample(rng), s.sample(rng)
        if a == b:
            continue
        child = crossover(a, b, rng)
        for i, op in enumerate(c.op for c in child.root.children):
            assert op in (a.root.children[i].op, b.root.children[i].op)


def test_graph_is_a_dag_of_the_terminals(sampler):
    arch = from_nb201_cell(CELL)
    g = to_graph(arch)
    assert g.number_of_nodes() == arch.num_terminals + 2
    labels = [g.nodes[n]["label"] for n in g]
    assert labels[:2] == ["input", "stem"] and labels[-2:] == ["out", "output"]
    # in the first cell, edge 3<-2 (the conv1x1 block's relu) is fed by both edges into node 2
    first = [n for n in g if g.nodes[n]["path"] and g.nodes[n]["path"][:5] == (1, 0, 0, 0, 5)]
    relu = min(first)
    assert g.nodes[relu]["label"] == "relu" and g.in_degree(relu) == 2
    for arch in sampler.sample_many(5, np.random.default_rng(7)):
        g = to_graph(arch)
        assert g.number_of_nodes() == arch.num_terminals + 2


def test_grammar_module_does_not_import_torch():
    code = "import sys, nas.grammar.hnb201; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_ops_constant_is_shared():
    assert OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def test_graf_features_and_a_surrogate(sampler):
    from features.graf import GrammarGRAF
    from features.pipeline import make_featuriser
    from surrogates.tabular import TabularSurrogate

    archs = list(sampler.sample_many(16, np.random.default_rng(8)))
    featuriser = make_featuriser("graf", grammar="hnb201")
    assert isinstance(featuriser, GrammarGRAF)
    X = featuriser.fit_transform(archs)
    names = list(featuriser.get_feature_names_out())
    assert X.shape == (16, len(names)) and np.isfinite(X).all()
    cnt = dict(zip(names, X[0]))
    assert cnt["cnt_stem"] == cnt["cnt_out"] == 1 and cnt["cnt_Cell"] == len(cells_of(archs[0]))
    assert cnt["cnt_zero"] == sum(1 for i in archs[0].nodes if i.op.name == "zero")
    y = np.log([a.num_params for a in archs])
    model = TabularSurrogate("rf", features="graf", random_state=0).fit(archs, y)
    assert model.predict(archs[:4]).shape == (4,)
