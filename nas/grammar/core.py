"""Grammar machinery: signals (symbolic tensors), operations (productions) and grammars.

A grammar is plain data: for every nonterminal ("level") a list of operations, each with a sampling
weight.  Terminal operations carry their own validity predicate, symbolic shape function, parameter and
FLOP count; nonterminal operations say how data flows through their children (a chain, a fork-join
branch, or a fixed DAG whose edges are the children: a "topology operator" of hierarchical search spaces
such as NAS-Bench-201's cell or a residual block).  Every operation also publishes its vocabulary: the
GRAF label and path group that graph features count it under, the rule by which a FLOP counter costs its
layer, and the key (``family``, ``layer``) under which the network layer (``nas.compile``) looks up the
builder of its module.  Nothing here imports torch or the network layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence


class Signal(NamedTuple):
    """A symbolic tensor flowing through a network: its shape without the batch axis, and the grid of the
    most recent ``im2col`` on its data path (``None`` when there is none), which ``col2im`` needs."""

    shape: tuple[int, ...]
    grid: tuple[int, int] | None = None

    @property
    def mode(self) -> str:
        """``"im"`` for a ``C×H×W`` tensor, ``"col"`` for a ``S×D`` token sequence."""
        return "im" if len(self.shape) == 3 else "col"

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


#: What flows along one edge of the derivation: one signal, or the k branches of a branching function.
Flow = tuple[Signal, ...]


def format_shape(shape: Sequence[int]) -> str:
    """``(3, 32, 32)`` -> ``"3×32×32"``."""
    return "×".join(str(int(s)) for s in shape)


def format_flow(flow: Flow) -> str:
    if len(flow) == 1:
        return format_shape(flow[0].shape)
    if all(s.shape == flow[0].shape for s in flow):
        return f"{len(flow)}×[{format_shape(flow[0].shape)}]"
    return "(" + ", ".join(format_shape(s.shape) for s in flow) + ")"


def merge_grid(flow: Flow) -> tuple[int, int] | None:
    """Grid carried by the result of an aggregation: kept when all branches agree, else unknown."""
    grid = flow[0].grid
    return grid if all(s.grid == grid for s in flow) else None


class Operation:
    """One production of a grammar: an option at a level (nonterminal), chosen with probability
    proportional to ``weight`` among the options that are still valid.  Weight 0 means "legal but never
    sampled" (used for ops that only seed architectures need).

    Published vocabulary (set by the grammar presets; the defaults suit a grammar without a published
    one): ``graf_label``, the GRAF label the op is counted under (``None``: not counted; default its
    name); ``graf_group``, its path-statistics group (``None``: never removed; default its name for a
    terminal, ``None`` for a nonterminal); ``flop_rule``, how a FLOP counter that counts matrix products
    only (``torch.utils.flop_counter``) costs its layer: ``"free"`` (nothing counted), ``"linear"`` (one
    ``nn.Linear``/``nn.Conv2d``: 2 · input elements · output width), ``"product"`` (one matrix product of
    two inputs, the same formula) or ``None`` (unknown: no closed form); ``family`` and ``layer``, the key
    of the builder that makes its module (``layer`` defaults to the name for a terminal; a nonterminal with
    a ``layer`` is built whole by its builder, one without is built from its children)."""

    kind: str = "terminal"
    #: Child levels, in data-flow order; empty for terminals.
    children: tuple[str, ...] = ()
    #: Bracket pair used by the compact string notation for nonterminals.
    brackets: str = ""
    #: The builder family (a grammar family, e.g. ``"einspace"``); with ``layer`` the builder's key.
    family: str = ""
    #: How a matrix-product FLOP counter costs this operation's layer (see the class docstring).
    flop_rule: str | None = None
    #: The builder's name within ``family``; ``None``: the op's name for a terminal, none for a nonterminal.
    layer: str | None = None
    #: Other names the parser accepts for this operation at its level (other notations of the same op);
    #: strings are always written with ``name``.
    aliases: tuple[str, ...] = ()
    #: For a one-child chain (einspace's computation module): the parser accepts the child written alone
    #: where this level is expected, as other notations write a bare layer in a module slot.
    bare_child: bool = False

    def __init__(self, name: str, level: str, weight: float = 1.0) -> None:
        self.name = name
        self.level = level
        self.weight = float(weight)
        self.graf_label: str | None = name
        self.graf_group: str | None = name if self.is_terminal else None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} at {self.level!r} w={self.weight:.4g}>"

    @property
    def is_terminal(self) -> bool:
        return self.kind == "terminal"

    @property
    def builder_key(self) -> tuple[str, str] | None:
        """``(family, layer)``: the key of the network-layer builder of this operation's module; ``None`` for
        a nonterminal built from its children."""
        if self.layer is not None:
            return (self.family, self.layer)
        return (self.family, self.name) if self.is_terminal else None

    def labelled(self, label: str | None, group: str | None = None) -> "Operation":
        """Set the published GRAF label and path group; returns the operation (for grammar definitions)."""
        self.graf_label, self.graf_group = label, group
        return self

    def params(self, inp: Flow, out: Flow) -> int:
        """Parameters of the operation itself for input ``inp`` and output ``out``: a terminal's layer; for a
        nonterminal only fixed parts that no child stands for (0 for ``Chain`` and ``Branch``)."""
        return 0

    def flops(self, inp: Flow, out: Flow) -> int:
        """Forward FLOPs of the operation itself (one sample; a multiply-add counts two), as ``params``."""
        return 0


class Terminal(Operation):
    """A terminal operation: a layer.  Subclasses define ``infer`` (returning ``None`` when the operation
    is not valid for that input), ``params`` and ``flops``; the network layer builds its module with the
    builder registered under ``builder_key``."""

    #: True for layers that map a single signal to a single signal.
    one_to_one = True

    def infer(self, flow: Flow) -> Flow | None:
        raise NotImplementedError

    def samplable(self, flow: Flow) -> bool:
        """Whether sampling (and mutation) may choose this operation for ``flow``, beyond ``infer``'s
        validity: a stricter rule for choosing than for replaying a given tree (default: no extra rule)."""
        return True


class Chain(Operation):
    """A nonterminal whose children run one after the other, each fed the previous one's output
    (sequential, routing and computation modules)."""

    kind = "chain"

    def __init__(self, name: str, level: str, children: Sequence[str], brackets: str, weight: float = 1.0) -> None:
        super().__init__(name, level, weight)
        self.children = tuple(children)
        self.brackets = brackets


class Branch(Operation):
    """A fork-join nonterminal: a branching function makes ``fanout`` signals, inner modules map them and
    an aggregation function joins them.  With ``replicate`` a single inner module is written once in the
    tree and instantiated ``fanout`` times (same architecture, separate weights)."""

    kind = "branch"

    def __init__(
        self,
        name: str,
        level: str,
        fork: str,
        inner: str,
        join: str,
        fanout: int,
        replicate: bool,
        brackets: str,
        weight: float = 1.0,
    ) -> None:
        super().__init__(name, level, weight)
        self.fanout = int(fanout)
        self.replicate = bool(replicate)
        self.brackets = brackets
        inners = (inner,) if replicate else (inner,) * fanout
        self.children = (fork, *inners, join)


class Dag(Operation):
    """A nonterminal whose children are the edges of a fixed DAG (a topology operator).

    Nodes are numbered ``0..num_nodes-1``; node 0 takes the operation's input (after ``enter``), the last
    node is its output (before ``exit``).  ``edges[i] = (source, target)`` is child ``i``'s edge: the child
    maps the source node's value, and a node's value is the **sum** of its incoming edges' outputs, which
    must all have the same shape.  Children are derived (and written in strings) in edge order, which
    must be a data-flow order: every edge into a node comes before every edge out of it.

    ``dead_ops`` (e.g. ``("zero",)``) makes the topology require a path from input to output whose edges
    are not dead ops, as NePS's constraint does for hierarchical NAS-Bench-201 cells: while sampling, a
    dead op is refused on an edge when, given the edges already chosen (later edges counted as live), it
    would leave no such path, so sampling never dead-ends; a given tree without such a path is invalid.

    Subclasses may override ``enter``/``exit`` (fixed layers around the DAG, e.g. a stem), ``params`` and
    ``flops`` (their costs) and ``join_flops``, and set ``layer`` (the compiler then builds the whole
    subtree with the builder registered under ``builder_key``); the defaults are identities, no costs
    beyond one addition per element for each extra input of a node, and the compiler's generic DAG module.
    """

    kind = "dag"

    def __init__(
        self,
        name: str,
        level: str,
        children: Sequence[str],
        edges: Sequence[tuple[int, int]],
        brackets: str = "()",
        weight: float = 1.0,
        dead_ops: Sequence[str] = (),
    ) -> None:
        super().__init__(name, level, weight)
        self.children = tuple(children)
        self.brackets = brackets
        self.edges: tuple[tuple[int, int], ...] = tuple((int(s), int(t)) for s, t in edges)
        self.dead_ops = frozenset(dead_ops)
        if len(self.edges) != len(self.children):
            raise ValueError(f"DAG {name!r}: {len(self.children)} children but {len(self.edges)} edges")
        if not self.edges:
            raise ValueError(f"DAG {name!r}: needs at least one edge")
        self.num_nodes = 1 + max(max(e) for e in self.edges)
        n = self.num_nodes
        last_in = [-1] * n
        first_out = [len(self.edges)] * n
        for i, (s, t) in enumerate(self.edges):
            if not 0 <= s < t < n:
                raise ValueError(f"DAG {name!r}: edge {i} ({s}->{t}) must go from a lower to a higher node")
            last_in[t] = i
            first_out[s] = min(first_out[s], i)
        for v in range(n):
            if v > 0 and last_in[v] < 0:
                raise ValueError(f"DAG {name!r}: node {v} has no incoming edge")
            if v < n - 1 and first_out[v] == len(self.edges):
                raise ValueError(f"DAG {name!r}: node {v} has no outgoing edge")
            if last_in[v] > first_out[v]:
                raise ValueError(f"DAG {name!r}: edge {first_out[v]} leaves node {v} before edge {last_in[v]} enters it")
        #: Index of the last edge into each node (-1 for the input node): its value is complete after it.
        self.last_in: tuple[int, ...] = tuple(last_in)

    def enter(self, flow: Flow) -> Flow | None:
        """The value of node 0 for the operation's input ``flow``; ``None`` when the input is not valid."""
        return flow

    def exit(self, flow: Flow) -> Flow | None:
        """The operation's output for the value of the last node."""
        return flow

    def input_error(self, flow: Flow) -> str:
        """Why ``enter`` refused ``flow``."""
        return f"not valid for input {format_flow(flow)}"

    def join_flops(self, elements: int) -> int:
        """FLOPs of the node sums, given ``elements`` = Σ over nodes of (incoming edges - 1) × node size."""
        return elements

    def live_path(self, names: Sequence[str | None]) -> bool:
        """Whether the edges whose op is not dead (``None``: not chosen yet, counted live) join the input to
        the output."""
        reach = [False] * self.num_nodes
        reach[0] = True
        for (s, t), name in zip(self.edges, names):  # edges are in data-flow order
            if reach[s] and name not in self.dead_ops:
                reach[t] = True
        return reach[-1]

    def forbidden(self, index: int, names: Sequence[str | None]) -> frozenset[str]:
        """Op names that child ``index`` may not take, given the other children's names (``None`` where
        not chosen yet): the dead ops, when choosing one would leave no live input-output path."""
        if not self.dead_ops:
            return frozenset()
        trial = list(names)
        trial[index] = next(iter(self.dead_ops))
        return frozenset() if self.live_path(trial) else self.dead_ops

    def check(self, names: Sequence[str]) -> str | None:
        """Why a complete choice of children is invalid, or ``None``."""
        if self.dead_ops and not self.live_path(names):
            dead = "/".join(sorted(self.dead_ops))
            return f"no path from input to output avoids {dead} edges"
        return None


