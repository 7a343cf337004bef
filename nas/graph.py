"""An architecture as a data-flow DAG of its terminal operations (networkx), and a PNG drawing of it.

Only terminals (layers) become nodes; nonterminals only wire them: a ``Chain`` feeds each child the
previous child's output, a ``Branch`` feeds its branching function's output to the first terminal of every
inner module and every inner module's last terminal to the aggregation function, and a ``Dag`` (a topology
such as NAS-Bench-201's cell or a residual block) feeds each edge's first terminals from the terminals that
produce its source node; a DAG node with several incoming edges is their sum, so whatever consumes it gets
an edge from the last terminal of each (no node of its own stands for the sum).  A replicated inner module
(``branching(4)``/``branching(8)`` in einspace: written once in the tree, instantiated once per branch by
the compiler) is expanded into one copy per branch, or, in the compact form, kept once with multiplicities
(nesting multiplies copies, so a few random networks have millions of op instances).  Works for any grammar
whose nonterminals are ``Chain``, ``Branch`` or ``Dag``; nothing here imports torch.  ``graph_levels`` gives
one graph per hierarchy level of a hierarchical grammar (hierarchical Weisfeiler-Lehman kernels).

Node ids are contiguous ints in data-flow (pre-order walk) order, which is also a topological order: the
``input`` node is 0, the terminals follow (copy 0 of a replicated module before copy 1, ...), and the
``output`` node is the last id.  It is a node of its own, so, unlike the published GRAF converter (which
relabels an operation as the output), it never collides with a real operation.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any, Hashable, Mapping

import networkx as nx

if TYPE_CHECKING:  # pragma: no cover
    from nas.architecture import Architecture
    from nas.grammar.derive import Node

log = logging.getLogger(__name__)

INPUT_LABEL = "input"
OUTPUT_LABEL = "output"


#: Largest number of op instances ``to_graph`` expands by default (nested ``branching(8)`` modules multiply:
#: a few percent of random einspace networks have 10^4 to 10^7 instances).
MAX_EXPANDED_NODES = 200_000


def num_instances(arch: "Architecture") -> int:
    """Number of op nodes of the expanded graph: ``Architecture.num_layers`` (replicated copies counted)."""
    return arch.num_layers


def to_graph(arch: "Architecture", expand: bool = True, max_nodes: int | None = MAX_EXPANDED_NODES) -> nx.DiGraph:
    """The data-flow DAG of ``arch``'s terminal operations between an ``input`` and an ``output`` node.

    With ``expand`` (the default) every replicated inner module appears once per branch, so the graph is the
    network's real wiring; ``ValueError`` if that means more than ``max_nodes`` op nodes (``None``: no limit).
    With ``expand=False`` it appears once (node ids and edges as for the first copy only) and multiplicities
    say what it stands for: node attribute ``copies`` (instances of the op in the network) and edge attribute
    ``copies`` (expanded edges it stands for: the larger of its ends' ``copies``).  Expanded graphs carry
    ``copies`` = 1 everywhere.  ``features.graf.graph_features`` gives identical values on both forms.

    Node attributes: ``label`` (the op name, e.g. ``im2col(3,1,1)``, or ``input``/``output``), ``level`` (the
    grammar level the op was chosen at; ``None`` for input/output), ``path`` (the terminal's derivation-tree
    path; ``None`` for input/output), ``copy`` (the branch indices of the enclosing replicated modules,
    outermost first; ``()`` outside them and in compact graphs), ``copies`` and ``shape`` (output shape
    without batch; for a branching function, the shape of each branch, or a tuple of shapes if they differ).
    Graph attributes: ``grammar``, ``input_shape``, ``output_shape``, ``expanded``, ``depth`` (of the
    derivation tree, root 0), ``tree_terminals`` and ``tree_nonterminals`` (node counts of the tree as
    written) and ``nonterminals`` (op name -> number of instances in the network, copies counted).
    """
    if expand and max_nodes is not None:
        instances = num_instances(arch)
        if instances > max_nodes:
            raise ValueError(
                f"to_graph: expanding the replicated branches gives {instances:,} op nodes (limit {max_nodes:,}); "
                "use expand=False for the compact graph with multiplicities, or raise max_nodes"
            )
    walk = _GraphWalk(arch, expand)
    graph = walk.graph
    last = walk.walk(arch.root, (), (), (0,))
    out_id = walk.next_id
    graph.add_node(out_id, label=OUTPUT_LABEL, level=None, path=None, copy=(), copies=1, shape=tuple(arch.output_shape))
    for end in last:
        graph.add_edge(end, out_id, copies=graph.nodes[end]["copies"])
    graph.graph.update(
        grammar=arch.grammar.name,
        input_shape=tuple(arch.input_shape),
        output_shape=tuple(arch.output_shape),
        expanded=expand,
        depth=arch.depth,
        tree_terminals=arch.num_terminals,
        tree_nonterminals=arch.num_nodes - arch.num_terminals,
        nonterminals=dict(walk.nonterminals),
    )
    return graph


class _GraphWalk:
    """Builds ``to_graph``'s DAG: walks the derivation tree adding one node per terminal (instance)."""

    def __init__(self, arch: "Architecture", expand: bool) -> None:
        self.expand = expand
        self.node_at = arch.node_at
        self.graph = nx.DiGraph()
        self.graph.add_node(0, label=INPUT_LABEL, level=None, path=None, copy=(), copies=1,
                            shape=tuple(arch.input_shape))
        self.nonterminals: Counter[str] = Counter()
        self.next_id = 1

    def add_terminal(self, path: tuple[int, ...], copy: tuple[int, ...], preds: tuple[int, ...]) -> int:
        info = self.node_at(path)
        shapes = [s.shape for s in info.outputs]
        shape: Any = shapes[0] if all(s == shapes[0] for s in shapes) else tuple(shapes)
        copies = 1 if self.expand else info.copies
        nid = self.next_id
        self.next_id += 1
        graph = self.graph
        graph.add_node(nid, label=info.op.name, level=info.level, path=path, copy=copy, copies=copies, shape=shape)
        for p in preds:
            graph.add_edge(p, nid, copies=max(copies, graph.nodes[p]["copies"]))
        return nid

    def walk(self, node: "Node", path: tuple[int, ...], copy: tuple[int, ...], preds: tuple[int, ...]) -> tuple[int, ...]:
        """Add ``node``'s terminals fed by ``preds``; return the ids of the terminals that produce its output
        (several when it ends in a DAG node that sums edges)."""
        info = self.node_at(path)
        op = info.op
        if op.is_terminal:
            return (self.add_terminal(path, copy, preds),)
        expand = self.expand
        self.nonterminals[op.name] += 1 if expand else info.copies
        children = node.children
        if op.kind == "chain":
            last = preds
            for i, child in enumerate(children):
                last = self.walk(child, path + (i,), copy, last)
            return last
        if op.kind == "branch":
            fork = self.walk(children[0], path + (0,), copy, preds)
            ends: list[int] = []
            if op.replicate:  # type: ignore[attr-defined]
                for j in range(op.fanout if expand else 1):  # type: ignore[attr-defined]
                    ends.extend(self.walk(children[1], path + (1,), copy + (j,) if expand else copy, fork))
            else:
                for i in range(1, len(children) - 1):
                    ends.extend(self.walk(children[i], path + (i,), copy, fork))
            return self.walk(children[-1], path + (len(children) - 1,), copy, tuple(ends))
        if op.kind == "dag":
            values: list[tuple[int, ...]] = [preds] + [()] * (op.num_nodes - 1)  # type: ignore[attr-defined]
            for i, (child, (s, t)) in enumerate(zip(children, op.edges)):  # type: ignore[attr-defined]
                values[t] += self.walk(child, path + (i,), copy, values[s])
            return values[-1]
        raise ValueError(
            f"to_graph: nonterminal {op.name!r} at {path} has kind {op.kind!r}; "
            "only 'chain', 'branch' and 'dag' are supported"
        )


def _topology_graph(arch: "Architecture", path: tuple[int, ...]) -> nx.DiGraph:
    """The graph of one nonterminal instance one level deep: ``input``, one node per child (label
    ``"<child level>:<child op>"``, attributes ``level``, ``op``, ``path``), ``output``, wired as the
    nonterminal's kind says (a terminal stands alone between input and output)."""
    info = arch.node_at(path)
    op = info.op
    graph = nx.DiGraph()
    graph.add_node(0, label=INPUT_LABEL, level=None, op=None, path=None)

    def add(child_path: tuple[int, ...], preds: tuple[int, ...]) -> tuple[int, ...]:
        child = arch.node_at(child_path)
        nid = graph.number_of_nodes()
        graph.add_node(nid, label=f"{child.level}:{child.op.name}", level=child.level, op=child.op.name, path=child_path)
        graph.add_edges_from((p, nid) for p in preds)
        return (nid,)

    if op.is_terminal:
        last = add(path, (0,))
    elif op.kind == "chain":
        last = (0,)
        for i in range(len(op.children)):
            last = add(path + (i,), last)
    elif op.kind == "dag":
        values: list[tuple[int, ...]] = [(0,)] + [()] * (op.num_nodes - 1)  # type: ignore[attr-defined]
        for i, (s, t) in enumerate(op.edges):  # type: ignore[attr-defined]
            values[t] += add(path + (i,), values[s])
        last = values[-1]
    elif op.kind == "branch":
        fork = add(path + (0,), (0,))
        ends: tuple[int, ...] = ()
        for i in range(1, len(op.children) - 1):
            ends += add(path + (i,), fork)
        last = add(path + (len(op.children) - 1,), ends)
    else:
        raise ValueError(f"graph_levels: nonterminal {op.name!r} at {path} has unsupported kind {op.kind!r}")
    out = graph.number_of_nodes()
    graph.add_node(out, label=OUTPUT_LABEL, level=None, op=None, path=None)
    graph.add_edges_from((p, out) for p in last)
    return graph


def graph_levels(arch: "Architecture", expand: bool = False) -> list[nx.DiGraph]:
    """One labelled graph per hierarchy level of ``arch``'s grammar, for hierarchical graph kernels.

    The first graph is always the architecture's data-flow graph (``to_graph(arch, expand=expand)``; compact
    by default, so its size is the tree's).  For a grammar with ``Grammar.hierarchy`` (``hnb201``: the macro
    topology over stages, the stages' topologies over blocks, the blocks' over cells, the cells, the conv
    blocks), one more graph per hierarchy group follows, coarse to fine: the disjoint union, in pre-order,
    of the one-level-deep graph of every node of the tree at a level of that group, in which each child is
    a node labelled ``"<level>:<op>"`` (e.g. ``D1:Residual3``, ``OPS:zero``) between its own ``input`` and
    ``output`` nodes, wired by the topology (a DAG node's sum feeds its consumers from every incoming
    edge).  A group the architecture does not use (no conv blocks, say) gives a graph without nodes.  Every
    node has a string ``label``; the level graphs' attributes are ``grammar``, ``hierarchy_level`` (1, 2,
    ...), ``levels`` (grammar levels of the group) and ``instances`` (topologies in the union).  Flat
    grammars (einspace, nb201) give a one-element list."""
    graphs = [to_graph(arch, expand=expand)]
    for k, group in enumerate(arch.grammar.hierarchy, start=1):
        members = set(group)
        union = nx.DiGraph(grammar=arch.grammar.name, hierarchy_level=k, levels=tuple(group), instances=0)
        for info in arch.nodes:
            if info.level in members:
                part = _topology_graph(arch, info.path)
                offset = union.number_of_nodes()
                union.add_nodes_from((offset + n, data) for n, data in part.nodes(data=True))
                union.add_edges_from((offset + u, offset + v) for u, v in part.edges)
                union.graph["instances"] += 1
        graphs.append(union)
    return graphs


def find_endpoints(graph: nx.DiGraph) -> tuple[Hashable, Hashable]:
    """The unique nodes labelled ``input`` and ``output``; ``ValueError`` if either is missing or repeated."""
    found: dict[str, list[Hashable]] = {INPUT_LABEL: [], OUTPUT_LABEL: []}
    for n, label in graph.nodes(data="label"):
        if label in found:
            found[label].append(n)
    for label, nodes in found.items():
        if len(nodes) != 1:
            raise ValueError(f"graph must have exactly one node labelled {label!r}, found {len(nodes)}")
    return found[INPUT_LABEL][0], found[OUTPUT_LABEL][0]


def layers(graph: nx.DiGraph, source: Hashable | None = None) -> dict[Hashable, int]:
    """Longest-path depth of every node from ``source`` (default: the ``input`` node); nodes that ``source``
    does not reach get the longest-path depth from any source, so every node has a layer."""
    if source is None:
        source = find_endpoints(graph)[0]
    depth: dict[Hashable, int] = {}
    for n in nx.topological_sort(graph):
        preds = [depth[p] for p in graph.predecessors(n)]
        depth[n] = 0 if n == source or not preds else max(preds) + 1
    return depth


#: ``draw_graph`` expands replicated branches by default up to this many op nodes.
DRAW_EXPAND_LIMIT = 400

_GROUP_COLOURS: Mapping[str, str] = {
    "io": "#d9d9d9",
    "im2col": "#9ecae1",
    "permute": "#c6dbef",
    "aggregation": "#fdae6b",
    "branch": "#fdd0a2",
    "linear": "#a1d99b",
    "other": "#f2f0f7",
}


def _colour(label: str) -> str:
    if label in (INPUT_LABEL, OUTPUT_LABEL):
        return _GROUP_COLOURS["io"]
    if label.startswith("im2col") or label == "col2im":
        return _GROUP_COLOURS["im2col"]
    if label.startswith("perm"):
        return _GROUP_COLOURS["permute"]
    if label.startswith(("add", "cat", "dot_product")):
        return _GROUP_COLOURS["aggregation"]
    if label.startswith(("clone", "group")):
        return _GROUP_COLOURS["branch"]
    if label.startswith("linear"):
        return _GROUP_COLOURS["linear"]
    return _GROUP_COLOURS["other"]


def _format_shape(shape: Any) -> str:
    if isinstance(shape, tuple) and shape and all(isinstance(s, int) for s in shape):
        return "×".join(map(str, shape))
    if isinstance(shape, tuple) and shape and all(isinstance(s, tuple) for s in shape):
        return ", ".join(_format_shape(s) for s in shape)
    return "" if shape is None else str(shape)


def draw_graph(
    arch: "Architecture | nx.DiGraph",
    path: str,
    *,
    expand: bool | None = None,
    show_shapes: bool = True,
    title: str | None = None,
    dpi: int = 100,
) -> None:
    """Render the DAG of ``arch`` (an ``Architecture`` or a graph from ``to_graph``) left to right to a PNG
    at ``path``: columns are longest-path depths from the input, boxes are coloured by op group.  ``expand``
    as in ``to_graph``; by default replicated branches are drawn expanded when that gives at most
    ``DRAW_EXPAND_LIMIT`` op nodes, else once with a ``×copies`` mark."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # deferred: matplotlib (drawing is optional)
    from matplotlib.figure import Figure

    if isinstance(arch, nx.DiGraph):
        graph = arch
    else:
        if expand is None:
            expand = num_instances(arch) <= DRAW_EXPAND_LIMIT
        graph = to_graph(arch, expand=expand)
    if graph.number_of_nodes() == 0:
        raise ValueError("draw_graph: the graph has no nodes")
    depth = layers(graph)
    columns: dict[int, list[Hashable]] = {}
    for n in graph.nodes:  # node order is the walk order: keeps branches together
        columns.setdefault(depth[n], []).append(n)
    pos: dict[Hashable, tuple[float, float]] = {}
    for x in sorted(columns):
        nodes = columns[x]
        if x > 0:  # barycentre heuristic: sit near the predecessors (fewer crossings)
            order = {n: i for i, n in enumerate(nodes)}

            def key(n: Hashable) -> tuple[float, int]:
                ys = [pos[p][1] for p in graph.predecessors(n) if p in pos]
                return (-sum(ys) / len(ys) if ys else 0.0, order[n])

            nodes = sorted(nodes, key=key)
        for i, n in enumerate(nodes):
            pos[n] = (float(x), (len(nodes) - 1) / 2.0 - i)

    n_cols = max(columns) + 1
    n_rows = max(len(v) for v in columns.values())
    width = min(max(4.0, 1.7 * n_cols), 600.0)
    height = min(max(2.0, 0.9 * n_rows + 0.8), 600.0)
    dpi = max(10, min(dpi, int(60000 / max(width, height))))  # Agg's image size limit is 2^16 pixels
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 0.93 if title else 1.0))
    ax.set_xlim(-0.6, n_cols - 0.4)
    ax.set_ylim(-(n_rows / 2.0) - 0.1, n_rows / 2.0 + 0.1)
    ax.axis("off")
    texts = {}
    for n, data in graph.nodes(data=True):
        label = str(data.get("label", n))
        if data.get("copies", 1) != 1:
            label = f"{label} ×{data['copies']}"
        if show_shapes and data.get("shape") is not None:
            label = f"{label}\n{_format_shape(data['shape'])}"
        texts[n] = ax.text(
            *pos[n], label, ha="center", va="center", fontsize=7, zorder=3,
            bbox=dict(boxstyle="round,pad=0.3", fc=_colour(str(data.get("label", ""))), ec="#555555", lw=0.6),
        )
    arrow = dict(arrowstyle="-|>", mutation_scale=7, lw=0.6, color="#444444", shrinkA=2, shrinkB=2)
    for u, v in graph.edges:  # from the right edge of u's box to the left edge of v's box
        span = depth[v] - depth[u]
        props = arrow if span <= 1 else {**arrow, "connectionstyle": "arc3,rad=-0.12"}  # long edges bend
        ax.annotate("", xy=(0.0, 0.5), xycoords=texts[v], xytext=(1.0, 0.5), textcoords=texts[u],
                    arrowprops=props, zorder=2)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.savefig(path, format="png", dpi=dpi)
    log.debug("drew %d nodes, %d edges to %s", graph.number_of_nodes(), graph.number_of_edges(), path)
