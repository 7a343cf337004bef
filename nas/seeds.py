"""Seed architectures written as legal derivations of the einspace grammars.

Convolution = ``routing[im2col(k,s,p), computation<linear(c)>, col2im]`` (compiled to ``Conv2d``), batch
norm = ``norm`` in im mode, layer norm = ``norm`` in col mode (``einspace``, ``einspace-v1``; in
``einspace-v2`` col-mode ``norm`` is the second implementation's ``BatchNorm1d`` over tokens).  The seeds
``resnet18``, ``wrn16_4``, ``vit`` and ``mlp_mixer`` are the second implementation's (activation ``relu``;
pre-norm ViT with a 2048-wide MLP); the ``*_v1`` seeds are the first implementation's, used by the NeurIPS
paper's mixed-seed runs (activation ``leakyrelu``; ``vit_v1`` is its post-norm transformer with a 512-wide
MLP).  The only ops used that random sampling never picks are ``linear(x4)`` and ``linear(/4)`` (MLP-Mixer
token mixing) and, outside ``einspace-v1``, ``leakyrelu``: grammar options with weight 0.  Long chains are
written as balanced binary ``sequential`` trees to keep derivation depth low.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

from nas.architecture import Architecture, parse_shape
from nas.grammar.core import Grammar
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


# -- ResNet-18 ----------------------------------------------------------------------------------------


def resnet18_tree(widths: Sequence[int] = (64, 128, 256, 512), act: str = "relu") -> Node:
    """ResNet-18 with the strided-conv stem (conv3×3 -> BN -> act -> conv3×3/s2, no max-pool), four
    stages of two basic blocks; strided blocks use a conv1×1/s2 + BN shortcut.  Convs have biases."""
    nonlin = comp(act)

    def block(width: int, stride: int, project: bool) -> Node:
        main = seq(conv(width, 3, stride), BN, nonlin, conv(width, 3, 1), BN)
        shortcut = seq(conv(width, 1, stride, 0), BN) if project else None
        return seq(residual(main, shortcut), nonlin)

    stem = seq(conv(widths[0]), BN, nonlin, conv(widths[0], 3, 2))
    blocks = []
    for i, w in enumerate(widths):
        blocks.append(block(w, 1 if i == 0 else 2, project=i > 0))
        blocks.append(block(w, 1, project=False))
    return seq(stem, *blocks)


# -- WRN-16-4 -----------------------------------------------------------------------------------------


def wrn16_4_tree(act: str = "relu") -> Node:
    """Wide ResNet 16-4 as in einspace: stem conv3×3(16) -> BN -> act; three stages (64, 128, 256) of two
    blocks; a block is ``conv3×3 -> BN -> act -> conv3×3`` plus a shortcut (conv1×1 in the first block of
    each stage, identity in the second), then BN -> act; stages 2 and 3 stride 2."""
    nonlin = comp(act)
    stages = []
    for i, w in enumerate((64, 128, 256)):
        stride = 1 if i == 0 else 2
        first = seq(residual(seq(conv(w, 3, stride), BN, nonlin, conv(w)), conv(w, 1, stride, 0)), BN, nonlin)
        second = seq(residual(seq(conv(w), BN, nonlin, conv(w))), BN, nonlin)
        stages += [first, second]
    return seq(conv(16), BN, nonlin, *stages)


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
             mlp: int = 2048, patch: int = 4, *, pre_norm: bool = True, act: str = "relu") -> Node:
    """ViT: patch (or token) embedding -> learnable positional encoding -> ``depth`` layers; pre-norm
    layers are ``x + MHSA(LN(x))`` then ``x + MLP(LN(x))`` (the second implementation's ``vit``), post-norm
    ones ``LN(x + MHSA(x))`` then ``LN(x + MLP(x))`` (the first implementation's ``transformer``).  MHSA =
    ``heads`` heads concatenated, then linear; MLP = ``linear(mlp) -> act -> linear(width)``."""
    mhsa = seq(replicate(heads, attention_head(head_dim), f"cat({heads},2)"), comp(f"linear({width})"))
    ffn = seq(comp(f"linear({mlp})"), comp(act), comp(f"linear({width})"))
    if pre_norm:
        layer = seq(residual(seq(comp("norm"), mhsa)), residual(seq(comp("norm"), ffn)))
    else:
        layer = seq(residual(mhsa), comp("norm"), residual(ffn), comp("norm"))
    return seq(_embed(shape, width, patch), comp("pos_enc"), *([layer] * depth))


def mlp_mixer_tree(shape: tuple[int, ...], depth: int = 8, width: int = 512, channel_hidden: int = 256,
                   patch: int = 4, act: str = "relu") -> Node:
    """MLP-Mixer as in einspace: embedding -> positional encoding -> ``depth`` layers of
    ``x + channel_mix(token_mix(LN(x)))``; token mixing is an MLP over the token axis (permute, linear
    to 4× the tokens, act, linear back, permute), channel mixing ``linear -> act -> linear``."""
    nonlin = comp(act)
    token_mix = seq(
        routing("perm(0,2,1)", comp("linear(x4)"), "identity"),
        nonlin,
        routing("identity", comp("linear(/4)"), "perm(0,2,1)"),
    )
    channel_mix = seq(comp(f"linear({channel_hidden})"), nonlin, comp(f"linear({width})"))
    layer = residual(seq(comp("norm"), token_mix, channel_mix))
    return seq(_embed(shape, width, patch), comp("pos_enc"), *([layer] * depth))


# -- registry ---------------------------------------------------------------------------------------


class Seed(NamedTuple):
    """A named seed: its tree for an input shape, and whether it needs an image input."""

    tree: Callable[[tuple[int, ...]], Node]
    needs_image: bool
    description: str


SEEDS: dict[str, Seed] = {
    "resnet18": Seed(lambda shape: resnet18_tree(), True, "ResNet-18, strided-conv stem (second implementation)"),
    "wrn16_4": Seed(lambda shape: wrn16_4_tree(), True, "WRN-16-4 (second implementation)"),
    "vit": Seed(vit_tree, False, "pre-norm ViT, 4 layers, MLP 2048, relu (second implementation)"),
    "mlp_mixer": Seed(mlp_mixer_tree, False, "MLP-Mixer, 8 layers, relu (second implementation)"),
    "resnet18_v1": Seed(lambda shape: resnet18_tree(act="leakyrelu"), True, "ResNet-18, leakyrelu (NeurIPS code)"),
    "wrn16_4_v1": Seed(lambda shape: wrn16_4_tree(act="leakyrelu"), True, "WRN-16-4, leakyrelu (NeurIPS code)"),
    "vit_v1": Seed(lambda shape: vit_tree(shape, mlp=512, pre_norm=False, act="leakyrelu"), False,
                   "post-norm transformer, 4 layers, MLP 512, leakyrelu (NeurIPS code)"),
    "mlp_mixer_v1": Seed(lambda shape: mlp_mixer_tree(shape, act="leakyrelu"), False, "MLP-Mixer, leakyrelu (NeurIPS code)"),
}

#: Named seed sets: the mixed-seed initialisations (each seed evaluated once, the population filled with
#: copies round-robin) of the second implementation (``mixed``) and of the NeurIPS paper (``mixed-v1``).
SEED_SETS: dict[str, tuple[str, ...]] = {
    "mixed": ("resnet18", "wrn16_4", "vit", "mlp_mixer"),
    "mixed-v1": ("resnet18_v1", "wrn16_4_v1", "vit_v1", "mlp_mixer_v1"),
}


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def seed_names(input_shape: "str | Sequence[int] | None" = None) -> list[str]:
    """Names of the seeds; with an input shape, only those meaningful for it (ResNets need images)."""
    if input_shape is None:
        return list(SEEDS)
    shape = parse_shape(input_shape)
    return [n for n, seed in SEEDS.items() if len(shape) == 3 or not seed.needs_image]


def get_seed(
    name: str, input_shape: "str | Sequence[int]" = (3, 32, 32), grammar: "str | Grammar" = "einspace"
) -> Architecture:
    """A seed architecture by name (see ``SEEDS``) for ``input_shape``, as an architecture of ``grammar``
    (any einspace preset that has the seed's ops: the ``*_v1`` seeds use ``leakyrelu``, the others
    ``relu``, which ``einspace-v1`` lacks)."""
    key = _key(name)
    if key not in SEEDS:
        raise KeyError(f"unknown seed {name!r}; known: {', '.join(SEEDS)}")
    shape = parse_shape(input_shape)
    if SEEDS[key].needs_image and len(shape) != 3:
        raise ValueError(f"seed {key!r} needs an image input C×H×W, got {shape}")
    return Architecture(SEEDS[key].tree(shape), shape, grammar)


def seed_set(name: str) -> tuple[str, ...] | None:
    """The seed names of a named seed set (``mixed``, ``mixed-v1``), or ``None``."""
    return SEED_SETS.get(name.strip().lower().replace("_", "-"))
