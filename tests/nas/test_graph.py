"""The data-flow graph of an architecture: nodes, ids, edges, branch copies, compact form, drawing."""

import subprocess
import sys

import networkx as nx
import numpy as np
import pytest

from nas.architecture import Architecture
from nas.grammar import Budget, Grammar
from nas.grammar.core import Branch, Chain, Signal, Terminal
from nas.grammar.derive import Node
from nas.sampler import Sampler
from nas.graph import INPUT_LABEL, OUTPUT_LABEL, draw_graph, find_endpoints, layers, num_instances, to_graph
from nas.seeds import get_seed

CONV = "routing[im2col(3,1,1), computation<linear(16)>, col2im]"
# In the published GRAF output the converter relabels `norm` as the output node here.
WORKED = (
    "sequential(routing[im2col(4,4,0), computation<linear(64)>, col2im], "
    "branching(2){clone(2), computation<norm>, computation<relu>, add(2)})"
)
REPLICATED = "branching(4){clone(4), sequential(computation<linear(16)>, computation<relu>), add(4)}"
NESTED = "branching(8){clone(8), branching(4){clone(4), computation<relu>, add(4)}, add(8)}"


def labels(graph):
    return [graph.nodes[n]["label"] for n in sorted(graph)]


def check_ids(graph):
    n = graph.number_of_nodes()
    assert sorted(graph) == list(range(n))
    assert graph.nodes[0]["label"] == INPUT_LABEL and graph.nodes[n - 1]["label"] == OUTPUT_LABEL
    assert labels(graph).count(INPUT_LABEL) == 1 and labels(graph).count(OUTPUT_LABEL) == 1
    assert all(u < v for u, v in graph.edges)  # ids are a topological order
    assert nx.is_directed_acyclic_graph(graph)
    assert [n for n in graph if graph.in_degree(n) == 0] == [0]
    assert [n for n in graph if graph.out_degree(n) == 0] == [n - 1]


def test_conv_graph_nodes_edges_and_attributes():
    arch = Architecture.from_string(CONV, (3, 32, 32))
    g = to_graph(arch)
    check_ids(g)
    assert labels(g) == ["input", "im2col(3,1,1)", "linear(16)", "col2im", "output"]
    assert sorted(g.edges) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert [g.nodes[n]["path"] for n in range(5)] == [None, (0,), (1, 0), (2,), None]
    assert [g.nodes[n]["level"] for n in range(5)] == [None, "prerouting_fn", "computation_fn", "postrouting_fn", None]
    assert [g.nodes[n]["shape"] for n in range(5)] == [(3, 32, 32), (1024, 27), (1024, 16), (16, 32, 32), (16, 32, 32)]
    assert all(g.nodes[n]["copy"] == () and g.nodes[n]["copies"] == 1 for n in g)
    assert g.graph["nonterminals"] == {"routing": 1, "computation": 1}
    assert (g.graph["depth"], g.graph["tree_terminals"], g.graph["tree_nonterminals"]) == (2, 3, 2)


def test_output_node_never_collides_with_an_op():
    # The published ids would give `output` the id of `norm` (its module is expanded after `clone`).
    g = to_graph(Architecture.from_string(WORKED, (3, 32, 32)))
    check_ids(g)
    assert labels(g) == ["input", "im2col(4,4,0)", "linear(64)", "col2im", "clone(2)", "norm", "relu", "add(2)", "output"]
    assert sorted(g.edges) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (4, 6), (5, 7), (6, 7), (7, 8)]


def test_identity_modules_are_nodes():
    arch = Architecture.from_string(
        "sequential(routing[identity, computation<identity>, identity], computation<identity>)", (3, 8, 8)
    )
    g = to_graph(arch)
    check_ids(g)
    assert labels(g) == ["input", "identity", "identity", "identity", "identity", "output"]


def test_replicated_branch_is_expanded_once_per_copy():
    arch = Architecture.from_string(REPLICATED, (3, 32, 32))
    g = to_graph(arch)
    check_ids(g)
    assert labels(g) == ["input", "clone(4)"] + ["linear(16)", "relu"] * 4 + ["add(4)", "output"]
    copies = [(g.nodes[n]["path"], g.nodes[n]["copy"]) for n in range(2, 10)]
    assert copies == [(p, (j,)) for j in range(4) for p in ((1, 0, 0), (1, 1, 0))]
    assert sorted(g.successors(1)) == [2, 4, 6, 8] and sorted(g.predecessors(10)) == [3, 5, 7, 9]
    assert g.graph["nonterminals"] == {"branching(4)": 1, "sequential": 4, "computation": 8}
    assert num_instances(arch) == 10


def test_nested_replication_multiplies_copies():
    arch = Architecture.from_string(NESTED, (8, 8, 8))
    g = to_graph(arch)
    check_ids(g)
    relus = [n for n in g if g.nodes[n]["label"] == "relu"]
    assert len(relus) == 32
    assert sorted(g.nodes[n]["copy"] for n in relus) == [(i, j) for i in range(8) for j in range(4)]
    assert g.number_of_nodes() == 2 + 1 + 8 * (1 + 4 + 1) + 1 == 2 + num_instances(arch)


