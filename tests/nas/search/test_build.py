"""Archive builds on the run engine: deterministic candidates by index, resume, duplicates never retrained."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from data.archive import Archive, ArchiveError
from data.tasks import register_task, unregister_task
from data.training import PROTOCOLS
from nas.sampler import Sampler
from nas.search import CPU_BUDGET, MutantSearch, RandomSearch, SerialExecutor, build_archive, evaluate_many
from nas.search.build import SAMPLERS
from tests.data.conftest import make_blobs_task

SMOKE = PROTOCOLS["smoke"].replace(name="unit", train_subset=128, valid_subset=64, batch_size=32, max_seconds=None)
BUDGET = CPU_BUDGET.__class__(max_nodes=40, max_depth=12, max_params=20_000, max_flops=2e6, batch_size=32)


@pytest.fixture(scope="module", autouse=True)
def blobs_registered():
    register_task("blobs-unit", lambda seed=0: make_blobs_task(seed=seed, name="blobs-unit"), "test task")
    yield
    unregister_task("blobs-unit")


def asks(strategy, n):
    return [strategy.ask() for _ in range(n)]


def test_candidates_are_deterministic_by_index():
    s = Sampler("einspace", (3, 8, 8), BUDGET)
    stream = asks(RandomSearch(s, 3), 8)
    assert stream == asks(RandomSearch(s, 3), 8)
    assert stream[7] == s.sample(np.random.default_rng([3, 7]))  # candidate i comes from default_rng([seed, i])
    parent = stream[0]
    mutants = asks(MutantSearch(s, 0, [parent], BUDGET), 2)
    assert mutants[1] != parent and mutants == asks(MutantSearch(s, 0, [parent], BUDGET), 2)
    assert asks(MutantSearch(s, 5, [], BUDGET), 3) == asks(RandomSearch(s, 5), 3)  # no parent yet: random


def test_evaluate_many_same_results_on_any_executor():
    s = Sampler("einspace", (3, 8, 8), BUDGET)
    archs = [s.sample(i) for i in range(4)]
    serial = {a.hash: e for a, e in evaluate_many(archs, "blobs-unit", SMOKE, seed=1, executor=SerialExecutor())}
    with ThreadPoolExecutor(2) as pool:
        threaded = {a.hash: e for a, e in evaluate_many(archs, "blobs-unit", SMOKE, seed=1, executor=pool)}
    assert set(serial) == {a.hash for a in archs}
    for h, e in serial.items():
        assert (e.status, e.metrics.get("val_acc")) == (threaded[h].status, threaded[h].metrics.get("val_acc"))


def test_build_archive_reaches_the_total_and_resumes(tmp_path):
    path = tmp_path / "a.sqlite"
    with Archive(path) as archive:
        counts = build_archive(archive, "blobs-unit", 3, seed=0, protocol=SMOKE, budget=BUDGET, progress=False)
        assert counts["evaluated"] == 3 and counts["total"] == 3
        first = [e.arch_hash for e in archive.evaluations()]
        s = Sampler("einspace", (3, 8, 8), BUDGET)
        assert first == [a.hash for a in asks(RandomSearch(s, 0), 3)]  # the same candidates as before the engine
    with Archive(path) as archive:  # re-running with a larger total goes on where it stopped
        counts = build_archive(archive, "blobs-unit", 5, seed=0, protocol=SMOKE, budget=BUDGET, progress=False)
        assert counts["evaluated"] == 2 and counts["total"] == 5
        hashes = [e.arch_hash for e in archive.evaluations()]
        assert hashes[:3] == first and len(set(hashes)) == 5
        assert archive.history(archive.runs()[0]["name"]) == []  # a build stores evaluations, no search history
        counts = build_archive(archive, "blobs-unit", 5, seed=0, protocol=SMOKE, budget=BUDGET, progress=False)
        assert counts["evaluated"] == 0
        with pytest.raises(ArchiveError, match="different configuration"):
            build_archive(archive, "blobs-unit", 5, seed=0, protocol=SMOKE.replace(lr=0.1), budget=BUDGET,
                          progress=False, run=archive.runs()[0]["name"])


def test_two_builds_differing_only_in_training_seed_are_two_runs(tmp_path):
    with Archive(tmp_path / "a.sqlite") as archive:
        build_archive(archive, "blobs-unit", 2, seed=0, protocol=SMOKE, budget=BUDGET, progress=False)
        counts = build_archive(archive, "blobs-unit", 2, seed=0, train_seed=1, protocol=SMOKE, budget=BUDGET,
                               progress=False)
        names = sorted(r["name"] for r in archive.runs())
        assert counts["evaluated"] == 2 and len(names) == 2 and names[1].endswith(":seed0:train1")
        assert sorted(e.seed for e in archive.evaluations()) == [0, 0, 1, 1]  # same networks, new trainings


def test_build_never_retrains_what_another_run_evaluated(tmp_path):
    with Archive(tmp_path / "a.sqlite") as archive:
        build_archive(archive, "blobs-unit", 3, seed=0, protocol=SMOKE, budget=BUDGET, progress=False)
        # same sampling seed under another run name: the first three candidates are already there
        counts = build_archive(archive, "blobs-unit", 2, seed=0, protocol=SMOKE, budget=BUDGET, progress=False,
                               run="second")
        assert counts["skipped"] >= 3 and counts["evaluated"] == 2
        assert archive.count() == 5 and len({e.arch_hash for e in archive.evaluations()}) == 5


def test_build_with_mutants(tmp_path):
    with Archive(tmp_path / "a.sqlite") as archive:
        build_archive(archive, "blobs-unit", 2, seed=0, protocol=SMOKE, budget=BUDGET, progress=False)
        counts = build_archive(archive, "blobs-unit", 2, seed=1, sampler="mutants", protocol=SMOKE, budget=BUDGET,
                               progress=False)
        assert counts["evaluated"] == 2 and archive.count() == 4


def test_unknown_sampler_is_refused(tmp_path):
    with Archive(tmp_path / "a.sqlite") as archive, pytest.raises(ValueError, match="unknown sampler"):
        build_archive(archive, "blobs-unit", 1, sampler="grid", protocol=SMOKE, budget=BUDGET, progress=False)
    assert SAMPLERS == ("random", "mutants")
