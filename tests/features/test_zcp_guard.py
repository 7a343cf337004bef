"""The zero-cost-proxy guards: size budgets checked before a network is built, and the safety timeout."""

from __future__ import annotations

import logging
import math
import resource
import sys
import time

import numpy as np
import pytest
import torch
from torch import nn

from features.pipeline import make_featuriser
from features.zcp import ALL, MAX_FLOPS, MAX_MEMORY_MB, MAX_PARAMS, ZeroCostProxies, compute_proxies, over_budget
from features.zcp.guard import proxy_memory_mb
from nas.grammar import Budget
from nas.sampler import sample_architecture

UNLIMITED = dict(max_memory_mb=None, max_params=None, max_flops=None, max_seconds=None)


def _task(n: int = 24):
    from data.tasks import Split, Task

    rng = np.random.default_rng(0)

    def split(m: int) -> Split:
        return Split(rng.normal(2.0, 3.0, (m, 3, 16, 16)).astype(np.float32), rng.integers(0, 4, m).astype(np.int64))

    return Task(name="tiny", input_shape=(3, 16, 16), num_classes=4, train=split(n), valid=split(4), test=split(4))


def _mib(ru_maxrss: int) -> float:
    return ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)  # bytes on macOS, KiB on Linux


def _rss_now_mib() -> float | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return None


def _giant(reason: str):
    """An architecture sampled under the default budget whose proxies would be refused for ``reason``."""
    for seed in range(200):
        try:
            arch = sample_architecture(seed, "einspace", (3, 16, 16), Budget())
        except Exception:  # noqa: BLE001 - some draws do not fit the input; the next seed
            continue
        why = over_budget(arch, 4, 64, ALL)
        if why is not None and why.startswith(reason):
            return arch
    raise AssertionError(f"no default-budget architecture over the {reason!r}")


@pytest.mark.parametrize("reason", ["over parameter budget", "over memory budget"])
def test_a_huge_architecture_gets_nan_proxies_in_seconds_and_bounded_memory(reason, caplog):
    arch = _giant(reason)
    zc = ZeroCostProxies(task=_task(64), batch_size=64)
    assert proxy_memory_mb(arch, 4, 64, ALL) > 10 * 1024  # estimated to many GB
    before_peak, before_now = _mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss), _rss_now_mib()
    start = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="features.zcp"):
        X = zc.transform([arch])
    seconds = time.perf_counter() - start
    after_peak = _mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    # the new peak is at most 500 MiB above what the process held when the transform started
    baseline = max(before_peak, before_now + 500) if before_now is not None else before_peak + 500
    print(f"{reason}: {seconds:.3f} s, peak RSS {before_peak:.0f} -> {after_peak:.0f} MiB "
          f"(RSS at start {before_now} MiB)")
    assert X.shape == (1, len(ALL)) and np.isnan(X).all()
    assert seconds < 10 and after_peak <= baseline
    records = [r for r in caplog.records if arch.hash[:12] in r.getMessage()]
    assert len(records) == 1 and reason in records[0].getMessage()  # the reason, logged once


def test_a_small_network_gets_the_same_finite_proxies_with_and_without_the_guards():
    from nas.grammar import Budget as B

    archs = [sample_architecture(seed, "einspace", (3, 16, 16), B(max_params=50_000)) for seed in range(3)]
    task = _task()
    guarded = ZeroCostProxies(task=task, batch_size=8).transform(archs)
    unguarded = ZeroCostProxies(task=task, batch_size=8, **UNLIMITED).transform(archs)
    np.testing.assert_array_equal(guarded, unguarded)  # bit-identical, NaN (nwot without ReLU) in the same places
    assert np.isfinite(guarded[:, [ALL.index(n) for n in ("grad_norm", "snip", "synflow", "params", "flops")]]).all()


def test_defaults_admit_the_cpu_budget_and_nas_bench_201():
    from nas.cells import cell_architecture, from_nb201_cell
    from nas.search import CPU_BUDGET

    shapes = [(3, 16, 16), (3, 6, 7), (1, 27, 18), (1, 24, 24), (3, 32, 32)]
    archs = []
    for shape in shapes:
        for seed in range(60):
            try:
                archs.append(sample_architecture(seed, "einspace", shape, CPU_BUDGET))
            except Exception:  # noqa: BLE001 - a draw that does not fit the input
                continue
    # the largest estimate among 21,000 CPU-budget samples (19 GiB at batch 64 with grasp)
    archs.append(sample_architecture(1178, "einspace", (1, 24, 24), CPU_BUDGET))
    assert proxy_memory_mb(archs[-1], 10, 64, ALL) > 16 * 1024
    for ops in ("nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3", "skip_connect"):
        archs += [cell_architecture([ops] * 6), from_nb201_cell([ops] * 6)]
    refused = {a.to_string(): over_budget(a, 10, 64, ALL) for a in archs}
    assert [r for r in refused.values() if r is not None] == []
    assert len(archs) > 200


def test_the_limits_are_parameters_passed_through_the_pipeline_and_checked():
    task = _task()
    zc = make_featuriser("zcp", task, max_memory_mb=1.0, max_params=10, max_flops=None, max_seconds=5)
    params = zc.get_params()
    assert (params["max_memory_mb"], params["max_params"], params["max_flops"], params["max_seconds"]) == (1.0, 10, None, 5)
    defaults = ZeroCostProxies(task=task).get_params()
    assert (defaults["max_memory_mb"], defaults["max_params"], defaults["max_flops"]) == (MAX_MEMORY_MB, MAX_PARAMS,
                                                                                          MAX_FLOPS)
    arch = sample_architecture(0, "einspace", (3, 16, 16), Budget(max_params=50_000))
    assert over_budget(arch, 4, 8, ALL, max_memory_mb=1e-3).startswith("over memory budget")
    assert over_budget(arch, 4, 8, ALL, max_memory_mb=None, max_params=1).startswith("over parameter budget")
    assert over_budget(arch, 4, 8, ALL, max_memory_mb=None, max_params=None, max_flops=1).startswith("over FLOP")
    assert over_budget(arch, 4, 8, ALL, max_memory_mb=None, max_params=None, max_flops=None) is None
    for bad in (0, -1.0, float("nan"), "big", True):
        with pytest.raises(ValueError, match="max_seconds must be a positive number or None"):
            ZeroCostProxies(task=task, max_seconds=bad).fit([])


class _Slow(nn.Module):
    """A network whose first module sleeps: the deadline fires at the next module's forward."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.wait = nn.Identity()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        x = self.wait(x)
        time.sleep(self.seconds)
        return self.fc(x.flatten(1))


def test_the_safety_timeout_makes_unfinished_proxies_nan_with_its_own_reason_logged_once(caplog):
    torch.manual_seed(0)
    net = _Slow(0.3)
    x, y = torch.randn(4, 6), torch.tensor([0, 1, 2, 0])
    with caplog.at_level(logging.WARNING, logger="features.zcp"):
        r = compute_proxies(net, x, y, 3, ALL, max_seconds=0.1)
    assert all(math.isnan(v) for v in r.values())
    timeouts = [rec.getMessage() for rec in caplog.records if "timeout" in rec.getMessage()]
    assert len(timeouts) == 1 and "0.1 s safety limit" in timeouts[0]
    # without the limit the same network gives its proxies; the limit does not change values
    net.seconds = 0.0
    plain = compute_proxies(net, x, y, 3, ("grad_norm", "snip", "params"))
    limited = compute_proxies(net, x, y, 3, ("grad_norm", "snip", "params"), max_seconds=60)
    assert plain == limited and all(math.isfinite(v) for v in plain.values())
