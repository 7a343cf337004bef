"""The NAS-Bench-201 cell (Dong & Yang, ICLR 2020) as a grammar on the same machinery as einspace.

A cell is a DAG on four nodes (0 = input, 3 = output) with one operation on each of its six edges, in the
standard edge order (1←0), (2←0), (2←1), (3←0), (3←1), (3←2); each edge holds one of five operations
(``none``, ``skip_connect``, ``nor_conv_1x1``, ``nor_conv_3x3``, ``avg_pool_3x3``), so there are 5⁶ = 15,625
cells.  As a grammar: the start level ``network`` has a single option, the ``Dag`` nonterminal ``cell``
(brackets ``()``, edges as above) with six children, one per edge, each at its own edge level
(``edge_1_0``, ``edge_2_0``, ..., ``edge_3_2``) whose options are the five operation terminals with uniform
weights; a node is the sum of its incoming edges.  The compact string is ``cell(nor_conv_3x3, none,
skip_connect, ...)``.  Edge levels are positions, so crossover keeps every op on its edge
(``Grammar.strict_levels``).  The network needs an image input whose height and width are divisible by 4;
other inputs (sequences included) are refused with that reason, by ``Sampler`` and ``Architecture`` alike.

Network, costs and compilation.  The architecture is the NAS-Bench-201 network built around the cell: a 3×3
conv stem to 16 channels + BN, three stages of five copies of the cell at 16/32/64 channels separated by
residual reduction blocks (ResNet basic block, stride 2: ReLU-conv3×3(s2)-BN, ReLU-conv3×3-BN, shortcut
AvgPool2d(2)+conv1×1; ``resblock_cost``), then BN-ReLU; the compiler's head (global mean pool + linear)
completes it, as in the benchmark's ``TinyNetwork``.  The root ``cell`` is an ``NB201Network``, a ``Dag``
whose ``enter``/``exit`` are the stem and the rest of the skeleton, so the inferred shapes are the real
ones: the edges see the first stage (``16×H×W``), the architecture's output is ``64×H/4×W/4`` (the input's
height and width must be divisible by 4).  The cell is one tree shared by 15 modules at three widths, so
**each edge terminal's ``params``/``flops`` are its totals over the 15 copies**, and the root's are the
skeleton's (stem, reductions, final BN, and every cell's node sums).  With the head, ``num_params +
head_params(10)`` equals the ``params`` column of the GRAF study's table for every one of its 9,445 cells
(``tests/nas/test_nb201_net.py``).  FLOPs follow the project's convention (``Architecture.flops``: a
multiply-add is 2, ReLU 1 and BatchNorm 4 per element, 3×3 average pooling 9 per output element, one
addition per element for each extra input of a sum).  The table's ``flops`` column (MFLOPs) counts a
multiply-add as 1: its per-operation increments are exactly ``nb201_table_op_flops`` (conv: MACs plus 3
per output element, for its ReLU and BatchNorm; 3×3 average pool: 9 per element; skip and none: 0), and
its constant part (the all-``none`` cell, 7,943,872) is 5,184 above our count of the skeleton in that
convention (multiply-adds, ReLU 1 and BN 2 per element, pools k² per output element, the head's 640
multiply-adds: 7,938,688), a remainder we could not attribute; ``tests/nas/test_nb201_net.py`` checks the
increments.  ``compile_architecture`` builds the network with the builders of family ``"nb201"`` (``nas.nb201_net``);
evaluation on the benchmark is by table look-up (``data.nb201.NB201Task``).

The standard cell string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (node ``j``'s incoming edges, ``~i`` naming
the source node) converts with ``to_cell_string`` / ``parse_cell_string`` (``nas.cells`` makes
architectures of cells).

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
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from nas.errors import ArchitectureSyntaxError
from nas.grammar.core import Dag, Flow, Grammar, Signal, Terminal, format_shape

if TYPE_CHECKING:  # pragma: no cover
    from nas.architecture import Architecture

#: The five operations, in NAS-Bench-201's order.
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: The six edges as ``(target, source)`` node pairs, in the standard order of the cell string.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
#: The same edges as ``(source, target)``, the order ``Dag`` and ``nas.compile.DagModule`` take.
CELL_EDGES: tuple[tuple[int, int], ...] = tuple((s, t) for t, s in EDGES)
#: The grammar level of each edge, in edge order.
EDGE_LEVELS: tuple[str, ...] = tuple(f"edge_{t}_{s}" for t, s in EDGES)
NUM_NODES = 4
NUM_CELLS = len(OPS) ** len(EDGES)
DEFAULT_INPUT_SHAPE = (3, 32, 32)
GRAMMAR_NAME = "nb201"
#: The builder family of the grammar's operations (``nas.nb201_net``).
FAMILY = "nb201"
START_LEVEL = "network"
CELL = "cell"

#: The network skeleton: stem width, cells per stage, stages (each after the first starts with a reduction).
STEM_CHANNELS = 16
CELLS_PER_STAGE = 5
NUM_STAGES = 3
#: Spatial reduction of the whole skeleton (one factor 2 per reduction block).
REDUCTION = 2 ** (NUM_STAGES - 1)


# --------------------------------------------------------------------------------------------------
# Closed-form costs (shared with the hierarchical grammar, ``nas.grammar.hnb201``)
# --------------------------------------------------------------------------------------------------
# FLOP convention (that of ``Architecture.flops`` and einspace): a multiply-add counts 2, ReLU 1 and a
# normalisation 4 per element, average pooling k² per output element, a sum 1 per element and extra input.


def conv_cost(c_in: int, c_out: int, kernel: int, h_out: int, w_out: int, groups: int = 1) -> tuple[int, int]:
    """``(params, flops)`` of a bias-free ``Conv2d`` with ``h_out×w_out`` outputs."""
    weights = (c_in // groups) * c_out * kernel * kernel
    return weights, 2 * weights * h_out * w_out


def norm_cost(c: int, h: int, w: int) -> tuple[int, int]:
    """``(params, flops)`` of an affine ``BatchNorm2d`` over ``c×h×w``."""
    return 2 * c, 4 * c * h * w


def relu_conv_bn_cost(c_in: int, c_out: int, kernel: int, stride: int, h: int, w: int) -> tuple[int, int]:
    """``(params, flops)`` of NAS-Bench-201's ``ReLUConvBN`` (padding ``kernel // 2``) on a ``c_in×h×w`` input."""
    h_out, w_out = (h - 1) // stride + 1, (w - 1) // stride + 1
    cp, cf = conv_cost(c_in, c_out, kernel, h_out, w_out)
    bp, bf = norm_cost(c_out, h_out, w_out)
    return cp + bp, c_in * h * w + cf + bf


