"""Size budgets of the zero-cost-proxy pass, checked on the architecture before its network is built.

The budgets are the training budgets' kind (``data.training``): estimated memory at the proxies' batch
(with ``data.training.estimate_memory_mb``, the one memory estimate), parameters (head included) and
forward FLOPs per sample (``Architecture.flops``, the sampling budgets' count).  An architecture over any
of them gets NaN proxies with the reason; the wall-clock safety limit is ``compute_proxies``'s
``max_seconds``.

The defaults admit every network of the CPU sampling budget (``nas.search.CPU_BUDGET``: ≤ 300k backbone
parameters, ≤ 3 MFLOPs per sample; among 21,000 samples on the offline tasks' shapes and 32×32, 28×28 and
64×64 images: ≤ 0.92M parameters with the head, estimates of at most 19 GiB, 99 % under 6 GiB) and every
NAS-Bench-201 network (≤ 1.53M parameters, ≤ 445 MFLOPs, about 2.5 GiB as a 32×32 ``hnb201`` network),
and refuse the default budget's giants (up to 25M parameters, 20 GFLOPs and estimates of hundreds of GiB,
which ran for minutes in 11–17 GB): most by parameters or FLOPs, the rest by memory.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

from data.training import estimate_memory_mb
from features.zcp.compute import SHARED

#: Estimated memory (MiB) of the largest proxy pass (``proxy_memory_mb``), above the largest CPU-budget
#: network's 19 GiB.  The estimate is conservative: measured peaks were 6–65 % of it.
MAX_MEMORY_MB = 24576.0
#: Trainable parameters, classification head included (NAS-Bench-201's largest: 1.53M).
MAX_PARAMS = 5_000_000
#: Forward FLOPs of one sample (NAS-Bench-201's largest: 445M).
MAX_FLOPS = 1e9
#: The wall-clock safety net of one architecture's proxies (s): well above the slowest network within
#: the size budgets, so that on a loaded machine it does not decide results.
MAX_SECONDS = 300.0


def proxy_memory_mb(arch: Any, num_classes: int, batch_size: int, proxies: Iterable[str]) -> float:
    """Estimated peak memory (MiB) of computing ``proxies`` of ``arch`` on a batch of ``batch_size``: the
    largest of its passes, each the training estimate (weights with two more copies, every layer output
    and its gradient) at the batch the pass runs: the shared pass at ``batch_size``, or twice that with
    ``grasp`` (its double backward keeps the first backward's graph: a second set of activations and
    gradients); ``zen``'s two no-grad forwards at ``batch_size``; ``synflow`` at batch 1 in float64 (twice
    the bytes); the weight-only proxies (and ``flops``' one-sample forward) at batch 1."""
    names = set(proxies)
    passes = [estimate_memory_mb(arch, num_classes, 1)]
    if names & set(SHARED):
        passes.append(estimate_memory_mb(arch, num_classes, batch_size * (2 if "grasp" in names else 1)))
    if "zen" in names:
        passes.append(estimate_memory_mb(arch, num_classes, batch_size))
    if "synflow" in names:
        passes.append(2 * estimate_memory_mb(arch, num_classes, 1))
    return max(passes)


def over_budget(arch: Any, num_classes: int, batch_size: int, proxies: Iterable[str], *,
                max_memory_mb: float | None = MAX_MEMORY_MB, max_params: float | None = MAX_PARAMS,
                max_flops: float | None = MAX_FLOPS) -> str | None:
    """Why the proxies of ``arch`` must not be computed (a one-line reason), or None when it is within
    every budget (None: unlimited).  Reads the architecture only: nothing is built."""
    params = arch.num_params + arch.head_params(num_classes)
    if max_params is not None and params > max_params:
        return f"over parameter budget: {params:,} parameters > {max_params:,.0f}"
    if max_flops is not None and arch.flops > max_flops:
        return f"over FLOP budget: {arch.flops:.3g} FLOPs per sample > {max_flops:.3g}"
    if max_memory_mb is not None:
        mb = proxy_memory_mb(arch, num_classes, batch_size, proxies)
        if mb > max_memory_mb:
            return (f"over memory budget: estimated {mb:,.0f} MiB for the proxies at batch {batch_size} "
                    f"> {max_memory_mb:,.0f} MiB")
    return None


def check_limit(name: str, value: Any) -> None:
    """A budget must be None (unlimited) or a positive number."""
    if value is not None and not (isinstance(value, numbers.Real) and not isinstance(value, bool)
                                  and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number or None, got {value!r}")
