"""GRAF features: hand-worked golden values, the published layout, graph invariances, NB201 cells."""

import math
import random

import networkx as nx
import numpy as np
import pytest

from features.graf import (
    FAMILIES,
    FEATURE_NAMES,
    GRAF,
    NB201_FEATURE_NAMES,
    NB201_SUBSETS,
    NB201GRAF,
    PATH_GROUPS,
    PUBLISHED_FEATURE_NAMES,
    VOCABULARY,
    graf_features,
    graph_features,
    label_group,
    nb201_graf,
    translate_label,
)
from nas.architecture import Architecture
from nas.cells import cell_architecture
from nas.grammar import Budget, get_grammar
from nas.grammar.nb201 import parse_cell_string
from nas.sampler import Sampler
from nas.graph import num_instances, to_graph

UNREACHABLE = (-1.0, -1.0, 0.0)  # (shortest, longest, count) when no path avoids the removed group


def path_stats(full, **removed):
    """Expected path statistics: ``full`` = (shortest, longest, count) on the whole graph; ``removed[group]``
    the same with that group's nodes removed.  A group not named has no node on any path, so it keeps the
    full values."""
    out = {}
    for stat, i in (("path_shortest", 0), ("path_longest", 1), ("path_count", 2)):
        out[stat] = full[i]
        for group in PATH_GROUPS:
            out[f"{stat}_no_{group}"] = removed.get(group, full)[i]
    return out


def assert_features(text, shape, expected):
    """Every column of ``text``'s GRAF row equals ``expected`` (columns not named must be 0), on both the
    expanded and the compact graph."""
    assert not set(expected) - set(FEATURE_NAMES), f"unknown names {set(expected) - set(FEATURE_NAMES)}"
    arch = Architecture.from_string(text, shape)
    for graph in (to_graph(arch), to_graph(arch, expand=False)):
        got = graf_features(graph)
        wrong = {
            k: (got[k], expected.get(k, 0.0))
            for k in FEATURE_NAMES
            if not math.isclose(got[k], expected.get(k, 0.0), rel_tol=1e-12, abs_tol=1e-12)
        }
        assert not wrong, wrong


# --------------------------------------------------------------------------------------------------
# Layout and vocabulary
# --------------------------------------------------------------------------------------------------


def test_published_layout():
    assert len(VOCABULARY) == len(set(VOCABULARY)) == 55
    assert len(PUBLISHED_FEATURE_NAMES) == 385 and FEATURE_NAMES[:385] == PUBLISHED_FEATURE_NAMES
    assert PUBLISHED_FEATURE_NAMES[0] == "cnt_sequential_module"
    assert [PUBLISHED_FEATURE_NAMES[55 * i].rsplit("_sequential_module")[0] for i in range(7)] == list(FAMILIES)
    assert FAMILIES == ("cnt", "max_nodes_path", "min_nodes_path", "in", "out", "out_deg", "in_deg")
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == 385 + 4 + 3 * 8
    assert FEATURE_NAMES[385:392] == (
        "depth", "num_terminals", "num_nonterminals", "output_feature_size",
        "path_shortest", "path_shortest_no_im2col", "path_shortest_no_permute",
    )


def test_every_sampled_einspace_option_translates_into_the_vocabulary():
    grammar = get_grammar("einspace")
    seen = set()
    for level, ops in grammar.levels.items():
        if level == "network":
            continue
        for op in ops:
            label = translate_label(op.name)
            if op.weight > 0 or op.name == "leakyrelu":
                assert label in VOCABULARY, op.name
                seen.add(label)
            else:  # the seed-only relative widths have no published label
                assert op.name in ("linear(x4)", "linear(/4)") and label is None
    assert seen == set(VOCABULARY)
    assert translate_label("relu") == translate_label("leakyrelu") == "leakyrelu"
    assert translate_label("cat(4,2)") == "cat_tensors2d4t" and translate_label("group(8,3)") == "group_dim8s3d"
    assert translate_label("perm(0,1,3,2)") == "permute132" and translate_label("branching(8)") == "branching_module"
    assert translate_label("input") is None and translate_label("output") is None