def resblock_cost(c_in: int, h: int, w: int) -> tuple[int, int]:
    """``(params, flops)`` of the reduction block (ResNet basic block, stride 2, ``c_in -> 2·c_in``) on a
    ``c_in×h×w`` input (``h``, ``w`` even): two ReLUConvBN, the shortcut AvgPool2d(2) + bias-free conv1×1,
    and the residual addition."""
    c_out, h2, w2 = 2 * c_in, h // 2, w // 2
    ap, af = relu_conv_bn_cost(c_in, c_out, 3, 2, h, w)
    bp, bf = relu_conv_bn_cost(c_out, c_out, 3, 1, h2, w2)
    sp, sf = conv_cost(c_in, c_out, 1, h2, w2)
    pool = 4 * c_in * h2 * w2
    return ap + bp + sp, af + bf + sf + pool + c_out * h2 * w2


def stem_cost(c_in: int, c_out: int, h: int, w: int) -> tuple[int, int]:
    """``(params, flops)`` of the stem: bias-free 3×3 conv ``c_in -> c_out`` (padding 1) + BatchNorm."""
    cp, cf = conv_cost(c_in, c_out, 3, h, w)
    bp, bf = norm_cost(c_out, h, w)
    return cp + bp, cf + bf


def op_cost(op: str, c: int, h: int, w: int) -> tuple[int, int]:
    """``(params, flops)`` of one NAS-Bench-201 edge operation on a ``c×h×w`` input (shape preserving)."""
    if op == "nor_conv_1x1":
        return relu_conv_bn_cost(c, c, 1, 1, h, w)
    if op == "nor_conv_3x3":
        return relu_conv_bn_cost(c, c, 3, 1, h, w)
    if op == "avg_pool_3x3":
        return 0, 9 * c * h * w
    if op in ("none", "skip_connect"):
        return 0, 0
    raise ValueError(f"unknown nb201 operation {op!r}; options: {', '.join(OPS)}")


def nb201_table_op_flops(op: str, c: int, h: int, w: int) -> int:
    """One edge operation's FLOPs as the GRAF study's table counts them (a multiply-add is 1; a conv's
    ReLU 1 and BatchNorm 2 per element; 3×3 average pooling 9 per element): for comparison with its
    ``flops`` column only."""
    if op in ("nor_conv_1x1", "nor_conv_3x3"):
        k = 1 if op == "nor_conv_1x1" else 3
        return k * k * c * c * h * w + 3 * c * h * w
    if op == "avg_pool_3x3":
        return 9 * c * h * w
    op_cost(op, c, h, w)  # validates the name
    return 0


def stage_shapes(c: int, h: int, w: int) -> list[tuple[int, int, int]]:
    """The cells' input shapes, stage by stage, for a first stage of ``c×h×w``."""
    return [(c << s, h >> s, w >> s) for s in range(NUM_STAGES)]


def skeleton_cost(in_channels: int, h: int, w: int) -> tuple[int, int]:
    """``(params, flops)`` of everything but the cells and the head's linear layer: stem, reduction
    blocks, final BatchNorm + ReLU, for a ``in_channels×h×w`` input."""
    params, flops = stem_cost(in_channels, STEM_CHANNELS, h, w)
    shapes = stage_shapes(STEM_CHANNELS, h, w)
    for c, hh, ww in shapes[:-1]:
        p, f = resblock_cost(c, hh, ww)
        params, flops = params + p, flops + f
    c, hh, ww = shapes[-1]
    p, f = norm_cost(c, hh, ww)
    return params + p, flops + f + c * hh * ww


