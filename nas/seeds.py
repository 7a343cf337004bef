"""Seed architectures written as legal derivations of the einspace grammar.

Convolution = ``routing[im2col(k,s,p), computation<linear(c)>, col2im]`` (compiled to ``Conv2d``), batch
norm = ``norm`` in im mode, layer norm = ``norm`` in col mode, activation = ``relu``.  The only ops used
that random sampling never picks are ``linear(x4)`` and ``linear(/4)`` (MLP-Mixer token mixing), which
are grammar options with weight 0.  Long chains are written as balanced binary ``sequential`` trees to
keep derivation depth low.
"""

from __future__ import annotations

from typing import Callable, Sequence

from nas.architecture import Architecture, parse_shape
from nas.grammar.derive import Node


def _t(name: str) -> Node:
    return Node(name)


def comp(fn: str) -> Node:
    """A computation module around terminal ``fn``."""
    return Node("computation", (Node(fn),))


def seq(*modules: Node) -> Node:
    """Sequential composition of one or more modules as a balanced binary tree."""
    if not modules:
        raise ValueError("seq needs at least one module")
    if len(modules) == 1:
        return modules[0]
    mid = len(modules) // 2
    return Node("sequential", (seq(*modules[:mid]), seq(*modules[mid:])))


def routing(pre: str, inner: Node, post: str) -> Node:
    return Node("routing", (_t(pre), inner, _t(post)))


def conv(width: int, kernel: int = 3, stride: int = 1, padding: int | None = None) -> Node:
    """``Conv2d(·, width, kernel, stride, padding)`` as im2col -> linear -> col2im."""
    if padding is None:
        padding = kernel // 2
    return routing(f"im2col({kernel},{stride},{padding})", comp(f"linear({width})"), "col2im")


def residual(main: Node, shortcut: Node | None = None) -> Node:
    """``main(x) + shortcut(x)`` (identity shortcut by default)."""
    return Node("branching(2)", (_t("clone(2)"), main, shortcut or comp("identity"), _t("add(2)")))


def replicate(k: int, inner: Node, join: str) -> Node:
    """``k`` copies of ``inner`` (separate weights) on clones of the input, joined by ``join``."""
    return Node(f"branching({k})", (_t(f"clone({k})"), inner, _t(join)))


BN = comp("norm")
RELU = comp("relu")


def _need_image(name: str, shape: tuple[int, ...]) -> None:
    if len(shape) != 3:
        raise ValueError(f"seed {name!r} needs an image input C×H×W, got {shape}")


# -- ResNet-18 ----------------------------------------------------------------------------------------


def resnet18_tree(widths: Sequence[int] = (64, 128, 256, 512)) -> Node:
    """ResNet-18 with the strided-conv stem (conv3×3 -> BN -> ReLU -> conv3×3/s2, no max-pool), four
    stages of two basic blocks; strided blocks use a conv1×1/s2 + BN shortcut.  Convs have biases."""

    def block(width: int, stride: int, project: bool) -> Node:
        main = seq(conv(width, 3, stride), BN, RELU, conv(width, 3, 1), BN)
        shortcut = seq(conv(width, 1, stride, 0), BN) if project else None
        return seq(residual(main, shortcut), RELU)

    stem = seq(conv(widths[0]), BN, RELU, conv(widths[0], 3, 2))
    blocks = []
    for i, w in enumerate(widths):
        blocks.append(block(w, 1 if i == 0 else 2, project=i > 0))
        blocks.append(block(w, 1, project=False))
    return seq(stem, *blocks)


# -- WRN-16-4 -----------------------------------------------------------------------------------------


def wrn16_4_tree() -> Node:
    """Wide ResNet 16-4 as in einspace: stem conv3×3(16) -> BN -> ReLU; three stages (64, 128, 256) of two
    blocks; a block is ``conv3×3 -> BN -> ReLU -> conv3×3`` plus a shortcut (conv1×1 in the first block of
    each stage, identity in the second), then BN -> ReLU; stages 2 and 3 stride 2."""
    stages = []
    for i, w in enumerate((64, 128, 256)):
        stride = 1 if i == 0 else 2
        first = seq(residual(seq(conv(w, 3, stride), BN, RELU, conv(w)), conv(w, 1, stride, 0)), BN, RELU)
        second = seq(residual(seq(conv(w), BN, RELU, conv(w))), BN, RELU)
        stages += [first, second]
    return seq(conv(16), BN, RELU, *stages)


# -- transformers ------------------------------------------------------------------------------------