def test_label_groups():
    assert [label_group(x) for x in ("im2col(3,1,1)", "col2im", "perm(0,2,1)", "add(4)", "dot_product(scaled)")] == [
        "im2col", "im2col", "permute", "aggregation", "aggregation"
    ]
    assert [label_group(x) for x in ("clone(2)", "group(2,1)", "linear(x4)", "identity", "pos_enc")] == [
        "clone", "group_dim", "linear", "other", "other"
    ]
    assert label_group("input") is None and label_group("output") is None


# --------------------------------------------------------------------------------------------------
# Golden values, worked out by hand
# --------------------------------------------------------------------------------------------------


def test_golden_conv():
    # input(0) -> im2col(3,1,1)(1) -> linear(16)(2) -> col2im(3) -> output(4); |V| = 5; one path of 4 edges.
    # Tree: routing (depth 0) > im2col, computation (1) > linear (2): depth 2, 3 terminals, 2 nonterminals.
    # Output 16×32×32 (im) -> 16 features.  Every op has in- and out-degree 1 -> degree features 1/5.
    expected = {
        "cnt_routing_module": 1, "cnt_computation_module": 1,
        "cnt_im2col3k1s1p": 1, "cnt_linear16": 1, "cnt_col2im": 1,
        "max_nodes_path_im2col3k1s1p": 1, "max_nodes_path_linear16": 1, "max_nodes_path_col2im": 1,
        "min_nodes_path_im2col3k1s1p": 1, "min_nodes_path_linear16": 1, "min_nodes_path_col2im": 1,
        "in_im2col3k1s1p": 1, "out_col2im": 1,
        "out_deg_im2col3k1s1p": 1 / 5, "out_deg_linear16": 1 / 5, "out_deg_col2im": 1 / 5,
        "in_deg_im2col3k1s1p": 1 / 5, "in_deg_linear16": 1 / 5, "in_deg_col2im": 1 / 5,
        "depth": 2, "num_terminals": 3, "num_nonterminals": 2, "output_feature_size": 16,
        # removing im2col (with col2im) or linear cuts the only path
        **path_stats((4, 4, 1), im2col=UNREACHABLE, linear=UNREACHABLE),
    }
    assert_features("routing[im2col(3,1,1), computation<linear(16)>, col2im]", (3, 32, 32), expected)


RESIDUAL = (
    "sequential(routing[im2col(3,1,1), computation<linear(16)>, col2im], branching(2){clone(2), "
    "sequential(routing[im2col(3,1,1), computation<linear(16)>, col2im], computation<relu>), "
    "computation<identity>, add(2)})"
)


def test_golden_residual_block():
    # 0 input, 1 im2col, 2 linear16, 3 col2im (stem conv), 4 clone2, 5 im2col, 6 linear16, 7 col2im, 8 relu,
    # 9 identity, 10 add, 11 output: |V| = 12.  Paths: main 0-1-2-3-4-5-6-7-8-10-11 (10 edges) and
    # shortcut 0-1-2-3-4-9-10-11 (7 edges).
    # Σ out-degree (in_deg_*): im2col 1+1, linear 1+1, col2im 1+1, clone 2, relu 1, identity 1, add 1.
    # Σ in-degree (out_deg_*): im2col 2, linear 2, col2im 2, clone 1, relu 1, identity 1, add 2.
    # Tree depth: sequential 0 > branching 1 > sequential 2 > routing 3 > computation 4 > linear 5.
    # Terminals 10; nonterminals: 2 sequential, 2 routing, 4 computation, 1 branching = 9.
    expected = {
        "cnt_sequential_module": 2, "cnt_branching_module": 1, "cnt_routing_module": 2, "cnt_computation_module": 4,
        "cnt_im2col3k1s1p": 2, "cnt_linear16": 2, "cnt_col2im": 2, "cnt_clone_tensor2": 1,
        "cnt_leakyrelu": 1, "cnt_identity": 1, "cnt_add_tensors": 1,
        "max_nodes_path_im2col3k1s1p": 2, "max_nodes_path_linear16": 2, "max_nodes_path_col2im": 2,
        "max_nodes_path_clone_tensor2": 1, "max_nodes_path_leakyrelu": 1, "max_nodes_path_identity": 1,
        "max_nodes_path_add_tensors": 1,
        # relu (shortcut path) and identity (main path) can each be avoided
        "min_nodes_path_im2col3k1s1p": 1, "min_nodes_path_linear16": 1, "min_nodes_path_col2im": 1,
        "min_nodes_path_clone_tensor2": 1, "min_nodes_path_add_tensors": 1,
        "in_im2col3k1s1p": 1, "out_add_tensors": 1,
        "in_deg_im2col3k1s1p": 2 / 12, "in_deg_linear16": 2 / 12, "in_deg_col2im": 2 / 12,
        "in_deg_clone_tensor2": 2 / 12, "in_deg_leakyrelu": 1 / 12, "in_deg_identity": 1 / 12,
        "in_deg_add_tensors": 1 / 12,
        "out_deg_im2col3k1s1p": 2 / 12, "out_deg_linear16": 2 / 12, "out_deg_col2im": 2 / 12,
        "out_deg_clone_tensor2": 1 / 12, "out_deg_leakyrelu": 1 / 12, "out_deg_identity": 1 / 12,
        "out_deg_add_tensors": 2 / 12,
        "depth": 5, "num_terminals": 10, "num_nonterminals": 9, "output_feature_size": 16,
        # every group except permute/group_dim has a node on the stem or on both branches
        **path_stats(
            (7, 10, 2), im2col=UNREACHABLE, aggregation=UNREACHABLE, clone=UNREACHABLE,
            linear=UNREACHABLE, other=UNREACHABLE,
        ),
    }
    assert_features(RESIDUAL, (3, 32, 32), expected)


