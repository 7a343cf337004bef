"""``nas.graph.graph_levels``: one labelled graph per grammar hierarchy level (hierarchical WL kernels)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from nas.cells import from_cell_string, from_nb201_cell
from nas.grammar.hnb201 import HIERARCHY
from nas.sampler import Sampler
from nas.graph import graph_levels, to_graph

CELL = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"


def same_graph(a: nx.DiGraph, b: nx.DiGraph) -> bool:
    return (
        list(a.nodes) == list(b.nodes)
        and sorted(a.edges) == sorted(b.edges)
        and all(a.nodes[n]["label"] == b.nodes[n]["label"] for n in a)
    )


def labels(g: nx.DiGraph) -> list[str]:
    return [g.nodes[n]["label"] for n in g]


@pytest.mark.parametrize("shape", [(3, 32, 32), (64, 32)])
def test_flat_einspace_gives_the_architecture_graph(shape):
    for arch in Sampler("einspace", shape).sample_many(10, np.random.default_rng(0)):
        (g,) = graph_levels(arch)
        assert nx.utils.graphs_equal(g, to_graph(arch, expand=False))
        assert all(isinstance(lab, str) for lab in labels(g))


def test_flat_nb201_gives_the_cell_dag():
    (g,) = graph_levels(from_cell_string(CELL))
    assert labels(g) == ["input", "nor_conv_3x3", "none", "skip_connect", "avg_pool_3x3", "none", "nor_conv_1x1",
                         "output"]
    # node j of the cell sums its incoming edges: the op on edge 3<-2 reads both edges into node 2
    assert sorted(g.edges) == [(0, 1), (0, 2), (0, 4), (1, 3), (1, 5), (2, 6), (3, 6), (4, 7), (5, 7), (6, 7)]
    assert nx.is_directed_acyclic_graph(g)


def test_hnb201_levels_of_the_nb201_network():
    arch = from_nb201_cell(CELL)
    graphs = graph_levels(arch)
    assert len(graphs) == 1 + len(HIERARCHY) == 6
    assert [g.graph["hierarchy_level"] for g in graphs[1:]] == list(range(1, 6))
    assert nx.utils.graphs_equal(graphs[0], to_graph(arch, expand=False))
    macro, stages, blocks, cells, convs = graphs[1:]
    assert labels(macro) == ["input", "D1:Linear3", "D1:Linear3", "D0:Linear3", "output"]
    assert sorted(macro.edges) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert stages.graph["instances"] == 3 and labels(stages)[:5] == ["input", "C:Linear2", "C:Linear2", "DOWN:Linear2", "output"]
    assert blocks.graph["instances"] == 8 and labels(blocks).count("RES:resBlock") == 2
    assert cells.graph["instances"] == 15 and cells.number_of_nodes() == 15 * 8
    first = cells.subgraph(range(8))
    assert labels(first) == ["input", "OPS:Linear1", "OPS:zero", "OPS:id", "OPS:avg_pool", "OPS:zero", "OPS:Linear1",
                             "output"]
    assert sorted(first.edges) == [(0, 1), (0, 2), (0, 4), (1, 3), (1, 5), (2, 6), (3, 6), (4, 7), (5, 7), (6, 7)]
    assert convs.graph["instances"] == 30 and set(labels(convs)) == {
        "input", "output", "ACT:relu", "CONV:conv3x3o", "CONV:conv1x1o", "NORM:batch"}


def test_hnb201_residual_topologies_and_empty_levels():
    text = from_nb201_cell(CELL).to_string()
    cell = text[text.index("Cell("):text.index("), Cell(") + 1]
    no_convs = text.replace(cell, "Cell(id, zero, avg_pool, id, zero, id)")
    from nas.architecture import Architecture

    arch = Architecture.from_string(no_convs, (3, 32, 32), "hnb201")
    graphs = graph_levels(arch)
    assert graphs[5].number_of_nodes() == 0 and graphs[5].graph["instances"] == 0
    for arch in Sampler("hnb201").sample_many(8, np.random.default_rng(1)):
        graphs = graph_levels(arch)
        assert len(graphs) == 6
        for g in graphs:
            assert all(isinstance(lab, str) for lab in labels(g))
            assert nx.is_directed_acyclic_graph(g)
        counts = {k: sum(1 for i in arch.nodes if i.level in group) for k, group in enumerate(HIERARCHY, start=1)}
        assert all(graphs[k].graph["instances"] == n for k, n in counts.items())
        for info in arch.nodes:  # a Residual2 block: its output node sums the main path and the shortcut
            if info.op.name == "Residual2":
                g = graphs[3]  # the blocks' level: C and DOWN
                break
        else:
            continue
        out_nodes = [n for n in g if g.nodes[n]["label"] == "output"]
        assert any(g.in_degree(n) == 2 for n in out_nodes)
