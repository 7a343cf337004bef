"""Hierarchical NAS-Bench-201 (Schrodi et al., NeurIPS 2023): the ``nb201_variable_multi_multi`` space.

The published space (``automl/hierarchical_nas_construction``, ``benchmarks/search_spaces/hierarchical_nb201``:
``macro.cfg`` + ``cell_flexible.cfg`` + ``conv_block.cfg``, topologies from NePS ≤ 0.12) as a grammar on the
machinery of einspace.  Levels keep the published nonterminal names; op names are the published terminal
names.  Every option of a level has weight 1 (NePS draws productions uniformly) unless noted.

==============  ======================================================================================
level           options (children in brackets)
==============  ======================================================================================
``network``     ``network(STEM, D2, OUT)``: fixed frame (see below)
``D2``          ``Linear3(D1,D1,D0)``, ``Linear3(D0,D1,D1)``, ``Linear4(D1,D1,D0,D0)`` (stages)
``D1``          ``Linear3(C,C,DOWN)``, ``Linear4(C,C,C,DOWN)``, ``Residual3(C,C,DOWN,DOWN)`` (reducing stage)
``D0``          ``Linear3(C,C,CELL)``, ``Linear4(C,C,C,CELL)``, ``Residual3(C,C,CELL,CELL)`` (plain stage)
``DOWN``        ``Linear2(CELL,RES)``, ``Linear3(CELL,CELL,RES)``, ``Residual2(CELL,RES,RES)``
``C``           ``Linear2(CELL,CELL)``, ``Linear3(CELL,CELL,CELL)``, ``Residual2(CELL,CELL,CELL)``
``CELL``        ``Cell(OPS×6)``: the NAS-Bench-201 cell (edges as in ``nas.grammar.nb201``)
``OPS``         ``id``, ``zero``, ``Linear1(CONVBLOCK)`` (weight 2), ``avg_pool``
``CONVBLOCK``   ``Linear3(ACT, CONV, NORM)``
``ACT``         ``relu``, ``hardswish``, ``mish``
``CONV``        ``conv3x3o``, ``conv1x1o``, ``dconv3x3o`` (depthwise)
``NORM``        ``batch``, ``instance``, ``layer``
``RES``         ``resBlock``: the reduction block (ResNet basic block, stride 2, doubles the channels)
==============  ======================================================================================

Topologies.  ``LinearN`` is a chain of N edges (a ``Chain``).  ``Residual2`` is NePS's ``Residual``, edges
(0→1), (0→2), (1→2) for its children in order: a main path child 0 then child 2, and child 1 as the
shortcut.  ``Residual3`` has edges (0→1), (1→2), (0→3), (2→3): main path children 0, 1, 3, shortcut
child 2.  ``Cell`` is NB201's DAG.  These are ``Dag`` operations: a node sums its incoming edges.  The
published ``Diamond``/``Diamond3`` topologies are defined there but used by no production, so they are
absent here.

Deviations and choices where the notes are silent, all deliberate:

* **Names.** Our strings name options, not productions, so the three ``D2`` productions, which are all
  ``Linear3``/``Linear4`` over different stage sequences, are named by their children:
  ``Linear3(D1,D1,D0)`` and so on.  Everywhere else the published topology name is unique at its level.
* **Duplicate production.** ``cell_flexible.cfg`` lists ``"Linear1" CONVBLOCK`` twice among five ``OPS``
  productions; NePS draws productions uniformly, so a conv block is drawn with probability 2/5.  Here it
  is one option of weight 2 (same distribution, one string per network).
* **Frame.** NePS's ``build`` puts a stem (bias-free 3×3 conv to 16 channels + BatchNorm) before the
  derivation and BatchNorm-ReLU-pool-linear after it.  Here the stem and the final BatchNorm + ReLU are
  terminals ``stem`` and ``out`` of the fixed root ``network(stem, D2, out)``, so their costs and shapes are
  inferred like any other's; the compiler adds the pool and linear head.  Channels: 16 after the stem,
  doubled by every ``resBlock`` (every derivation has exactly two on each input-output path), so the output
  is ``64×H/4×W/4``; the input must be an image whose height and width are divisible by 4.
* **Zero edges.** NePS's constraint keeps, in every ``Cell``, a path from input to output whose edges are
  not ``zero``: while sampling, ``zero`` is refused on an edge that would otherwise cut every such path
  (later edges counted as live); a given cell without such a path is invalid (``Dag.dead_ops``).
* **Layers.** As the published primitives: ``id`` is the identity, ``zero`` multiplies by 0, ``avg_pool``
  is 3×3 average pooling (stride 1, padding 1, padded zeros not counted), ``conv3x3o``/``conv1x1o`` are
  bias-free convolutions keeping the width, ``dconv3x3o`` a bias-free depthwise 3×3, ``batch``/``instance``
  affine BatchNorm2d/InstanceNorm2d, ``layer`` a LayerNorm over the whole ``C×H×W`` map (its parameters
  grow with the resolution, as published), ``relu``/``hardswish``/``mish`` the activations.
* **Budget.** Sampling and mutation default to ``DEFAULT_BUDGET`` (``Grammar.budget()``), which never
  binds on a 32×32 input, so samples follow the published distribution.
* **Costs.** Parameters are exact (``tests/nas/test_hnb201.py`` holds them against the compiled modules).
  FLOPs follow ``Architecture.flops``'s convention (multiply-add 2; activations 1 and norms 4 per element,
  their statistics not counted; 3×3 pooling 9 per output element; one addition per element for each extra
  input of a sum).

The NAS-Bench-201 subset.  With ``D2 = Linear3(D1,D1,D0)``, both ``D1 = Linear3(C,C,DOWN)``,
``D0 = Linear3(C,C,CELL)``, ``C = Linear2(CELL,CELL)``, ``DOWN = Linear2(CELL,RES)`` (the skeleton of
``macro_fixed_repetitive.cfg``) and one cell repeated 15 times whose conv blocks are ``relu`` + ``conv3x3o``
or ``conv1x1o`` + ``batch``, an architecture is exactly NAS-Bench-201's network for that cell (same modules,
parameters and FLOPs as grammar ``nb201``).  ``to_nb201_cell`` gives its cell string (``None`` outside the
subset) and ``nas.cells.from_nb201_cell`` the architecture of a cell; ``data.nb201.NB201Task`` looks such
architectures up.  Cells whose every input-output path has a ``none`` edge have no counterpart here.  The
layers are built by the builders of family ``"hnb201"`` (``nas.nb201_net``).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Sequence

from nas.grammar.core import Budget, Chain, Dag, Flow, Grammar, Signal, Terminal
from nas.grammar.derive import Node, subtree_at
from nas.grammar.nb201 import (
    CELL_EDGES,
    OPS,
    STEM_CHANNELS,
    conv_cost,
    input_problem,
    norm_cost,
    resblock_cost,
    stem_cost,
    to_cell_string,
)

if TYPE_CHECKING:  # pragma: no cover
    from nas.architecture import Architecture

GRAMMAR_NAME = "hnb201"
#: The builder family of the grammar's terminals (``nas.nb201_net``).
FAMILY = "hnb201"
START_LEVEL = "network"
DEFAULT_INPUT_SHAPE = (3, 32, 32)

#: Edges of the topologies, as ``(source, target)`` with node 0 the input and the last node the output.
RESIDUAL2_EDGES = ((0, 1), (0, 2), (1, 2))
RESIDUAL3_EDGES = ((0, 1), (1, 2), (0, 3), (2, 3))

#: The default budget: no bound on tree size, whose largest derivation has 1,326 nodes (``Budget()``'s 400
#: would bias sampling towards cheap cells late in the network); the other limits are ``Budget()``'s.
DEFAULT_BUDGET = Budget(max_nodes=2_000)

#: Levels grouped by hierarchy, coarse to fine (``nas.graph.graph_levels``): the macro topology over the
#: stages, the stages' topologies over blocks, the blocks' topologies over cells, the cells, the conv blocks.
HIERARCHY: tuple[tuple[str, ...], ...] = (("D2",), ("D1", "D0"), ("C", "DOWN"), ("CELL",), ("CONVBLOCK",))


def _image(flow: Flow) -> tuple[int, int, int] | None:
    if len(flow) != 1 or flow[0].mode != "im":
        return None
    return flow[0].shape  # type: ignore[return-value]


class _ImageOp(Terminal):
    """A shape-preserving layer on one ``C×H×W`` image (``id``, ``zero``, ``avg_pool``, activations, norms,
    convolutions keeping the width); subclasses set costs and the builder's ``layer``."""

    family = FAMILY

    def infer(self, flow: Flow) -> Flow | None:
        return flow if _image(flow) is not None else None