ATTENTION = (
    "branching(2){clone(2), sequential(branching(2){clone(2), computation<linear(16)>, "
    "routing[identity, computation<linear(16)>, perm(0,2,1)], dot_product(scaled)}, computation<softmax>), "
    "computation<linear(16)>, dot_product}"
)


def test_golden_attention_head():
    # On 10×32 tokens. 0 input, 1 clone2, 2 clone2, 3 linear16 (Q), 4 identity, 5 linear16 (K), 6 permute21,
    # 7 scaled_dot_product, 8 softmax, 9 linear16 (V), 10 dot_product, 11 output: |V| = 12.
    # Paths: Q 0-1-2-3-7-8-10-11 (7 edges), K 0-1-2-4-5-6-7-8-10-11 (9), V 0-1-9-10-11 (4).
    # Σ out-degree: clone 2+2, linear 1+1+1, identity 1, permute 1, scaled 1, softmax 1, dot 1.
    # Σ in-degree: clone 1+1, linear 3, identity 1, permute 1, scaled 2, softmax 1, dot 2.
    # Tree depth: branching 0 > sequential 1 > branching 2 > routing 3 > computation 4 > linear 5.
    # Terminals 10; nonterminals: 2 branching, 1 sequential, 1 routing, 4 computation = 8.  Output 10×16.
    expected = {
        "cnt_branching_module": 2, "cnt_sequential_module": 1, "cnt_routing_module": 1, "cnt_computation_module": 4,
        "cnt_clone_tensor2": 2, "cnt_linear16": 3, "cnt_identity": 1, "cnt_permute21": 1,
        "cnt_scaled_dot_product": 1, "cnt_softmax": 1, "cnt_dot_product": 1,
        "max_nodes_path_clone_tensor2": 2, "max_nodes_path_linear16": 1, "max_nodes_path_identity": 1,
        "max_nodes_path_permute21": 1, "max_nodes_path_scaled_dot_product": 1, "max_nodes_path_softmax": 1,
        "max_nodes_path_dot_product": 1,
        # V path: one clone, one linear, the dot product; nothing else is unavoidable
        "min_nodes_path_clone_tensor2": 1, "min_nodes_path_linear16": 1, "min_nodes_path_dot_product": 1,
        "in_clone_tensor2": 1, "out_dot_product": 1,
        "in_deg_clone_tensor2": 4 / 12, "in_deg_linear16": 3 / 12, "in_deg_identity": 1 / 12,
        "in_deg_permute21": 1 / 12, "in_deg_scaled_dot_product": 1 / 12, "in_deg_softmax": 1 / 12,
        "in_deg_dot_product": 1 / 12,
        "out_deg_clone_tensor2": 2 / 12, "out_deg_linear16": 3 / 12, "out_deg_identity": 1 / 12,
        "out_deg_permute21": 1 / 12, "out_deg_scaled_dot_product": 2 / 12, "out_deg_softmax": 1 / 12,
        "out_deg_dot_product": 2 / 12,
        "depth": 5, "num_terminals": 10, "num_nonterminals": 8, "output_feature_size": 16,
        # no permute: K path gone (Q 7, V 4); no other (identity, softmax): only V is left (4 edges)
        **path_stats(
            (4, 9, 3), permute=(4, 7, 2), aggregation=UNREACHABLE, clone=UNREACHABLE,
            linear=UNREACHABLE, other=(4, 4, 1),
        ),
    }
    assert_features(ATTENTION, (10, 32), expected)


