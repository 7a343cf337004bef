"""Transfer from the command line: ``nas surrogate fit --transfer`` on source tasks, ``nas surrogate predict`` for
a task of another input shape, ``nas search`` with the saved transfer surrogate or with ``--surrogate transfer``,
and the default start of a filtered search."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest

from data.archive import Archive
from data.tasks import Split, Task, get_task, register_task, unregister_task
from data.training import Evaluation
from nas.cli import build_parser, main
from nas.cli.search import _strategy_options, make_search_strategy
from nas.cli.surrogate import TRANSFER_BASES
from nas.sampler import Sampler
from nas.search.budgets import CPU_BUDGET
from nas.search.factory import default_start_after
from surrogates import sources, workflows
from surrogates.persistence import load_surrogate
from tests.nas.search.test_cli_search_surrogates import filtered_asks, fill_archive, run_config, search

SOURCE_SHAPE, TARGET_SHAPE = (3, 8, 8), (1, 10, 12)
SOURCES = ("cli-transfer-src-a", "cli-transfer-src-b")
TARGET = "cli-transfer-target"
#: A filtered search small enough for a test: batches of 2 chosen from 4 candidates, refitted every 2 steps.
SMALL = ["--strategy", "filtered", "--budget", "6", "--population", "4", "--tournament", "2", "--refit-every", "2",
         "--n-candidates", "4", "--k", "2"]


def shaped_task(name: str, seed: int, shape: tuple[int, ...]) -> Task:
    rng = np.random.default_rng(seed)

    def split(n):
        y = rng.integers(0, 3, size=n)
        x = (rng.normal(size=(n, *shape)) + y[:, None, None, None]).astype(np.float32)
        return Split(x, y.astype(np.int64))

    return Task(name, shape, 3, split(64), split(32), split(32), {"source": "test"})


@pytest.fixture(scope="module")
def tasks():
    """Two source tasks of one input shape and a target task of another, registered in this process."""
    shapes = {SOURCES[0]: SOURCE_SHAPE, SOURCES[1]: SOURCE_SHAPE, TARGET: TARGET_SHAPE}
    for i, (name, shape) in enumerate(shapes.items()):
        register_task(name, lambda seed=0, task=shaped_task(name, i, shape): task, "toy task of the CLI transfer tests")
    yield shapes
    for name in shapes:
        unregister_task(name)


@pytest.fixture(scope="module")
def source_archive(tasks, tmp_path_factory):
    """Made-up evaluations of the two source tasks (12 networks each) and of the target task (8)."""
    path = tmp_path_factory.mktemp("sources") / "sources.sqlite"
    archs = [Sampler("einspace", SOURCE_SHAPE, CPU_BUDGET).sample(i) for i in range(24)]
    targets = [Sampler("einspace", TARGET_SHAPE, CPU_BUDGET).sample(100 + i) for i in range(8)]
    with Archive(path) as archive:
        fill_archive(archive, SOURCES[0], archs[:12], 1.0)
        fill_archive(archive, SOURCES[1], archs[12:], 0.5)
        fill_archive(archive, TARGET, targets, 0.8)
    return path


@pytest.fixture(scope="module")
def transfer_dir(source_archive, tmp_path_factory):
    """A transfer surrogate fitted through the CLI on the two source tasks."""
    out = tmp_path_factory.mktemp("transfer") / "tr_rf"
    assert main(["surrogate", "fit", "--transfer", "--archive", str(source_archive), "--sources", ",".join(SOURCES),
                 "--model", "rf", "-o", str(out)]) == 0
    return out


def source_names(surrogate) -> set[str]:
    return {block["name"] for block in surrogate.source_blocks_}


def test_cli_transfer_bases_are_the_library_names():
    assert TRANSFER_BASES == workflows.TRANSFER_BASES  # spelled out so that building the parser imports no surrogate


def test_transfer_surrogate_predicts_for_a_task_of_another_input_shape(tasks, transfer_dir, capsys, tmp_path):
    saved = load_surrogate(transfer_dir)
    assert source_names(saved) == set(SOURCES) and saved.normalisation == "minmax" and saved.base == "rf"
    archs = [Sampler("einspace", TARGET_SHAPE, CPU_BUDGET).sample(200 + i) for i in range(5)]
    lines = tmp_path / "archs.txt"
    lines.write_text("\n".join(a.to_string() for a in archs) + "\n")
    capsys.readouterr()
    code = main(["surrogate", "predict", str(transfer_dir), "--task", TARGET, "--input", str(lines)])
    out, err = capsys.readouterr()
    assert code == 0, err
    rows = [line.split("\t") for line in out.splitlines()]
    assert [r[0] for r in rows] == [a.to_string() for a in archs]
    assert all(math.isfinite(float(r[1])) for r in rows)
    # without --task, a surrogate fitted on sources only has no task to featurise with: a one-line error
    code = main(["surrogate", "predict", str(transfer_dir), "--input", str(lines)])
    err = capsys.readouterr().err
    assert code == 2 and "pass --task T" in err and len(err.strip().splitlines()) == 1


def test_search_with_a_saved_transfer_surrogate_filters_from_step_1_and_refits(tasks, transfer_dir, capsys,
                                                                                caplog, tmp_path):
    caplog.set_level(logging.INFO, logger="surrogates.transfer")
    summary, fits = search(capsys, caplog, tmp_path, "--task", TARGET, *SMALL, "--surrogate", str(transfer_dir))
    assert summary["evaluations"] == 6 and summary["counts"]["filtered"] > 0
    asks = filtered_asks(tmp_path)
    assert asks[0]["batch"] == 0 and asks[0]["position"] == 0  # the very first step is chosen by the surrogate
    assert all(math.isfinite(a["predicted"]) for a in asks)
    assert fits >= 1 and any(a["batch"] >= 2 for a in asks)  # refitted on the run's results, then used
    # every refit pools the two sources with the run's own evaluations, as a block of its own
    refits = [r.getMessage() for r in caplog.records if r.name == "surrogates.transfer" and "from 3 blocks" in r.getMessage()]
    assert len(refits) == fits
    config = run_config(tmp_path)
    assert config["prefit"] is True
    assert "initial_candidates" not in config and asks[0]["proposed"] == 4  # batches of --k from the first


def test_initial_pool_option(tasks, transfer_dir, capsys, caplog, tmp_path):
    task = get_task(TARGET)
    small = dict(population_size=4, tournament_size=2, n_candidates=4, k=2)
    pooled = make_search_strategy("filtered", task, 0, surrogate=str(transfer_dir), initial_candidates=9, **small)
    assert pooled.initial_candidates == 9 and pooled.initial_end == 4
    batched = make_search_strategy("filtered", task, 0, surrogate=str(transfer_dir), **small)
    assert batched.initial_candidates is None and batched.initial_end == 0
    fitted_in_run = make_search_strategy("filtered", task, 0, surrogate="rf", features="graf", **small)
    assert fitted_in_run.initial_candidates is None  # nothing ranks the first samples of a surrogate fitted later
    args = build_parser().parse_args(["search", "--task", TARGET, "--strategy", "filtered", "--run-dir", "r"])
    assert args.initial_pool is None and _strategy_options(args)["initial_candidates"] is None
    args = build_parser().parse_args(["search", "--task", TARGET, *SMALL, "--initial-pool", "0", "--run-dir", "r"])
    assert _strategy_options(args)["initial_candidates"] is None  # 0: no pool, as without the option
    summary, _ = search(capsys, caplog, tmp_path / "pooled", "--task", TARGET, *SMALL, "--surrogate", str(transfer_dir),
                        "--initial-pool", "12")
    asks = filtered_asks(tmp_path / "pooled")
    assert run_config(tmp_path / "pooled")["initial_candidates"] == 12 and asks[0]["proposed"] == 12
    assert [a["batch"] for a in asks[:4]] == [0] * 4 and asks[4]["batch"] == 4  # one batch fills the population
    for argv, message in (([*SMALL, "--surrogate", str(transfer_dir), "--initial-pool", "3"],
                           "an initial pool of 3 cannot fill the 4 initial members"),
                          ([*SMALL, "--features", "graf", "--initial-pool", "40"],
                           "an initial pool is chosen by prediction before anything is trained")):
        code = main(["search", "--task", TARGET, *argv, "--run-dir", str(tmp_path / "r")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(SystemExit):  # refused by the parser
        main(["search", "--task", TARGET, *SMALL, "--initial-pool", "-1", "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert "--initial-pool: must be an integer from 0 to 100,000" in err and len(err.strip().splitlines()) == 1


def test_search_refits_a_transfer_surrogate_every_20_steps_by_default():
    args = build_parser().parse_args(["search", "--task", TARGET, "--strategy", "filtered", "--run-dir", "r"])
    assert args.refit_every == 20 and args.start_after is None


def test_default_start_after_filters_for_most_of_the_budget():
    assert [default_start_after(b) for b in (2, 30, 100, 300, 1000)] == [0, 10, 33, 100, 100]


def test_filtered_search_at_budget_30_filters(capsys, caplog, tmp_path):
    summary, fits = search(capsys, caplog, tmp_path, "--task", "nb201-cifar10", "--strategy", "filtered",
                           "--budget", "30", "--features", "graf")
    config = run_config(tmp_path)
    assert config["start_after"] == 10 and config["prefit"] is False
    asks = filtered_asks(tmp_path)
    assert summary["evaluations"] == 30 and fits >= 1
    assert min(a["batch"] for a in asks) == 10 and len(asks) == 20  # every step from the 11th on is filtered


def test_surrogate_transfer_leaves_the_target_task_out(tasks, source_archive, capsys, caplog, tmp_path):
    task = get_task(TARGET)
    strategy = make_search_strategy("filtered", task, 0, surrogate="transfer", source_archive=str(source_archive),
                                    population_size=4, tournament_size=2, n_candidates=4, k=2)
    assert strategy.prefit and source_names(strategy.surrogate) == set(SOURCES)  # the archive's tasks but TARGET
    summary, _ = search(capsys, caplog, tmp_path, "--task", TARGET, *SMALL, "--surrogate", "transfer",
                        "--source-archive", str(source_archive))
    assert summary["counts"]["filtered"] > 0 and filtered_asks(tmp_path)[0]["batch"] == 0


def test_surrogate_transfer_without_a_source_archive_is_a_one_line_error(tasks, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(sources, "SHIPPED_ARCHIVE", tmp_path / "missing.sqlite")
    code = main(["search", "--task", TARGET, *SMALL, "--surrogate", "transfer", "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "shipped source archive" in err and "--source-archive" in err
    assert len(err.strip().splitlines()) == 1
    code = main(["surrogate", "fit", "--transfer", "-o", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2 and "pass an archive of evaluated source tasks with --archive" in err


def test_fit_transfer_screens_sources_by_their_own_signal(tasks, capsys, caplog, tmp_path):
    """``--min-source-tau``: a source whose accuracies are noise is left out; one with a signal is kept."""
    archs = [Sampler("einspace", SOURCE_SHAPE, CPU_BUDGET).sample(300 + i) for i in range(80)]
    rng = np.random.default_rng(0)
    path = tmp_path / "screen.sqlite"
    with Archive(path) as archive:
        fill_archive(archive, SOURCES[0], archs[:40], 1.0)  # accuracy a function of the network: a signal
        for arch, acc in zip(archs[40:], rng.uniform(0.3, 0.6, size=40)):  # noise
            archive.add_evaluation(Evaluation(arch.hash, SOURCES[1], "p", 0, "ok", {"val_acc": float(acc)}), arch)
    code = main(["surrogate", "fit", "--transfer", "--archive", str(path), "--min-source-tau", "0.3", "--features",
                 "graf", "--normalise", "percentile", "-o", str(tmp_path / "screened")])
    assert code == 0, capsys.readouterr().err
    saved = load_surrogate(tmp_path / "screened")
    assert source_names(saved) == {SOURCES[0]} and saved.normalisation == "percentile"
    code = main(["surrogate", "fit", "--transfer", "--archive", str(path), "--sources", "no-such-task", "-o",
                 str(tmp_path / "none")])
    assert code == 2 and "no evaluations of source task(s) no-such-task" in capsys.readouterr().err


def test_fit_transfer_with_size_bands_is_saved_and_refits(tasks, source_archive, capsys, tmp_path):
    """``--size-bands N``: each source's targets normalised within N bands of parameter count; the setting is
    saved with the surrogate, and a search's refit keeps the banded source rows."""
    out = tmp_path / "sized"
    assert main(["surrogate", "fit", "--transfer", "--archive", str(source_archive), "--sources", ",".join(SOURCES),
                 "--features", "graf", "--size-bands", "3", "-o", str(out)]) == 0
    saved = load_surrogate(out, task=TARGET)
    assert saved.size_bands == 3 and source_names(saved) == set(SOURCES)
    with Archive(source_archive) as archive:
        archs, y = workflows.surrogate_dataset(archive, SOURCES[0])
    params = np.array([a.num_params for a in archs], dtype=float)
    from surrogates.transfer import size_bands_of
    bands = size_bands_of(params[y > 0], 3)
    first = saved.source_y_[:len(bands)]  # the first source's rows come first
    assert all(first[bands == b].max() == 1.0 for b in np.unique(bands) if len(set(y[y > 0][bands == b])) > 1)
    targets = [Sampler("einspace", TARGET_SHAPE, CPU_BUDGET).sample(300 + i) for i in range(4)]
    saved.fit(targets, np.array([0.3, 0.5, 0.4, 0.6]))
    assert saved.model_.training_["n_rows"] == len(saved.source_y_) + 4
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["surrogate", "fit", "--transfer", "--archive", str(source_archive), "--size-bands", "0",
              "-o", str(tmp_path / "bad")])
    assert exc.value.code == 2 and "--size-bands: must be a positive integer" in capsys.readouterr().err


def test_fit_transfer_for_a_target_task_leaves_it_out_and_evaluates_on_it(tasks, source_archive, capsys, tmp_path):
    """``nas surrogate fit --transfer --task T``: every other task of the archive is a source; ``nas surrogate
    evaluate DIR --task T`` scores it on T's evaluations (the leave-one-out measurement through the CLI)."""
    out = tmp_path / "held-out"
    assert main(["surrogate", "fit", "--transfer", "--archive", str(source_archive), "--task", TARGET,
                 "-o", str(out)]) == 0
    saved = load_surrogate(out)
    assert source_names(saved) == set(SOURCES) and saved.task_name == TARGET
    capsys.readouterr()
    code = main(["surrogate", "evaluate", str(out), "--archive", str(source_archive), "--task", TARGET])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    metrics = json.loads(captured.out)
    assert -1.0 <= metrics["kendall_tau"] <= 1.0
