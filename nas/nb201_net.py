"""PyTorch modules of the NAS-Bench-201 network (Dong & Yang, ICLR 2020) and of its hierarchical variant.

The benchmark's ``TinyNetwork``: a stem (bias-free 3×3 conv to 16 channels + BatchNorm), three stages of five
copies of one cell at 16/32/64 channels separated by reduction blocks (ResNet basic block with stride 2),
then BatchNorm + ReLU; ``nas.compile.compile_architecture`` adds the head (global mean pool + linear), so
``Network(nb201_backbone(ops), (64, 8, 8), classes)`` is the benchmark's network with the same parameters.
A cell is a DAG on four nodes, node ``j`` the sum over ``i < j`` of ``op_{j,i}(node i)``, with the operations
``none`` (a zero tensor, computed as ``x * 0`` like the benchmark's ``Zero`` so autograd still sees the
edge), ``skip_connect`` (identity), ``nor_conv_1x1``/``nor_conv_3x3`` (ReLU, bias-free conv, affine
BatchNorm) and ``avg_pool_3x3`` (stride 1, padding 1, ``count_include_pad=False``).  Every BatchNorm is
affine and tracks running statistics, as in the benchmark's trained networks.

The layers of the hierarchical grammar (``nas.grammar.hnb201``): its convolutions (``conv3x3o``,
``conv1x1o``, depthwise ``dconv3x3o``, all bias-free), norms (batch, instance, layer over ``C×H×W``) and
activations, after the published primitives.

The costs of these modules in closed form live with the grammars (``nas.grammar.nb201``), which never import
torch; the tests hold the two against each other.  ``BUILDERS`` and ``SUBTREE_BUILDERS`` are the builders of
the terminals of families ``"nb201"`` and ``"hnb201"`` and of the nb201 network, keyed by ``(family, layer)``
as the grammars publish them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

from torch import Tensor, nn

from nas.grammar.nb201 import CELL_EDGES, CELLS_PER_STAGE, NUM_STAGES, OPS, STEM_CHANNELS, validate_ops
from nas.ops import Builder, DagModule

if TYPE_CHECKING:  # pragma: no cover
    from nas.grammar.core import Flow, Operation
    from nas.grammar.derive import Node


class ReLUConvBN(nn.Sequential):
    """ReLU, bias-free ``Conv2d`` (padding ``kernel // 2``), affine BatchNorm."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Zero(nn.Module):
    """The ``none`` operation: zeros of the input's shape, as ``x * 0`` (the edge stays in the graph)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mul(0.0)


class ResNetBasicBlock(nn.Module):
    """The reduction block: ``ReLUConvBN(c_in, c_out, 3, stride) -> ReLUConvBN(c_out, c_out, 3)`` plus a
    shortcut (stride 2: ``AvgPool2d(2)`` then a bias-free 1×1 conv; stride 1: identity when the widths agree,
    else ``ReLUConvBN(c_in, c_out, 1)``)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 2) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"ResNetBasicBlock: stride must be 1 or 2, got {stride}")
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.downsample: nn.Module
        if stride == 2:
            self.downsample = nn.Sequential(
                nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
                nn.Conv2d(c_in, c_out, kernel_size=1, bias=False),
            )
        elif c_in != c_out:
            self.downsample = ReLUConvBN(c_in, c_out, 1, 1)
        else:
            self.downsample = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


def avg_pool_3x3() -> nn.Module:
    """3×3 average pooling, stride 1, padding 1, padded zeros not counted."""
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


def stem(c_in: int, c_out: int = STEM_CHANNELS) -> nn.Module:
    """Bias-free 3×3 conv (padding 1) + BatchNorm."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))


def bn_relu(channels: int) -> nn.Module:
    """The network's last activation, before the compiler's pooled linear head."""
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=False))


def edge_op(name: str, channels: int) -> nn.Module:
    """One NAS-Bench-201 edge operation at ``channels`` channels (shape preserving)."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if name == "avg_pool_3x3":
        return avg_pool_3x3()
    raise ValueError(f"unknown nb201 operation {name!r}; options: {', '.join(OPS)}")


def nb201_cell(ops: Sequence[str], channels: int) -> DagModule:
    """The cell with edge operations ``ops`` (standard edge order) at ``channels`` channels."""
    ops = validate_ops(ops)
    return DagModule(CELL_EDGES, [edge_op(op, channels) for op in ops])