def test_worked_example_of_the_research_notes_without_the_collision():
    # published GRAF output: |V| = 8 because `norm` was relabelled "output", so
    # out_clone_tensor2 = out_add_tensors = 1, norm/relu/add never on a path, degrees 0.125 / 0.25.
    # Fixed: 0 input, 1 im2col(4,4,0), 2 linear64, 3 col2im, 4 clone2, 5 norm, 6 relu, 7 add, 8 output;
    # |V| = 9; paths 0-1-2-3-4-5-7-8 and 0-1-2-3-4-6-7-8 (7 edges each).  Only out_add_tensors = 1.
    # Σ out-degree: clone 2, others 1.  Σ in-degree: add 2, others 1.
    # Tree depth 3 (sequential > routing > computation > linear); 7 terminals; 6 nonterminals; 3×32×32 ->
    # 64×8×8.
    ops = ["im2col4k4s0p", "linear64", "col2im", "clone_tensor2", "norm", "leakyrelu", "add_tensors"]
    expected = {
        "cnt_sequential_module": 1, "cnt_branching_module": 1, "cnt_routing_module": 1, "cnt_computation_module": 3,
        **{f"cnt_{op}": 1 for op in ops},
        **{f"max_nodes_path_{op}": 1 for op in ops},
        **{f"min_nodes_path_{op}": 1 for op in ops if op not in ("norm", "leakyrelu")},
        "in_im2col4k4s0p": 1, "out_add_tensors": 1,
        **{f"in_deg_{op}": (2 if op == "clone_tensor2" else 1) / 9 for op in ops},
        **{f"out_deg_{op}": (2 if op == "add_tensors" else 1) / 9 for op in ops},
        "depth": 3, "num_terminals": 7, "num_nonterminals": 6, "output_feature_size": 64,
        **path_stats(
            (7, 7, 2), im2col=UNREACHABLE, aggregation=UNREACHABLE, clone=UNREACHABLE,
            linear=UNREACHABLE, other=UNREACHABLE,
        ),
    }
    text = (
        "sequential(routing[im2col(4,4,0), computation<linear(64)>, col2im], "
        "branching(2){clone(2), computation<norm>, computation<relu>, add(2)})"
    )
    assert_features(text, (3, 32, 32), expected)


def test_replicated_branches_count_every_copy():
    # branching(4): 0 input, 1 clone4, 4 × (linear16 -> relu), 10 add4, 11 output: |V| = 12; 4 paths
    # input-clone-linear-relu-add-output of 5 edges.
    # Modules: 1 branching, 4 sequential, 8 computation.  Tree as written: clone, linear, relu, add = 4
    # terminals; branching, sequential, 2 computation = 4 nonterminals; depth 3.  3×32×32 -> 3×32×16 (linear
    # acts on the last axis), so 3 channels.
    expected = {
        "cnt_branching_module": 1, "cnt_sequential_module": 4, "cnt_computation_module": 8,
        "cnt_clone_tensor4": 1, "cnt_linear16": 4, "cnt_leakyrelu": 4, "cnt_add_tensors": 1,
        **{f"{f}_{op}": 1 for f in ("max_nodes_path", "min_nodes_path")
           for op in ("clone_tensor4", "linear16", "leakyrelu", "add_tensors")},
        "in_clone_tensor4": 1, "out_add_tensors": 1,
        "in_deg_clone_tensor4": 4 / 12, "in_deg_linear16": 4 / 12, "in_deg_leakyrelu": 4 / 12, "in_deg_add_tensors": 1 / 12,
        "out_deg_clone_tensor4": 1 / 12, "out_deg_linear16": 4 / 12, "out_deg_leakyrelu": 4 / 12,
        "out_deg_add_tensors": 4 / 12,
        "depth": 3, "num_terminals": 4, "num_nonterminals": 4, "output_feature_size": 3,
        **path_stats((5, 5, 4), aggregation=UNREACHABLE, clone=UNREACHABLE, linear=UNREACHABLE, other=UNREACHABLE),
    }
    text = "branching(4){clone(4), sequential(computation<linear(16)>, computation<relu>), add(4)}"
    assert_features(text, (3, 32, 32), expected)


