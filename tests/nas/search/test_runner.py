"""The search runner on the NAS-Bench-201 look-up task (evaluations are instant), plus one tiny einspace run."""

from __future__ import annotations

import json
import logging
import sys
import time
from concurrent.futures import Future

import numpy as np
import pytest

from tests.nas.search.test_strategies import beaten_only_by_known

from data.archive import Archive, ArchiveError
from data.evaluate import run_job
from data.tasks import Split, Task, register_task, unregister_task
from data.training import TrainingProtocol
from nas.architecture import Architecture
from nas.grammar.nb201 import cell_ops
from nas.sampler import Sampler
from nas.search import (
    CPU_BUDGET,
    SerialExecutor,
    RandomSearch,
    RegularizedEvolution,
    SurrogateFilteredEvolution,
    SurrogateObjective,
    make_dask_executor,
    run_history,
    run_search,
)
from nas.search.report import best_so_far, compare, plot_best_so_far

TASK = "nb201-cifar10"
SHAPE = (3, 32, 32)


@pytest.fixture(scope="module")
def sampler() -> Sampler:
    from data.tasks import get_task

    try:
        get_task(TASK)
    except FileNotFoundError as exc:
        pytest.skip(f"NB201 data not available: {exc}")
    return Sampler("nb201", SHAPE)


@pytest.fixture
def archive(tmp_path):
    with Archive(tmp_path / "archive.db") as a:
        yield a


class ConvCount:
    """Stub surrogate: the number of 3x3 convolutions in the cell."""

    def fit(self, archs, y):
        return self

    def predict(self, archs):
        return np.array([cell_ops(a).count("nor_conv_3x3") for a in archs], dtype=float)


class CountingExecutor(SerialExecutor):
    """Runs jobs in-process and remembers which architectures it trained."""

    def __init__(self) -> None:
        self.hashes: list[str] = []

    def submit(self, fn, /, *args, **kwargs):
        self.hashes.append(Architecture.from_json(args[0].arch_json).hash)
        return super().submit(fn, *args, **kwargs)


class FlakyExecutor(CountingExecutor):
    """A worker 'dies' (the future raises) on the chosen submissions, or always for one architecture."""

    def __init__(self, fail_calls=(), fail_hash: str | None = None) -> None:
        super().__init__()
        self.fail_calls = set(fail_calls)
        self.fail_hash = fail_hash

    def submit(self, fn, /, *args, **kwargs):
        h = Architecture.from_json(args[0].arch_json).hash
        self.hashes.append(h)
        if len(self.hashes) in self.fail_calls or h == self.fail_hash:
            fut: Future = Future()
            fut.set_exception(RuntimeError("worker killed"))
            return fut
        return SerialExecutor.submit(self, fn, *args, **kwargs)


def re_factory(sampler, seed=0):
    return lambda: RegularizedEvolution(sampler, seed, population_size=10, tournament_size=3)


def sfe_factory(sampler, seed=0):
    return lambda: SurrogateFilteredEvolution(sampler, seed, ConvCount(), population_size=10, tournament_size=3,
                                              start_after=10, n_candidates=8, k=3, refit_every=7)


def go(strategy, archive, run="r", budget=30, **kw):
    kw.setdefault("progress", False)
    return run_search(strategy, TASK, archive, run, budget_evals=budget, **kw)


def hashes(archive, run):
    return [e.arch_hash for e in run_history(archive, run)]


# -- budgets and duplicates ---------------------------------------------------------------------------


def test_budget_respected_and_duplicates_never_trained_twice(sampler, archive):
    ex = CountingExecutor()
    summary = go(re_factory(sampler), archive, "r1", 40, executor=ex)
    entries = run_history(archive, "r1")
    assert len(entries) == summary["evaluations"] == 40
    c = summary["counts"]
    assert c["trained"] == len(ex.hashes) == len(set(ex.hashes)) == archive.count(run="r1")
    assert c["trained"] + c["duplicates"] == 40 and c["duplicates"] > 0  # RE re-finds cells in NB201
    assert summary["best"]["val_acc"] == max(e.evaluation.val_acc for e in entries)
    assert summary["session"]["stopped"] == "budget_evals"
    # a second run with the same seed asks the same cells: all are looked up, none trained
    ex2 = CountingExecutor()
    s2 = go(re_factory(sampler), archive, "r2", 40, executor=ex2)
    assert ex2.hashes == [] and s2["counts"]["duplicates"] == 40
    assert hashes(archive, "r2") == hashes(archive, "r1")


