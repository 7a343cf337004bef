"""Training and archive throughput on CPU.

For every offline task: seconds per epoch of the reduced protocol (2,000 training examples, batch 64) for
the four seed networks and for the median (by FLOPs) of 101 random architectures under the CPU sampling
budget.  An epoch is timed as ``warm-up`` steps (not counted) then ``steps`` timed training steps,
scaled to the epoch's step count, so ResNet-18 does not take minutes per task.  Then the archive's
insert and query throughput.  One line per figure: ``name: value unit``.

Run by hand:  .venv/bin/python benchmarks/training.py [--threads 2] [--tasks a,b] [--steps 5]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

from data.archive import Archive
from nas.search.budgets import CPU_BUDGET
from data.tasks import get_task
from data.training import PROTOCOLS, Evaluation, machine
from nas.compile import compile_architecture
from nas.sampler import Sampler
from nas.seeds import SEED_SETS, get_seed

OFFLINE = ("addnist-mini", "multnist-mini", "cifartile-mini", "language-mini", "gutenberg-mini", "chesseract-mini")


def seconds_per_epoch(arch, task, steps: int, warmup: int = 1) -> float:
    """Time ``steps`` SGD steps of the reduced protocol after ``warmup`` untimed ones; scale to an epoch."""
    p = PROTOCOLS["reduced"]
    net = compile_architecture(arch, task.num_classes, seed=0)
    opt = torch.optim.SGD(net.parameters(), lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay)
    x = torch.as_tensor(task.train.x[: p.batch_size])
    y = torch.as_tensor(task.train.y[: p.batch_size])
    net.train()

    def step() -> None:
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    per_step = (time.perf_counter() - t0) / steps
    return per_step * (min(p.train_subset, len(task.train)) // p.batch_size)


def median_architecture(task, n: int = 101):
    s = Sampler("einspace", task.input_shape, CPU_BUDGET)
    archs = sorted((s.sample(np.random.default_rng([0, i])) for i in range(n)), key=lambda a: a.flops)
    return archs[n // 2]


def archive_throughput(n: int = 2000) -> tuple[float, float, float]:
    s = Sampler("einspace", (3, 16, 16), CPU_BUDGET)
    archs = [s.sample(np.random.default_rng([1, i])) for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp, Archive(os.path.join(tmp, "a.sqlite")) as archive:
        t0 = time.perf_counter()
        for i, a in enumerate(archs):
            ev = Evaluation(a.hash, "bench", "p", i, "ok", {"val_acc": 0.5, "val_loss": 1.0}, "", 1.0, "cpu", "", "")
            archive.add_evaluation(ev, a)
        insert = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for ev in archive.evaluations(task="bench"):
            archive.has_evaluation(ev.arch_hash, "bench", "p", ev.seed)
        lookup = n / (time.perf_counter() - t0)
        archive._arch_cache.clear()
        t0 = time.perf_counter()
        xs, _ = archive.dataset("bench")
        query = len(xs) / (time.perf_counter() - t0)
    return insert, lookup, query


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tasks", default=",".join(OFFLINE))
    ap.add_argument("--steps", type=int, default=5, help="timed steps per network (default %(default)s)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    print(f"# machine: {machine()}, torch {torch.__version__}, {args.threads} threads")
    for name in args.tasks.split(","):
        task = get_task(name)
        for seed in SEED_SETS["mixed"]:
            try:
                arch = get_seed(seed, task.input_shape)
            except ValueError as exc:  # a seed that has no derivation for this input
                print(f"# {name} {seed}: skipped ({exc})")
                continue
            print(f"epoch {name} {seed}: {seconds_per_epoch(arch, task, args.steps):.2f} s/epoch", flush=True)
        arch = median_architecture(task)
        print(f"epoch {name} median-random ({arch.flops / 1e6:.2f} MFLOPs): "
              f"{seconds_per_epoch(arch, task, max(args.steps, 20)):.3f} s/epoch", flush=True)
    insert, lookup, query = archive_throughput()
    print(f"archive insert: {insert:,.0f} evaluations/s")
    print(f"archive lookup: {lookup:,.0f} evaluations/s")
    print(f"archive dataset query: {query:,.0f} architectures/s")


if __name__ == "__main__":
    main()
