"""``nas surrogate fit|predict|evaluate`` and ``nas transfer``."""

import json

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
