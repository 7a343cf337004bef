"""``nas quickstart``: the whole loop end to end at toy sizes (three searches at equal budgets, the filtered one
with the surrogate fitted in step 2, the transfer one with the source archive less the quickstart's task), the
same table for the same seed, failures by reason, and how the command maps its options."""

import json

import pytest

import data.evaluate
from data.archive import Archive
from data.tasks import register_task, unregister_task
from data.training import Evaluation
from nas.cli import main
from nas.cli import quickstart
from nas.cli.quickstart import QuickstartConfig, describe_failures, failure_kind, run_quickstart
from nas.sampler import Sampler
from nas.search import run_history
from nas.search.budgets import CPU_BUDGET
from surrogates import sources
from surrogates.persistence import load_surrogate
from tests.toys import toy_task

TARGET, SOURCES = "quickstart-toy", ("quickstart-src-a", "quickstart-src-b")
SHAPE = (3, 8, 8)




@pytest.fixture(scope="module")
def toy_tasks():
    for i, name in enumerate((TARGET, *SOURCES)):
        register_task(name, lambda seed=0, task=toy_task(name, i, SHAPE): task, "toy task of the quickstart tests")
    yield
    for name in (TARGET, *SOURCES):
        unregister_task(name)


@pytest.fixture(scope="module")
def source_archive(toy_tasks, tmp_path_factory):
    """Made-up evaluations of the two source tasks and of the quickstart's own task (which must be left out)."""
    path = tmp_path_factory.mktemp("sources") / "sources.sqlite"
    archs = [Sampler("einspace", SHAPE, CPU_BUDGET).sample(500 + i) for i in range(30)]
    with Archive(path) as archive:
        for task, part, scale in ((SOURCES[0], archs[:12], 1.0), (SOURCES[1], archs[12:24], 0.5),
                                  (TARGET, archs[24:], 0.9)):
            for arch in part:
                acc = scale * (0.2 + 0.01 * (arch.num_nodes % 40))
                archive.add_evaluation(Evaluation(arch.hash, task, "p", 0, "ok", {"val_acc": acc}), arch)
    return path


def flaky_training(real):
    """Training in which some architectures fail, by their hash: a non-finite loss, or the safety timeout."""
    def train(arch, task, protocol, seed=0, device="cpu"):
        reason = {0: "non-finite loss (nan) at epoch 1, step 1",
                  1: "over time budget: 700.0 s > 600 s at epoch 1, step 1"}.get(int(arch.hash, 16) % 4)
        if reason is None:
            return real(arch, task, protocol, seed=seed, device=device)
        name = getattr(task, "name", task)
        return Evaluation(arch.hash, name, protocol.key, seed, "failed", {}, reason, 0.0)
    return train


def toy_config(out, source_archive) -> QuickstartConfig:
    return QuickstartConfig(task=TARGET, out=str(out), archive_size=16, search_budget=8, population=4, tournament=2,
                            n_candidates=6, k=2, refit_every=4, protocol="smoke", features="graf", workers=1,
                            source_archive=str(source_archive))


def make_training_flaky(mp: pytest.MonkeyPatch) -> None:
    """Some trainings fail (the searches run in this process, with ``workers=1``)."""
    mp.setattr(data.evaluate, "train_and_evaluate", flaky_training(data.evaluate.train_and_evaluate))


@pytest.fixture(scope="module")
def first_run(toy_tasks, source_archive, tmp_path_factory):
    """One toy quickstart in which some trainings fail, and what it printed."""
    printed = []
    cfg = toy_config(tmp_path_factory.mktemp("qs") / "a", source_archive)
    with pytest.MonkeyPatch.context() as mp:
        make_training_flaky(mp)
        mp.setattr(quickstart, "print", printed.append, raising=False)
        out = run_quickstart(cfg)
    return cfg, out, "\n".join(printed)


def test_failure_kinds_drop_the_numbers():
    assert failure_kind("over time budget: 612.0 s > 600 s at epoch 3, step 2") == "over time budget"
    assert failure_kind("non-finite loss (inf) at epoch 2, step 42") == "non-finite loss"
    assert failure_kind("over memory budget: estimated 5,000 MiB at batch 32 > 4,096 MiB") == "over memory budget"
    assert describe_failures(["non-finite loss (nan) at epoch 1, step 1", "over time budget: 1 s > 0 s",
                              "non-finite loss (inf) at epoch 2, step 3"]) == "2 non-finite loss, 1 over time budget"
    assert describe_failures([]) == "none"


@pytest.mark.e2e
def test_quickstart_compares_three_searches_at_equal_budgets(first_run):
    cfg, out, printed = first_run
    table = out["table"]
    for label in ("| RE |", "| filtered RE |", "| transfer-filtered RE |"):
        assert label in table
    assert set(out["best"]) == {"re", "filtered", "transfer"}
    for name in ("re", "filtered", "transfer"):
        with Archive(f"{cfg.out}/{name}/archive.sqlite", readonly=True) as archive:
            assert len(run_history(archive, name)) == cfg.search_budget  # equal training budgets
    assert "[3/4]" not in printed and printed.count("[3/6]") == 1 and printed.count("[6/6]") == 1
    assert "One seed is an anecdote" in printed and "nas run examples/quickstart.toml" in printed
    assert json.loads(open(f"{cfg.out}/quickstart.json").read())["task"] == TARGET


