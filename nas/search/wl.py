"""Weisfeiler–Lehman (WL) subtree graph kernels on labelled networkx graphs, flat and hierarchical.

The kernel of Bayesian optimisation over architectures (NAS-BOWL, Ru et al., ICLR 2021; BANAT sums one per
grammar level).  Written from the definition (Shervashidze et al., JMLR 2011):

* iteration 0 labels every node with its ``label`` attribute;
* iteration ``i`` relabels node ``v`` with the pair (its label at ``i - 1``, the sorted multiset of its
  neighbours' labels at ``i - 1``), compressed to an integer;
* the feature map of a graph counts every compressed label of iterations ``0..h``;
* the kernel is the dot product of two feature maps, optionally normalised to
  ``k(x, y) / sqrt(k(x, x) k(y, y))`` (1 on the diagonal, so graphs of different sizes compare by shape of
  their label distribution rather than by node count).

Neighbours of a directed graph (``direction``): ``"in"`` aggregates predecessors only (a node learns what
flows *into* it, the classic choice for data-flow DAGs), ``"out"`` successors only, and ``"both"`` (the
default) keeps the two multisets *separately* in the signature, so a node sees what feeds it and what it
feeds.  ``"both"`` is strictly more discriminating than ``"in"`` (a path ``a→b→c`` and an out-star
``a→b, a→c`` with equal labels have the same ``"in"`` features at ``h = 1``, not with ``"both"``) and, on a
data-flow DAG, it is what makes a node's features depend on its distance to the output as well as to the
input.  Undirected graphs aggregate their neighbours whatever ``direction`` says.  Edge attributes and the
``copies`` multiplicities of compact einspace graphs are ignored: the kernel sees the wiring as drawn.

Label compression is a vocabulary that grows as new signatures arrive and never renumbers, so feature maps
computed at different times (training graphs, then pool candidates with labels never seen before) stay
comparable; the kernel value of two graphs does not depend on the vocabulary's state, only on the graphs.

``HierarchicalWLKernel`` is the sum of one such kernel per *level* (one vocabulary each, an optional weight
and WL depth each), for architectures given as lists of graphs, one per grammar level (``architecture_levels``
wraps ``nas.graph.graph_levels``).  An architecture with fewer levels than another contributes nothing at the
missing ones.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Hashable, Mapping, Sequence

import networkx as nx
import numpy as np
from scipy.sparse import csr_matrix

from nas.architecture import Architecture
from nas.graph import graph_levels, to_graph

DIRECTIONS = ("in", "out", "both")

#: A feature map: compressed label id -> count.
Features = Mapping[int, float]


class WLKernel:
    """The WL subtree kernel with ``h`` iterations (``h = 0``: label histograms only).

    ``features(graph)`` is the sparse feature map (and grows the vocabulary); ``gram(xs, ys)`` the kernel
    matrix between two lists of graphs; ``gram_from_features`` the same from stored feature maps, which is
    how a search reuses the features of architectures it has already seen."""

    def __init__(self, h: int = 2, normalize: bool = True, direction: str = "both", label: str = "label") -> None:
        if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 0:
            raise ValueError(f"h must be a non-negative int, got {h!r}")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        self.h = int(h)
        self.normalize = bool(normalize)
        self.direction = direction
        self.label = label
        #: Signature -> compressed label; signatures are ``(0, label)`` or ``(i, old, neighbours...)``.
        self.vocabulary: dict[tuple, int] = {}

    def __repr__(self) -> str:
        return f"WLKernel(h={self.h}, normalize={self.normalize}, direction={self.direction!r})"

    def get_params(self, deep: bool = False) -> dict[str, object]:
        """The configuration (for run records)."""
        return {"h": self.h, "normalize": self.normalize, "direction": self.direction, "label": self.label}

    # -- feature maps --------------------------------------------------------------------------------

    def _compress(self, signature: tuple) -> int:
        found = self.vocabulary.get(signature)
        if found is None:
            found = self.vocabulary[signature] = len(self.vocabulary)
        return found

    def features(self, graph: nx.Graph) -> Counter[int]:
        """The WL feature map of ``graph``: counts of compressed labels over iterations ``0..h``."""
        key = self.label
        labels: dict[Hashable, int] = {}
        for node, value in graph.nodes(data=key):
            if value is None:
                raise ValueError(f"WL kernel: node {node!r} has no {key!r} attribute")
            labels[node] = self._compress((0, str(value)))
        counts: Counter[int] = Counter(labels.values())
        # whose labels a node's signature collects: all neighbours, or (directed) predecessors and/or successors
        if not graph.is_directed():
            sides = [graph.neighbors]
        else:
            sides = {"in": [graph.predecessors], "out": [graph.successors]}.get(
                self.direction, [graph.predecessors, graph.successors])
        maps = [{n: list(side(n)) for n in graph.nodes} for side in sides]
        for it in range(1, self.h + 1):
            new: dict[Hashable, int] = {}
            for node, old in labels.items():
                sig = (it, old, *(tuple(sorted(labels[u] for u in m[node])) for m in maps))
                new[node] = self._compress(sig)
            labels = new
            counts.update(labels.values())
        return counts

    def transform(self, graphs: Sequence[nx.Graph]) -> list[Counter[int]]:
        """Feature maps of ``graphs`` (grows the vocabulary)."""
        return [self.features(g) for g in graphs]

    # -- kernel values -------------------------------------------------------------------------------

    def gram_from_features(self, fx: Sequence[Features], fy: Sequence[Features] | None = None) -> np.ndarray:
        """``K[i, j] = k(x_i, y_j)`` from feature maps (``fy`` defaults to ``fx``: the symmetric Gram)."""
        return gram_from_features(fx, fy, self.normalize)

    def gram(self, xs: Sequence[nx.Graph], ys: Sequence[nx.Graph] | None = None) -> np.ndarray:
        """The kernel matrix between graphs ``xs`` and ``ys`` (default ``xs``)."""
        fx = self.transform(xs)
        return self.gram_from_features(fx, None if ys is None else self.transform(ys))

    def __call__(self, x: nx.Graph, y: nx.Graph) -> float:
        """``k(x, y)`` of two graphs."""
        return float(self.gram([x], [y])[0, 0])


def _sparse(rows: Sequence[Features], ncols: int):
    indptr = [0]
    indices: list[int] = []
    data: list[float] = []
    for row in rows:
        for k, v in row.items():
            indices.append(k)
            data.append(float(v))
        indptr.append(len(indices))
    return csr_matrix((np.asarray(data, dtype=float), np.asarray(indices, dtype=np.int64), np.asarray(indptr)),
                      shape=(len(rows), ncols))


def gram_from_features(fx: Sequence[Features], fy: Sequence[Features] | None = None,
                       normalize: bool = True) -> np.ndarray:
    """Dot products of sparse feature maps, optionally normalised (a graph with an empty feature map has
    kernel 0 with everything, itself included, when normalised)."""
    symmetric = fy is None
    fy = fx if fy is None else fy
    ncols = 1 + max((k for f in (*fx, *fy) for k in f), default=0)
    a = _sparse(fx, ncols)
    b = a if symmetric else _sparse(fy, ncols)
    k = np.asarray((a @ b.T).todense(), dtype=float)
    if normalize:
        nx_ = np.sqrt(np.asarray(a.multiply(a).sum(axis=1)).ravel())
        ny_ = nx_ if symmetric else np.sqrt(np.asarray(b.multiply(b).sum(axis=1)).ravel())
        denom = np.outer(nx_, ny_)
        k = np.divide(k, denom, out=np.zeros_like(k), where=denom > 0)
        if symmetric:  # exact ones on the diagonal of non-empty graphs (no rounding drift)
            np.fill_diagonal(k, (nx_ > 0).astype(float))
    return k


class HierarchicalWLKernel:
    """Sum over levels of one WL kernel each: ``k(x, y) = sum_l w_l k_l(x[l], y[l])`` for architectures
    given as lists of graphs (level 0 first).

    ``h`` is one depth for every level or a sequence of depths per level (the last repeats for deeper
    levels; BANAT used ``[2, 1, 2, 2, ...]``); ``weights`` likewise (default 1 each: the plain sum of the
    published hierarchical kernel).  Each level has its own vocabulary, created when a level is first seen."""

    def __init__(self, h: int | Sequence[int] = 2, normalize: bool = True, direction: str = "both",
                 weights: Sequence[float] | None = None, label: str = "label") -> None:
        hs = [h] if isinstance(h, (int, np.integer)) else list(h)
        if not hs:
            raise ValueError("h: give at least one WL depth")
        for d in hs:
            if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0:
                raise ValueError(f"h must be non-negative ints, got {h!r}")
        if weights is not None:
            weights = [float(w) for w in weights]
            if not weights or any(not math.isfinite(w) or w < 0 for w in weights):
                raise ValueError(f"weights must be finite and non-negative, got {weights!r}")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        self.h = [int(d) for d in hs]
        self.normalize = bool(normalize)
        self.direction = direction
        self.weights = weights
        self.label = label
        self.kernels: list[WLKernel] = []

    def __repr__(self) -> str:
        return f"HierarchicalWLKernel(h={self.h}, normalize={self.normalize}, direction={self.direction!r})"

    def get_params(self, deep: bool = False) -> dict[str, object]:
        return {"h": self.h, "normalize": self.normalize, "direction": self.direction, "weights": self.weights,
                "label": self.label}

    def level(self, i: int) -> WLKernel:
        """The WL kernel of level ``i`` (created on first use)."""
        while len(self.kernels) <= i:
            j = len(self.kernels)
            self.kernels.append(WLKernel(self.h[min(j, len(self.h) - 1)], self.normalize, self.direction, self.label))
        return self.kernels[i]

    def weight(self, i: int) -> float:
        if self.weights is None:
            return 1.0
        return self.weights[min(i, len(self.weights) - 1)]

    def features(self, levels: Sequence[nx.Graph]) -> list[Counter[int]]:
        """One feature map per level of one architecture."""
        return [self.level(i).features(g) for i, g in enumerate(levels)]

    def transform(self, archs: Sequence[Sequence[nx.Graph]]) -> list[list[Counter[int]]]:
        return [self.features(levels) for levels in archs]

    def gram_from_features(self, fx: Sequence[Sequence[Features]],
                           fy: Sequence[Sequence[Features]] | None = None) -> np.ndarray:
        """The summed kernel matrix from per-level feature maps (missing levels count as empty)."""
        ys = fx if fy is None else fy
        depth = max((len(f) for f in (*fx, *ys)), default=0)
        out = np.zeros((len(fx), len(ys)))
        for i in range(depth):
            w = self.weight(i)
            if w == 0:
                continue
            lx = [f[i] if i < len(f) else {} for f in fx]
            ly = None if fy is None else [f[i] if i < len(f) else {} for f in fy]
            out += w * gram_from_features(lx, ly, self.normalize)
        return out

    def diag_from_features(self, fx: Sequence[Sequence[Features]]) -> np.ndarray:
        """``k(x, x)`` for every ``x`` (without building a Gram matrix)."""
        out = np.zeros(len(fx))
        for r, levels in enumerate(fx):
            for i, f in enumerate(levels):
                if self.normalize:
                    out[r] += self.weight(i) * float(any(v != 0 for v in f.values()))
                else:
                    out[r] += self.weight(i) * float(sum(v * v for v in f.values()))
        return out

    def gram(self, xs: Sequence[Sequence[nx.Graph]], ys: Sequence[Sequence[nx.Graph]] | None = None) -> np.ndarray:
        fx = self.transform(xs)
        return self.gram_from_features(fx, None if ys is None else self.transform(ys))


def architecture_graph(arch: "Architecture") -> nx.DiGraph:
    """The whole network as one graph: ``nas.graph.to_graph`` in its compact form (replicated branches once,
    so its size is bounded by the derivation tree)."""
    return to_graph(arch, expand=False)


def architecture_levels(arch: "Architecture") -> list[nx.DiGraph]:
    """One labelled graph per grammar level of ``arch`` (``nas.graph.graph_levels``)."""
    return list(graph_levels(arch))
