"""NaN proxies are summarised per step (one line, counts by reason), not warned once per network."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from data.tasks import Split, Task
from features.zcp import ZeroCostProxies, compute
from features.proxy_warnings import category, summarised
from nas.grammar import Budget
from nas.sampler import sample_architecture


def _task() -> Task:
    rng = np.random.default_rng(0)

    def split(m: int) -> Split:
        return Split(rng.normal(0.0, 1.0, (m, 3, 8, 8)).astype(np.float32), rng.integers(0, 4, m).astype(np.int64))

    return Task(name="tiny8", input_shape=(3, 8, 8), num_classes=4, train=split(16), valid=split(4), test=split(4))


def _archs(n: int):
    return [sample_architecture(seed, "einspace", (3, 8, 8), Budget(max_params=20_000)) for seed in range(n)]


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("features")]


def test_categories():
    assert category("over memory budget: estimated 30,000 MiB > 24,576 MiB") == "over memory budget"
    assert category("timeout: the proxies ran past the 1 s safety limit (1.2 s)", "grasp") == "timeout"
    assert category("the value is not finite (inf)", "synflow") == "non-finite synflow"
    assert category("R = Σ outputs is inf in float64 (overflow)", "synflow") == "non-finite synflow"
    assert category("correlation of the input Jacobians is undefined (a sample's Jacobian is constant)",
                    "jacob_cov") == "jacob_cov: correlation of the input Jacobians is undefined"


def test_a_step_ends_with_one_summary_line_counting_by_reason(caplog, monkeypatch):
    archs = _archs(8)
    task = _task()
    sizes = sorted(a.num_params + a.head_params(4) for a in archs)
    limit = sizes[4]  # the 3 largest are over it (distinct sizes), the rest within
    over = sum(s > limit for s in sizes)
    assert 1 <= over < len(archs)
    calls = {"n": 0}
    original = compute.STANDALONE["synflow"]

    def flaky_synflow(inp):  # every second network computed gets an infinite synflow
        calls["n"] += 1
        return math.inf if calls["n"] % 2 == 0 else original(inp)

    monkeypatch.setitem(compute.STANDALONE, "synflow", flaky_synflow)
    zc = ZeroCostProxies(task=task, proxies=("grad_norm", "synflow"), batch_size=8, max_params=limit)
    with caplog.at_level(logging.DEBUG, logger="features.zcp"):
        X = zc.transform(archs)
    computed = len(archs) - over
    non_finite = computed // 2
    assert np.isnan(X[:, 1]).sum() == over + non_finite
    (line,) = _warnings(caplog)  # one line for the whole call; the per-network lines went to DEBUG
    assert line.startswith(f"zero-cost proxies: {over + non_finite} of 8 networks gave NaN (")
    assert f"{over} over parameter budget" in line and f"{non_finite} non-finite synflow" in line
    assert "first: " in line and "\n" not in line
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG and "are NaN" in r.getMessage()]
    assert len(debug) == over


def test_summaries_nest_into_one_line_per_step(caplog):
    archs = _archs(4)
    zc = ZeroCostProxies(task=_task(), proxies=("grad_norm",), batch_size=8, max_params=1)
    with caplog.at_level(logging.WARNING, logger="features.zcp"):
        with summarised():
            zc.transform(archs[:2])
            zc.transform(archs[2:])
    (line,) = _warnings(caplog)
    assert line.startswith("zero-cost proxies: 4 of 4 networks gave NaN (4 over parameter budget)")


def test_no_line_when_every_network_gives_its_proxies(caplog):
    zc = ZeroCostProxies(task=_task(), proxies=("grad_norm", "params"), batch_size=8)
    with caplog.at_level(logging.WARNING, logger="features.zcp"):
        X = zc.transform(_archs(3))
    assert np.isfinite(X).all() and _warnings(caplog) == []


def test_outside_a_step_each_nan_is_still_warned(caplog, monkeypatch):
    import torch

    monkeypatch.setitem(compute.STANDALONE, "synflow", lambda inp: math.inf)
    net = torch.nn.Linear(3, 2)
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 0, 1])
    with caplog.at_level(logging.WARNING, logger="features.zcp"):
        r = compute.compute_proxies(net, x, y, 2, ("synflow",))
    assert math.isnan(r["synflow"])
    assert any("'synflow'" in m and "not finite" in m for m in _warnings(caplog))


@pytest.mark.parametrize("n", [1])
def test_a_single_network_summary_names_it(caplog, n):
    arch = _archs(n)[0]
    zc = ZeroCostProxies(task=_task(), proxies=("grad_norm",), batch_size=8, max_params=1)
    with caplog.at_level(logging.WARNING, logger="features.zcp"):
        zc.transform([arch])
    (line,) = _warnings(caplog)
    assert "1 of 1 network gave NaN (1 over parameter budget)" in line and arch.hash[:12] in line


def test_a_cached_featurisation_in_chunks_gives_one_line(caplog):
    from features.cache import CachedFeaturiser, MemoryStore

    zc = ZeroCostProxies(task=_task(), proxies=("grad_norm",), batch_size=8, max_params=1)
    cached = CachedFeaturiser(zc, MemoryStore(), "tiny8", chunk=2)
    with caplog.at_level(logging.WARNING, logger="features.zcp"):
        cached.transform(_archs(5))
    (line,) = _warnings(caplog)
    assert line.startswith("zero-cost proxies: 5 of 5 networks gave NaN (5 over parameter budget)")