def test_nested_replication_multiplies():
    # branching(8) of branching(4) of relu: 8 clone4, 32 relu, 8 add4 + 1 add8; |V| = 2 + 1 + 8·6 + 1 = 52;
    # 32 paths input-clone8-clone4-relu-add4-add8-output of 6 edges.
    text = "branching(8){clone(8), branching(4){clone(4), computation<relu>, add(4)}, add(8)}"
    arch = Architecture.from_string(text, (8, 8, 8))
    for graph in (to_graph(arch), to_graph(arch, expand=False)):
        f = graf_features(graph)
        assert (f["cnt_branching_module"], f["cnt_computation_module"]) == (9, 32)
        assert (f["cnt_clone_tensor8"], f["cnt_clone_tensor4"], f["cnt_leakyrelu"], f["cnt_add_tensors"]) == (1, 8, 32, 9)
        assert f["in_deg_clone_tensor4"] == pytest.approx(32 / 52) and f["out_deg_add_tensors"] == pytest.approx(40 / 52)
        assert f["max_nodes_path_add_tensors"] == f["min_nodes_path_add_tensors"] == 2
        assert (f["path_shortest"], f["path_longest"], f["path_count"]) == (6, 6, 32)
        assert (f["in_clone_tensor8"], f["out_add_tensors"]) == (1, 1)


# --------------------------------------------------------------------------------------------------
# Invariances
# --------------------------------------------------------------------------------------------------


def _samples(n, seed, max_nodes=80):
    sampler = Sampler("einspace", (3, 32, 32), Budget(max_nodes=max_nodes))
    rng = np.random.default_rng(seed)
    return [sampler.sample(rng) for _ in range(n)]


def _shuffled(graph, rng):
    """The same graph with nodes renamed by a random permutation and inserted in a random order."""
    nodes = list(graph)
    names = list(range(len(nodes)))
    rng.shuffle(names)
    mapping = dict(zip(nodes, (f"n{k}" for k in names)))
    out = nx.DiGraph(**graph.graph)
    order = nodes[:]
    rng.shuffle(order)
    for n in order:
        out.add_node(mapping[n], **graph.nodes[n])
    edges = list(graph.edges(data=True))
    rng.shuffle(edges)
    for u, v, data in edges:
        out.add_edge(mapping[u], mapping[v], **data)
    return out, mapping


def test_features_do_not_depend_on_node_numbering():
    rng = random.Random(3)
    archs = _samples(30, seed=11) + [Architecture.from_string(ATTENTION, (10, 32))]
    for arch in archs:
        for graph in (to_graph(arch, expand=False),) + ((to_graph(arch),) if num_instances(arch) < 3000 else ()):
            want = graph_features(graph)
            shuffled, mapping = _shuffled(graph, rng)
            src, dst = mapping[0], mapping[graph.number_of_nodes() - 1]
            np.testing.assert_array_equal(graph_features(shuffled, src, dst), want)
            np.testing.assert_array_equal(graph_features(nx.relabel_nodes(graph, mapping)), want)


def test_compact_and_expanded_graphs_agree():
    for arch in _samples(40, seed=5, max_nodes=120):
        if num_instances(arch) > 3000:
            continue
        np.testing.assert_allclose(graph_features(to_graph(arch, expand=False)), graph_features(to_graph(arch)), rtol=1e-12)