class Grammar:
    """A probabilistic context-free grammar over neural-network operations.

    ``levels`` maps each nonterminal to its options.  Operation names must be unique within a level (the
    same name may appear at different levels, e.g. ``identity``).  The grammar precomputes, for every
    option, the smallest number of tree nodes and the smallest height of a completion using sampleable
    options only, which the sampler uses to respect node and depth budgets without dead ends.
    """

    def __init__(
        self,
        name: str,
        start: str,
        levels: dict[str, Sequence[Operation]],
        description: str = "",
        *,
        input_check: "Callable[[tuple[int, ...]], str | None] | None" = None,
        strict_levels: bool = False,
        hierarchy: Sequence[Sequence[str]] = (),
        default_budget: "Budget | None" = None,
        graf_labels: Sequence[str] = (),
        graf_groups: Sequence[str] = (),
        graf_other_group: str | None = None,
    ) -> None:
        self.name = name
        self.start = start
        self.description = description
        #: ``input_check(shape)``: why the grammar cannot take an input of that shape, or ``None``.
        self.input_check = input_check
        #: Crossover moves a subtree only between nodes of the same level (positions such as NAS-Bench-201's
        #: edges are levels of their own); otherwise into any level that has the subtree's op as an option.
        self.strict_levels = bool(strict_levels)
        #: Levels grouped by hierarchy, coarse to fine (``nas.graph.graph_levels``); empty for flat grammars.
        self.hierarchy: tuple[tuple[str, ...], ...] = tuple(tuple(group) for group in hierarchy)
        #: The budget used when none is given (sampling, mutation); ``None``: ``Budget()``.
        self.default_budget = default_budget
        #: GRAF label order published with the grammar (the labels of other ops follow, see ``vocabulary``).
        self.graf_labels = tuple(graf_labels)
        #: Path-statistics group order published with the grammar (other ops' groups follow).
        self.graf_groups = tuple(graf_groups)
        #: The group of op names the grammar does not know (``None``: never removed).
        self.graf_other_group = graf_other_group
        self._vocabulary: Vocabulary | None = None
        self.levels: dict[str, tuple[Operation, ...]] = {k: tuple(v) for k, v in levels.items()}
        self._index, self._aliases = self._index_operations()
        if start not in self.levels:
            raise ValueError(f"start level {start!r} is not a level of grammar {name!r}")
        for group in self.hierarchy:
            for level in group:
                if level not in self.levels:
                    raise ValueError(f"hierarchy names unknown level {level!r} of grammar {name!r}")
        self._min_nodes, self._min_height = self._completion_bounds()
        self._min_layers = self._layer_bounds()
        self._reserve_after: dict[tuple[str, str], tuple[int, ...]] = {}
        for key, op in self._index.items():
            mins = [self.level_min_nodes(c) for c in op.children]
            self._reserve_after[key] = tuple(sum(mins[i + 1 :]) for i in range(len(mins)))
        self.terminal_names: tuple[str, ...] = tuple(
            sorted({op.name for ops in self.levels.values() for op in ops if op.is_terminal})
        )
        self.nonterminal_names: tuple[str, ...] = tuple(
            sorted({op.name for ops in self.levels.values() for op in ops if not op.is_terminal})
        )

    def _index_operations(self) -> tuple[dict[tuple[str, str], Operation], dict[tuple[str, str], Operation]]:
        """Operations by ``(level, name)`` and by ``(level, alias)``, after checking names, levels and aliases."""
        index: dict[tuple[str, str], Operation] = {}
        aliases: dict[tuple[str, str], Operation] = {}
        for level, ops in self.levels.items():
            for op in ops:
                if op.level != level:
                    raise ValueError(f"operation {op.name!r} is declared at level {op.level!r} but listed under {level!r}")
                if (level, op.name) in index:
                    raise ValueError(f"duplicate operation {op.name!r} at level {level!r}")
                index[(level, op.name)] = op
                for child in op.children:
                    if child not in self.levels:
                        raise ValueError(f"operation {op.name!r} refers to unknown level {child!r}")
        for level, ops in self.levels.items():
            for op in ops:
                for alias in op.aliases:
                    other = index.get((level, alias)) or aliases.get((level, alias))
                    if other is not None and other is not op:
                        raise ValueError(f"alias {alias!r} of {op.name!r} at level {level!r} is already {other.name!r}")
                    aliases[(level, alias)] = op
        return index, aliases

    def __repr__(self) -> str:
        return f"<Grammar {self.name!r}: {sum(len(v) for v in self.levels.values())} operations>"

    def check_input(self, shape: Sequence[int]) -> str | None:
        """Why this grammar has no network for an input of ``shape``, or ``None`` (no check: ``None``)."""
        return None if self.input_check is None else self.input_check(tuple(int(s) for s in shape))

    def budget(self) -> "Budget":
        """``default_budget``, or ``Budget()``."""
        return self.default_budget if self.default_budget is not None else Budget()

    def options(self, level: str) -> tuple[Operation, ...]:
        return self.levels[level]

    def operation(self, level: str, name: str) -> Operation | None:
        """The operation called ``name`` at ``level``, or ``None``."""
        return self._index.get((level, name))

    def resolve(self, level: str, name: str) -> Operation | None:
        """The operation called ``name`` at ``level``, or the one that has ``name`` as an alias, or ``None``."""
        return self._index.get((level, name)) or self._aliases.get((level, name))

    def min_nodes(self, op: Operation) -> int:
        """Fewest derivation-tree nodes of any completion of ``op`` (itself included)."""
        return self._min_nodes[(op.level, op.name)]

    def min_height(self, op: Operation) -> int:
        """Smallest height (edges to the deepest leaf) of any completion of ``op``."""
        return self._min_height[(op.level, op.name)]

    def reserve_after(self, op: Operation) -> tuple[int, ...]:
        """For each child of ``op``: fewest nodes that its later siblings still need (node budgets)."""
        return self._reserve_after[(op.level, op.name)]

    def min_layers(self, op: Operation) -> float:
        """Fewest layer instances (terminals, replicated copies counted) of any completion of ``op``."""
        return self._min_layers[(op.level, op.name)]

    def level_min_nodes(self, level: str) -> int:
        return min((self._min_nodes[(level, op.name)] for op in self.levels[level] if op.weight > 0), default=math.inf)

    def vocabulary(self) -> "Vocabulary":
        """The grammar's published vocabulary (``Vocabulary``): labels are ``graf_labels``, then the labels of
        the other ops, terminals first, then nonterminals, each in level and option order, first occurrence
        kept, the start level's options left out; groups are ``graf_groups``, then the other terminals'
        groups in the same order."""
        if self._vocabulary is None:
            self._vocabulary = _build_vocabulary(self)
        return self._vocabulary

    def _layer_bounds(self) -> dict[tuple[str, str], float]:
        """Fixed point like ``_completion_bounds``: a terminal is one layer; a replicated branch's inner
        module counts once per branch."""
        inf = math.inf
        layers: dict[tuple[str, str], float] = {k: inf for k in self._index}
        level_layers = {lv: inf for lv in self.levels}
        changed = True
        while changed:
            changed = False
            for key, op in self._index.items():
                if op.is_terminal:
                    n = 1.0
                else:
                    parts = [level_layers[c] for c in op.children]
                    if getattr(op, "replicate", False):
                        parts[1] *= op.fanout  # type: ignore[attr-defined]
                    n = sum(parts)
                if n < layers[key]:
                    layers[key] = n
                    changed = True
            for lv, ops in self.levels.items():
                n = min((layers[(lv, op.name)] for op in ops if op.weight > 0), default=inf)
                if n < level_layers[lv]:
                    level_layers[lv] = n
                    changed = True
        return layers

    def _completion_bounds(self) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
        inf = math.inf
        nodes: dict[tuple[str, str], float] = {k: inf for k in self._index}
        height: dict[tuple[str, str], float] = {k: inf for k in self._index}
        level_nodes = {lv: inf for lv in self.levels}
        level_height = {lv: inf for lv in self.levels}
        changed = True
        while changed:  # fixed point: terminates because values only decrease and are bounded below
            changed = False
            for key, op in self._index.items():
                n = 1 + sum(level_nodes[c] for c in op.children)
                h = 1 + max((level_height[c] for c in op.children), default=-1)
                if n < nodes[key] or h < height[key]:
                    nodes[key], height[key] = min(n, nodes[key]), min(h, height[key])
                    changed = True
            for lv, ops in self.levels.items():
                live = [op for op in ops if op.weight > 0]
                ln = min((nodes[(lv, op.name)] for op in live), default=inf)
                lh = min((height[(lv, op.name)] for op in live), default=inf)
                if ln < level_nodes[lv] or lh < level_height[lv]:
                    level_nodes[lv], level_height[lv] = min(ln, level_nodes[lv]), min(lh, level_height[lv])
                    changed = True
        return nodes, height  # type: ignore[return-value]