def test_compact_graph_keeps_replicated_modules_once_with_multiplicities():
    arch = Architecture.from_string(NESTED, (8, 8, 8))
    g = to_graph(arch, expand=False)
    check_ids(g)
    assert labels(g) == ["input", "clone(8)", "clone(4)", "relu", "add(4)", "add(8)", "output"]
    assert [g.nodes[n]["copies"] for n in range(7)] == [1, 1, 8, 32, 8, 1, 1]
    assert {e: g.edges[e]["copies"] for e in g.edges} == {
        (0, 1): 1, (1, 2): 8, (2, 3): 32, (3, 4): 32, (4, 5): 8, (5, 6): 1
    }
    assert g.graph["nonterminals"] == {"branching(8)": 1, "branching(4)": 8, "computation": 32}
    assert g.graph["nonterminals"] == to_graph(arch).graph["nonterminals"]


def test_expansion_limit():
    arch = Architecture.from_string(NESTED, (8, 8, 8))
    with pytest.raises(ValueError, match="expand=False"):
        to_graph(arch, max_nodes=40)
    assert to_graph(arch, max_nodes=None).number_of_nodes() == 52


@pytest.mark.parametrize("name", ["resnet18", "wrn16_4", "vit", "mlp_mixer"])
def test_seed_graphs_are_dags_from_input_to_output(name):
    arch = get_seed(name)
    for g in (to_graph(arch), to_graph(arch, expand=False)):
        check_ids(g)
        assert find_endpoints(g) == (0, g.number_of_nodes() - 1)
    assert to_graph(arch).number_of_nodes() == num_instances(arch) + 2


def test_random_architectures_give_well_formed_graphs():
    sampler = Sampler("einspace", (3, 32, 32), Budget(max_nodes=60))
    rng = np.random.default_rng(7)
    for _ in range(25):
        arch = sampler.sample(rng)
        g = to_graph(arch, expand=False)
        check_ids(g)
        terminals = [i.path for i in arch.terminals()]
        assert sorted(g.nodes[n]["path"] for n in range(1, g.number_of_nodes() - 1)) == sorted(terminals)
        if num_instances(arch) <= 2000:
            e = to_graph(arch)
            check_ids(e)
            assert e.number_of_nodes() == num_instances(arch) + 2


# A toy grammar (no einspace level names): a chain of two blocks; a block is a 3-way replicated branch or a
# single op.  to_graph must handle it from the Chain/Branch structure alone.
class _Op(Terminal):
    def infer(self, flow):
        return flow if len(flow) == 1 else None


class _Tee(Terminal):
    def infer(self, flow):
        return flow * 3 if len(flow) == 1 else None


class _Sum(Terminal):
    def infer(self, flow):
        return (Signal(flow[0].shape),) if len(flow) == 3 else None


def _toy_grammar() -> Grammar:
    return Grammar(
        "toy",
        "start",
        {
            "start": [Chain("pipe", "start", ("block", "block"), "()")],
            "block": [
                Branch("split", "block", "fn", "inner", "join", fanout=3, replicate=True, brackets="{}"),
                Chain("single", "block", ("inner",), "<>"),
            ],
            "fn": [_Tee("tee", "fn")],
            "inner": [_Op("a", "inner"), _Op("b", "inner")],
            "join": [_Sum("sum", "join")],
        },
    )


def test_any_chain_branch_grammar():
    tree = Node("pipe", (Node("single", (Node("a"),)), Node("split", (Node("tee"), Node("b"), Node("sum")))))
    arch = Architecture(tree, (4, 5), _toy_grammar())
    g = to_graph(arch)
    check_ids(g)
    assert labels(g) == ["input", "a", "tee", "b", "b", "b", "sum", "output"]
    assert sorted(g.edges) == [(0, 1), (1, 2), (2, 3), (2, 4), (2, 5), (3, 6), (4, 6), (5, 6), (6, 7)]
    assert g.graph["nonterminals"] == {"pipe": 1, "single": 1, "split": 1}


def test_layers_are_longest_path_depths():
    g = to_graph(Architecture.from_string(WORKED, (3, 32, 32)))
    assert layers(g) == {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 5, 7: 6, 8: 7}


def test_draw_graph_writes_a_png(tmp_path):
    arch = Architecture.from_string(WORKED, (3, 32, 32))
    out = tmp_path / "worked.png"
    draw_graph(arch, str(out), title="worked example")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    compact = tmp_path / "nested.png"
    draw_graph(Architecture.from_string(NESTED, (8, 8, 8)), str(compact), expand=False)
    assert compact.read_bytes()[:4] == b"\x89PNG"


def test_graph_module_does_not_import_torch_or_pyplot():
    code = (
        "import sys; from nas.graph import to_graph; from nas.seeds import get_seed; "
        "to_graph(get_seed('vit')); assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