def test_unreachable_output_and_bad_graphs():
    g = nx.DiGraph()
    g.add_node("a", label="input")
    g.add_node("b", label="relu")
    g.add_node("c", label="output")
    g.add_edge("a", "b")  # b does not reach the output
    f = dict(zip(FEATURE_NAMES, graph_features(g)))
    assert f["path_count"] == 0 and f["path_shortest"] == f["path_longest"] == -1
    assert f["max_nodes_path_leakyrelu"] == 0 and f["cnt_leakyrelu"] == 1 and f["in_leakyrelu"] == 1
    assert math.isnan(f["depth"])  # no tree metadata on a hand-made graph
    g.add_edge("b", "a")
    with pytest.raises(ValueError, match="cycle"):
        graph_features(g)
    with pytest.raises(ValueError, match="exactly one node labelled 'input'"):
        graph_features(nx.DiGraph([("x", "y")]))


# --------------------------------------------------------------------------------------------------
# The transformer
# --------------------------------------------------------------------------------------------------


def test_graf_transformer():
    archs = _samples(12, seed=2)
    graf = GRAF()
    assert graf.fit(archs) is graf and GRAF.version == "1"
    X = graf.transform(archs)
    assert X.shape == (12, 413) and X.dtype == np.float64 and np.isfinite(X).all()
    assert list(graf.get_feature_names_out()) == list(FEATURE_NAMES)
    np.testing.assert_array_equal(graf.fit_transform(archs), X)
    np.testing.assert_array_equal(graf.transform([to_graph(a) for a in archs[:3]]), X[:3])
    published = GRAF(extras=False)
    assert published.transform(archs).shape == (12, 385)
    np.testing.assert_array_equal(published.transform(archs), X[:, :385])
    assert published.get_params() == {"extras": False}
    assert graf.transform([]).shape == (0, 413)
    with pytest.raises(TypeError, match="item 1"):
        graf.transform([archs[0], "sequential(...)"])


# --------------------------------------------------------------------------------------------------
# NAS-Bench-201 cells
# --------------------------------------------------------------------------------------------------

SHORT = {"skip": "skip_connect", "c1": "nor_conv_1x1", "c3": "nor_conv_3x3", "avg": "avg_pool_3x3"}


def subset_name(short: str) -> str:
    return "+".join(op for op in SHORT.values() if op in {SHORT[s] for s in short.split()})


def nb201_expected(counts, min_len, max_on, out_in, in_out):
    """Build the full expected row from short-named per-subset tables (every one of the 15 subsets given)."""
    out = {f"op_count_{op}": float(v) for op, v in counts.items()}
    for family, table in (
        ("min_path_len", min_len), ("max_op_on_path", max_on), ("out_degree_input", out_in), ("in_degree_output", in_out)
    ):
        assert len(table) == 15
        for short, value in table.items():
            out[f"{family}_{subset_name(short)}"] = float(value)
    assert set(out) == set(NB201_FEATURE_NAMES)
    return out