@pytest.mark.parametrize("factory", [re_factory, sfe_factory], ids=["re", "sfe-topk"])
def test_resume_adds_exactly_the_missing_evaluations(sampler, tmp_path, factory):
    with Archive(tmp_path / "a.db") as a:
        go(factory(sampler), a, "run", 30)
        before = run_history(a, "run")
        ex = CountingExecutor()
        summary = go(factory(sampler), a, "run", 60, executor=ex)
        after = run_history(a, "run")
        assert summary["session"]["new"] == 30 and len(after) == 60
        assert after[:30] == before  # history of the first session untouched
        assert len(ex.hashes) == sum(e.source == "trained" for e in after[30:])
        assert not set(ex.hashes) & {e.arch_hash for e in before}
        assert go(factory(sampler), a, "run", 60)["session"]["new"] == 0  # nothing left to do
    with Archive(tmp_path / "b.db") as b:  # one uninterrupted run gives the same search
        go(factory(sampler), b, "run", 60)
        assert [e.arch_hash for e in run_history(b, "run")] == [e.arch_hash for e in after]


def test_evaluation_stored_but_not_linked_is_recovered(sampler, archive):
    go(re_factory(sampler), archive, "r", 10)
    archive._db.execute("DELETE FROM search_history WHERE run = 'r' AND seq = 9")  # killed between the writes
    ex = CountingExecutor()
    summary = go(re_factory(sampler), archive, "r", 10, executor=ex)
    entries = run_history(archive, "r")
    assert ex.hashes == [] and len(entries) == 10 and summary["session"]["new"] == 0
    assert entries[9].source == "trained" and entries[9].info["kind"] == "recovered"


def test_each_evaluation_is_written_as_soon_as_it_completes(sampler, archive):
    seen = []

    class Checking(SerialExecutor):
        def submit(self, fn, /, *args, **kwargs):
            with Archive(archive.path) as other:  # a second connection, as a killed process would leave it
                seen.append((other.count(run="r"), len(run_history(other, "r"))))
            return super().submit(fn, *args, **kwargs)

    summary = go(re_factory(sampler), archive, "r", 20, executor=Checking())
    trained = [e for e in run_history(archive, "r") if e.source == "trained"]
    assert [n for n, _ in seen] == list(range(len(trained)))  # every earlier result already on disk
    assert all(linked >= stored for stored, linked in seen)
    assert summary["counts"]["trained"] == len(seen)


def test_wall_clock_budget(sampler, archive):
    s = run_search(re_factory(sampler), TASK, archive, "t", budget_seconds=0.0, progress=False)
    assert s["evaluations"] == 0 and s["session"]["stopped"] == "budget_seconds"

    class Slow(SerialExecutor):
        def submit(self, fn, /, *args, **kwargs):
            time.sleep(0.05)
            return super().submit(fn, *args, **kwargs)

    s = run_search(re_factory(sampler), TASK, archive, "slow", budget_seconds=0.3, executor=Slow(), progress=False)
    assert 1 <= s["evaluations"] < 12 and s["session"]["stopped"] == "budget_seconds"
    assert s["seconds"]["wall_clock"] >= 0.3
    again = run_search(re_factory(sampler), TASK, archive, "slow", budget_seconds=0.3, executor=Slow(), progress=False)
    assert again["session"]["new"] == 0  # the budget counts the run's wall-clock over sessions


# -- failures --------------------------------------------------------------------------------------