class Vocabulary(NamedTuple):
    """What a grammar publishes for graph features: ``labels`` and ``groups`` in column order,
    ``label_of``/``group_of`` (op name -> label / group, for every op that has one) and ``other_group``
    (the group of names the grammar does not know)."""

    labels: tuple[str, ...]
    label_of: dict[str, str]
    groups: tuple[str, ...]
    group_of: dict[str, str]
    other_group: str | None


def _ordered(prefix: Sequence[str], items: Sequence[str | None]) -> tuple[str, ...]:
    """``prefix`` followed by the items not yet listed, in order, without ``None`` and duplicates."""
    out = list(prefix)
    for item in items:
        if item is not None and item not in out:
            out.append(item)
    return tuple(out)


def _build_vocabulary(grammar: Grammar) -> Vocabulary:
    ops = [op for level, options in grammar.levels.items() if level != grammar.start for op in options]
    terminals = [op for op in ops if op.is_terminal]
    nonterminals = [op for op in ops if not op.is_terminal]
    labels = _ordered(grammar.graf_labels, [op.graf_label for op in terminals + nonterminals])
    groups = _ordered(grammar.graf_groups, [op.graf_group for op in terminals])
    label_set, group_set = frozenset(labels), frozenset(groups)
    label_of: dict[str, str] = {}
    group_of: dict[str, str] = {}
    for options in grammar.levels.values():
        for op in options:
            if op.graf_label in label_set:
                label_of.setdefault(op.name, op.graf_label)  # type: ignore[arg-type]
            if op.graf_group in group_set:
                group_of.setdefault(op.name, op.graf_group)  # type: ignore[arg-type]
    return Vocabulary(labels, label_of, groups, group_of, grammar.graf_other_group)


