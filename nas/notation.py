"""Text notations of architectures.

*Compact* (the canonical identity): each operation by name, nonterminals followed by their children in the
published brackets (``()`` sequential, ``{}`` branching, ``[]`` routing, ``<>`` computation), children
separated by ``", "``.  *Long* (the LM input of the transferable-surrogates work): every nonterminal uses
``[]`` and every terminal is followed by ``{'out_feature_shape': [...]}``, its output shape without batch.

The parser is driven by the grammar: at each position it knows which level it is reading, so ``identity``
or ``(`` mean the right thing.  It accepts both notations, any whitespace, ``[]`` for any nonterminal, the
aliases the grammar declares (einspace: the first implementation's names such as ``im2col3k1s1p``,
``linear64``, ``permute21``, and ``linear(x0.25)`` for ``linear(/4)``), and a bare layer where a module is
expected (``identity`` for ``computation<identity>``), as the published seed strings write them.  Strings
are always written in the canonical names.
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

from nas.errors import ArchitectureSyntaxError
from nas.grammar.core import Grammar, Operation
from nas.grammar.derive import MAX_TREE_DEPTH, Node

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ARGS = re.compile(r"\(([^()\[\]{}<>]*)\)")
_ANNOTATION = re.compile(r"\{\s*['\"]out_feature_shape['\"]\s*:\s*\[\s*([0-9\s,]*)\]\s*\}")
_CLOSE = {"(": ")", "[": "]", "{": "}", "<": ">"}
_ARG_ALIASES = {"scaled=True": "scaled", "scaled=true": "scaled"}


def to_compact(root: Node, grammar: Grammar) -> str:
    """The canonical compact string of a tree."""
    out: list[str] = []

    def walk(node: Node, level: str) -> None:
        op = grammar.operation(level, node.op)
        out.append(node.op)
        if node.children:
            out.append(op.brackets[0])
            for i, (child, child_level) in enumerate(zip(node.children, op.children)):
                if i:
                    out.append(", ")
                walk(child, child_level)
            out.append(op.brackets[1])

    walk(root, grammar.start)
    return "".join(out)


def to_long(root: Node, grammar: Grammar, shape_of: Callable[[tuple[int, ...]], Sequence[int]]) -> str:
    """The long string: ``[]`` for every nonterminal, output feature shape after every terminal."""
    out: list[str] = []

    def walk(node: Node, level: str, path: tuple[int, ...]) -> None:
        op = grammar.operation(level, node.op)
        out.append(node.op)
        if node.children:
            out.append("[")
            for i, (child, child_level) in enumerate(zip(node.children, op.children)):
                if i:
                    out.append(", ")
                walk(child, child_level, path + (i,))
            out.append("]")
        else:
            out.append("{'out_feature_shape': [" + ", ".join(str(int(s)) for s in shape_of(path)) + "]}")

    walk(root, grammar.start, ())
    return "".join(out)


class _Parser:
    def __init__(self, text: str, grammar: Grammar) -> None:
        self.text = text
        self.grammar = grammar
        self.pos = 0
        self.annotations: dict[tuple[int, ...], tuple[int, ...]] = {}

    def error(self, message: str, pos: int | None = None, token: str | None = None) -> ArchitectureSyntaxError:
        pos = self.pos if pos is None else pos
        if token is None:
            m = re.compile(r"\S+").match(self.text, pos)
            token = self.text[pos : pos + 1] if m is None else m.group(0)[:20]
        return ArchitectureSyntaxError(message, pos, token, self.text)

    def skip(self) -> None:
        n = len(self.text)
        while self.pos < n and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip()
        return self.text[self.pos : self.pos + 1]

    def expect(self, char: str, what: str) -> None:
        if self.peek() != char:
            raise self.error(f"expected {char!r} {what}")
        self.pos += 1

    def node(self, level: str, path: tuple[int, ...]) -> Node:
        if len(path) > MAX_TREE_DEPTH:
            raise self.error(f"architecture nested deeper than {MAX_TREE_DEPTH} levels")
        self.skip()
        start = self.pos
        m = _NAME.match(self.text, self.pos)
        if m is None:
            raise self.error(f"expected an operation of {level!r}")
        name = m.group(0)
        self.pos = m.end()
        args = _ARGS.match(self.text, self.pos)
        op, wrapper = self.resolve(level, name, args)
        if op is None:
            shown = self.text[start : (args.end() if args is not None else self.pos)]
            options = ", ".join(o.name for o in self.grammar.options(level))
            raise self.error(f"unknown operation for {level!r} (options: {options})", start, shown)
        if wrapper is not None:  # a bare layer in a module slot: the one-child module around it
            return Node(wrapper.name, (self.finish(op, path + (0,)),))
        return self.finish(op, path)

    def resolve(self, level: str, name: str, args: "re.Match[str] | None") -> tuple[Operation | None, Operation | None]:
        """The operation ``name`` (with ``args``, when they belong to it) stands for at ``level``, by name or
        alias, moving past the arguments it consumed; and, where only the child of a ``bare_child`` option
        has it, that option."""
        candidates = [(level, None)]
        candidates += [(o.children[0], o) for o in self.grammar.options(level) if o.bare_child and len(o.children) == 1]
        for where, wrapper in candidates:
            if args is not None:
                inner = re.sub(r"\s+", "", args.group(1))
                inner = _ARG_ALIASES.get(inner, inner)
                op = self.grammar.resolve(where, f"{name}({inner})")
                if op is not None:
                    self.pos = args.end()
                    return op, wrapper
            op = self.grammar.resolve(where, name)
            if op is not None:
                return op, wrapper
        return None, None

    def finish(self, op: Operation, path: tuple[int, ...]) -> Node:
        """Read the rest of ``op``'s node: a terminal's optional shape annotation, or the children."""
        if op.is_terminal:
            if self.peek() == "{":
                a = _ANNOTATION.match(self.text, self.pos)
                if a is None:
                    raise self.error("malformed shape annotation, expected {'out_feature_shape': [...]}")
                values = [v for v in re.split(r"[\s,]+", a.group(1)) if v]
                self.annotations[path] = tuple(int(v) for v in values)
                self.pos = a.end()
            return Node(op.name)
        opening = self.peek()
        if opening not in (op.brackets[0], "["):
            raise self.error(f"expected {op.brackets[0]!r} or '[' after {op.name!r}")
        self.pos += 1
        children = []
        for i, child_level in enumerate(op.children):
            if i:
                self.expect(",", f"between the children of {op.name!r} ({len(op.children)} expected)")
            children.append(self.node(child_level, path + (i,)))
        self.expect(_CLOSE[opening], f"closing {op.name!r} after its {len(op.children)} children")
        return Node(op.name, tuple(children))

    def parse(self) -> Node:
        root = self.node(self.grammar.start, ())
        self.skip()
        if self.pos != len(self.text):
            raise self.error("unexpected text after the architecture")
        return root


def parse(text: str, grammar: Grammar) -> tuple[Node, dict[tuple[int, ...], tuple[int, ...]]]:
    """Parse compact or long notation into a tree and the shape annotations found (by node path)."""
    if not isinstance(text, str):
        raise TypeError(f"architecture text must be a str, got {type(text).__name__}")
    parser = _Parser(text, grammar)
    root = parser.parse()
    return root, parser.annotations