class Identity(_ImageOp):
    layer = "id"


class Zero(_ImageOp):
    layer = "zero"


class AvgPool(_ImageOp):
    layer = "avg_pool"

    def flops(self, inp: Flow, out: Flow) -> int:
        return 9 * inp[0].numel


class Activation(_ImageOp):
    layer = "activation"

    def flops(self, inp: Flow, out: Flow) -> int:
        return inp[0].numel


class Conv(_ImageOp):
    """``conv3x3o``, ``conv1x1o`` or the depthwise ``dconv3x3o``: bias-free, ``C -> C``."""

    layer = "conv"

    def _cost(self, inp: Flow) -> tuple[int, int]:
        c, h, w = inp[0].shape
        kernel = 1 if self.name == "conv1x1o" else 3
        return conv_cost(c, c, kernel, h, w, groups=c if self.name == "dconv3x3o" else 1)

    def params(self, inp: Flow, out: Flow) -> int:
        return self._cost(inp)[0]

    def flops(self, inp: Flow, out: Flow) -> int:
        return self._cost(inp)[1]


class Norm(_ImageOp):
    """``batch``, ``instance`` (per channel, 2·C parameters) or ``layer`` (over ``C×H×W``, 2·C·H·W)."""

    layer = "norm"

    def params(self, inp: Flow, out: Flow) -> int:
        c, h, w = inp[0].shape
        return 2 * c * h * w if self.name == "layer" else norm_cost(c, h, w)[0]

    def flops(self, inp: Flow, out: Flow) -> int:
        return 4 * inp[0].numel