def input_problem(shape: tuple[int, ...], grammar: str) -> str | None:
    """Why a NAS-Bench-201 network cannot take an input of ``shape`` (``None`` if it can): it needs an
    image ``C×H×W`` whose height and width are divisible by 4 (two reductions by 2)."""
    if len(shape) == 3 and shape[1] % REDUCTION == 0 and shape[2] % REDUCTION == 0:
        return None
    return (
        f"grammar {grammar!r} needs an image input C×H×W with H and W divisible by {REDUCTION}; "
        f"not valid for input {format_shape(shape)}"
    )


# --------------------------------------------------------------------------------------------------
# The grammar
# --------------------------------------------------------------------------------------------------


class CellOp(Terminal):
    """One NAS-Bench-201 edge operation: shape-preserving on ``C×H×W`` images, invalid on sequences.
    Its costs are totals over the cell's 15 copies in the network (the input is the first stage's); its
    module (one copy at the input's width) is the builder ``("nb201", "edge")``'s."""

    family = FAMILY
    layer = "edge"

    def __init__(self, name: str, level: str, edge: tuple[int, int], weight: float = 1.0) -> None:
        super().__init__(name, level, weight)
        self.edge = edge

    def infer(self, flow: Flow) -> Flow | None:
        if len(flow) != 1 or flow[0].mode != "im":
            return None
        return flow

    def _total(self, inp: Flow) -> tuple[int, int]:
        params = flops = 0
        for c, h, w in stage_shapes(*inp[0].shape):
            p, f = op_cost(self.name, c, h, w)
            params, flops = params + CELLS_PER_STAGE * p, flops + CELLS_PER_STAGE * f
        return params, flops

    def params(self, inp: Flow, out: Flow) -> int:
        return self._total(inp)[0]

    def flops(self, inp: Flow, out: Flow) -> int:
        return self._total(inp)[1]


class NB201Network(Dag):
    """The root of the nb201 grammar: the cell's DAG inside the fixed NAS-Bench-201 skeleton (module
    docstring).  ``enter`` is the stem, ``exit`` the two reductions; ``params``/``flops`` are the
    skeleton's; the compiler builds the whole backbone with the builder ``("nb201", "network")``."""

    family = FAMILY
    layer = "network"

    def __init__(self, grammar: str, level: str, children: Sequence[str]) -> None:
        super().__init__(CELL, level, children, CELL_EDGES, "()")
        self.grammar = grammar

    def enter(self, flow: Flow) -> Flow | None:
        if len(flow) != 1 or input_problem(flow[0].shape, self.grammar) is not None:
            return None
        _, h, w = flow[0].shape
        return (Signal((STEM_CHANNELS, h, w)),)

    def exit(self, flow: Flow) -> Flow | None:
        c, h, w = stage_shapes(*flow[0].shape)[-1]
        return (Signal((c, h, w)),)

    def input_error(self, flow: Flow) -> str:
        if len(flow) != 1:
            return f"expects one input, got {len(flow)}"
        return input_problem(flow[0].shape, self.grammar) or "not valid"

    def params(self, inp: Flow, out: Flow) -> int:
        return skeleton_cost(*inp[0].shape)[0]

    def flops(self, inp: Flow, out: Flow) -> int:
        return skeleton_cost(*inp[0].shape)[1]

    def join_flops(self, elements: int) -> int:
        # ``elements`` is one cell's at the first stage; every stage halves the size, five cells per stage
        return sum(CELLS_PER_STAGE * (elements >> s) for s in range(NUM_STAGES))


def build_nb201(name: str = GRAMMAR_NAME) -> Grammar:
    """The NAS-Bench-201 grammar: one ``cell`` with six edges, five uniformly weighted ops per edge, in the
    fixed NAS-Bench-201 network."""
    levels: dict[str, list] = {START_LEVEL: [NB201Network(name, START_LEVEL, EDGE_LEVELS)]}
    for level, edge in zip(EDGE_LEVELS, EDGES):
        levels[level] = [CellOp(op, level, edge) for op in OPS]
    return Grammar(
        name,
        START_LEVEL,
        levels,
        description="NAS-Bench-201 cell: 6 edges × 5 operations (15,625 cells) in the benchmark's network",
        input_check=lambda shape: input_problem(shape, name),
        strict_levels=True,
    )


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


def _as_ops(arch_or_ops: "Architecture | Sequence[str] | Any") -> tuple[str, ...]:
    """Six operation names of an nb201 architecture (anything with a derivation ``root``) or a sequence."""
    if hasattr(arch_or_ops, "root") and hasattr(arch_or_ops, "grammar"):
        return cell_ops(arch_or_ops)
    return validate_ops(arch_or_ops)


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