def test_candidate_failures_are_recorded_and_the_search_goes_on(sampler, archive):
    class FailingPools(SerialExecutor):
        def submit(self, fn, /, *args, **kwargs):
            def job():
                out = run_job(args[0])
                if "avg_pool_3x3" in Architecture.from_json(args[0].arch_json).to_string():
                    out |= {"status": "failed", "metrics": {}, "reason": "synthetic failure"}
                return out

            return super().submit(job)

    summary = go(re_factory(sampler), archive, "f", 30, executor=FailingPools())
    failed = archive.evaluations(run="f", status="failed")
    assert summary["evaluations"] == 30 and summary["counts"]["failed"] >= len(failed) > 0
    assert summary["best"] is not None


def test_worker_error_is_retried_and_the_run_unchanged(sampler, tmp_path, caplog):
    with Archive(tmp_path / "clean.db") as clean:
        go(re_factory(sampler), clean, "r", 20)
        reference = hashes(clean, "r")
    with Archive(tmp_path / "flaky.db") as a, caplog.at_level(logging.WARNING, logger="nas.search.engine"):
        ex = FlakyExecutor(fail_calls={3})
        summary = go(re_factory(sampler), a, "r", 20, executor=ex)
        assert "worker killed" in caplog.text and "submitting it again" in caplog.text
        assert summary["session"]["worker_errors"] == 1 and ex.hashes[2] == ex.hashes[3]
        assert hashes(a, "r") == reference  # retried in place: the search is the same


def test_job_that_keeps_failing_is_skipped(sampler, tmp_path, caplog):
    with Archive(tmp_path / "clean.db") as clean:
        go(re_factory(sampler), clean, "r", 5)
        victim = hashes(clean, "r")[2]
    with Archive(tmp_path / "a.db") as a, caplog.at_level(logging.ERROR, logger="nas.search.engine"):
        ex = FlakyExecutor(fail_hash=victim)
        summary = go(re_factory(sampler), a, "r", 20, executor=ex, max_retries=1)
        assert ex.hashes.count(victim) == 2 and "skipping it" in caplog.text
        assert summary["session"]["skipped"] == 1 and summary["evaluations"] == 20
        assert victim not in hashes(a, "r") and not a.has_evaluation(victim, TASK, summary["protocol"], 0)


def test_too_many_worker_errors_abort(sampler, archive):
    class Dead(SerialExecutor):
        def submit(self, fn, /, *args, **kwargs):
            fut: Future = Future()
            fut.set_exception(OSError("no workers"))
            return fut

    with pytest.raises(RuntimeError, match="in a row raised; last error: OSError"):
        go(re_factory(sampler), archive, "dead", 20, executor=Dead())
    assert run_history(archive, "dead") == []


# -- surrogate strategies through the runner ---------------------------------------------------------


def test_filtered_run_trains_only_top_k_candidates(sampler, archive):
    strategy = sfe_factory(sampler)()
    go(strategy, archive, "sfe", 40)
    batches = {b.start: b for b in strategy.batches}
    for e in run_history(archive, "sfe")[10:]:
        assert e.info["kind"] == "filtered"
        b = batches[e.info["batch"]]
        assert e.arch_hash == b.candidates[b.chosen[e.info["position"]]].hash
        assert beaten_only_by_known(strategy, b, b.chosen[e.info["position"]])


def test_surrogate_objective_trains_only_top_k(sampler, archive):
    ex = CountingExecutor()
    strategy = SurrogateObjective(sampler, 0, ConvCount(), population_size=10, tournament_size=3, steps=50, top_k=3)
    summary = run_search(strategy, TASK, archive, "obj", executor=ex, progress=False)
    assert summary["session"]["stopped"] == "strategy" and summary["evaluations"] == 3
    assert len(ex.hashes) == 3 and summary["counts"]["proposed"] == 60
    assert [r["hash"] for r in strategy.records] == ex.hashes
    assert all(r["val_acc"] is not None and r["predicted"] >= 0 for r in strategy.records)


# -- configuration, summary, report ------------------------------------------------------------------


