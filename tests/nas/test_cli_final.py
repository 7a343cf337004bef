"""``nas final`` (an architecture, or a search run's best) and ``nas search --final``."""

import json
import os

import pytest
import torch

from data.final import FINAL_FILE, load_final, load_network
from data.tasks import get_task, register_task
from nas.cli import main
from tests.data.conftest import make_blobs_task

CONV = "sequential(routing[im2col(3,1,1), computation<linear(16)>, col2im], computation<relu>)"
TASK = "blobs-final"


@pytest.fixture(autouse=True)
def blobs():
    register_task(TASK, lambda seed=0: make_blobs_task(seed=seed, name=TASK), "test task of nas final")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_final_verb_writes_a_loadable_network(capsys, tmp_path):
    out = tmp_path / "final"
    code, stdout, err = run(capsys, "final", CONV, "--task", TASK, "--protocol", "smoke", "-o", str(out))
    assert code == 0, err
    shown = json.loads(stdout)
    assert shown["status"] == "ok" and 0.0 <= shown["test_acc"] <= 1.0 and shown["dir"] == str(out)
    record = load_final(out)
    assert record["metrics"]["test_acc"] == shown["test_acc"] and record["protocol"]["name"] == "smoke"
    net = load_network(out)
    x = torch.as_tensor(get_task(TASK).test.x[:8])
    assert net(x).shape == (8, 4)

    code, _, err = run(capsys, "final", CONV, "--task", TASK, "--protocol", "smoke", "-o", str(out))
    assert code == 2 and err.count("\n") == 1 and "exists" in err


def test_final_verb_reports_a_failed_candidate_in_one_line(capsys, tmp_path):
    protocol = tmp_path / "tiny.json"
    protocol.write_text(json.dumps({"name": "tiny", "epochs": 1, "batch_size": 32, "max_memory_mb": 0.001}))
    out = tmp_path / "final"
    code, stdout, err = run(capsys, "final", CONV, "--task", TASK, "--protocol", str(protocol), "-o", str(out))
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("nas final: error: final evaluation of ") and "over memory budget" in err
    assert str(out / FINAL_FILE) in err and json.loads(stdout)["status"] == "failed"
    assert load_final(out)["status"] == "failed" and not (out / "model.safetensors").exists()


@pytest.mark.parametrize("argv", [
    ["final", "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
     "--task", "nb201-cifar10"],
    ["search", "--task", "nb201-cifar10", "--budget", "3", "--final"],
])
def test_a_look_up_table_task_is_refused_before_any_work(capsys, tmp_path, argv):
    out = tmp_path / "out"
    extra = ["-o", str(out)] if argv[0] == "final" else ["--run-dir", str(out)]
    code, _, err = run(capsys, *argv, *extra)
    assert code == 2 and err.count("\n") == 1 and "look-up table" in err
    assert not out.exists()  # nothing searched, nothing written


def test_final_verb_needs_an_architecture_and_a_folder(capsys, tmp_path):
    code, _, err = run(capsys, "final", CONV, "--task", TASK)
    assert code == 2 and "needs ARCH, --task and -o DIR" in err
    code, _, err = run(capsys, "final", CONV, "--run-dir", str(tmp_path))
    assert code == 2 and "not both" in err


def test_search_final_retrains_the_best_and_the_run_dir_form_agrees(capsys, tmp_path):
    run_dir = tmp_path / "run"
    code, stdout, err = run(capsys, "search", "--task", TASK, "--strategy", "random", "--budget", "3",
                            "--protocol", "smoke", "--run-dir", str(run_dir), "--final")
    assert code == 0, err
    summary = json.loads(stdout)
    final = summary["final"]
    assert final["status"] == "ok" and final["dir"] == str(run_dir / "final")
    record = load_final(run_dir / "final")
    assert record["arch_hash"] == summary["best"]["hash"]  # the best by validation accuracy
    assert record["validation"]["source"] == "given" and record["metrics"]["val_acc"] == summary["best"]["val_acc"]
    assert 0.0 <= record["metrics"]["test_acc"] <= 1.0
    load_network(run_dir / "final")

    code, stdout, err = run(capsys, "final", "--run-dir", str(run_dir), "-o", str(tmp_path / "again"))
    assert code == 0, err
    again = load_final(tmp_path / "again")
    assert again["metrics"]["test_acc"] == record["metrics"]["test_acc"]  # deterministic for the seed
    assert again["weights"]["sha256"] == record["weights"]["sha256"]
    code, _, err = run(capsys, "final", "--run-dir", str(run_dir))  # the default folder exists: refused
    assert code == 2 and os.path.join(str(run_dir), "final") in err
