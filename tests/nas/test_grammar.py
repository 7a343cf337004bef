"""The einspace preset as data, and the shape rules of its terminal operations."""

import math

import numpy as np
import pytest

from nas.grammar import Budget, Signal, get_grammar
from nas.grammar.derive import Derivation

G = get_grammar("einspace")


def names(level, sampleable=True):
    return [o.name for o in G.options(level) if o.weight > 0 or not sampleable]


def op(level, name):
    o = G.operation(level, name)
    assert o is not None, (level, name)
    return o


def test_module_probabilities_match_the_published_preset():
    w = {o.name: o.weight for o in G.options("module")}
    assert w["computation"] == pytest.approx(0.32)
    assert w["sequential"] == pytest.approx(0.68 / 3)
    assert w["routing"] == pytest.approx(0.68 / 3)
    for k in (2, 4, 8):
        assert w[f"branching({k})"] == pytest.approx(0.68 / 9)
    assert sum(w.values()) == pytest.approx(1.0)
    root = {o.name: o.weight for o in G.options("network")}
    assert "computation" not in root
    assert sum(root.values()) == pytest.approx(1.0)
    assert root["sequential"] == pytest.approx(1 / 3) and root["branching(4)"] == pytest.approx(1 / 9)


def test_option_sets_have_the_published_sizes():
    assert [len(names(f"branching_fn_{k}")) for k in (2, 4, 8)] == [4, 4, 4]
    assert names("aggregation_fn_2") == ["add(2)", "cat(2,1)", "cat(2,2)", "cat(2,3)", "dot_product", "dot_product(scaled)"]
    assert names("aggregation_fn_4") == ["add(4)", "cat(4,1)", "cat(4,2)", "cat(4,3)"]
    assert len(names("prerouting_fn")) == 14
    assert len(names("postrouting_fn")) == 8
    assert len(names("computation_fn")) == 13
    # legal for seeds and reproductions, never sampled
    assert set(names("computation_fn", sampleable=False)) - set(names("computation_fn")) == {"leakyrelu", "linear(x4)", "linear(/4)"}


def test_branching_factor_is_a_property_of_the_module():
    assert op("module", "branching(2)").children == ("branching_fn_2", "module", "module", "aggregation_fn_2")
    assert op("module", "branching(8)").children == ("branching_fn_8", "module", "aggregation_fn_8")
    assert op("module", "branching(8)").replicate


def test_completion_bounds():
    assert G.min_nodes(op("module", "computation")) == 2
    assert G.min_nodes(op("module", "sequential")) == 5
    assert G.min_nodes(op("network", "routing")) == 5
    assert G.min_height(op("module", "computation")) == 1
    assert G.min_height(op("network", "sequential")) == 2


def sig(*shape, grid=None):
    return (Signal(tuple(shape), grid),)


def test_im2col_and_col2im_shapes():
    (x,) = op("prerouting_fn", "im2col(3,2,1)").infer(sig(3, 32, 32))
    assert x == Signal((256, 27), (16, 16))
    assert op("prerouting_fn", "im2col(16,16,0)").infer(sig(3, 8, 8)) is None  # kernel larger than the image
    assert op("prerouting_fn", "im2col(3,1,1)").infer(sig(64, 32)) is None  # not an image
    col2im = op("postrouting_fn", "col2im")
    assert col2im.infer((x,)) == sig(27, 16, 16, grid=(16, 16))
    assert col2im.infer(sig(256, 27)) is None  # no grid on this path
    assert col2im.infer(sig(255, 27, grid=(16, 16))) is None  # token count differs from the grid


