"""The NAS-Bench-201 cell (Dong & Yang, ICLR 2020) as a grammar on the same machinery as einspace.

A cell is a DAG on four nodes (0 = input, 3 = output) with one operation on each of its six edges, in the
standard edge order (1←0), (2←0), (2←1), (3←0), (3←1), (3←2); each edge holds one of five operations
(``none``, ``skip_connect``, ``nor_conv_1x1``, ``nor_conv_3x3``, ``avg_pool_3x3``), so there are 5⁶ = 15,625
cells.  As a grammar: the start level ``network`` has a single option, the ``Chain`` nonterminal ``cell``
(brackets ``()``) with six children, one per edge, each at its own edge level (``edge_1_0``, ``edge_2_0``,
..., ``edge_3_2``) whose options are the five operation terminals with uniform weights.  The compact string
is ``cell(nor_conv_3x3, none, skip_connect, ...)``.  The cell is a DAG, not a chain; the ``Chain`` only carries
the shapes, which is exact because every operation maps a ``C×H×W`` image to the same shape.  Operations
are invalid on sequences (col mode), so sampling for an ``S×D`` input fails with a ``SamplingError``.

Costs and compilation: parameters and FLOPs are reported as 0.  The NAS-Bench-201 network compiler (a 3×3
conv stem, three stages of five cells at 16/32/64 channels separated by residual reduction blocks, and a
pooled linear head) is a later issue; until then every terminal's ``build`` raises ``NotImplementedError``
rather than building something that is not the benchmark's network.  Evaluation is by table look-up
(``data.nb201.NB201Task``).

The standard cell string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (node ``j``'s incoming edges, ``~i`` naming
the source node) converts with ``to_cell_string`` / ``from_cell_string``.

Canonicalisation (``canonical_cell``), found by experiment against the GRAF study's table of 9,445 unique
cells: an edge is *live* when its operation is not ``none``, its source is reachable from node 0 and node 3
is reachable from its target, both along non-``none`` edges; every operation on a dead edge is replaced by
``none``.  Verified over all 15,625 cells: (a) this gives exactly 9,445 classes, and (b) the 9,445 table
cells are exactly the class representatives: every table cell is its own canonical form and no two share a
class.  The 341 cells with no live input→output path all map to the all-``none`` cell (in the table, at
10% accuracy).  Pruning in one direction only is not enough: dropping ops whose source is unreachable from
the input, or only those whose target cannot reach the output, each leaves 12,205 classes.  No stronger
equivalence (e.g. isomorphism of the computation graph) is applied, because the table keeps such cells as
separate entries.  ``Architecture`` strings are *not* canonicalised: a cell with a dead operation is a
distinct architecture with the same table entry (mutating a dead edge changes nothing functionally).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Iterator, Sequence

from nas.errors import ArchitectureSyntaxError
from nas.grammar.core import Chain, Flow, Grammar, Terminal

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn

    from nas.architecture import Architecture

#: The five operations, in NAS-Bench-201's order.
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: The six edges as ``(target, source)`` node pairs, in the standard order of the cell string.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
#: The grammar level of each edge, in edge order.
EDGE_LEVELS: tuple[str, ...] = tuple(f"edge_{t}_{s}" for t, s in EDGES)
NUM_NODES = 4
NUM_CELLS = len(OPS) ** len(EDGES)
DEFAULT_INPUT_SHAPE = (3, 32, 32)
GRAMMAR_NAME = "nb201"
START_LEVEL = "network"
CELL = "cell"

_COMPILER_MISSING = (
    "the NAS-Bench-201 network compiler (stem, three stages of cells, residual reduction blocks) is not "
    "implemented yet; evaluate nb201 cells by table look-up (data.nb201.NB201Task)"
)


class CellOp(Terminal):
    """One NAS-Bench-201 edge operation: shape-preserving on ``C×H×W`` images, invalid on sequences."""

    def __init__(self, name: str, level: str, edge: tuple[int, int], weight: float = 1.0) -> None:
        super().__init__(name, level, weight)
        self.edge = edge

    def infer(self, flow: Flow) -> Flow | None:
        if len(flow) != 1 or flow[0].mode != "im":
            return None
        return flow

    def build(self, inp: Flow, out: Flow) -> "torch.nn.Module":
        target, source = self.edge
        raise NotImplementedError(f"cannot build {self.name!r} on nb201 edge {target}←{source}: {_COMPILER_MISSING}")


def build_nb201(name: str = GRAMMAR_NAME) -> Grammar:
    """The NAS-Bench-201 cell grammar: one ``cell`` with six edges, five uniformly weighted ops per edge."""
    levels: dict[str, list] = {START_LEVEL: [Chain(CELL, START_LEVEL, EDGE_LEVELS, "()")]}
    for level, edge in zip(EDGE_LEVELS, EDGES):
        levels[level] = [CellOp(op, level, edge) for op in OPS]
    return Grammar(name, START_LEVEL, levels, description="NAS-Bench-201 cell: 6 edges × 5 operations (15,625 cells)")


# --------------------------------------------------------------------------------------------------
# Cells as tuples of six operation names
# --------------------------------------------------------------------------------------------------


def validate_ops(ops: Sequence[str]) -> tuple[str, ...]:
    """Six operation names in edge order as a tuple; ``ValueError`` naming the edge for an unknown name."""
    if isinstance(ops, str):
        raise TypeError("expected six operation names, got a str; parse cell strings with from_cell_string")
    try:
        ops = tuple(ops)
    except TypeError:
        raise TypeError(f"expected six operation names, got {type(ops).__name__}") from None
    if len(ops) != len(EDGES):
        raise ValueError(f"an nb201 cell has {len(EDGES)} edge operations, got {len(ops)}: {ops!r}")
    for i, op in enumerate(ops):
        if op not in OPS:
            t, s = EDGES[i]
            raise ValueError(f"cell operation {i} (edge {t}←{s}): unknown operation {op!r}; options: {', '.join(OPS)}")
    return ops  # type: ignore[return-value]


def cell_ops(arch: "Architecture") -> tuple[str, ...]:
    """The six edge operations of an nb201 architecture, in the standard edge order."""
    root = arch.root
    if (
        root.op != CELL
        or len(root.children) != len(EDGES)
        or any(c.children or c.op not in OPS for c in root.children)
    ):
        raise ValueError(
            f"not an nb201 cell: grammar {arch.grammar.name!r}, architecture {arch.to_string()[:80]!r}"
        )
    return tuple(c.op for c in root.children)


def _as_ops(arch_or_ops: "Architecture | Sequence[str]") -> tuple[str, ...]:
    from nas.architecture import Architecture

    if isinstance(arch_or_ops, Architecture):
        return cell_ops(arch_or_ops)
    return validate_ops(arch_or_ops)


def cell_architecture(ops: Sequence[str], input_shape: "str | Sequence[int]" = DEFAULT_INPUT_SHAPE) -> "Architecture":
    """The ``Architecture`` of grammar nb201 whose six edges carry ``ops``."""
    from nas.architecture import Architecture
    from nas.grammar.derive import Node

    ops = validate_ops(ops)
    return Architecture(Node(CELL, tuple(Node(op) for op in ops)), input_shape, GRAMMAR_NAME)


def iter_cells() -> Iterator[tuple[str, ...]]:
    """All 15,625 cells as operation tuples, in lexicographic order of ``OPS`` indices."""
    return itertools.product(OPS, repeat=len(EDGES))


def canonical_cell(arch_or_ops: "Architecture | Sequence[str]") -> tuple[str, ...]:
    """The representative of a cell's class: every operation on an edge that lies on no input→output path
    of non-``none`` edges is replaced by ``none`` (see the module docstring for why this is the table's
    deduplication)."""
    ops = _as_ops(arch_or_ops)
    live = [op != "none" for op in ops]
    from_input = [True] + [False] * (NUM_NODES - 1)
    for k, (t, s) in enumerate(EDGES):  # edges are sorted by target, and sources precede targets
        from_input[t] = from_input[t] or (live[k] and from_input[s])
    to_output = [False] * (NUM_NODES - 1) + [True]
    for k in sorted(range(len(EDGES)), key=lambda k: -EDGES[k][1]):  # by source, last node first
        t, s = EDGES[k]
        to_output[s] = to_output[s] or (live[k] and to_output[t])
    return tuple(op if from_input[s] and to_output[t] else "none" for op, (t, s) in zip(ops, EDGES))


# --------------------------------------------------------------------------------------------------
# The standard cell string
# --------------------------------------------------------------------------------------------------


def to_cell_string(arch_or_ops: "Architecture | Sequence[str]") -> str:
    """The standard NAS-Bench-201 string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` of a cell."""
    ops = _as_ops(arch_or_ops)
    groups: list[str] = []
    k = 0
    for node in range(1, NUM_NODES):
        groups.append("|" + "|".join(f"{ops[k + i]}~{i}" for i in range(node)) + "|")
        k += node
    return "+".join(groups)


def parse_cell_string(text: str) -> tuple[str, ...]:
    """The six operations of a standard cell string; malformed text raises ``ArchitectureSyntaxError``
    naming the position and the offending token."""
    if not isinstance(text, str):
        raise TypeError(f"cell string must be a str, got {type(text).__name__}")
    start = len(text) - len(text.lstrip())
    end = len(text.rstrip())

    def fail(message: str, pos: int, token: str) -> ArchitectureSyntaxError:
        return ArchitectureSyntaxError(f"nb201 cell string: {message}", pos, token, text)

    if start == end:
        raise fail("empty text, expected |op~0|+|op~0|op~1|+|op~0|op~1|op~2|", start, "")
    if text[start] != "|":
        raise fail("expected '|' at the start", start, text[start:end].split("|")[0][:20])
    if text[end - 1] != "|" or end - start < 2:
        raise fail("expected '|' at the end", end - 1, text[end - 1])
    ops: list[str] = []
    node, seen = 1, 0  # the node whose incoming edges are being read, and how many of them were read
    pos = start + 1
    for field in text[start + 1 : end - 1].split("|"):
        if field.strip() == "+":
            if seen != node:
                raise fail(f"node {node} has {seen} input edge(s) before '+', expected {node}", pos, field)
            node, seen = node + 1, 0
            if node >= NUM_NODES:
                raise fail(f"too many nodes: a cell has {NUM_NODES - 1} groups separated by '+'", pos, field)
        elif not field.strip():
            raise fail("empty field between '|' separators", pos - 1, "|" + field + "|")
        else:
            op, tilde, source = (part.strip() for part in field.partition("~"))
            if not tilde:
                raise fail("expected an edge 'op~source'", pos, field)
            if op not in OPS:
                raise fail(f"unknown operation {op!r}; options: {', '.join(OPS)}", pos, field)
            if seen >= node:
                raise fail(f"node {node} takes {node} input edge(s) (sources 0..{node - 1}); missing '+'?", pos, field)
            if source != str(seen):
                raise fail(f"edge into node {node} has source {source!r}, expected ~{seen}", pos, field)
            ops.append(op)
            seen += 1
        pos += len(field) + 1
    if node != NUM_NODES - 1 or seen != node:
        raise fail(f"incomplete cell: {len(ops)} of {len(EDGES)} edges (node {node} has {seen} of {node} inputs)", end, "")
    return tuple(ops)


def from_cell_string(text: str, input_shape: "str | Sequence[int]" = DEFAULT_INPUT_SHAPE) -> "Architecture":
    """The nb201 ``Architecture`` of a standard cell string (inverse of ``to_cell_string``)."""
    return cell_architecture(parse_cell_string(text), input_shape)