@pytest.mark.e2e
def test_filtered_search_uses_the_surrogate_fitted_in_step_2(first_run):
    cfg, out, _ = first_run
    with Archive(f"{cfg.out}/filtered/archive.sqlite", readonly=True) as archive:
        history = run_history(archive, "filtered")
        first = history[0]
        arch = archive.architecture(first.arch_hash)
        config = archive.runs()[0]["config"]["strategy"]
    assert first.info["kind"] == "filtered" and first.info["batch"] == 0  # filtered from the very first step
    assert config["prefit"] is True
    saved = load_surrogate(out["surrogate"]["dir"], task=TARGET)  # the forest step 2 fitted, scored and saved
    assert saved.predict([arch])[0] == pytest.approx(first.info["predicted"], abs=1e-9)
    assert [b["name"] for b in saved.source_blocks_] == [TARGET]
    # the time-outs of the archive are left out of its rows; the other failure counts as accuracy 0
    with Archive(out["archive"], readonly=True) as archive:
        evs = archive.evaluations(task=TARGET)
    timeouts = sum(e.reason.startswith("over time budget") for e in evs)
    assert timeouts > 0 and out["surrogate"]["n_train"] + out["surrogate"]["n_test"] <= len(evs) - timeouts


@pytest.mark.e2e
def test_transfer_search_leaves_the_quickstarts_task_out_of_the_sources(first_run):
    _, out, _ = first_run
    assert sorted(out["sources"]) == sorted(SOURCES)
    assert "24 networks of 2 other tasks" in out["table"]


@pytest.mark.e2e
def test_failures_are_printed_by_reason_for_each_run(first_run):
    _, out, printed = first_run
    assert "non-finite loss" in printed and "over time budget" in printed  # the archive's failures (step 1)
    rows = [line for line in out["table"].splitlines() if line.startswith("| ") and "search" not in line]
    assert len(rows) == 3
    assert all(row.rstrip(" |").split("|")[-1].strip() for row in rows)  # a failures-by-reason cell each
    assert any("non-finite loss" in row or "over time budget" in row for row in rows)


@pytest.mark.e2e
def test_the_same_seed_prints_the_same_table_and_a_rerun_resumes(first_run, tmp_path, monkeypatch):
    cfg, out, _ = first_run
    make_training_flaky(monkeypatch)
    other = run_quickstart(toy_config(tmp_path / "b", cfg.source_archive), progress=False)
    assert other["table"] == out["table"] and other["tau"] == out["tau"]
    again = run_quickstart(cfg, progress=False)  # everything is in the archives: nothing is trained again
    assert again["table"] == out["table"] and again["seconds"] < out["seconds"]


@pytest.mark.e2e
def test_without_a_source_archive_the_transfer_row_says_so(toy_tasks, monkeypatch, tmp_path):
    monkeypatch.setattr(sources, "SHIPPED_ARCHIVE", tmp_path / "missing.sqlite")
    cfg = QuickstartConfig(task=TARGET, out=str(tmp_path / "qs"), archive_size=10, search_budget=4, population=2,
                           tournament=2, n_candidates=4, k=2, refit_every=2, protocol="smoke", features="graf",
                           workers=1)
    out = run_quickstart(cfg, progress=False)
    row = next(line for line in out["table"].splitlines() if line.startswith("| transfer-filtered RE |"))
    assert "not run: the shipped source archive" in row and set(out["best"]) == {"re", "filtered"}


def test_quickstart_options_reach_the_config(monkeypatch, tmp_path, capsys):
    seen = []
    monkeypatch.setattr(quickstart, "run_quickstart", lambda cfg: seen.append(cfg))
    assert main(["quickstart", "--task", "gutenberg-mini", "-o", str(tmp_path), "--archive-size", "7",
                 "--budget", "5", "--workers", "1", "--seed", "3", "--source-archive", "s.sqlite"]) == 0
    assert seen == [QuickstartConfig(task="gutenberg-mini", out=str(tmp_path), archive_size=7, search_budget=5,
                                     workers=1, seed=3, source_archive="s.sqlite")]
    assert main(["quickstart", "--out", str(tmp_path / "old")]) == 0  # the old spelling, for one release
    assert seen[-1].out == str(tmp_path / "old") and "--out is deprecated" in capsys.readouterr().err


def test_quickstart_has_no_wall_clock_limit_per_candidate_only_a_safety_net():
    cfg = QuickstartConfig()
    assert cfg.max_seconds >= 600 and cfg.max_flops <= 3e6  # size budgets keep candidates CPU-sized
    budget = quickstart.sampling_budget(cfg)
    assert budget.max_flops == cfg.max_flops and budget.max_layers == cfg.max_layers
    assert budget.max_params <= CPU_BUDGET.max_params