class Stem(Terminal):
    """Bias-free 3×3 conv from the input's channels to 16, + BatchNorm (any image input)."""

    family = FAMILY
    layer = "stem"

    def infer(self, flow: Flow) -> Flow | None:
        shape = _image(flow)
        return None if shape is None else (Signal((STEM_CHANNELS, shape[1], shape[2])),)

    def params(self, inp: Flow, out: Flow) -> int:
        return stem_cost(inp[0].shape[0], STEM_CHANNELS, *inp[0].shape[1:])[0]

    def flops(self, inp: Flow, out: Flow) -> int:
        return stem_cost(inp[0].shape[0], STEM_CHANNELS, *inp[0].shape[1:])[1]


class Out(_ImageOp):
    """The final BatchNorm + ReLU (the compiler appends the pooled linear head)."""

    layer = "out"

    def params(self, inp: Flow, out: Flow) -> int:
        return 2 * inp[0].shape[0]

    def flops(self, inp: Flow, out: Flow) -> int:
        return 5 * inp[0].numel


class ResBlock(Terminal):
    """The reduction block: ``C×H×W -> 2C×H/2×W/2``, valid for even ``H`` and ``W``."""

    family = FAMILY
    layer = "resblock"

    def infer(self, flow: Flow) -> Flow | None:
        shape = _image(flow)
        if shape is None or shape[1] % 2 or shape[2] % 2:
            return None
        c, h, w = shape
        return (Signal((2 * c, h // 2, w // 2)),)

    def params(self, inp: Flow, out: Flow) -> int:
        return resblock_cost(*inp[0].shape)[0]

    def flops(self, inp: Flow, out: Flow) -> int:
        return resblock_cost(*inp[0].shape)[1]


def _linear(level: str, children: Sequence[str], name: str | None = None, weight: float = 1.0) -> Chain:
    return Chain(name or f"Linear{len(children)}", level, children, "()", weight)


def build_hnb201(name: str = GRAMMAR_NAME) -> Grammar:
    """The hierarchical NAS-Bench-201 grammar (``nb201_variable_multi_multi``; module docstring)."""
    levels: dict[str, list] = {
        START_LEVEL: [Chain("network", START_LEVEL, ("STEM", "D2", "OUT"), "()")],
        "STEM": [Stem("stem", "STEM")],
        "OUT": [Out("out", "OUT")],
        "D2": [
            _linear("D2", ("D1", "D1", "D0"), "Linear3(D1,D1,D0)"),
            _linear("D2", ("D0", "D1", "D1"), "Linear3(D0,D1,D1)"),
            _linear("D2", ("D1", "D1", "D0", "D0"), "Linear4(D1,D1,D0,D0)"),
        ],
        "D1": [
            _linear("D1", ("C", "C", "DOWN")),
            _linear("D1", ("C", "C", "C", "DOWN")),
            Dag("Residual3", "D1", ("C", "C", "DOWN", "DOWN"), RESIDUAL3_EDGES),
        ],
        "D0": [
            _linear("D0", ("C", "C", "CELL")),
            _linear("D0", ("C", "C", "C", "CELL")),
            Dag("Residual3", "D0", ("C", "C", "CELL", "CELL"), RESIDUAL3_EDGES),
        ],
        "DOWN": [
            _linear("DOWN", ("CELL", "RES")),
            _linear("DOWN", ("CELL", "CELL", "RES")),
            Dag("Residual2", "DOWN", ("CELL", "RES", "RES"), RESIDUAL2_EDGES),
        ],
        "C": [
            _linear("C", ("CELL", "CELL")),
            _linear("C", ("CELL", "CELL", "CELL")),
            Dag("Residual2", "C", ("CELL", "CELL", "CELL"), RESIDUAL2_EDGES),
        ],
        "CELL": [Dag("Cell", "CELL", ("OPS",) * len(CELL_EDGES), CELL_EDGES, dead_ops=("zero",))],
        "OPS": [
            Identity("id", "OPS"),
            Zero("zero", "OPS"),
            _linear("OPS", ("CONVBLOCK",), weight=2.0),
            AvgPool("avg_pool", "OPS"),
        ],
        "CONVBLOCK": [_linear("CONVBLOCK", ("ACT", "CONV", "NORM"))],
        "ACT": [Activation(a, "ACT") for a in ("relu", "hardswish", "mish")],
        "CONV": [Conv(c, "CONV") for c in ("conv3x3o", "conv1x1o", "dconv3x3o")],
        "NORM": [Norm(n, "NORM") for n in ("batch", "instance", "layer")],
        "RES": [ResBlock("resBlock", "RES")],
    }
    return Grammar(
        name,
        START_LEVEL,
        levels,
        description="hierarchical NAS-Bench-201 (nb201_variable_multi_multi, Schrodi et al. 2023)",
        input_check=lambda shape: input_problem(shape, name),
        strict_levels=True,
        hierarchy=HIERARCHY,
        default_budget=DEFAULT_BUDGET,
    )


# --------------------------------------------------------------------------------------------------
# The NAS-Bench-201 subset
# --------------------------------------------------------------------------------------------------


def _nb201_tree(cell: Node) -> Node:
    """The derivation of NAS-Bench-201's skeleton with ``cell`` everywhere."""
    pair = Node("Linear2", (cell, cell))
    down = Node("Linear2", (cell, Node("resBlock")))
    reducing = Node("Linear3", (pair, pair, down))
    plain = Node("Linear3", (pair, pair, cell))
    return Node("network", (Node("stem"), Node("Linear3(D1,D1,D0)", (reducing, reducing, plain)), Node("out")))


def _edge_node(op: str) -> Node:
    if op == "nor_conv_3x3" or op == "nor_conv_1x1":
        conv = "conv3x3o" if op == "nor_conv_3x3" else "conv1x1o"
        return Node("Linear1", (Node("Linear3", (Node("relu"), Node(conv), Node("batch"))),))
    return Node({"skip_connect": "id", "none": "zero", "avg_pool_3x3": "avg_pool"}[op])


#: Path of the first cell in ``_nb201_tree``: network / D2 / first D1 / first C / first cell.
_FIRST_CELL = (1, 0, 0, 0)


def nb201_cell_tree(ops: Sequence[str]) -> Node:
    """The hnb201 derivation that is NAS-Bench-201's network for the six (validated) edge ``ops``."""
    return _nb201_tree(Node("Cell", tuple(_edge_node(op) for op in ops)))


def to_nb201_ops(arch: "Architecture") -> tuple[str, ...] | None:
    """The six NAS-Bench-201 edge operations of an hnb201 architecture in the NAS-Bench-201 subset (module
    docstring), else ``None``."""
    if arch.grammar.name != GRAMMAR_NAME:
        return None
    try:
        cell = subtree_at(arch.root, _FIRST_CELL)
    except IndexError:
        return None
    if cell.op != "Cell" or arch.root != _nb201_tree(cell):
        return None
    edge_ops = _edge_ops()
    ops = tuple(edge_ops.get(child) for child in cell.children)
    return None if None in ops else ops  # type: ignore[return-value]


def to_nb201_cell(arch: "Architecture") -> str | None:
    """The NAS-Bench-201 cell string of an hnb201 architecture in the NAS-Bench-201 subset, else ``None``."""
    ops = to_nb201_ops(arch)
    return None if ops is None else to_cell_string(ops)


@cache
def _edge_ops() -> dict[Node, str]:
    """hnb201 edge subtree -> NAS-Bench-201 operation (``_edge_node`` inverted)."""
    return {_edge_node(op): op for op in OPS}
