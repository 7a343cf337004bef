"""The Weisfeiler–Lehman subtree kernel (``nas.search.wl``): values worked out by hand on tiny graphs, kernel
properties on random graphs, the growing vocabulary and the hierarchical sum."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest

from nas.graph import graph_levels
from nas.sampler import Sampler
from nas.search.wl import HierarchicalWLKernel, WLKernel, architecture_levels, gram_from_features


def digraph(edges, n=3, labels=None) -> nx.DiGraph:
    g = nx.DiGraph()
    for i in range(n):
        g.add_node(i, label=(labels[i] if labels else "a"))
    g.add_edges_from(edges)
    return g


# Three 3-node DAGs, every node labelled "a":
#   P (path)      0→1→2
#   T (triangle)  0→1, 1→2, 0→2   (the transitive DAG on three nodes)
#   S (out-star)  0→1, 0→2
P = digraph([(0, 1), (1, 2)])
T = digraph([(0, 1), (1, 2), (0, 2)])
S = digraph([(0, 1), (0, 2)])
GRAPHS = [P, T, S]


def test_h0_counts_labels_only():
    # h = 0: every graph is the histogram {a: 3}, so every kernel value is 3 * 3 = 9 (normalised: 1).
    k = WLKernel(h=0, normalize=False).gram(GRAPHS)
    assert np.array_equal(k, np.full((3, 3), 9.0))
    assert np.allclose(WLKernel(h=0).gram(GRAPHS), 1.0)


def test_h1_in_neighbours_by_hand():
    # Iteration 1, direction "in": a node's new label is (a, sorted labels of its predecessors).
    #   A = (a, ())      B = (a, (a,))      C = (a, (a, a))
    #   P: node 0 → A, node 1 → B, node 2 → B       features {a:3, A:1, B:2}
    #   T: node 0 → A, node 1 → B, node 2 → C       features {a:3, A:1, B:1, C:1}
    #   S: node 0 → A, node 1 → B, node 2 → B       features {a:3, A:1, B:2}   (the same as P!)
    # k(P,P) = 9+1+4 = 14, k(T,T) = 9+1+1+1 = 12, k(S,S) = 14,
    # k(P,T) = 9+1+2 = 12, k(P,S) = 9+1+4 = 14, k(T,S) = 9+1+2 = 12.
    k = WLKernel(h=1, normalize=False, direction="in").gram(GRAPHS)
    expected = np.array([[14, 12, 14], [12, 12, 12], [14, 12, 14]], dtype=float)
    assert np.array_equal(k, expected)
    # normalised: k(P,T) = 12 / sqrt(14 * 12) = 0.92582..., k(P,S) = 14 / 14 = 1 (indistinguishable at h = 1)
    kn = WLKernel(h=1, direction="in").gram(GRAPHS)
    assert kn[0, 1] == pytest.approx(12 / math.sqrt(168))
    assert kn[0, 2] == pytest.approx(1.0)
    assert np.allclose(np.diag(kn), 1.0)


def test_h2_in_neighbours_by_hand():
    # Iteration 2 relabels (label at iteration 1, sorted iteration-1 labels of the predecessors):
    #   D = (A, ())   E = (B, (A,))   F = (B, (B,))   G = (C, (A, B))
    #   P: node 0 → D, node 1 → E (pred 0 is A), node 2 → F (pred 1 is B)
    #   T: node 0 → D, node 1 → E,               node 2 → G (preds 0, 1 are A, B)
    #   S: node 0 → D, node 1 → E, node 2 → E (pred 0 is A)
    # Features: P {a:3, A:1, B:2, D:1, E:1, F:1}                    k(P,P) = 9+1+4+1+1+1 = 17
    #           T {a:3, A:1, B:1, C:1, D:1, E:1, G:1}               k(T,T) = 9+1+1+1+1+1+1 = 15
    #           S {a:3, A:1, B:2, D:1, E:2}                         k(S,S) = 9+1+4+1+4 = 19
    # k(P,T) = 9 (a) + 1 (A) + 2 (B) + 1 (D) + 1 (E) = 14
    # k(P,S) = 9 + 1 + 4 + 1 + 2 = 17          k(T,S) = 9 + 1 + 2 + 1 + 2 = 15
    k = WLKernel(h=2, normalize=False, direction="in").gram(GRAPHS)
    expected = np.array([[17, 14, 17], [14, 15, 15], [17, 15, 19]], dtype=float)
    assert np.array_equal(k, expected)
    # now the path and the star differ: normalised k(P,S) = 17 / sqrt(17 * 19) = sqrt(17/19)
    assert WLKernel(h=2, direction="in").gram([P], [S])[0, 0] == pytest.approx(math.sqrt(17 / 19))


def test_h1_both_directions_by_hand():
    # Direction "both": (a, sorted predecessor labels, sorted successor labels), kept apart.
    #   P: (a,(),(a)) =: A', (a,(a),(a)) =: B', (a,(a),()) =: C'          {a:3, A':1, B':1, C':1}  self 12
    #   T: (a,(),(a,a)) =: D', (a,(a),(a)) = B', (a,(a,a),()) =: E'       {a:3, D':1, B':1, E':1}  self 12
    #   S: (a,(),(a,a)) = D', (a,(a),()) = C' twice                        {a:3, D':1, C':2}        self 14
    # k(P,T) = 9 + 1 (B') = 10, k(P,S) = 9 + 1*2 (C') = 11, k(T,S) = 9 + 1 (D') = 10:
    # unlike "in", one iteration already tells the path from the star.
    k = WLKernel(h=1, normalize=False, direction="both").gram(GRAPHS)
    expected = np.array([[12, 10, 11], [10, 12, 10], [11, 10, 14]], dtype=float)
    assert np.array_equal(k, expected)


def test_h1_out_neighbours_by_hand():
    # Direction "out": (a, sorted successor labels).  P: (a,(a)) twice, (a,()) once; S: (a,(a,a)), (a,()) twice;
    # T: (a,(a,a)), (a,(a)), (a,()).   k(P,S) = 9 + 1*2 = 11, k(P,T) = 9 + 2*1 + 1*1 = 12, k(T,S) = 9 + 1 + 2 = 12.
    k = WLKernel(h=1, normalize=False, direction="out").gram(GRAPHS)
    assert k[0, 2] == 11 and k[0, 1] == 12 and k[1, 2] == 12
    assert np.array_equal(np.diag(k), [14, 12, 14])


def test_labels_and_direction_matter():
    # x→y against y→x: the same label histogram (k = 1 + 1 = 2 at h = 0), but at h = 1 ("in") the first has
    # (x,()), (y,(x)) and the second (y,()), (x,(y)): nothing shared, so k = 2 and k(G,G) = 4, normalised 0.5.
    g1 = digraph([(0, 1)], 2, ["x", "y"])
    g2 = digraph([(1, 0)], 2, ["x", "y"])
    assert WLKernel(h=0, normalize=False)(g1, g2) == 2
    assert WLKernel(h=1, normalize=False, direction="in")(g1, g2) == 2
    assert WLKernel(h=1, direction="in")(g1, g2) == pytest.approx(0.5)


def test_undirected_graphs_use_neighbours():
    # Undirected path vs triangle at h = 1: path ends (a,(a)) twice and middle (a,(a,a)); triangle (a,(a,a))
    # three times.  k = 9 + 1*3 = 12; k(P,P) = 9 + 4 + 1 = 14; k(T,T) = 9 + 9 = 18.
    p, t = nx.path_graph(3), nx.complete_graph(3)
    for g in (p, t):
        nx.set_node_attributes(g, "a", "label")
    k = WLKernel(h=1, normalize=False).gram([p, t])
    assert np.array_equal(k, [[14, 12], [12, 18]])


def random_dag(rng: np.random.Generator, labels="abcd") -> nx.DiGraph:
    n = int(rng.integers(2, 9))
    g = nx.DiGraph()
    for i in range(n):
        g.add_node(i, label=labels[int(rng.integers(len(labels)))])
    for j in range(1, n):
        for i in range(j):
            if rng.random() < 0.35:
                g.add_edge(i, j)
    return g


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("direction", ["in", "out", "both"])
@pytest.mark.parametrize("h", [0, 1, 3])
def test_gram_is_symmetric_and_psd(normalize, direction, h):
    rng = np.random.default_rng(h + 10 * len(direction))
    graphs = [random_dag(rng) for _ in range(40)]
    k = WLKernel(h=h, normalize=normalize, direction=direction).gram(graphs)
    assert np.array_equal(k, k.T)
    scale = max(1.0, float(np.max(np.abs(k))))
    assert np.linalg.eigvalsh(k).min() >= -1e-9 * scale
    if normalize:
        assert np.allclose(np.diag(k), 1.0) and np.all(k <= 1.0 + 1e-12) and np.all(k >= 0.0)


def test_invariant_to_node_numbering():
    rng = np.random.default_rng(3)
    kern = WLKernel(h=3, normalize=False)
    for _ in range(20):
        g = random_dag(rng)
        perm = rng.permutation(g.number_of_nodes())
        mapping = {int(i): f"n{int(p)}" for i, p in enumerate(perm)}
        h = nx.DiGraph()  # renamed nodes, inserted in another order
        for i in sorted(g.nodes, key=lambda i: mapping[i]):
            h.add_node(mapping[i], **g.nodes[i])
        h.add_edges_from((mapping[a], mapping[b]) for a, b in reversed(list(g.edges)))
        assert kern.features(g) == kern.features(h)
        assert kern(g, h) == kern(g, g)


def test_vocabulary_grows_consistently():
    rng = np.random.default_rng(5)
    first = [random_dag(rng) for _ in range(15)]
    later = [random_dag(rng, labels="cdxyz") for _ in range(10)]  # labels x, y, z never seen before
    kern = WLKernel(h=2)
    f_first = kern.transform(first)
    size = len(kern.vocabulary)
    before = kern.gram_from_features(f_first)
    f_later = kern.transform(later)
    assert len(kern.vocabulary) > size
    # old feature maps keep their meaning: the old Gram block is unchanged, and a fresh kernel that meets the
    # graphs in the opposite order computes the same matrix
    assert np.array_equal(kern.gram_from_features(f_first), before)
    k_all = kern.gram_from_features(f_first + f_later)
    fresh = WLKernel(h=2)
    rev = fresh.gram(list(reversed(first + later)))
    assert np.allclose(k_all, rev[::-1, ::-1])
    # predicting on an unseen graph works and feature maps are recomputed identically
    assert kern.features(later[0]) == f_later[0]


def test_empty_graph_and_bad_input():
    empty = nx.DiGraph()
    k = gram_from_features(WLKernel().transform([empty, P]))
    assert k[0, 0] == 0 and k[0, 1] == 0 and k[1, 1] == 1
    with pytest.raises(ValueError, match="label"):
        WLKernel().features(nx.path_graph(2, create_using=nx.DiGraph))
    with pytest.raises(ValueError):
        WLKernel(h=-1)
    with pytest.raises(ValueError):
        WLKernel(direction="sideways")


# -- hierarchical ---------------------------------------------------------------------------------


def test_hierarchical_is_the_sum_of_level_kernels():
    rng = np.random.default_rng(7)
    archs = [[random_dag(rng), random_dag(rng, "xyz")] for _ in range(12)]
    hk = HierarchicalWLKernel(h=[2, 1])
    k = hk.gram(archs)
    k0 = WLKernel(h=2).gram([a[0] for a in archs])
    k1 = WLKernel(h=1).gram([a[1] for a in archs])
    assert np.allclose(k, k0 + k1)
    assert np.allclose(np.diag(k), 2.0)
    assert np.linalg.eigvalsh(k).min() > -1e-9
    assert [kk.h for kk in hk.kernels] == [2, 1]
    # weights, and the last depth repeating for deeper levels
    hw = HierarchicalWLKernel(h=[3], weights=[0.25, 2.0])
    assert np.allclose(hw.gram(archs), 0.25 * WLKernel(h=3).gram([a[0] for a in archs])
                       + 2.0 * WLKernel(h=3).gram([a[1] for a in archs]))
    assert np.allclose(hw.diag_from_features(hw.transform(archs)), 2.25)


def test_hierarchical_missing_levels_count_as_empty():
    # An architecture with one level against one with two: only level 0 contributes.
    a, b = [P], [P, T]
    hk = HierarchicalWLKernel(h=1, normalize=False, direction="in")
    k = hk.gram([a, b])
    assert np.array_equal(k, [[14, 14], [14, 14 + 12]])
    assert np.array_equal(hk.diag_from_features(hk.transform([a, b])), [14, 26])


def test_architecture_levels_are_the_graph_levels():
    arch = Sampler("einspace", (3, 16, 16)).sample(np.random.default_rng(0))
    levels = architecture_levels(arch)
    expected = graph_levels(arch)
    assert len(levels) == len(expected) >= 1
    assert all(nx.utils.graphs_equal(a, b) for a, b in zip(levels, expected))