@dataclass(frozen=True)
class Budget:
    """Hard limits that sampling and mutation never exceed.  All are properties of the architecture, not
    of the machine, so the same seed gives the same architecture everywhere.

    ``max_activation`` bounds the largest single tensor any layer produces (im2col's unfolded tensor
    included), counted in elements at ``batch_size`` samples.  ``max_flops`` counts forward FLOPs for one
    sample (a multiply-add is two FLOPs).  ``max_layers`` bounds the layer instances of the compiled
    network: a replicated branch counts once per copy, and nested ``branching(8)`` modules multiply, so a
    50-node tree of free layers (identities, permutations) could otherwise stand for millions of modules.
    """

    max_nodes: int = 400
    max_depth: int = 48
    max_params: int = 25_000_000
    max_flops: float = 20e9
    max_activation: int = 2**30
    batch_size: int = 256
    max_layers: int = 5_000

    def __post_init__(self) -> None:
        for field in ("max_nodes", "max_depth", "max_params", "max_flops", "max_activation", "batch_size", "max_layers"):
            value = getattr(self, field)
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"Budget.{field} must be a positive number, got {value!r}")

    def describe(self) -> str:
        return (
            f"nodes ≤ {self.max_nodes}, depth ≤ {self.max_depth}, params ≤ {self.max_params:,}, "
            f"FLOPs ≤ {self.max_flops:.3g}, activation ≤ {self.max_activation:,} elements at batch {self.batch_size}, layers ≤ {self.max_layers:,}"
        )
