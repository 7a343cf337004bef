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

``--offline TASK[,TASK...]``: the cost per candidate of each filter feature set *inside a search*, against one
training under the ``--protocol`` (default ``reduced``) on the offline tasks.  Per task, ``--n`` architectures
of the CPU sampling budget (``nas.search.CPU_BUDGET``; ``sampler.sample(seed)``, seeds ``0..n-1``) are timed
with ``graf`` (GRAF), ``graf+size`` (GRAF plus the closed-form parameter and FLOP counts: the default filter's
features), ``zcp13`` (the 13 proxies at batch 64, compile included, as ``ZeroCostProxies`` runs them) and
``zcp7_b32`` (the published seven at batch 32), and trained once (``data.training.train_and_evaluate``, seed 0).
Lines: ``<set>_ms_median`` / ``_p90`` and ``<set>_over_training_median`` / ``_p90`` per task and over all.

``--tau ARCHIVE --offline TASKS``: within-task Kendall τ of a random forest on each of those feature sets, from
the first ``--n`` evaluations of each task in ``ARCHIVE`` (mean over 5 random 75/25 splits), i.e. what each
cheaper set gives up in ranking (``graf+zcp7``: the published seven proxies, here at batch 64).

Run by hand:  nice -n 5 .venv/bin/python benchmarks/features.py --offline language-mini,addnist-mini --n 8
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


#: The published einspace encoder's proxies, in its order.
PUBLISHED_PROXIES = ("grad_norm", "snip", "grasp", "fisher", "jacob_cov", "plain", "synflow")
FILTER_SETS = ("graf", "graf+size", "zcp13", "zcp7_b32")


def size_columns(archs) -> np.ndarray:
    """log10 of 1 + the closed-form parameter and FLOP counts (no network is built)."""
    return np.log10(1.0 + np.asarray([[a.num_params, a.flops] for a in archs], dtype=float)).reshape(-1, 2)


def filter_featurisers(task) -> dict:
    """``set name -> function(archs) -> matrix`` for the feature sets a search filter can use on ``task``."""
    from features.graf import GRAF
    from features.zcp import ZeroCostProxies

    graf = GRAF()
    zcp13 = ZeroCostProxies(task=task, batch_size=64)
    zcp7 = ZeroCostProxies(task=task, proxies=PUBLISHED_PROXIES, batch_size=32)
    return {"graf": graf.transform, "graf+size": lambda a: np.hstack([graf.transform(a), size_columns(a)]),
            "zcp13": zcp13.transform, "zcp7_b32": zcp7.transform}


def offline_costs(args) -> None:
    """``--offline``: each filter feature set's cost per candidate against one training, per task."""
    import torch

    from data.tasks import get_task
    from data.training import PROTOCOLS, machine, train_and_evaluate
    from nas.architecture import Architecture
    from nas.sampler import Sampler
    from nas.search import CPU_BUDGET

    torch.set_num_threads(args.threads)
    logging.getLogger("features.zcp").setLevel(logging.ERROR)
    protocol = PROTOCOLS[args.protocol]
    print(f"# machine: {machine()}, torch {torch.__version__}, {args.threads} threads; CPU_BUDGET samples, "
          f"{args.n} per task, protocol {args.protocol}")
    overall: dict[str, list[float]] = {s: [] for s in FILTER_SETS}
    overall_ms: dict[str, list[float]] = {s: [] for s in FILTER_SETS}
    for name in args.offline.split(","):
        task = get_task(name, seed=0)
        sampler = Sampler("einspace", task.input_shape, CPU_BUDGET)
        archs = [sampler.sample(seed) for seed in range(args.n)]
        sets = filter_featurisers(task)
        for fn in sets.values():
            fn(archs[:1])  # warm-up: label caches, the proxies' batch, torch kernels
        ms: dict[str, list[float]] = {s: [] for s in FILTER_SETS}
        train_s = []
        for arch in archs:
            for s, fn in sets.items():
                # A fresh copy: an architecture caches its graph, which would make every set after the first
                # one look cheaper than it is for a new candidate.
                fresh = Architecture.from_string(arch.to_string(), arch.input_shape, grammar=arch.grammar.name)
                t0 = time.perf_counter()
                fn([fresh])
                ms[s].append(1e3 * (time.perf_counter() - t0))
            ev = train_and_evaluate(arch, task, protocol, seed=0)
            train_s.append(ev.seconds if ev.seconds > 0 else float("nan"))
        train_ms = 1e3 * np.asarray(train_s)
        print(f"{name}_training_s_median: {np.nanmedian(train_s):.2f} s")
        for s in FILTER_SETS:
            ratio = np.asarray(ms[s]) / train_ms
            overall[s] += list(ratio)
            overall_ms[s] += ms[s]
            print(f"{name}_{s}_ms_median: {np.median(ms[s]):.2f} ms")
            print(f"{name}_{s}_ms_p90: {_pct(ms[s], 90):.2f} ms")
            print(f"{name}_{s}_over_training_median: {np.nanmedian(ratio):.5f} x")
            print(f"{name}_{s}_over_training_p90: {np.nanpercentile(ratio, 90):.5f} x")
    for s in FILTER_SETS:
        print(f"all_{s}_ms_median: {np.median(overall_ms[s]):.2f} ms")
        print(f"all_{s}_ms_p90: {_pct(overall_ms[s], 90):.2f} ms")
        print(f"all_{s}_over_training_median: {np.nanmedian(overall[s]):.5f} x")
        print(f"all_{s}_over_training_p90: {np.nanpercentile(overall[s], 90):.5f} x")


