"""Sampling throughput on one core, default budgets, 3×32×32 input.

Prints one ``name: value unit`` line per figure.  The in-run baseline is the first published
implementation's way of knowing shapes: compile every sample and run a batch-1 dummy tensor through it.
Usage: ``python benchmarks/sampling.py [--n 2000] [--baseline-n 200] [--shape 3x32x32] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000, help="architectures to sample")
    parser.add_argument("--baseline-n", type=int, default=40, help="of those, how many to validate by a forward pass")
    parser.add_argument("--shape", default="3x32x32")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    import torch

    torch.set_num_threads(1)
    from nas.compile import build_backbone
    from nas.sampler import Sampler

    sampler = Sampler("einspace", args.shape)
    rng = np.random.default_rng(args.seed)
    sampler.sample(np.random.default_rng(12345))  # warm caches (grammar construction)
    start = time.perf_counter()
    archs = [sampler.sample(rng) for _ in range(args.n)]
    elapsed = time.perf_counter() - start
    nodes = [a.num_nodes for a in archs]
    rate = args.n / elapsed

    subset = archs[: args.baseline_n]
    start = time.perf_counter()
    for arch in subset:
        module = build_backbone(arch)
        with torch.no_grad():
            module(torch.zeros(1, *arch.input_shape))
    forward = time.perf_counter() - start
    baseline_rate = len(subset) / (len(subset) / rate + forward)

    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_version()}, torch {torch.__version__}, 1 core")
    print(f"sampling: {rate:.0f} samples/s")
    print(f"nodes_mean: {statistics.mean(nodes):.1f} nodes")
    print(f"nodes_median: {statistics.median(nodes):.0f} nodes")
    print(f"nodes_p90: {np.percentile(nodes, 90):.0f} nodes")
    print(f"params_median: {statistics.median(a.num_params for a in archs):.0f} params")
    print(f"baseline_forward_validation: {baseline_rate:.1f} samples/s")
    print(f"speedup_vs_forward_validation: {rate / baseline_rate:.1f} x")


if __name__ == "__main__":
    main()