def test_nb201_golden_cell_with_four_paths():
    # edges: 1←0 conv3, 2←0 conv3, 2←1 avg, 3←0 skip, 3←1 conv3, 3←2 skip.  Paths 0→3:
    # P1 0-3 (skip); P2 0-1-3 (c3 c3); P3 0-2-3 (c3 skip); P4 0-1-2-3 (c3 avg skip).
    cell = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    expected = nb201_expected(
        {"none": 0, "skip_connect": 2, "nor_conv_1x1": 0, "nor_conv_3x3": 3, "avg_pool_3x3": 1},
        # shortest path of allowed ops only: P1 whenever skip is allowed, else P2 if c3, else none (4)
        {"skip": 1, "c1": 4, "c3": 2, "avg": 4, "skip c1": 1, "skip c3": 1, "skip avg": 1, "c1 c3": 2,
         "c1 avg": 4, "c3 avg": 2, "skip c1 c3": 1, "skip c1 avg": 1, "skip c3 avg": 1, "c1 c3 avg": 2,
         "skip c1 c3 avg": 1},
        # most allowed ops on one path: e.g. {c3}: P2 has 2; {skip, c3, avg}: P4 has 3
        {"skip": 1, "c1": 0, "c3": 2, "avg": 1, "skip c1": 1, "skip c3": 2, "skip avg": 2, "c1 c3": 2,
         "c1 avg": 1, "c3 avg": 2, "skip c1 c3": 2, "skip c1 avg": 2, "skip c3 avg": 3, "c1 c3 avg": 2,
         "skip c1 c3 avg": 3},
        # edges leaving 0: c3, c3, skip
        {"skip": 1, "c1": 0, "c3": 2, "avg": 0, "skip c1": 1, "skip c3": 3, "skip avg": 1, "c1 c3": 2,
         "c1 avg": 0, "c3 avg": 2, "skip c1 c3": 3, "skip c1 avg": 1, "skip c3 avg": 3, "c1 c3 avg": 2,
         "skip c1 c3 avg": 3},
        # edges entering 3: skip, c3, skip
        {"skip": 2, "c1": 0, "c3": 1, "avg": 0, "skip c1": 2, "skip c3": 3, "skip avg": 2, "c1 c3": 1,
         "c1 avg": 0, "c3 avg": 1, "skip c1 c3": 3, "skip c1 avg": 2, "skip c3 avg": 3, "c1 c3 avg": 1,
         "skip c1 c3 avg": 3},
    )
    assert nb201_graf(cell) == expected
    assert nb201_graf(parse_cell_string(cell)) == expected


def test_nb201_golden_cell_with_dead_edges():
    # edges: 1←0 c1, 2←0 none, 2←1 none, 3←0 skip, 3←1 none, 3←2 c1.  none edges do not exist, so node 1 is a
    # dead end and node 2 unreachable: the only path is 0-3 (skip).  Degrees still count the c1 edges.
    cell = ("nor_conv_1x1", "none", "none", "skip_connect", "none", "nor_conv_1x1")
    subsets = [" ".join(s for s, op in SHORT.items() if op in c) for c in NB201_SUBSETS]
    with_skip = {s: 1 if "skip" in s.split() else 4 for s in subsets}
    expected = nb201_expected(
        {"none": 3, "skip_connect": 1, "nor_conv_1x1": 2, "nor_conv_3x3": 0, "avg_pool_3x3": 0},
        with_skip,
        {s: 1 if "skip" in s.split() else 0 for s in subsets},
        {s: ("skip" in s.split()) + ("c1" in s.split()) for s in subsets},  # leaving 0: c1, skip
        {s: ("skip" in s.split()) + ("c1" in s.split()) for s in subsets},  # entering 3: skip, c1
    )
    assert nb201_graf(cell) == expected
    empty = nb201_graf(("none",) * 6)
    assert empty["op_count_none"] == 6 and all(
        v == (4.0 if k.startswith("min_path_len") else 0.0) for k, v in empty.items() if k != "op_count_none"
    )


def test_nb201_transformer_and_parser():
    cells = [
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
        ["nor_conv_1x1", "none", "none", "skip_connect", "none", "nor_conv_1x1"],
        ("none",) * 6,
    ]
    t = NB201GRAF()
    X = t.fit(cells).transform(cells)
    assert X.shape == (3, len(NB201_FEATURE_NAMES)) == (3, 65)
    assert list(t.get_feature_names_out()) == list(NB201_FEATURE_NAMES)
    np.testing.assert_array_equal(X[0], list(nb201_graf(cells[0]).values()))
    assert parse_cell_string(" |none~0|+|skip_connect~0|none~1|+|none~0|none~1|avg_pool_3x3~2| ") == (
        "none", "skip_connect", "none", "none", "none", "avg_pool_3x3"
    )
    for bad in ("|none~0|+|none~0|none~1|", "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",
                "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|"):
        with pytest.raises(ValueError):
            parse_cell_string(bad)
    with pytest.raises(ValueError, match="6 edge operations"):
        nb201_graf(("none",) * 5)
    with pytest.raises(TypeError):
        t.transform([3])


def test_nb201_architectures_are_accepted_when_the_grammar_exists():
    ops = ("nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_3x3", "skip_connect")
    arch = cell_architecture(ops)
    np.testing.assert_array_equal(NB201GRAF().transform([arch]), NB201GRAF().transform([ops]))
