"""Derivation trees and the one engine that walks them.

The same walker infers shapes for a given tree (validation), samples a fresh tree (with budgets and
backtracking), and replays a tree in which one subtree is a *hole* to be resampled (mutation).  Shapes,
parameters and FLOPs are computed by arithmetic, in pre-order, which is also data-flow order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import numpy as np

from nas.errors import InvalidArchitectureError
from nas.grammar.core import Budget, Dag, Flow, Grammar, Operation, Signal, format_flow, merge_grid

#: Trees deeper than this are refused (protects the recursive walkers from Python's recursion limit).
MAX_TREE_DEPTH = 200


@dataclass(frozen=True, slots=True)
class Node:
    """An immutable derivation-tree node: the operation's name and its children (empty for terminals).
    Which level (nonterminal) a node expands is fixed by its position, so it is not stored."""

    op: str
    children: tuple["Node", ...] = ()

    def size(self) -> int:
        return 1 + sum(c.size() for c in self.children)

    def to_dict(self) -> dict:
        return {"op": self.op, "children": [c.to_dict() for c in self.children]} if self.children else {"op": self.op}

    @classmethod
    def from_dict(cls, data: object, where: str = "tree") -> "Node":
        if not isinstance(data, dict) or not isinstance(data.get("op"), str):
            raise InvalidArchitectureError(f"{where}: expected an object with a string 'op', got {data!r:.80}")
        children = data.get("children", [])
        if not isinstance(children, list):
            raise InvalidArchitectureError(f"{where} ({data['op']}): 'children' must be a list")
        return cls(data["op"], tuple(cls.from_dict(c, f"{where}.children[{i}]") for i, c in enumerate(children)))


def path_str(path: Sequence[int]) -> str:
    """Human-readable address of a node: ``/`` is the root, ``/1/0`` its second child's first child."""
    return "/" + "/".join(map(str, path))


def subtree_at(root: Node, path: Sequence[int]) -> Node:
    node = root
    for i in path:
        node = node.children[i]
    return node


def replace_at(root: Node, path: Sequence[int], new: Node) -> Node:
    """A copy of ``root`` with the subtree at ``path`` replaced by ``new`` (structure is shared)."""
    if not path:
        return new
    i = path[0]
    kids = list(root.children)
    kids[i] = replace_at(kids[i], path[1:], new)
    return Node(root.op, tuple(kids))


class NodeInfo(NamedTuple):
    """What the engine inferred for one node, in pre-order."""

    index: int
    path: tuple[int, ...]
    level: str
    op: Operation
    depth: int
    inputs: Flow
    outputs: Flow
    params: int  # of one instance: a terminal's layer; a nonterminal's fixed parts (0 for chains and branches)
    flops: int  # of one instance, as params (a DAG's node sums included)
    copies: int  # instances in the compiled network (product of enclosing replications)

    @property
    def activation(self) -> int:
        """Largest output tensor of this layer, in elements per sample (0 for nonterminals)."""
        return max(s.numel for s in self.outputs) if self.op.is_terminal else 0


@dataclass(frozen=True)
class Hole:
    """Marks the subtree to resample during mutation.  ``exclude`` is an op name the sampler may not pick
    at the hole (the current terminal); ``reserve`` counts tree nodes that come after the hole and must
    still fit the node budget."""

    exclude: str | None = None
    reserve: int = 0


class DeadEnd(Exception):
    """Internal: the sampled choice cannot be completed; the caller backtracks."""


class Restart(Exception):
    """Internal: the attempt cap was reached; the sampler starts over."""


class OverBudget(Exception):
    """Internal: a replayed (not sampled) node pushed the tree over a budget."""


