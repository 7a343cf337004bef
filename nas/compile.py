"""Compile an ``Architecture`` into a ``torch.nn.Module``.

Each terminal's builder makes its layer from the node's inferred input and output shapes; sequential,
routing and computation modules become flat ``Chain``s, branching modules ``Branch``es (with a
replicated inner module instantiated once per branch, each with its own weights), DAG topologies
(``nas.grammar.core.Dag``) ``DagModule``s whose nodes sum their incoming edges.  A terminal's builder is
looked up, not imported: the grammar names it by ``Operation.builder_key`` = ``(family, layer)`` and this
module's registry maps the key to a function (``nas.ops.BUILDERS`` for einspace, ``nas.nb201_net.BUILDERS``
for nb201 and hnb201; ``register_builder`` adds more).  A nonterminal with a ``builder_key`` builds its
whole subtree with a subtree builder (the NAS-Bench-201 network around its shared cell).  Every run of
``im2col(k,s,p) -> linear(c) -> col2im`` left in a flattened chain (a convolution, possibly written with
nested identity routings) is fused into ``Conv2d(C, c, k, s, p)``: the same function, since Unfold's
channel-major features are a flattened conv weight, without materialising the unfolded tensor.  The
conv takes over the linear's initial weights, so fused and unfused builds with one seed are identical.
"""

from __future__ import annotations

import threading
from contextlib import nullcontext

import torch
from torch import nn
from torch.nn.utils import skip_init

from nas import nb201_net, ops
from nas.architecture import Architecture
from nas.grammar.core import Flow, Operation
from nas.grammar.derive import Node
from nas.nb201_net import SubtreeBuilder
from nas.ops import Branch, Builder, Chain, Col2Im, DagModule, Im2Col, Network

#: Seeded builds draw their initial weights from torch's global generator, seeded inside ``fork_rng``; two
#: threads doing that at once would interleave their draws, so seeded builds take turns.
_SEEDED_BUILD = threading.Lock()

#: Terminal builders by ``(family, layer)``; ``register_builder`` adds more.
_BUILDERS: dict[tuple[str, str], Builder] = {**ops.BUILDERS, **nb201_net.BUILDERS}
#: Builders of whole nonterminal subtrees by ``(family, layer)``.
_SUBTREE_BUILDERS: dict[tuple[str, str], SubtreeBuilder] = dict(nb201_net.SUBTREE_BUILDERS)


def register_builder(family: str, layer: str, builder: Builder) -> None:
    """Build the terminals whose ``builder_key`` is ``(family, layer)`` with ``builder(op, inputs, outputs)``."""
    _BUILDERS[(family, layer)] = builder


def register_subtree_builder(family: str, layer: str, builder: SubtreeBuilder) -> None:
    """Build the nonterminals whose ``builder_key`` is ``(family, layer)``, whole, with
    ``builder(op, node, inputs, outputs)``."""
    _SUBTREE_BUILDERS[(family, layer)] = builder


def build_terminal(op: Operation, inp: Flow, out: Flow) -> nn.Module:
    """The module of terminal ``op`` for inputs ``inp`` and outputs ``out``, by its registered builder."""
    key = op.builder_key
    builder = _BUILDERS.get(key) if key is not None else None
    if builder is None:
        raise KeyError(f"no builder registered for terminal {op.name!r} (key {key!r}); see nas.compile.register_builder")
    return builder(op, inp, out)


def _fuse_convs(layers: list[nn.Module]) -> list[nn.Module]:
    """Replace every run ``Im2Col(k,s,p), Linear(C·k², c), Col2Im`` by ``Conv2d(C, c, k, s, p)`` carrying
    the linear's weights.  The col2im right after im2col + linear always folds on that im2col's grid."""
    out: list[nn.Module] = []
    i = 0
    while i < len(layers):
        a, b, c = layers[i], layers[i + 1] if i + 1 < len(layers) else None, layers[i + 2] if i + 2 < len(layers) else None
        if isinstance(a, Im2Col) and isinstance(b, nn.Linear) and isinstance(c, Col2Im):
            k = a.kernel
            conv = skip_init(nn.Conv2d, b.in_features // (k * k), b.out_features, k, a.stride, a.padding)
            with torch.no_grad():
                conv.weight.copy_(b.weight.view_as(conv.weight))
                conv.bias.copy_(b.bias)
            out.append(conv)
            i += 3
        else:
            out.append(a)
            i += 1
    return out


def build_backbone(arch: Architecture, fuse: bool = True) -> nn.Module:
    """The network body, without head, as a module mapping ``B×input_shape`` to ``B×output_shape``."""

    def build(node: Node, path: tuple[int, ...]) -> nn.Module:
        info = arch.node_at(path)
        op = info.op
        if op.is_terminal:
            return build_terminal(op, info.inputs, info.outputs)
        key = op.builder_key
        if key is not None:
            if key not in _SUBTREE_BUILDERS:
                raise KeyError(f"no subtree builder registered for {op.name!r} (key {key!r})")
            return _SUBTREE_BUILDERS[key](op, node, info.inputs, info.outputs)
        if op.kind == "dag":
            return DagModule(op.edges, [build(child, path + (i,)) for i, child in enumerate(node.children)])  # type: ignore[attr-defined]
        if op.kind == "chain":
            layers: list[nn.Module] = []
            for i, child in enumerate(node.children):
                m = build(child, path + (i,))
                if isinstance(m, Chain):
                    layers.extend(m.layers)
                elif not isinstance(m, nn.Identity):
                    layers.append(m)
            if fuse:
                layers = _fuse_convs(layers)
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
    lock = _SEEDED_BUILD if seed is not None else nullcontext()
    ctx = torch.random.fork_rng(devices=[]) if seed is not None else nullcontext()
    with lock, ctx:
        if seed is not None:
            torch.manual_seed(seed)
        backbone = build_backbone(arch, fuse=fuse)
        return Network(backbone, arch.output_shape, num_classes, col_pool=col_pool)
