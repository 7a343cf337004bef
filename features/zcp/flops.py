"""FLOPs of a compiled network's forward pass as ``torch.utils.flop_counter`` counts them: in closed form from
the FLOP rules the grammar publishes for its terminals, or by running the counter."""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from features.zcp.scores import LAYER_TYPES
from nas.ops import DotProduct, Network


def forward_flops(model: nn.Module, x: Tensor) -> int:
    """FLOPs that ``FlopCounterMode`` counts for one no-grad forward of ``model`` on ``x``."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return int(counter.get_total_flops())


def _terminal_flops(arch: Any) -> tuple[int, int, int] | None:
    """``(flops, linear layers, products)`` of the architecture's terminals by their published
    ``flop_rule``: ``"linear"`` and ``"product"`` cost ``2 · input elements · output width`` per instance
    (rows·in·out for a linear layer, M·K·N for a product), ``"free"`` nothing; ``None`` when a terminal has
    no rule."""
    flops = linears = products = 0
    for info in arch.terminals():
        rule = getattr(info.op, "flop_rule", None)
        if rule in ("linear", "product"):
            flops += 2 * math.prod(info.inputs[0].shape) * info.outputs[0].shape[-1] * info.copies
            if rule == "linear":
                linears += info.copies
            else:
                products += info.copies
        elif rule != "free":
            return None
    return flops, linears, products


def architecture_flops(net: nn.Module, arch: Any, input_shape: "Sequence[int] | None" = None) -> int | None:
    """What ``FlopCounterMode`` counts for one sample of ``net`` = ``compile_architecture(arch, ...)``, in
    closed form from the FLOP rules of the architecture's terminals (``Operation.flop_rule``): for einspace
    ``2 · rows · in · out`` per ``linear`` instance (a fused ``Conv2d`` counts the same), ``2 · M · K · N``
    per ``dot_product`` instance (its ``1/sqrt(d)`` scaling is element-wise, not counted), nothing for
    norms, activations, positional encodings, additions and routing; plus ``2 · width · classes`` for the
    head.  ``None`` when ``arch`` is not an ``Architecture``, has a terminal without a rule (nb201,
    hnb201), or ``net`` is not its compiled network (a ``nas.ops.Network`` whose backbone has the
    architecture's parameter count, ``Linear``/``Conv2d`` and ``DotProduct`` instances, output shape and,
    if given, input shape)."""
    if arch is None or not hasattr(arch, "terminals"):
        return None
    if not isinstance(net, Network) or type(net.head) is not nn.Linear:
        return None
    try:
        if input_shape is not None and tuple(arch.input_shape) != tuple(input_shape):
            return None
        if tuple(net.output_shape) != tuple(arch.output_shape):
            return None
        counted = _terminal_flops(arch)
        if counted is None:
            return None
        flops, linears, products = counted
        params = arch.num_params
    except (AttributeError, TypeError, IndexError):
        return None
    for m in net.backbone.modules():
        if isinstance(m, LAYER_TYPES):  # a fused Conv2d counts as its linear
            if type(m) not in LAYER_TYPES:
                return None
            linears -= 1
        elif isinstance(m, DotProduct):
            products -= 1
    if linears or products or sum(p.numel() for p in net.backbone.parameters()) != params:
        return None
    return flops + 2 * net.head.in_features * net.head.out_features
