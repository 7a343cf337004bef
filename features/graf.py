"""GRAF graph features (Kadlecová et al., ICML 2024) for einspace architectures and NAS-Bench-201 cells.

``GRAF`` computes, from the data-flow DAG of ``nas.graph.to_graph``, the seven published einspace families
over the published 55-label vocabulary, in the published column order, with the output node kept distinct
from every real op (the published converter relabels an op as the output in about two thirds of
architectures), plus named descriptors and path statistics.  Labels, label order and path groups are the
ones the grammar publishes (``nas.grammar.core.Grammar.vocabulary``): nothing here knows an op name.  Every family is
computed by dynamic programming over one topological order of the DAG, prepared once per graph: no graph
copies, no path enumeration.  ``NB201GRAF`` implements the original GRAF families for NAS-Bench-201 cells.
``GrammarGRAF`` computes the same families for any other grammar (hierarchical NAS-Bench-201, ``hnb201``),
over that grammar's published vocabulary (``grammar_vocabulary``).
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Hashable, Iterable, Sequence

import networkx as nx
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from nas.grammar import Grammar, get_grammar
from nas.grammar.nb201 import EDGES as NB201_EDGES, OPS as NB201_OPS, cell_ops, parse_cell_string, validate_ops
from nas.graph import INPUT_LABEL, OUTPUT_LABEL, find_endpoints, to_graph

if TYPE_CHECKING:  # pragma: no cover
    from nas.architecture import Architecture

log = logging.getLogger(__name__)

#: The published families, in the published column order.
FAMILIES: tuple[str, ...] = ("cnt", "max_nodes_path", "min_nodes_path", "in", "out", "out_deg", "in_deg")
DESCRIPTORS: tuple[str, ...] = ("depth", "num_terminals", "num_nonterminals", "output_feature_size")
PATH_STATS: tuple[str, ...] = ("path_shortest", "path_longest", "path_count")
#: Path length (in edges) reported when the output cannot be reached.
UNREACHABLE_LENGTH = -1.0


@dataclass(frozen=True)
class Vocabulary:
    """What GRAF counts: ``labels`` (columns of every family, in order), ``translate`` (op name -> label or
    ``None``), ``groups`` (path-statistics groups, in order) and ``group_of`` (op name -> group or ``None``
    for ops never removed).  ``EINSPACE_VOCABULARY`` is the published one; ``grammar_vocabulary`` makes one
    for any grammar (``vocabulary_of``)."""

    name: str
    labels: tuple[str, ...]
    translate: Callable[[str], "str | None"]
    groups: tuple[str, ...]
    group_of: Callable[[str], "str | None"]
    index: dict[str, int] = field(init=False, repr=False, compare=False)
    group_index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {label: i for i, label in enumerate(self.labels)})
        object.__setattr__(self, "group_index", {g: i for i, g in enumerate(self.groups)})

    def feature_names(self, extras: bool = True) -> tuple[str, ...]:
        """Column names: seven families × labels, then (``extras``) descriptors and path statistics."""
        names = [f"{family}_{label}" for family in FAMILIES for label in self.labels]
        if extras:
            names += list(DESCRIPTORS)
            for stat in PATH_STATS:
                names.append(stat)
                names.extend(f"{stat}_no_{group}" for group in self.groups)
        return tuple(names)


def vocabulary_of(grammar: "str | Grammar") -> Vocabulary:
    """The GRAF vocabulary a grammar publishes (``nas.grammar.core.Grammar.vocabulary``): its labels and
    path groups in column order; op names it does not know have no label and its ``other_group``."""
    g = get_grammar(grammar)
    published = g.vocabulary()
    label_of, group_of, other = published.label_of, published.group_of, published.other_group
    return Vocabulary(
        g.name, published.labels, label_of.get, published.groups, lambda name: group_of.get(name, other)
    )


EINSPACE_VOCABULARY = vocabulary_of("einspace")
#: The 55 einspace labels in the published order.
VOCABULARY: tuple[str, ...] = EINSPACE_VOCABULARY.labels
#: einspace's path-statistics groups (see ``label_group``).
PATH_GROUPS: tuple[str, ...] = EINSPACE_VOCABULARY.groups


def translate_label(name: str) -> str | None:
    """The published vocabulary label of an einspace op name (``im2col(3,1,1)`` -> ``im2col3k1s1p``,
    ``branching(4)`` -> ``branching_module``, ``relu`` -> ``leakyrelu``, ...); ``None`` for names outside the
    vocabulary (``input``/``output``, the seed-only ``linear(x4)``/``linear(/4)``, other grammars' ops)."""
    return EINSPACE_VOCABULARY.translate(name)


def label_group(name: str) -> str | None:
    """The einspace path-statistics group of an op name (``nas.grammar.einspace.GRAF_GROUPS``; ``other``
    for names einspace does not know); ``None`` for the ``input``/``output`` nodes, which are never removed."""
    if name in (INPUT_LABEL, OUTPUT_LABEL):
        return None
    return EINSPACE_VOCABULARY.group_of(name)


#: Column names: the 385 published columns, then the descriptors and path statistics.
FEATURE_NAMES: tuple[str, ...] = EINSPACE_VOCABULARY.feature_names()
PUBLISHED_FEATURE_NAMES: tuple[str, ...] = EINSPACE_VOCABULARY.feature_names(extras=False)


@functools.lru_cache(maxsize=16)
def grammar_vocabulary(grammar: "str | Grammar") -> Vocabulary:
    """``vocabulary_of(grammar)``, cached.  For a grammar without a published label order (``hnb201``)
    every op name is a label (terminals first, then nonterminals, each in level order and option order,
    first occurrence kept; the start level's options, present in every network, are left out), and every
    terminal name is a path group of its own (``path_shortest_no_conv3x3o``: shortest path avoiding every
    ``conv3x3o``)."""
    return vocabulary_of(grammar)


# --------------------------------------------------------------------------------------------------
# Features of one graph
# --------------------------------------------------------------------------------------------------


def _feature_size(shape: Any) -> float:
    """Width of the feature axis of an output shape: channels ``C`` of ``C×H×W``, ``D`` of ``S×D``."""
    if not isinstance(shape, tuple) or not shape or not all(isinstance(s, int) for s in shape):
        return math.nan
    return float(shape[0] if len(shape) == 3 else shape[-1])


def graph_features(
    graph: nx.DiGraph,
    source: Hashable | None = None,
    sink: Hashable | None = None,
    extras: bool = True,
    vocabulary: Vocabulary | None = None,
) -> np.ndarray:
    """GRAF features of a DAG whose nodes carry a ``label`` (an op name), in ``FEATURE_NAMES`` order (the
    first 385 only when ``extras`` is false).  ``source``/``sink`` default to the nodes labelled ``input``
    and ``output``.  Node ids and insertion order do not matter.  Module counts and tree descriptors come
    from the graph attributes ``to_graph`` sets (``nonterminals``, ``depth``, ``tree_terminals``,
    ``tree_nonterminals``); without them module counts are 0 and descriptors NaN.  Multiplicities of a
    compact graph (``to_graph(arch, expand=False)``: node and edge attribute ``copies``, default 1) are
    honoured, so that every value is that of the expanded graph.

    Definitions, on the expanded graph (V: all nodes, source and sink included; paths run from source to
    sink):

    * ``cnt_ℓ``: ops labelled ℓ (replicated copies counted), and for module labels the nonterminal instances;
    * ``max_nodes_path_ℓ`` / ``min_nodes_path_ℓ``: most / fewest ℓ-nodes on a path (0 if no path);
    * ``in_ℓ`` / ``out_ℓ``: successors of the source / predecessors of the sink labelled ℓ;
    * ``out_deg_ℓ`` = (Σ in-degree of ℓ-nodes) / |V|, ``in_deg_ℓ`` = (Σ out-degree of ℓ-nodes) / |V| (the
      published names, which read the other way round);
    * ``depth`` (of the derivation tree, root 0), ``num_terminals`` and ``num_nonterminals`` (tree nodes as
      written: a replicated module once), ``output_feature_size`` (channels in im mode, features in col mode,
      from the sink's ``shape``);
    * ``path_shortest`` / ``path_longest`` (in edges) and ``path_count`` over all paths, and ``…_no_G`` over
      the paths that avoid every node of group G (``label_group``); no such path: lengths
      ``UNREACHABLE_LENGTH`` (-1) and count 0.

    ``vocabulary`` (default ``EINSPACE_VOCABULARY``) sets the labels, the path groups and so the columns
    (``vocabulary.feature_names(extras)``).
    """
    vocab = EINSPACE_VOCABULARY if vocabulary is None else vocabulary
    if source is None or sink is None:
        found_source, found_sink = find_endpoints(graph)
        source = found_source if source is None else source
        sink = found_sink if sink is None else sink
    for end, what in ((source, "source"), (sink, "sink")):
        if end not in graph:
            raise ValueError(f"graph_features: {what} node {end!r} is not in the graph")
    prep = _prepare(graph, source, sink, vocab)
    dp, count = _path_dp(prep, len(vocab.labels), 1 + len(vocab.groups))
    return _assemble(graph, prep, vocab, dp, count, extras)


@dataclass
class _Prepared:
    """One graph in a topological order: per node its label and group indices (-1: none), the instances it
    stands for, its predecessors with their per-instance weights (``None``: all 1) and its degrees summed
    over instances; ``s``/``t`` index the source and sink."""

    order: list[Hashable]
    index: dict[Hashable, int]
    s: int
    t: int
    lab: np.ndarray
    grp: np.ndarray
    mult: np.ndarray
    preds: list[list[int]]
    factors: list["list[float] | None"]
    indeg: np.ndarray
    outdeg: np.ndarray


def _prepare(graph: nx.DiGraph, source: Hashable, sink: Hashable, vocab: Vocabulary) -> _Prepared:
    """Topological order and per-node arrays of ``graph`` (see ``_Prepared``)."""
    translate, group_of, vocab_index, group_index = vocab.translate, vocab.group_of, vocab.index, vocab.group_index
    try:
        order = list(nx.topological_sort(graph))
    except nx.NetworkXUnfeasible:
        raise ValueError("graph_features: the graph has a cycle; GRAF needs a DAG") from None
    n = len(order)
    index = {node: i for i, node in enumerate(order)}
    node_attrs = graph.nodes
    pred_map = graph.pred
    succ_map = graph.succ
    s, t = index[source], index[sink]
    lab = np.full(n, -1, dtype=np.intp)  # vocabulary index, -1 outside the vocabulary
    grp = np.full(n, -1, dtype=np.intp)  # path group index, -1 for never removed
    mult = np.empty(n)  # instances each node stands for (1 in an expanded graph)
    preds: list[list[int]] = []
    factors: list[list[float] | None] = []  # per-instance weight of each predecessor; None: all 1
    indeg = np.empty(n)  # in-degree summed over the node's instances
    outdeg = np.empty(n)
    for i, node in enumerate(order):
        data = node_attrs[node]
        name = data.get("label")
        if not isinstance(name, str):
            raise ValueError(f"graph_features: node {node!r} has no string 'label' attribute")
        if i != s and i != t:
            v = translate(name)
            if v is not None:
                lab[i] = vocab_index[v]
            g = group_of(name)
            if g is not None:
                grp[i] = group_index[g]
        m = data.get("copies", 1)
        mult[i] = m
        incoming = pred_map[node]
        preds.append([index[q] for q in incoming])
        edge_copies = [e.get("copies", 1) for e in incoming.values()]
        indeg[i] = sum(edge_copies)
        outdeg[i] = sum(e.get("copies", 1) for e in succ_map[node].values())
        factors.append(None if all(c == m for c in edge_copies) else [c / m for c in edge_copies])
    return _Prepared(order, index, s, t, lab, grp, mult, preds, factors, indeg, outdeg)


def _path_dp(prep: _Prepared, L: int, S: int) -> tuple[np.ndarray, np.ndarray]:
    """One DP row per node: [max label counts (L) | -min label counts (L) | longest (S) | -shortest (S)], all
    aggregated by max over predecessors; path counts (S columns) by a weighted sum (a compact graph's edge
    into a replicated module's join stands for several parallel edges).  -inf marks "no path from the
    source" (for the subsets: no path avoiding the removed group).  ``S`` subsets: the full graph, then one
    per removed group."""
    lab, grp, preds, factors, s = prep.lab, prep.grp, prep.preds, prep.factors, prep.s
    n = len(prep.order)
    allowed = np.ones((n, S), dtype=bool)
    has_group = grp >= 0
    allowed[np.flatnonzero(has_group), 1 + grp[has_group]] = False
    inc = np.zeros((n, 2 * L + 2 * S))
    has_label = np.flatnonzero(lab >= 0)
    inc[has_label, lab[has_label]] = 1.0
    inc[has_label, L + lab[has_label]] = -1.0
    inc[:, 2 * L : 2 * L + S] = np.where(allowed, 1.0, -np.inf)
    inc[:, 2 * L + S :] = np.where(allowed, -1.0, -np.inf)
    allowed_f = allowed.astype(float)
    dp = np.empty_like(inc)
    count = np.empty((n, S))
    for i in range(n):
        p = preds[i]
        f = factors[i]
        if i == s:
            dp[i] = 0.0
            count[i] = 1.0
        elif not p:
            dp[i] = -np.inf
            count[i] = 0.0
        elif len(p) == 1:
            np.add(dp[p[0]], inc[i], out=dp[i])
            np.multiply(count[p[0]], allowed_f[i] if f is None else allowed_f[i] * f[0], out=count[i])
        else:
            np.add(dp[p].max(axis=0), inc[i], out=dp[i])
            total = count[p].sum(axis=0) if f is None else np.asarray(f) @ count[p]
            np.multiply(total, allowed_f[i], out=count[i])
    return dp, count


def _assemble(
    graph: nx.DiGraph, prep: _Prepared, vocab: Vocabulary, dp: np.ndarray, count: np.ndarray, extras: bool
) -> np.ndarray:
    """The feature row from the prepared graph and its path DP."""
    L, S = len(vocab.labels), 1 + len(vocab.groups)
    lab, mult, index, s, t = prep.lab, prep.mult, prep.index, prep.s, prep.t
    source, sink = prep.order[s], prep.order[t]
    out = np.zeros(7 * L + (4 + 3 * S if extras else 0))
    row = dp[t]
    has_label = np.flatnonzero(lab >= 0)
    cnt = out[0:L]
    if has_label.size:
        cnt += np.bincount(lab[has_label], weights=mult[has_label], minlength=L)
    for name, k in graph.graph.get("nonterminals", {}).items():
        v = vocab.translate(name)
        if v is not None:
            cnt[vocab.index[v]] += k
    if np.isfinite(row[2 * L]):  # the sink is reachable
        out[L : 2 * L] = row[:L]
        out[2 * L : 3 * L] = -row[L : 2 * L]
    for offset, end, neighbours in ((3 * L, s, graph.succ[source]), (4 * L, t, graph.pred[sink])):
        for node, edge in neighbours.items():  # neighbours of one instance of the end node
            k = lab[index[node]]
            if k >= 0:
                out[offset + k] += edge.get("copies", 1) / mult[end]
    if has_label.size:
        num_nodes = mult.sum()  # |V| of the expanded graph
        out[5 * L : 6 * L] = np.bincount(lab[has_label], weights=prep.indeg[has_label], minlength=L) / num_nodes
        out[6 * L : 7 * L] = np.bincount(lab[has_label], weights=prep.outdeg[has_label], minlength=L) / num_nodes
    if extras:
        meta = graph.graph
        base = 7 * L
        out[base : base + 4] = (
            float(meta.get("depth", math.nan)),
            float(meta.get("tree_terminals", math.nan)),
            float(meta.get("tree_nonterminals", math.nan)),
            _feature_size(graph.nodes[sink].get("shape")),
        )
        longest = row[2 * L : 2 * L + S]
        shortest = -row[2 * L + S :]
        base += 4
        out[base : base + S] = np.where(np.isfinite(shortest), shortest, UNREACHABLE_LENGTH)
        out[base + S : base + 2 * S] = np.where(np.isfinite(longest), longest, UNREACHABLE_LENGTH)
        out[base + 2 * S : base + 3 * S] = count[t]
    return out


def graf_features(arch: "Architecture | nx.DiGraph", extras: bool = True) -> dict[str, float]:
    """GRAF features of one architecture (or graph from ``to_graph``) by name."""
    graph = arch if isinstance(arch, nx.DiGraph) else to_graph(arch, expand=False)
    names = FEATURE_NAMES if extras else PUBLISHED_FEATURE_NAMES
    return dict(zip(names, graph_features(graph, extras=extras).tolist()))


class GRAF(TransformerMixin, BaseEstimator):
    """GRAF features of einspace architectures: the 385 published columns (seven families × 55 labels, in
    the published order, without the output-node collision) and, with ``extras``, 4 tree descriptors and
    24 path statistics (see ``graph_features`` for every definition).  Stateless: ``fit`` learns nothing.
    ``transform`` takes ``Architecture`` objects or graphs from ``nas.graph.to_graph``."""

    #: Bump whenever any feature value or column changes (keys feature caches).
    version = "1"

    def __init__(self, extras: bool = True) -> None:
        self.extras = extras

    def _vocabulary(self) -> "Vocabulary":
        return EINSPACE_VOCABULARY

    def _check_grammar(self, i: int, grammar: Any, vocab: "Vocabulary") -> None:
        if grammar is not None and not str(grammar).startswith("einspace"):
            log.warning("GRAF: item %d is from grammar %r; the label vocabulary is einspace's", i, grammar)

    def fit(self, X: Sequence[Any], y: Any = None) -> "GRAF":
        self.n_features_out_ = len(self.get_feature_names_out())
        return self

    def transform(self, X: Iterable["Architecture | nx.DiGraph"]) -> np.ndarray:
        vocab = self._vocabulary()
        rows = []
        for i, item in enumerate(X):
            if isinstance(item, nx.DiGraph):
                graph = item
            elif hasattr(item, "root") and hasattr(item, "node_at"):
                graph = to_graph(item, expand=False)  # same values as expanded, size of the tree
            else:
                raise TypeError(f"{type(self).__name__}.transform: item {i} is a {type(item).__name__}, expected an "
                                "Architecture or a DiGraph")
            self._check_grammar(i, graph.graph.get("grammar"), vocab)
            rows.append(graph_features(graph, extras=self.extras, vocabulary=vocab))
        width = len(self.get_feature_names_out())
        out = np.vstack(rows) if rows else np.zeros((0, width))
        log.debug("%s: %d architectures -> %d columns", type(self).__name__, out.shape[0], width)
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(FEATURE_NAMES if self.extras else PUBLISHED_FEATURE_NAMES, dtype=object)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.requires_fit = False  # stateless
        return tags


class GrammarGRAF(GRAF):
    """GRAF features (``graph_features``, the same families, descriptors and path statistics as ``GRAF``) of
    architectures of ``grammar`` over that grammar's own vocabulary (``grammar_vocabulary``): for grammars
    other than einspace, whose op names are outside the published vocabulary (``hnb201``).  Takes
    ``Architecture`` objects or graphs from ``nas.graph.to_graph``.  Stateless."""

    #: Bump whenever any feature value or column changes (keys feature caches).
    version = "1"

    def __init__(self, grammar: str = "hnb201", extras: bool = True) -> None:
        self.grammar = grammar
        self.extras = extras

    def _vocabulary(self) -> "Vocabulary":
        return grammar_vocabulary(self.grammar)

    def _check_grammar(self, i: int, grammar: Any, vocab: "Vocabulary") -> None:
        if grammar is not None and grammar != vocab.name:
            raise ValueError(f"GrammarGRAF({self.grammar!r}): item {i} is from grammar {grammar!r}")

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(grammar_vocabulary(self.grammar).feature_names(self.extras), dtype=object)


# --------------------------------------------------------------------------------------------------
# NAS-Bench-201 cells (the original GRAF families)
# --------------------------------------------------------------------------------------------------

#: Every non-empty subset of the four real operations, by size then in operation order.
NB201_SUBSETS: tuple[tuple[str, ...], ...] = tuple(
    c for r in range(1, 5) for c in itertools.combinations(NB201_OPS[1:], r)
)
#: ``min_path_len`` when no path of allowed operations joins node 0 to node 3 (longest possible + 1).
NB201_UNREACHABLE = 4.0


def _subset_name(subset: Sequence[str]) -> str:
    return "+".join(subset)


NB201_FEATURE_NAMES: tuple[str, ...] = tuple(
    [f"op_count_{op}" for op in NB201_OPS]
    + [f"min_path_len_{_subset_name(c)}" for c in NB201_SUBSETS]
    + [f"max_op_on_path_{_subset_name(c)}" for c in NB201_SUBSETS]
    + [f"out_degree_input_{_subset_name(c)}" for c in NB201_SUBSETS]
    + [f"in_degree_output_{_subset_name(c)}" for c in NB201_SUBSETS]
)


def _nb201_ops_of(item: Any) -> tuple[str, ...]:
    """Six op names from a tuple/list, a cell string, an object with ``cell_ops()`` or an nb201 Architecture."""
    if isinstance(item, str):
        return parse_cell_string(item)
    if hasattr(item, "cell_ops") and callable(item.cell_ops):
        return validate_ops(item.cell_ops())
    if hasattr(item, "root") and hasattr(item, "grammar"):
        return validate_ops(cell_ops(item))
    if isinstance(item, (tuple, list)):
        return validate_ops(item)
    raise TypeError(f"expected six NB201 op names, a cell string or an nb201 architecture, got {type(item).__name__}")


@functools.lru_cache(maxsize=None)
def _nb201_row(ops: tuple[str, ...]) -> tuple[float, ...]:
    """The feature row of one cell (cached: there are only 15,625 cells)."""
    incoming: dict[int, list[tuple[int, str]]] = {1: [], 2: [], 3: []}
    for (t, s), op in zip(NB201_EDGES, ops):
        if op != "none":  # a none edge does not exist
            incoming[t].append((s, op))
    row = [float(sum(op == o for op in ops)) for o in NB201_OPS]
    min_len, max_on, deg_in, deg_out = [], [], [], []
    for subset in NB201_SUBSETS:
        dist = [0.0, math.inf, math.inf, math.inf]  # shortest path over allowed edges only
        best = [0.0, -math.inf, -math.inf, -math.inf]  # most allowed edges on any path of real edges
        for t in (1, 2, 3):
            for s, op in incoming[t]:
                hit = op in subset
                if hit:
                    dist[t] = min(dist[t], dist[s] + 1)
                best[t] = max(best[t], best[s] + hit)
        min_len.append(dist[3] if math.isfinite(dist[3]) else NB201_UNREACHABLE)
        max_on.append(best[3] if math.isfinite(best[3]) else 0.0)
        deg_out.append(float(sum(1 for (t, s), op in zip(NB201_EDGES, ops) if s == 0 and op in subset)))
        deg_in.append(float(sum(1 for s, op in incoming[3] if op in subset)))
    return tuple(row + min_len + max_on + deg_out + deg_in)


def nb201_graf(ops: "Sequence[str] | str") -> dict[str, float]:
    """Original GRAF features of a NAS-Bench-201 cell given as six op names in the standard edge order
    (1←0), (2←0), (2←1), (3←0), (3←1), (3←2), or as a cell string.  Ops sit on edges between nodes 0..3;
    ``none`` edges do not exist.  For every non-empty subset A of the four real ops:

    * ``op_count_o``: edges holding op o (all five ops, ``none`` included);
    * ``min_path_len_A``: fewest edges on a 0→3 path using only ops in A (``NB201_UNREACHABLE`` = 4 if none);
    * ``max_op_on_path_A``: most edges with an op in A on any 0→3 path (0 if node 3 is unreachable);
    * ``out_degree_input_A`` / ``in_degree_output_A``: edges with an op in A leaving node 0 / entering node 3.
    """
    return dict(zip(NB201_FEATURE_NAMES, _nb201_row(_nb201_ops_of(ops))))


class NB201GRAF(TransformerMixin, BaseEstimator):
    """Original GRAF features of NAS-Bench-201 cells (see ``nb201_graf``; 65 columns).  ``transform`` takes
    6-tuples/lists of op names, cell strings ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``, objects with a
    ``cell_ops()`` method or nb201 ``Architecture`` values.  Stateless."""

    version = "1"

    def fit(self, X: Sequence[Any], y: Any = None) -> "NB201GRAF":
        self.n_features_out_ = len(NB201_FEATURE_NAMES)
        return self

    def transform(self, X: Iterable[Any]) -> np.ndarray:
        rows = [_nb201_row(_nb201_ops_of(item)) for item in X]
        return np.asarray(rows, dtype=float) if rows else np.zeros((0, len(NB201_FEATURE_NAMES)))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(NB201_FEATURE_NAMES, dtype=object)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.requires_fit = False  # stateless
        return tags

