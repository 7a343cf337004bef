"""experiments/size_of_best.py: sizes of a task's best networks and of the networks a search run trained."""

from __future__ import annotations

import pytest

from data.archive import Archive
from data.training import Evaluation
from nas.sampler import Sampler
from nas.search.budgets import CPU_BUDGET


def _archs(n: int) -> list:
    sampler = Sampler("einspace", (3, 8, 8), CPU_BUDGET)
    return [sampler.sample(700 + i) for i in range(n)]


def _ok(arch, task: str, acc: float, params: float, flops: float, seconds: float = 1.0) -> Evaluation:
    return Evaluation(arch.hash, task, "p", 0, "ok", {"val_acc": acc, "params": params, "flops": flops},
                      seconds=seconds)


def test_top_decile_against_all_and_rank_correlation(tmp_path):
    from experiments.size_of_best import task_sizes

    archs = _archs(21)
    with Archive(tmp_path / "a.sqlite") as archive:
        # "big": accuracy rises with size; 20 networks, the top decile is the best 2 (params 19 and 20 → 19.5).
        for i, arch in enumerate(archs[:20], start=1):
            archive.add_evaluation(_ok(arch, "big", i / 100, params=i, flops=10 * i), arch)
        archive.add_evaluation(Evaluation(archs[20].hash, "big", "p", 0, "failed", {}, "boom"), archs[20])
        # "small": accuracy falls with size.
        for i, arch in enumerate(archs[:10], start=1):
            archive.add_evaluation(_ok(arch, "small", 1 - i / 100, params=i, flops=10 * i), arch)
        big, small = task_sizes(archive, "big"), task_sizes(archive, "small")
    assert big["n"] == 20  # the failure is left out
    assert big["params_top"] == pytest.approx(19.5) and big["params_all"] == pytest.approx(10.5)
    assert big["flops_top"] == pytest.approx(195.0) and big["rho_params"] == pytest.approx(1.0)
    assert small["params_top"] == pytest.approx(1.0)  # one network is a tenth of ten
    assert small["rho_flops"] == pytest.approx(-1.0)


def test_run_sizes_count_only_what_the_run_trained(tmp_path):
    from experiments.size_of_best import markdown, run_sizes

    archs = _archs(3)
    path = tmp_path / "language-mini-transfer-s3.sqlite"
    with Archive(path) as archive:
        archive.start_run("transfer", "search", {})
        evs = [_ok(a, "language-mini", 0.5, params=p, flops=10 * p, seconds=s)
               for a, p, s in zip(archs, (100, 300, 200), (2.0, 6.0, 4.0))]
        for seq, (arch, ev) in enumerate(zip(archs, evs)):
            archive.add_evaluation(ev, arch)
            archive.append_history("transfer", seq, ev, "trained", float(seq), 0.0, {})
        archive.append_history("transfer", 3, evs[0], "duplicate", 3.0, 0.0, {})  # a look-up, not a training
    row = run_sizes(str(path))
    assert row == {"task": "language-mini", "variant": "transfer", "seed": 3, "trained": 3, "params": 200.0,
                   "flops": 2000.0, "seconds": 4.0}
    assert run_sizes(str(tmp_path / "other.sqlite")) is None
    text = markdown([], [row], "cmd")
    assert "| language-mini | transfer | 3 | 3 | 200 | 2,000 | 4.0 |" in text
