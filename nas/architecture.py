"""The ``Architecture`` value: an immutable derivation tree with the inferred shapes of every node."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterator, Sequence

from nas.errors import InvalidArchitectureError
from nas.grammar.core import Grammar, Signal, format_flow, format_shape
from nas.grammar.derive import Derivation, Node, NodeInfo, OverBudget, path_str
from nas.grammar.registry import get_grammar
from nas.notation import parse, to_compact, to_long

Shape = tuple[int, ...]


def parse_shape(shape: "str | Sequence[int]") -> Shape:
    """``"3x32x32"``, ``"3,32,32"``, ``"3×32×32"`` or ``(3, 32, 32)`` -> ``(3, 32, 32)``; rank 3 (image,
    ``C×H×W``) or rank 2 (sequence, ``S×D``), all positive."""
    if isinstance(shape, str):
        parts = [p for p in shape.replace("×", "x").replace(",", "x").lower().split("x") if p.strip()]
        try:
            values = tuple(int(p) for p in parts)
        except ValueError:
            raise ValueError(f"input shape {shape!r}: expected integers such as 3x32x32 or 64x32") from None
    else:
        try:
            values = tuple(int(s) for s in shape)
        except (TypeError, ValueError):
            raise ValueError(f"input shape {shape!r}: expected a sequence of integers") from None
    if len(values) not in (2, 3) or any(v <= 0 for v in values):
        raise ValueError(
            f"input shape {shape!r}: expected C×H×W (image) or S×D (sequence) with positive sizes, got {values}"
        )
    return values


class Architecture:
    """A network of a grammar: its derivation tree plus the input shape it is defined for.

    Constructing one validates the tree and infers every node's input and output shapes symbolically;
    a tree that breaks a rule raises ``InvalidArchitectureError`` naming the node and the shapes.  Values
    are immutable, compare equal when grammar, input shape and canonical string agree, and hash alike.
    """

    __slots__ = ("root", "input_shape", "grammar", "_infos", "_string", "_by_path")

    root: Node
    input_shape: Shape
    grammar: Grammar

    def __init__(self, root: Node, input_shape: "str | Sequence[int]", grammar: "str | Grammar" = "einspace") -> None:
        grammar = get_grammar(grammar)
        shape = parse_shape(input_shape)
        if not isinstance(root, Node):
            raise TypeError(f"root must be a Node, got {type(root).__name__}")
        derivation = Derivation(grammar)
        derivation.run(root, (Signal(shape),))
        self._setup(root, shape, grammar, derivation.infos)

    @classmethod
    def _trusted(cls, root: Node, input_shape: Shape, grammar: Grammar, infos: list) -> "Architecture":
        """Wrap a tree whose shapes the derivation engine has just inferred (no second pass)."""
        self = object.__new__(cls)
        self._setup(root, input_shape, grammar, infos)
        return self

    def _setup(self, root: Node, shape: Shape, grammar: Grammar, infos: list) -> None:
        set_ = object.__setattr__
        set_(self, "root", root)
        set_(self, "input_shape", shape)
        set_(self, "grammar", grammar)
        set_(self, "_infos", tuple(infos))
        set_(self, "_string", None)
        set_(self, "_by_path", None)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Architecture is immutable")

    # -- constructors ------------------------------------------------------------------------------

    @classmethod
    def from_string(
        cls, text: str, input_shape: "str | Sequence[int]", grammar: "str | Grammar" = "einspace"
    ) -> "Architecture":
        """Parse the compact or the long notation.  Shape annotations of the long notation must agree
        with the shapes inferred for ``input_shape``."""
        grammar = get_grammar(grammar)
        root, annotations = parse(text, grammar)
        arch = cls(root, input_shape, grammar)
        for path, shape in annotations.items():
            info = arch.node_at(path)
            inferred = info.outputs[0].shape
            if tuple(shape) != inferred:
                raise InvalidArchitectureError(
                    f"node {path_str(path)} ({info.op.name}): annotated output shape {list(shape)} "
                    f"but the input {format_shape(arch.input_shape)} gives {list(inferred)}",
                    path,
                    info.op.name,
                )
        return arch

    @classmethod
    def from_json(cls, data: "str | dict") -> "Architecture":
        """Inverse of ``to_json``/``to_dict``; a ``string`` field may stand in for ``tree``."""
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise InvalidArchitectureError(f"architecture JSON does not parse: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidArchitectureError(f"architecture JSON must be an object, got {type(data).__name__}")
        if "input_shape" not in data:
            raise InvalidArchitectureError("architecture JSON lacks 'input_shape'")
        grammar = data.get("grammar", "einspace")
        if "tree" in data:
            try:
                root = Node.from_dict(data["tree"])
            except RecursionError:
                raise InvalidArchitectureError("architecture JSON: tree nested too deeply") from None
            arch = cls(root, data["input_shape"], grammar)
        elif "string" in data:
            arch = cls.from_string(data["string"], data["input_shape"], grammar)
        else:
            raise InvalidArchitectureError("architecture JSON needs 'tree' or 'string'")
        if "string" in data and data["string"] != arch.to_string() and "tree" in data:
            raise InvalidArchitectureError("architecture JSON: 'string' and 'tree' describe different networks")
        return arch

    # -- identity ----------------------------------------------------------------------------------

    def to_string(self) -> str:
        """Canonical compact string (the architecture's identity)."""
        if self._string is None:
            object.__setattr__(self, "_string", to_compact(self.root, self.grammar))
        return self._string

    def long_string(self) -> str:
        """The published long string: terminals annotated with their output feature shape (LM input)."""
        return to_long(self.root, self.grammar, lambda path: self.node_at(path).outputs[0].shape)

    @property
    def hash(self) -> str:
        """SHA-256 (hex) of the grammar, the input shape and the canonical string, one per line: stable across
        runs, machines and Python versions.  The shape is part of the identity because one string can be a
        valid network for several inputs (``computation<relu>`` fits any), with different shapes inside."""
        key = f"{self.grammar.name}\n{format_shape(self.input_shape)}\n{self.to_string()}"
        return hashlib.sha256(key.encode()).hexdigest()

    def to_dict(self) -> dict:
        return {
            "grammar": self.grammar.name,
            "input_shape": list(self.input_shape),
            "string": self.to_string(),
            "tree": self.root.to_dict(),
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        s = self.to_string()
        short = s if len(s) <= 80 else s[:77] + "..."
        return f"Architecture({short!r}, input_shape={self.input_shape}, nodes={self.num_nodes})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Architecture):
            return NotImplemented
        return (
            self.input_shape == other.input_shape
            and self.grammar.name == other.grammar.name
            and self.root == other.root
        )

    def __hash__(self) -> int:
        return hash((self.grammar.name, self.input_shape, self.to_string()))

    # -- structure ---------------------------------------------------------------------------------

    @property
    def nodes(self) -> tuple[NodeInfo, ...]:
        """Every node with its level, depth, input and output shapes and costs, in pre-order."""
        return self._infos

    def node_at(self, path: Sequence[int]) -> NodeInfo:
        if self._by_path is None:
            object.__setattr__(self, "_by_path", {info.path: info for info in self._infos})
        try:
            return self._by_path[tuple(path)]
        except KeyError:
            raise KeyError(f"no node at {path_str(path)}") from None

    def terminals(self) -> Iterator[NodeInfo]:
        return (i for i in self._infos if i.op.is_terminal)

    @property
    def output_shape(self) -> Shape:
        return self._infos[0].outputs[0].shape

    @property
    def output_mode(self) -> str:
        return self._infos[0].outputs[0].mode

    @property
    def input_mode(self) -> str:
        return "im" if len(self.input_shape) == 3 else "col"

    @property
    def num_nodes(self) -> int:
        return len(self._infos)

    @property
    def num_terminals(self) -> int:
        return sum(1 for _ in self.terminals())

    @property
    def depth(self) -> int:
        """Depth of the deepest node (the root has depth 0)."""
        return max(i.depth for i in self._infos)

    @property
    def num_params(self) -> int:
        """Exact parameter count of the compiled backbone (head excluded)."""
        return sum(i.params * i.copies for i in self._infos)

    @property
    def flops(self) -> int:
        """Forward FLOPs for one sample (estimate; a multiply-add counts two)."""
        return sum(i.flops * i.copies for i in self._infos)

    @property
    def num_layers(self) -> int:
        """Layer instances in the compiled backbone: terminals, each counted once per replicated copy."""
        return sum(i.copies for i in self._infos if i.op.is_terminal)

    @property
    def max_activation(self) -> int:
        """Largest tensor produced by any layer, in elements per sample."""
        return max(i.activation for i in self._infos)

    def head_params(self, num_classes: int, col_pool: str = "features") -> int:
        """Parameters of the classification head the compiler appends."""
        out = self.output_shape
        if len(out) == 3:
            width = out[0]
        else:
            width = out[0] if col_pool == "features" else out[1]
        return width * num_classes + num_classes

    def check_budget(self, budget) -> None:
        """Raise ``InvalidArchitectureError`` if the architecture is over ``budget`` (a ``Budget``)."""
        derivation = Derivation(self.grammar, budget)
        try:
            derivation.run(self.root, (Signal(self.input_shape),))
        except OverBudget as exc:
            raise InvalidArchitectureError(f"over budget ({budget.describe()}): {exc}") from None

    def summary(self) -> dict:
        return {
            "string": self.to_string(),
            "hash": self.hash,
            "grammar": self.grammar.name,
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "nodes": self.num_nodes,
            "depth": self.depth,
            "params": self.num_params,
            "flops": self.flops,
            "max_activation": self.max_activation,
            "layers": self.num_layers,
        }

    def pretty(self, num_classes: int | None = None) -> str:
        """Tree view with each node's shapes and each layer's parameters."""
        lines = []
        rows = []
        for info in self._infos:
            indent = "  " * info.depth
            label = f"{indent}{info.op.name}"
            shapes = f"{format_flow(info.inputs)} -> {format_flow(info.outputs)}"
            extra = ""
            if info.op.is_terminal and info.params:
                extra = f"{info.params * info.copies:,} params"
                if info.copies > 1:
                    extra += f" ({info.copies} copies)"
            rows.append((label, shapes, extra))
        width = min(max(len(r[0]) for r in rows), 70)
        swidth = max(len(r[1]) for r in rows)
        for label, shapes, extra in rows:
            lines.append(f"{label:<{width}}  {shapes:<{swidth}}  {extra}".rstrip())
        lines.append("")
        lines.append(f"input {format_shape(self.input_shape)} ({self.input_mode}) -> output "
                     f"{format_shape(self.output_shape)} ({self.output_mode})")
        lines.append(f"nodes {self.num_nodes}, depth {self.depth}, parameters {self.num_params:,}, "
                     f"FLOPs {self.flops:,}, largest activation {self.max_activation:,} elements/sample")
        if num_classes is not None:
            lines.append(f"with a {num_classes}-class head: {self.num_params + self.head_params(num_classes):,} parameters")
        lines.append(f"hash {self.hash[:16]}")
        return "\n".join(lines)
