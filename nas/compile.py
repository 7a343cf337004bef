"""Compile an ``Architecture`` into a ``torch.nn.Module``.

Each terminal's builder makes its layer from the node's inferred input and output shapes; sequential,
routing and computation modules become flat ``Chain``s, branching modules ``Branch``es (with a
replicated inner module instantiated once per branch, each with its own weights).  A routing module of
exactly ``im2col(k,s,p) -> linear(c) -> col2im`` is fused into ``Conv2d(C, c, k, s, p)``: the same
function (Unfold's channel-major features are a flattened conv weight) without materialising the
unfolded tensor.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

from nas.architecture import Architecture
from nas.grammar.derive import Node
from nas.grammar.einspace import Col2Im, Im2Col, Linear
from nas.ops import Branch, Chain, Network


def _conv_pattern(arch: Architecture, node: Node, path: tuple[int, ...]):
    """If ``node`` is routing[im2col, computation<linear>, col2im], return (im2col op, info of linear)."""
    if node.op != "routing" or len(node.children) != 3:
        return None
    pre, inner, post = (arch.node_at(path + (i,)) for i in range(3))
    if not (isinstance(pre.op, Im2Col) and isinstance(post.op, Col2Im)):
        return None
    if inner.op.name != "computation":
        return None
    fn = arch.node_at(path + (1, 0))
    if not isinstance(fn.op, Linear):
        return None
    return pre.op, fn


def build_backbone(arch: Architecture, fuse: bool = True) -> nn.Module:
    """The network body, without head, as a module mapping ``B×input_shape`` to ``B×output_shape``."""

    def build(node: Node, path: tuple[int, ...]) -> nn.Module:
        info = arch.node_at(path)
        op = info.op
        if op.is_terminal:
            return op.build(info.inputs, info.outputs)  # type: ignore[attr-defined]
        if fuse:
            conv = _conv_pattern(arch, node, path)
            if conv is not None:
                im2col, linear = conv
                c_in = info.inputs[0].shape[0]
                return nn.Conv2d(c_in, linear.outputs[0].shape[-1], im2col.kernel, im2col.stride, im2col.padding)
        if op.kind == "chain":
            layers: list[nn.Module] = []
            for i, child in enumerate(node.children):
                m = build(child, path + (i,))
                if isinstance(m, Chain):
                    layers.extend(m.layers)
                elif not isinstance(m, nn.Identity):
                    layers.append(m)
            if not layers:
                return nn.Identity()
            return layers[0] if len(layers) == 1 else Chain(layers)
        fork = build(node.children[0], path + (0,))
        join = build(node.children[-1], path + (len(node.children) - 1,))
        if op.replicate:  # type: ignore[attr-defined]
            inners = [build(node.children[1], path + (1,)) for _ in range(op.fanout)]  # type: ignore[attr-defined]
        else:
            inners = [build(child, path + (i,)) for i, child in enumerate(node.children[1:-1], start=1)]
        return Branch(fork, inners, join)

    return build(arch.root, ())


def compile_architecture(
    arch: Architecture,
    num_classes: int,
    *,
    col_pool: str = "features",
    fuse: bool = True,
    seed: int | None = None,
) -> Network:
    """Backbone plus a mean-pool + linear head for ``num_classes``.  With ``seed`` the weights are drawn
    from a private generator state (the global torch RNG is left untouched), so compiling twice with the
    same seed gives identical weights."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    ctx = torch.random.fork_rng(devices=[]) if seed is not None else nullcontext()
    with ctx:
        if seed is not None:
            torch.manual_seed(seed)
        backbone = build_backbone(arch, fuse=fuse)
        return Network(backbone, arch.output_shape, num_classes, col_pool=col_pool)