def filter_tau(args) -> None:
    """``--tau``: within-task Kendall τ of a random forest on each filter feature set, and what a two-stage
    filter picks (features cached in ``ARCHIVE``, so a second run costs seconds)."""
    from scipy.stats import kendalltau
    from sklearn.ensemble import RandomForestRegressor

    from data.archive import Archive
    from data.tasks import get_task
    from features.pipeline import cached, make_featuriser
    from features.zcp import ALL

    logging.getLogger("features.zcp").setLevel(logging.ERROR)
    published = [i for i, p in enumerate(ALL) if p in PUBLISHED_PROXIES]  # the published 7, at batch 64
    with Archive(args.tau) as archive:
        for name in args.offline.split(","):
            archs, y = archive.dataset(name, include_failed=True, failed_value=0.0)
            archs, y = archs[: args.n], np.asarray(y[: args.n], dtype=float)
            task = get_task(name, seed=0)
            graf = cached(make_featuriser("graf", task), archive, name).transform(archs)
            zcp = cached(make_featuriser("zcp", task), archive, name, progress=True).transform(archs)
            mats = {"graf": graf, "graf+size": np.hstack([graf, size_columns(archs)]),
                    "graf+zcp13": np.hstack([graf, zcp]), "graf+zcp7": np.hstack([graf, zcp[:, published]])}
            mats = {s: np.where(np.isfinite(X), X, np.nan) for s, X in mats.items()}
            for s, X in mats.items():
                taus = []
                for split in range(5):
                    order = np.random.default_rng(split).permutation(len(y))
                    cut = int(0.75 * len(y))
                    tr, te = order[:cut], order[cut:]
                    model = RandomForestRegressor(random_state=0, n_jobs=1).fit(X[tr], y[tr])
                    taus.append(kendalltau(model.predict(X[te]), y[te])[0])
                print(f"{name}_{s}_tau: {np.mean(taus):.3f} (sd {np.std(taus):.3f}, n {len(y)})")
            shortlist_picks(name, mats["graf"], mats["graf+zcp13"], y)


def shortlist_picks(name: str, cheap: np.ndarray, costly: np.ndarray, y: np.ndarray, n: int = 20, k: int = 5,
                    pools: int = 200) -> None:
    """Mean true accuracy of the best of the ``k`` picked from pools of ``n`` held-out architectures: by the
    cheap model, by the costly model, and two-stage (the cheap model's shortlist of m, then the costly one),
    models fitted on a random half (5 halves)."""
    from sklearn.ensemble import RandomForestRegressor

    picks: dict[str, list[float]] = {}
    for split in range(5):
        order = np.random.default_rng(100 + split).permutation(len(y))
        tr, te = order[: len(y) // 2], order[len(y) // 2:]
        pc = RandomForestRegressor(random_state=0, n_jobs=1).fit(cheap[tr], y[tr]).predict(cheap[te])
        pz = RandomForestRegressor(random_state=0, n_jobs=1).fit(costly[tr], y[tr]).predict(costly[te])
        rng = np.random.default_rng(split)
        for _ in range(pools):
            pool = rng.choice(len(te), size=min(n, len(te)), replace=False)
            best = {"random": y[te][rng.choice(pool, size=k, replace=False)].max(),
                    "cheap": y[te][pool[np.argsort(-pc[pool], kind="stable")[:k]]].max(),
                    "costly": y[te][pool[np.argsort(-pz[pool], kind="stable")[:k]]].max(),
                    "oracle": y[te][pool].max()}
            for m in (k + 2, 2 * k):
                short = pool[np.argsort(-pc[pool], kind="stable")[:m]]
                best[f"two_stage_{m}"] = y[te][short[np.argsort(-pz[short], kind="stable")[:k]]].max()
            for key, v in best.items():
                picks.setdefault(key, []).append(v)
    for key, v in picks.items():
        print(f"{name}_best_of_{k}_picked_from_{n}_{key}: {np.mean(v):.4f} val_acc (mean over {len(v)} pools)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100, help="architectures (sampling seeds 0..n-1)")
    parser.add_argument("--max-mflops", type=float, default=100.0, help="skip larger samples in the torch figures")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--breakdown", action="store_true", help="also time the proxies in groups")
    parser.add_argument("--offline", help="comma-separated offline tasks: filter feature costs against a training")
    parser.add_argument("--protocol", default="reduced", help="training protocol of --offline")
    parser.add_argument("--tau", metavar="ARCHIVE", help="with --offline: within-task tau of each filter feature set")
    args = parser.parse_args()
    if args.offline:
        filter_tau(args) if args.tau else offline_costs(args)
        return

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