def test_linear_norm_posenc_costs():
    lin = op("computation_fn", "linear(64)")
    inp = sig(3, 32, 32)
    out = lin.infer(inp)
    assert out == sig(3, 32, 64)
    assert lin.params(inp, out) == 32 * 64 + 64
    assert lin.flops(inp, out) == 2 * 3 * 32 * 32 * 64
    norm = op("computation_fn", "norm")
    assert norm.params(sig(8, 5, 5), sig(8, 5, 5)) == 16  # BatchNorm2d over channels
    assert norm.params(sig(10, 7), sig(10, 7)) == 14  # LayerNorm over features
    pe = op("computation_fn", "pos_enc")
    assert pe.params(sig(10, 7), sig(10, 7)) == 70
    assert op("computation_fn", "linear(/4)").infer(sig(5, 6)) is None
    assert op("computation_fn", "linear(x4)").infer(sig(5, 6)) == sig(5, 24)


def test_branching_and_aggregation_rules():
    assert op("branching_fn_4", "group(4,1)").infer(sig(8, 6, 6)) == sig(2, 6, 6) * 4
    assert op("branching_fn_4", "group(4,2)").infer(sig(8, 6, 6)) is None  # 6 not divisible by 4
    assert op("branching_fn_2", "group(2,3)").infer(sig(64, 32)) is None  # col tensors have no axis 3
    dot = op("aggregation_fn_2", "dot_product")
    assert dot.infer(sig(10, 4) + sig(4, 7)) == sig(10, 7)
    assert dot.infer(sig(10, 4) + sig(5, 7)) is None
    assert dot.infer(sig(3, 10, 4) + sig(3, 4, 2)) == sig(3, 10, 2)
    assert dot.infer(sig(3, 10, 4) + sig(2, 4, 2)) is None  # channels must agree
    assert dot.infer(sig(10, 4) + sig(1, 4, 7)) is None  # ranks differ
    cat = op("aggregation_fn_2", "cat(2,2)")
    assert cat.infer(sig(3, 4, 5) + sig(3, 6, 5)) == sig(3, 10, 5)
    assert cat.infer(sig(3, 4, 5) + sig(2, 6, 5)) is None
    add = op("aggregation_fn_8", "add(8)")
    assert add.infer(sig(3, 4, 5) * 8) == sig(3, 4, 5)
    assert add.infer(sig(3, 4, 5) * 7 + sig(3, 4, 6)) is None
    # the grid survives an aggregation only when all branches agree on it
    g = sig(4, 5, grid=(2, 2))
    assert add.infer(g * 8)[0].grid == (2, 2)
    assert op("aggregation_fn_2", "add(2)").infer(g + sig(4, 5, grid=(4, 1)))[0].grid is None


def test_permutations_keep_the_mode():
    assert op("postrouting_fn", "perm(0,2,3,1)").infer(sig(3, 8, 16)) == sig(8, 16, 3)
    assert op("postrouting_fn", "perm(0,2,1)").infer(sig(3, 8, 16)) is None
    assert op("prerouting_fn", "perm(0,2,1)").infer(sig(64, 32)) == sig(32, 64)


def test_terminal_choice_is_uniform_over_valid_options_and_skips_weight_zero():
    rng = np.random.default_rng(0)
    counts = {}
    for _ in range(2600):
        d = Derivation(G, Budget(), rng)
        node, _ = d.expand("computation_fn", sig(3, 32, 32), 5, 1, None, ())
        counts[node.op] = counts.get(node.op, 0) + 1
    assert set(counts) == set(names("computation_fn"))  # 13 options, weight-0 ones never drawn
    for n in counts.values():  # expected 200 each
        assert 140 < n < 260
    # im mode: permute21 and col2im are not valid, so 6 remain among the 8 post-routing options
    counts = {}
    for _ in range(600):
        d = Derivation(G, Budget(), rng)
        node, _ = d.expand("postrouting_fn", sig(3, 32, 32), 5, 1, None, ())
        counts[node.op] = counts.get(node.op, 0) + 1
    assert set(counts) == set(names("postrouting_fn")) - {"perm(0,2,1)", "col2im"}


def test_budget_validates_its_fields():
    with pytest.raises(ValueError, match="max_params"):
        Budget(max_params=0)
    assert "nodes ≤ 400" in Budget().describe()


def test_unknown_grammar_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown grammar 'nope'"):
        get_grammar("nope")
    assert math.isclose(get_grammar("einspace-quick").operation("module", "computation").weight, 0.9)
