"""PyTorch layers for the einspace terminals, the module combinators of every grammar (chains, fork-join
branches, fixed DAGs), the classification network, and ``BUILDERS``: the einspace terminals' builders,
keyed by ``(family, layer)`` as the grammar publishes them (``nas.grammar.core.Operation.builder_key``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:  # pragma: no cover
    from nas.grammar.core import Flow, Operation


class PositionalEncoding(nn.Module):
    """Adds a learnable tensor of the input's shape, initialised N(0, 1)."""

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, *shape))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.weight


class Permute(nn.Module):
    def __init__(self, dims: Sequence[int]) -> None:
        super().__init__()
        self.dims = tuple(dims)

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(self.dims)

    def extra_repr(self) -> str:
        return f"dims={self.dims}"


class Im2Col(nn.Module):
    """``B×C×H×W -> B×(H'W')×(C·k·k)``; features are channel-major, like a flattened conv weight."""

    def __init__(self, kernel: int, stride: int, padding: int) -> None:
        super().__init__()
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward(self, x: Tensor) -> Tensor:
        return F.unfold(x, self.kernel, padding=self.padding, stride=self.stride).transpose(1, 2)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}, padding={self.padding}"


class Col2Im(nn.Module):
    """``B×(H'W')×D -> B×D×H'×W'`` (a reshape on the recorded grid, not a fold)."""

    def __init__(self, grid: Sequence[int]) -> None:
        super().__init__()
        self.grid = tuple(grid)

    def forward(self, x: Tensor) -> Tensor:
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *self.grid)

    def extra_repr(self) -> str:
        return f"grid={self.grid}"


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` that first makes a strided CPU input contiguous.  ``Col2Im`` leaves its output
    in a channels-last layout, and on the CPU the channels-last BatchNorm backward is an order of
    magnitude slower than the contiguous one (5.6 s against 0.4 s for 64×1024×32×32 on one thread, torch
    2.13); the copy costs less than a forward.  Values agree up to float rounding of the reduction order."""

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type == "cpu" and not x.is_contiguous():
            x = x.contiguous()
        return super().forward(x)


class Clone(nn.Module):
    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return (x,) * self.k


class Group(nn.Module):
    def __init__(self, k: int, dim: int) -> None:
        super().__init__()
        self.k, self.dim = k, dim

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return torch.chunk(x, self.k, dim=self.dim)


class Add(nn.Module):
    def forward(self, xs: Sequence[Tensor]) -> Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Cat(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, xs: Sequence[Tensor]) -> Tensor:
        return torch.cat(list(xs), dim=self.dim)


class DotProduct(nn.Module):
    """``a @ b``, scaled by ``1/sqrt(d)`` when ``scale_dim`` (= d) is given."""

    def __init__(self, scale_dim: int | None = None) -> None:
        super().__init__()
        self.scale = None if scale_dim is None else 1.0 / math.sqrt(scale_dim)

    def forward(self, xs: Sequence[Tensor]) -> Tensor:
        out = torch.matmul(xs[0], xs[1])
        return out if self.scale is None else out * self.scale


class Chain(nn.Module):
    """Applies its layers in order (a flattened run of sequential / routing / computation modules)."""

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class Branch(nn.Module):
    """Fork into branches, map each with its own inner module, join."""

    def __init__(self, fork: nn.Module, inners: Sequence[nn.Module], join: nn.Module) -> None:
        super().__init__()
        self.fork = fork
        self.inners = nn.ModuleList(inners)
        self.join = join

    def forward(self, x: Tensor) -> Tensor:
        xs = self.fork(x)
        return self.join([inner(xi) for inner, xi in zip(self.inners, xs)])


class DagModule(nn.Module):
    """A fixed DAG of modules: ``edges[i] = (source, target)`` applies ``ops[i]`` to node ``source``; a node
    is the sum of its incoming edges (in edge order), node 0 is the input, the last node the output.  Edges
    must be in data-flow order (every edge into a node before every edge out of it)."""

    def __init__(self, edges: Sequence[tuple[int, int]], ops: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(edges) != len(ops):
            raise ValueError(f"DagModule: {len(edges)} edges but {len(ops)} modules")
        self.edges = tuple((int(s), int(t)) for s, t in edges)
        self.num_nodes = 1 + max(max(e) for e in self.edges)
        self.ops = nn.ModuleList(ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [x] + [None] * (self.num_nodes - 1)
        for (s, t), op in zip(self.edges, self.ops):
            y = op(nodes[s])
            nodes[t] = y if nodes[t] is None else nodes[t] + y
        return nodes[-1]  # type: ignore[return-value]

    def extra_repr(self) -> str:
        return "edges=" + ", ".join(f"{s}->{t}" for s, t in self.edges)


class Network(nn.Module):
    """Backbone plus classification head: mean over H, W for an image output; for a token output,
    ``col_pool="features"`` (the published head: mean over the feature axis, one number per token) or
    ``col_pool="tokens"`` (mean over tokens, one embedding per sequence)."""

    def __init__(self, backbone: nn.Module, output_shape: Sequence[int], num_classes: int, col_pool: str = "features") -> None:
        super().__init__()
        if col_pool not in ("features", "tokens"):
            raise ValueError(f"col_pool must be 'features' or 'tokens', got {col_pool!r}")
        self.backbone = backbone
        self.output_shape = tuple(output_shape)
        self.col_pool = col_pool
        if len(output_shape) == 3:
            self._pool_dims: tuple[int, ...] = (2, 3)
            width = output_shape[0]
        elif col_pool == "features":
            self._pool_dims = (2,)
            width = output_shape[0]
        else:
            self._pool_dims = (1,)
            width = output_shape[1]
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x).mean(dim=self._pool_dims))


# --------------------------------------------------------------------------------------------------
# Builders of the einspace terminals: ``builder(op, inputs, outputs) -> nn.Module``
# --------------------------------------------------------------------------------------------------

#: A builder makes one terminal's module from the operation and its inferred input and output signals.
Builder = Callable[["Operation", "Flow", "Flow"], nn.Module]


def _norm(op: "Operation", inp: "Flow", out: "Flow") -> nn.Module:
    """im: ``BatchNorm2d`` over channels; col: ``LayerNorm`` over features, or with the op's ``col="batch"``
    ``BatchNorm1d`` with the tokens (axis 1 of ``B×S×D``) as channels."""
    x = inp[0]
    if x.mode == "im":
        return BatchNorm2d(x.shape[0])
    if getattr(op, "col", "layer") == "batch":
        return nn.BatchNorm1d(x.shape[0])
    return nn.LayerNorm(x.shape[-1])


def _activation(op: "Operation", inp: "Flow", out: "Flow") -> nn.Module:
    if op.name == "relu":
        return nn.ReLU()
    if op.name == "leakyrelu":
        return nn.LeakyReLU(0.01)
    return nn.Softmax(dim=-1)


BUILDERS: dict[tuple[str, str], Builder] = {
    ("einspace", "identity"): lambda op, inp, out: nn.Identity(),
    ("einspace", "linear"): lambda op, inp, out: nn.Linear(inp[0].shape[-1], out[0].shape[-1]),
    ("einspace", "norm"): _norm,
    ("einspace", "activation"): _activation,
    ("einspace", "pos_enc"): lambda op, inp, out: PositionalEncoding(inp[0].shape),
    ("einspace", "perm"): lambda op, inp, out: Permute(op.dims),  # type: ignore[attr-defined]
    ("einspace", "im2col"): lambda op, inp, out: Im2Col(op.kernel, op.stride, op.padding),  # type: ignore[attr-defined]
    ("einspace", "col2im"): lambda op, inp, out: Col2Im(out[0].shape[1:]),
    ("einspace", "clone"): lambda op, inp, out: Clone(op.k),  # type: ignore[attr-defined]
    ("einspace", "group"): lambda op, inp, out: Group(op.k, op.dim),  # type: ignore[attr-defined]
    ("einspace", "add"): lambda op, inp, out: Add(),
    ("einspace", "cat"): lambda op, inp, out: Cat(op.dim),  # type: ignore[attr-defined]
    ("einspace", "dot_product"): lambda op, inp, out: DotProduct(inp[0].shape[-1] if op.scaled else None),  # type: ignore[attr-defined]
}