def _embed(shape: tuple[int, ...], width: int, patch: int) -> Node:
    """Patchify an image (``im2col(p,p,0) -> linear``, staying in col mode) or embed a sequence."""
    if len(shape) == 3:
        return routing(f"im2col({patch},{patch},0)", comp(f"linear({width})"), "identity")
    return comp(f"linear({width})")


def attention_head(dim: int = 64) -> Node:
    """Scaled dot-product attention head: ``softmax(Q Kᵀ / sqrt(d)) V`` with Q, K, V linear maps."""
    scores = Node(
        "branching(2)",
        (_t("clone(2)"), comp(f"linear({dim})"), routing("identity", comp(f"linear({dim})"), "perm(0,2,1)"),
         _t("dot_product(scaled)")),
    )
    return Node("branching(2)", (_t("clone(2)"), seq(scores, comp("softmax")), comp(f"linear({dim})"), _t("dot_product")))


def vit_tree(shape: tuple[int, ...], depth: int = 4, width: int = 512, heads: int = 4, head_dim: int = 64,
             mlp: int = 2048, patch: int = 4) -> Node:
    """Pre-norm ViT: patch (or token) embedding -> learnable positional encoding -> ``depth`` layers of
    ``x + MHSA(LN(x))`` and ``x + MLP(LN(x))``; MHSA = ``heads`` heads concatenated, then linear."""
    mhsa = seq(replicate(heads, attention_head(head_dim), f"cat({heads},2)"), comp(f"linear({width})"))
    ffn = seq(comp(f"linear({mlp})"), RELU, comp(f"linear({width})"))
    layer = seq(residual(seq(comp("norm"), mhsa)), residual(seq(comp("norm"), ffn)))
    return seq(_embed(shape, width, patch), comp("pos_enc"), *([layer] * depth))


def mlp_mixer_tree(shape: tuple[int, ...], depth: int = 8, width: int = 512, channel_hidden: int = 256,
                   patch: int = 4) -> Node:
    """MLP-Mixer as in einspace: embedding -> positional encoding -> ``depth`` layers of
    ``x + channel_mix(token_mix(LN(x)))``; token mixing is an MLP over the token axis (permute, linear
    to 4× the tokens, ReLU, linear back, permute), channel mixing ``linear -> ReLU -> linear``."""
    token_mix = seq(
        routing("perm(0,2,1)", comp("linear(x4)"), "identity"),
        RELU,
        routing("identity", comp("linear(/4)"), "perm(0,2,1)"),
    )
    channel_mix = seq(comp(f"linear({channel_hidden})"), RELU, comp(f"linear({width})"))
    layer = residual(seq(comp("norm"), token_mix, channel_mix))
    return seq(_embed(shape, width, patch), comp("pos_enc"), *([layer] * depth))


# -- registry ---------------------------------------------------------------------------------------


def resnet18(input_shape: "str | Sequence[int]" = (3, 32, 32)) -> Architecture:
    shape = parse_shape(input_shape)
    _need_image("resnet18", shape)
    return Architecture(resnet18_tree(), shape)


def wrn16_4(input_shape: "str | Sequence[int]" = (3, 32, 32)) -> Architecture:
    shape = parse_shape(input_shape)
    _need_image("wrn16_4", shape)
    return Architecture(wrn16_4_tree(), shape)


def vit(input_shape: "str | Sequence[int]" = (3, 32, 32)) -> Architecture:
    shape = parse_shape(input_shape)
    return Architecture(vit_tree(shape), shape)


def mlp_mixer(input_shape: "str | Sequence[int]" = (3, 32, 32)) -> Architecture:
    shape = parse_shape(input_shape)
    return Architecture(mlp_mixer_tree(shape), shape)


SEEDS: dict[str, Callable[..., Architecture]] = {
    "resnet18": resnet18,
    "wrn16_4": wrn16_4,
    "vit": vit,
    "mlp_mixer": mlp_mixer,
}


def seed_names(input_shape: "str | Sequence[int] | None" = None) -> list[str]:
    """Names of the seeds; with an input shape, only those meaningful for it (ResNets need images)."""
    if input_shape is None:
        return list(SEEDS)
    shape = parse_shape(input_shape)
    return [n for n in SEEDS if len(shape) == 3 or n in ("vit", "mlp_mixer")]


def get_seed(name: str, input_shape: "str | Sequence[int]" = (3, 32, 32)) -> Architecture:
    """A seed architecture by name (``resnet18``, ``wrn16_4``, ``vit``, ``mlp_mixer``)."""
    key = name.lower().replace("-", "_")
    if key not in SEEDS:
        raise KeyError(f"unknown seed {name!r}; known: {', '.join(SEEDS)}")
    return SEEDS[key](input_shape)