def test_same_run_name_with_another_configuration_is_refused(sampler, archive):
    go(re_factory(sampler, seed=0), archive, "r", 5)
    with pytest.raises(ArchiveError, match="different configuration"):
        go(re_factory(sampler, seed=1), archive, "r", 10)
    with pytest.raises(ValueError, match="input"):
        go(lambda: RandomSearch(Sampler("nb201", (3, 16, 16)), 0), archive, "other", 5)


def test_summary_json_and_report(sampler, archive, tmp_path):
    go(re_factory(sampler), archive, "re", 25, run_dir=tmp_path / "re")
    go(sfe_factory(sampler), archive, "sfe", 25)
    written = json.loads((tmp_path / "re" / "summary.json").read_text())
    assert written["evaluations"] == 25 and written["best"]["hash"] and set(written["seconds"]) == {
        "training", "strategy", "surrogate", "wall_clock"}
    curve = best_so_far(archive, "re")
    assert np.all(np.diff(curve["best"]) >= 0) and curve["trained"][-1] == written["counts"]["trained"]
    fig = plot_best_so_far([(archive, "re"), (archive.path, "sfe", "filtered")], tmp_path / "best.png")
    assert (tmp_path / "best.png").stat().st_size > 1000 and len(fig.axes[0].lines) == 2
    table = compare([(archive, "re"), (archive.path, "sfe", "filtered")])
    lines = table.strip().splitlines()
    assert len(lines) == 4 and lines[0].startswith("| run | strategy") and lines[3].startswith("| filtered |")


# -- executors -----------------------------------------------------------------------------------------


def test_dask_local_cluster_gives_the_same_archive(sampler, tmp_path):
    pytest.importorskip("distributed")
    with Archive(tmp_path / "local.db") as local:
        go(re_factory(sampler), local, "r", 15)
        expected = [(e.arch_hash, dict(e.evaluation.metrics), e.source) for e in run_history(local, "r")]
    executor, close = make_dask_executor(workers=2)
    try:
        with Archive(tmp_path / "dask.db") as a:
            go(re_factory(sampler), a, "r", 15, executor=executor, max_in_flight=1)
            got = [(e.arch_hash, dict(e.evaluation.metrics), e.source) for e in run_history(a, "r")]
            assert got == expected
            summary = go(re_factory(sampler, seed=5), a, "two", 15, executor=executor, max_in_flight=2)
            assert summary["evaluations"] == 15
            evaluated = [e.arch_hash for e in a.evaluations()]
            assert len(evaluated) == len(set(evaluated))  # nothing trained twice, even with two in flight
    finally:
        close()


def test_dask_missing_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"surrogate-nas\[dask\]"):
        make_dask_executor()


def test_process_pool_with_two_in_flight(sampler, archive):
    summary = go(lambda: RandomSearch(sampler, 3), archive, "pool", 8, workers=2)
    assert summary["evaluations"] == 8 and summary["counts"]["trained"] + summary["counts"]["duplicates"] == 8


def test_einspace_search_trains_real_networks(tmp_path, request):
    rng = np.random.default_rng(0)

    def split(n):
        y = rng.integers(0, 3, size=n)
        x = (rng.normal(size=(n, 3, 8, 8)) + y[:, None, None, None]).astype(np.float32)
        return Split(x, y.astype(np.int64))

    tiny = Task("search-test-tiny", (3, 8, 8), 3, split(64), split(32), split(32), {"source": "test"})
    register_task("search-test-tiny", lambda seed=0: tiny, "tiny synthetic task for the search tests")
    request.addfinalizer(lambda: unregister_task("search-test-tiny"))
    protocol = TrainingProtocol(name="tiny", epochs=1, batch_size=32, train_subset=64, valid_subset=32,
                                max_seconds=30.0)
    smp = Sampler("einspace", (3, 8, 8), CPU_BUDGET)
    with Archive(tmp_path / "e.db") as a:
        summary = run_search(lambda: RandomSearch(smp, 0), "search-test-tiny", a, "e", budget_evals=2,
                             protocol=protocol, progress=False)
        assert summary["evaluations"] == 2 and summary["counts"]["trained"] == 2
        assert all(e.evaluation.seconds > 0 and e.evaluation.device != "table" for e in run_history(a, "e"))