class Derivation:
    """One walk over a (partial) derivation.  Not reusable: make one per tree."""

    def __init__(
        self,
        grammar: Grammar,
        budget: Budget | None = None,
        rng: np.random.Generator | None = None,
        max_attempts: int = 10_000,
    ) -> None:
        self.grammar = grammar
        self.budget = budget
        self.rng = rng
        self.max_attempts = max_attempts
        self.attempts = 0
        self.count = 0
        self.reserved = 0
        self.params = 0
        self.flops = 0
        self.layers = 0
        self.infos: list[NodeInfo | None] = []

    # -- entry points -------------------------------------------------------------------------------

    def run(self, template: "Node | Hole | None", flow: Flow) -> tuple[Node, Flow]:
        if len(flow) == 1:
            reason = self.grammar.check_input(flow[0].shape)
            if reason is not None:
                raise InvalidArchitectureError(reason)
        return self.expand(self.grammar.start, flow, 0, 1, template, ())

    # -- the walker ---------------------------------------------------------------------------------

    def expand(
        self,
        level: str,
        flow: Flow,
        depth: int,
        copies: int,
        template: "Node | Hole | None",
        path: tuple[int, ...],
        forbid: frozenset[str] = frozenset(),
    ) -> tuple[Node, Flow]:
        """Derive ``level`` for ``flow``: replay ``template``, or sample where it is ``None`` or a ``Hole``
        (never choosing an op named in ``forbid``)."""
        if depth > MAX_TREE_DEPTH:
            raise InvalidArchitectureError(f"node {path_str(path)}: tree deeper than {MAX_TREE_DEPTH} levels", path)
        if template is None or isinstance(template, Hole):
            return self._sample(level, flow, depth, copies, path, template, forbid)
        op = self.grammar.operation(level, template.op)
        if op is None:
            names = ", ".join(o.name for o in self.grammar.options(level))
            raise InvalidArchitectureError(
                f"node {path_str(path)}: {template.op!r} is not an option of {level!r} (options: {names})",
                path,
                template.op,
            )
        if len(template.children) != len(op.children):
            raise InvalidArchitectureError(
                f"node {path_str(path)}: {op.name!r} takes {len(op.children)} children, got {len(template.children)}",
                path,
                op.name,
            )
        return self._apply(op, flow, depth, copies, template.children, path, sampled=False)

    def _fits(self, op: Operation, depth: int, copies: int) -> bool:
        b = self.budget
        return b is None or (
            self.count + self.reserved + self.grammar.min_nodes(op) <= b.max_nodes
            and depth + self.grammar.min_height(op) <= b.max_depth
            and self.layers + self.grammar.min_layers(op) * copies <= b.max_layers
        )

    def _sample(
        self,
        level: str,
        flow: Flow,
        depth: int,
        copies: int,
        path: tuple[int, ...],
        hole: Hole | None,
        forbid: frozenset[str] = frozenset(),
    ) -> tuple[Node, Flow]:
        exclude = hole.exclude if hole is not None else None
        saved_reserved = self.reserved
        if hole is not None:
            self.reserved += hole.reserve
        try:
            options = [
                o
                for o in self.grammar.options(level)
                if o.weight > 0 and o.name != exclude and o.name not in forbid and self._fits(o, depth, copies)
            ]
            weights = [o.weight for o in options]
            rng = self.rng
            while options:
                self.attempts += 1
                if self.attempts > self.max_attempts:
                    raise Restart
                if len(options) == 1:
                    i = 0
                else:
                    r = rng.random() * sum(weights)
                    i = 0
                    acc = weights[0]
                    while acc <= r and i < len(options) - 1:
                        i += 1
                        acc += weights[i]
                op = options[i]
                snapshot = (self.count, self.reserved, self.params, self.flops, self.layers, len(self.infos))
                try:
                    return self._apply(op, flow, depth, copies, None, path, sampled=True)
                except DeadEnd:
                    self.count, self.reserved, self.params, self.flops, self.layers, n = snapshot
                    del self.infos[n:]
                    del options[i], weights[i]
            raise DeadEnd
        finally:
            self.reserved = saved_reserved

    def _fail(self, sampled: bool, op: Operation, path: tuple[int, ...], message: str) -> None:
        if sampled:
            raise DeadEnd
        raise InvalidArchitectureError(f"node {path_str(path)} ({op.name}): {message}", path, op.name)

    def _apply(
        self,
        op: Operation,
        flow: Flow,
        depth: int,
        copies: int,
        templates: "Sequence[Node | Hole] | None",
        path: tuple[int, ...],
        sampled: bool,
    ) -> tuple[Node, Flow]:
        index = len(self.infos)
        self.infos.append(None)
        self.count += 1
        budget = self.budget
        if budget is not None and (self.count > budget.max_nodes or depth > budget.max_depth):
            if sampled:
                raise DeadEnd
            raise OverBudget(f"node {path_str(path)}: tree exceeds the node or depth budget")

        if op.is_terminal:
            return self._apply_terminal(op, flow, depth, copies, index, path, sampled)

        children: list[Node] = []
        reserve_after = self.grammar.reserve_after(op)
        tmpl = templates if templates is not None else (None,) * len(op.children)

        def child(i: int, level: str, x: Flow, n_copies: int, forbid: frozenset[str] = frozenset()) -> Flow:
            self.reserved += reserve_after[i]
            node, y = self.expand(level, x, depth + 1, n_copies, tmpl[i], path + (i,), forbid)
            self.reserved -= reserve_after[i]
            children.append(node)
            return y

        own_params = own_flops = 0
        if op.kind == "chain":
            x = flow
            for i, level in enumerate(op.children):
                x = child(i, level, x, copies)
            out = x
        elif op.kind == "dag":
            out, own_params, own_flops = self._dag(op, flow, copies, path, sampled, tmpl, children, child)  # type: ignore[arg-type]
        else:
            out = self._branch(op, flow, copies, path, sampled, child)
        if own_params or own_flops:
            self.params += own_params * copies
            self.flops += own_flops * copies
            if budget is not None and (self.params > budget.max_params or self.flops > budget.max_flops):
                if sampled:
                    raise DeadEnd
                raise OverBudget(f"node {path_str(path)} ({op.name}): over the parameter or FLOP budget")
        self.infos[index] = NodeInfo(index, path, op.level, op, depth, flow, out, own_params, own_flops, copies)
        return Node(op.name, tuple(children)), out

    def _apply_terminal(
        self, op: Operation, flow: Flow, depth: int, copies: int, index: int, path: tuple[int, ...], sampled: bool
    ) -> tuple[Node, Flow]:
        """A terminal: infer its output, add its costs and check them against the budget."""
        budget = self.budget
        out = op.infer(flow)  # type: ignore[attr-defined]
        if out is None:
            self._fail(sampled, op, path, f"not valid for input {format_flow(flow)}")
        if sampled and not op.samplable(flow):  # type: ignore[attr-defined]
            raise DeadEnd
        params = op.params(flow, out)
        flops = op.flops(flow, out)
        self.params += params * copies
        self.flops += flops * copies
        self.layers += copies
        if budget is not None:
            act = max(s.numel for s in out) * budget.batch_size
            if (self.params > budget.max_params or self.flops > budget.max_flops or act > budget.max_activation
                    or self.layers > budget.max_layers):
                if sampled:
                    raise DeadEnd
                raise OverBudget(
                    f"node {path_str(path)} ({op.name}): over the parameter, FLOP, activation or layer budget"
                )
        self.infos[index] = NodeInfo(index, path, op.level, op, depth, flow, out, params, flops, copies)
        return Node(op.name), out

    def _branch(
        self, op: Operation, flow: Flow, copies: int, path: tuple[int, ...], sampled: bool,
        child: Callable[..., Flow],
    ) -> Flow:
        """A fork-join branch: fork, map every branch (a replicated inner module once, for ``fanout``
        copies), join."""
        k = op.fanout  # type: ignore[attr-defined]
        forked = child(0, op.children[0], flow, copies)
        if len(forked) != k:
            self._fail(sampled, op, path, f"branching function gives {len(forked)} branches, expected {k}")
        if op.replicate:  # type: ignore[attr-defined]
            y = child(1, op.children[1], forked[:1], copies * k)
            if len(y) != 1:
                self._fail(sampled, op, path, "inner module must give one tensor")
            ys = y * k
        else:
            ys = ()
            for j in range(k):
                y = child(1 + j, op.children[1 + j], forked[j : j + 1], copies)
                if len(y) != 1:
                    self._fail(sampled, op, path, "inner module must give one tensor")
                ys += y
        return child(len(op.children) - 1, op.children[-1], ys, copies)

    def _dag(
        self,
        op: Dag,
        flow: Flow,
        copies: int,
        path: tuple[int, ...],
        sampled: bool,
        tmpl: "Sequence[Node | Hole | None]",
        children: list[Node],
        child: Callable[..., Flow],
    ) -> tuple[Flow, int, int]:
        """Derive a DAG operation's edges in order (see ``nas.grammar.core.Dag``): each child maps its
        source node's value, a node's value is the sum of its incoming edges once the last one is derived.
        Returns the output flow and the operation's own parameters and FLOPs (node sums included)."""
        x = op.enter(flow)
        if x is None:
            self._fail(sampled, op, path, op.input_error(flow))
        values: list[Flow | None] = [x] + [None] * (op.num_nodes - 1)
        incoming: list[list] = [[] for _ in range(op.num_nodes)]
        join_elements = 0
        constrained = bool(op.dead_ops)
        for i, level in enumerate(op.children):
            s, t = op.edges[i]
            forbid: frozenset[str] = frozenset()
            if constrained and not isinstance(tmpl[i], Node):
                names = [c.op for c in children] + [None]
                names += [m.op if isinstance(m, Node) else None for m in tmpl[i + 1 :]]
                forbid = op.forbidden(i, names)
            y = child(i, level, values[s], copies, forbid)
            if len(y) != 1:
                self._fail(sampled, op, path, f"edge {i} ({s}->{t}) must give one tensor, got {format_flow(y)}")
            incoming[t].append(y[0])
            if i == op.last_in[t]:
                ins = incoming[t]
                if any(sig.shape != ins[0].shape for sig in ins):
                    shapes = ", ".join(format_flow((sig,)) for sig in ins)
                    self._fail(sampled, op, path, f"node {t} sums inputs of different shapes ({shapes})")
                values[t] = (Signal(ins[0].shape, merge_grid(tuple(ins))),)
                join_elements += (len(ins) - 1) * ins[0].numel
        if constrained:
            reason = op.check([c.op for c in children])
            if reason is not None:
                self._fail(sampled, op, path, reason)
        out = op.exit(values[-1])
        if out is None:
            self._fail(sampled, op, path, f"not valid for input {format_flow(flow)}")
        return out, op.params(flow, out), op.flops(flow, out) + op.join_flops(join_elements)