def nb201_backbone(ops: Sequence[str], in_channels: int = 3) -> nn.Sequential:
    """Stem, three stages of five cells (16, 32, 64 channels) with reduction blocks between them, and
    BatchNorm + ReLU: maps ``B×in_channels×H×W`` to ``B×64×H/4×W/4``."""
    ops = validate_ops(ops)
    layers: list[nn.Module] = [stem(in_channels, STEM_CHANNELS)]
    channels = STEM_CHANNELS
    for stage in range(NUM_STAGES):
        if stage:
            layers.append(ResNetBasicBlock(channels, 2 * channels, 2))
            channels *= 2
        layers.extend(nb201_cell(ops, channels) for _ in range(CELLS_PER_STAGE))
    layers.append(bn_relu(channels))
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------------------------------
# Layers of the hierarchical grammar's conv blocks
# --------------------------------------------------------------------------------------------------


def conv_layer(name: str, channels: int) -> nn.Module:
    """``conv3x3o`` (3×3, padding 1), ``conv1x1o`` or ``dconv3x3o`` (depthwise 3×3, padding 1); all bias-free,
    ``channels -> channels``."""
    if name == "conv3x3o":
        return nn.Conv2d(channels, channels, 3, padding=1, bias=False)
    if name == "conv1x1o":
        return nn.Conv2d(channels, channels, 1, padding=0, bias=False)
    if name == "dconv3x3o":
        return nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
    raise ValueError(f"unknown convolution {name!r}")


def norm_layer(name: str, shape: Sequence[int]) -> nn.Module:
    """``batch`` (affine BatchNorm2d), ``instance`` (affine InstanceNorm2d) or ``layer`` (LayerNorm over the
    whole ``C×H×W`` feature map, element-wise affine) for a ``C×H×W`` input."""
    c = int(shape[0])
    if name == "batch":
        return nn.BatchNorm2d(c)
    if name == "instance":
        return nn.InstanceNorm2d(c, affine=True)
    if name == "layer":
        return nn.LayerNorm(tuple(int(s) for s in shape))
    raise ValueError(f"unknown normalisation {name!r}")


def activation_layer(name: str) -> nn.Module:
    """``relu``, ``hardswish`` or ``mish``."""
    if name == "relu":
        return nn.ReLU(inplace=False)
    if name == "hardswish":
        return nn.Hardswish(inplace=False)
    if name == "mish":
        return nn.Mish(inplace=False)
    raise ValueError(f"unknown activation {name!r}")


# --------------------------------------------------------------------------------------------------
# Builders, keyed by the grammars' ``(family, layer)``
# --------------------------------------------------------------------------------------------------

#: A subtree builder makes the module of a whole nonterminal's subtree: ``(op, node, inputs, outputs)``.
SubtreeBuilder = Callable[["Operation", "Node", "Flow", "Flow"], nn.Module]


def _nb201_network(op: "Operation", node: "Node", inp: "Flow", out: "Flow") -> nn.Module:
    """The whole backbone (stem to final ReLU) of an nb201 ``cell`` node."""
    return nb201_backbone([c.op for c in node.children], in_channels=inp[0].shape[0])


BUILDERS: dict[tuple[str, str], Builder] = {
    ("nb201", "edge"): lambda op, inp, out: edge_op(op.name, inp[0].shape[0]),
    ("hnb201", "id"): lambda op, inp, out: nn.Identity(),
    ("hnb201", "zero"): lambda op, inp, out: Zero(),
    ("hnb201", "avg_pool"): lambda op, inp, out: avg_pool_3x3(),
    ("hnb201", "activation"): lambda op, inp, out: activation_layer(op.name),
    ("hnb201", "conv"): lambda op, inp, out: conv_layer(op.name, inp[0].shape[0]),
    ("hnb201", "norm"): lambda op, inp, out: norm_layer(op.name, inp[0].shape),
    ("hnb201", "stem"): lambda op, inp, out: stem(inp[0].shape[0], STEM_CHANNELS),
    ("hnb201", "out"): lambda op, inp, out: bn_relu(inp[0].shape[0]),
    ("hnb201", "resblock"): lambda op, inp, out: ResNetBasicBlock(inp[0].shape[0], 2 * inp[0].shape[0], 2),
}

SUBTREE_BUILDERS: dict[tuple[str, str], SubtreeBuilder] = {("nb201", "network"): _nb201_network}
