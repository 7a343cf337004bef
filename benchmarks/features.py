"""Feature cost on CPU: GRAF and the 13 zero-cost proxies against 3 training steps, on sampled einspace nets.

Architectures: ``Sampler("einspace", (3, 32, 32))`` with the default ``Budget()``, one per seed ``0..n-1``
(``sampler.sample(seed)``).  GRAF (``GRAF().transform([arch])``, one call per architecture) is timed on every
sample: its cost depends on the tree, not on FLOPs.  The torch figures skip pathological giants, the samples
over ``--max-mflops`` (default 100 MFLOPs per sample, ``Architecture.flops``; 18 of seeds 0..99); the number
skipped is printed.  With 200 the four samples between 100 and 200 MFLOPs double the run time (over 10
minutes on a busy 2-core VM) while barely moving the medians.

Per kept architecture, on one compiled network (``compile_architecture(arch, 10, seed=0)``; compiling is
timed on its own line):

* ``proxies``: ``features.zcp.compute_proxies`` of all 13 proxies on one batch of 64;
* ``train3``: building ``SGD(lr=0.04, momentum=0.9)`` and 3 steps (forward, cross-entropy, backward, step)
  at batch 64 on a deep copy of the same network (the copy is made outside the timer);
* ``ratio``: proxies / train3 for that architecture; the median over architectures is reported.

With ``--breakdown``, the proxies are also timed in groups, each as its own ``compute_proxies`` call
(median over architectures of group / train3): the shared pass without ``grasp`` (grad_norm, snip, fisher,
plain, jacob_cov, epe_nas, nwot), the shared pass with ``grasp`` (its Hessian-vector product and the
differentiable first backward are the difference), ``zen``, ``synflow``, and l2_norm + params + flops;
the groups' sum exceeds the all-13 figure by the per-call overhead (copy, checks) they repeat.

Before both, one untimed training step on a separate copy warms up torch's per-shape kernels, so neither
measurement pays first-call costs the other does not.  The batch is synthetic (there is no generated
3×32×32 task): standard-normal inputs and uniform labels over 10 classes, ``numpy.random.default_rng(0)``,
held in a ``data.tasks.Task`` named ``synthetic-3x32x32``; timings do not depend on the values.
``torch.set_num_threads(--threads)`` (default 2).  One ``name: value unit`` line per figure.

Run by hand:  .venv/bin/python benchmarks/features.py [--n 100] [--max-mflops 100] [--threads 2] [--breakdown]
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import sys
import time

import numpy as np

# Run as a script, this file's folder comes first on sys.path and its name would shadow the ``features``
# package: put the repository root there instead.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))


def synthetic_task(n: int = 64, shape: tuple[int, ...] = (3, 32, 32), num_classes: int = 10, seed: int = 0):
    """A ``Task`` of random normal inputs and random labels (every split the same ``n`` examples)."""
    from data.tasks import Split, Task

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    y = rng.integers(0, num_classes, n).astype(np.int64)
    split = Split(x, y)
    return Task("synthetic-3x32x32", tuple(shape), num_classes, split, split, split,
                {"source": "benchmarks/features.py: standard normal inputs, uniform labels", "seed": seed})


def _pct(values, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100, help="architectures (sampling seeds 0..n-1)")
    parser.add_argument("--max-mflops", type=float, default=100.0, help="skip larger samples in the torch figures")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--breakdown", action="store_true", help="also time the proxies in groups")
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F

    from data.training import machine
    from features.graf import GRAF
    from features.zcp import ALL, ZeroCostProxies, compute_proxies
    from nas.compile import compile_architecture
    from nas.sampler import Sampler

    torch.set_num_threads(args.threads)
    logging.getLogger("features.zcp").setLevel(logging.ERROR)  # NaN proxies are counted, not warned
    start_all = time.perf_counter()

    sampler = Sampler("einspace", (3, 32, 32))
    archs = [sampler.sample(seed) for seed in range(args.n)]
    task = synthetic_task(args.batch)
    x, y = ZeroCostProxies(task=task, batch_size=args.batch).batch()

    graf = GRAF()
    graf.transform([sampler.sample(12345)])  # warm the label caches
    graf_ms = []
    for arch in archs:
        t0 = time.perf_counter()
        graf.transform([arch])
        graf_ms.append(1e3 * (time.perf_counter() - t0))

    def train_steps(net, steps: int) -> None:
        opt = torch.optim.SGD(net.parameters(), lr=0.04, momentum=0.9)
        net.train()
        for _ in range(steps):
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    limit = args.max_mflops * 1e6
    kept = [a for a in archs if a.flops <= limit]
    compile_ms, proxy_ms, train_ms, ratios = [], [], [], []
    with_nan = 0
    nan_by_proxy = dict.fromkeys(ALL, 0)
    shared = ["grad_norm", "snip", "fisher", "plain", "jacob_cov", "epe_nas", "nwot"]
    groups = {"shared_without_grasp": shared, "shared_with_grasp": shared + ["grasp"], "zen": ["zen"],
              "synflow": ["synflow"], "l2_norm_params_flops": ["l2_norm", "params", "flops"]}
    group_ms: dict[str, list[float]] = {g: [] for g in groups}
    for arch in kept:
        t0 = time.perf_counter()
        net = compile_architecture(arch, task.num_classes, seed=0)
        compile_ms.append(1e3 * (time.perf_counter() - t0))
        train_steps(copy.deepcopy(net), 1)  # warm-up, untimed

        t0 = time.perf_counter()
        values = compute_proxies(net, x, y, task.num_classes, ALL, seed=0, arch=arch)
        proxy_ms.append(1e3 * (time.perf_counter() - t0))
        with_nan += any(np.isnan(v) for v in values.values())
        for name, v in values.items():
            nan_by_proxy[name] += bool(np.isnan(v))

        trained = copy.deepcopy(net)
        t0 = time.perf_counter()
        train_steps(trained, args.steps)
        train_ms.append(1e3 * (time.perf_counter() - t0))
        ratios.append(proxy_ms[-1] / train_ms[-1])
        if args.breakdown:
            for group, names in groups.items():
                t0 = time.perf_counter()
                compute_proxies(net, x, y, task.num_classes, names, seed=0, arch=arch)
                group_ms[group].append(1e3 * (time.perf_counter() - t0))

    flops_kept = [a.flops / 1e6 for a in kept]
    print(f"# machine: {machine()}, torch {torch.__version__}, {args.threads} threads; einspace default Budget(), "
          f"3x32x32, {args.n} samples (seeds 0..{args.n - 1}), batch {args.batch}")
    print(f"graf_ms_median: {np.median(graf_ms):.2f} ms (target <= 5)")
    print(f"graf_ms_p90: {_pct(graf_ms, 90):.2f} ms")
    print(f"graf_ms_max: {max(graf_ms):.2f} ms")
    print(f"graf_throughput: {len(archs) / (sum(graf_ms) / 1e3):.0f} architectures/s")
    print(f"skipped_over_{args.max_mflops:g}_mflops: {len(archs) - len(kept)} architectures")
    print(f"kept_mflops_median: {np.median(flops_kept):.2f} MFLOPs")
    print(f"kept_mflops_p90: {_pct(flops_kept, 90):.2f} MFLOPs")
    print(f"compile_ms_median: {np.median(compile_ms):.2f} ms")
    print(f"proxies13_ms_median: {np.median(proxy_ms):.1f} ms")
    print(f"proxies13_ms_p90: {_pct(proxy_ms, 90):.1f} ms")
    print(f"train{args.steps}_ms_median: {np.median(train_ms):.1f} ms")
    print(f"train{args.steps}_ms_p90: {_pct(train_ms, 90):.1f} ms")
    print(f"proxies_over_train{args.steps}_median: {np.median(ratios):.2f} x (target <= 1)")
    print(f"proxies_over_train{args.steps}_p90: {_pct(ratios, 90):.2f} x")
    print(f"proxies_over_train{args.steps}_total: {sum(proxy_ms) / sum(train_ms):.2f} x")
    for group in groups if args.breakdown else ():
        ratio = np.asarray(group_ms[group]) / np.asarray(train_ms)
        print(f"{group}_over_train{args.steps}_median: {np.median(ratio):.2f} x")
        print(f"{group}_over_train{args.steps}_total: {sum(group_ms[group]) / sum(train_ms):.2f} x")
    print(f"architectures_with_nan_proxy: {with_nan} of {len(kept)}")
    for name, count in nan_by_proxy.items():
        if count:
            print(f"nan_{name}: {count} architectures")
    print(f"total_runtime: {time.perf_counter() - start_all:.0f} s")


if __name__ == "__main__":
    main()
