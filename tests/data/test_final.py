"""Final evaluation: retrain on train+valid, score on test, save atomically, reload in one call."""

import json
import math
import os

import numpy as np
import pytest
import torch

import data.final
from data.final import (ARCH_FILE, FINAL_FILE, WEIGHTS_FILE, final_evaluate, load_final, load_network,
                        require_trainable, save_final)
from data.tasks import get_task
from data.training import PROTOCOLS, train_and_evaluate
from nas.architecture import Architecture

CONV = "sequential(routing[im2col(3,1,1), computation<linear(16)>, col2im], computation<relu>)"
SMOKE = PROTOCOLS["smoke"]
TIMING = ("seconds_per_epoch",)


def conv(task):
    return Architecture.from_string(CONV, task.input_shape)


def stable(metrics):
    return {k: v for k, v in metrics.items() if k not in TIMING}


@pytest.fixture(scope="module")
def final(blobs_task):
    return final_evaluate(conv(blobs_task), blobs_task, SMOKE, seed=0)


def test_final_evaluation_writes_a_loadable_network(final, blobs_task, tmp_path):
    assert final.ok and final.reason == ""
    assert 0.0 <= final.test_acc <= 1.0 and math.isfinite(final.metrics["test_loss"])
    assert 0.0 <= final.metrics["val_acc"] <= 1.0
    out = tmp_path / "final"
    assert save_final(final, out) == str(out)
    assert sorted(os.listdir(out)) == [ARCH_FILE, FINAL_FILE, WEIGHTS_FILE]
    assert os.listdir(tmp_path) == ["final"]  # no temporary folder left beside it
    assert (out / ARCH_FILE).read_text() == CONV + "\n"

    net = load_network(out)
    assert isinstance(net, torch.nn.Module) and not net.training
    x = torch.as_tensor(blobs_task.test.x[:64])  # raw inputs: the standardisation travels with the network
    with torch.no_grad():
        expected, got = final.network(x), net(x)
    # The same weights and the same operations on the same machine; the tolerance only allows for a kernel
    # choosing another float32 summation order for a freshly allocated module (about 1e-7 relative).
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert (got.argmax(1) == expected.argmax(1)).all()


def test_final_json_records_metrics_protocol_task_and_versions(final, blobs_task, tmp_path):
    save_final(final, tmp_path / "f")
    record = json.loads((tmp_path / "f" / FINAL_FILE).read_text())
    assert record == load_final(tmp_path / "f")
    assert record["status"] == "ok" and record["metrics"]["test_acc"] == final.test_acc
    assert record["task"] == {"name": "blobs", "fingerprint": blobs_task.fingerprint()}
    assert record["input_shape"] == [3, 8, 8] and record["num_classes"] == 4 and record["seed"] == 0
    assert record["protocol"] == SMOKE.to_dict() and record["protocol_key"] == SMOKE.key
    assert record["arch"] == CONV and record["arch_hash"] == conv(blobs_task).hash
    assert "torch" in record["versions"] and "python" in record["versions"] and record["created"]
    assert len(record["weights"]["sha256"]) == 64


def test_final_trains_on_train_and_valid_and_scores_the_whole_test_split(final, blobs_task):
    n = len(blobs_task.train.head(SMOKE.train_subset)) + len(blobs_task.valid.head(SMOKE.valid_subset))
    assert final.examples == {"train": n, "test": len(blobs_task.test)} and n == 256 + 128
    assert final.metrics["steps"] == SMOKE.epochs * (n // SMOKE.batch_size)


def test_final_evaluation_is_deterministic_for_a_seed(final, blobs_task):
    again = final_evaluate(conv(blobs_task), blobs_task, SMOKE, seed=0)
    other = final_evaluate(conv(blobs_task), blobs_task, SMOKE, seed=1)
    assert stable(again.metrics) == stable(final.metrics)
    a, b = final.network.state_dict(), again.network.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert stable(other.metrics) != stable(final.metrics)


def test_a_matching_evaluation_is_reused_for_val_acc(final, blobs_task):
    arch = conv(blobs_task)
    ev = train_and_evaluate(arch, blobs_task, SMOKE, seed=0)
    reused = final_evaluate(arch, blobs_task, SMOKE, seed=0, validation=ev)
    assert reused.validation["source"] == "given" and reused.metrics["val_acc"] == ev.val_acc
    assert stable(reused.metrics) == stable(final.metrics)  # the trained one gives the same number
    assert final.validation["source"] == "trained"


def test_candidate_failure_is_recorded_not_raised(blobs_task, tmp_path, monkeypatch):
    tiny = SMOKE.replace(name="tiny", max_memory_mb=1e-3)
    failed = final_evaluate(conv(blobs_task), blobs_task, tiny, seed=0)
    assert not failed.ok and "over memory budget" in failed.reason and math.isnan(failed.test_acc)
    save_final(failed, tmp_path / "f")
    assert sorted(os.listdir(tmp_path / "f")) == [ARCH_FILE, FINAL_FILE]
    assert load_final(tmp_path / "f")["reason"] == failed.reason
    with pytest.raises(ValueError, match="failed .*saved no network"):
        load_network(tmp_path / "f")

    def boom(*args, **kwargs):
        raise RuntimeError("exploded")

    monkeypatch.setattr(data.final, "fit_network", boom)
    failed = final_evaluate(conv(blobs_task), blobs_task, SMOKE, seed=0)
    assert failed.reason.startswith("the final training failed: exception: RuntimeError: exploded")


def test_a_look_up_table_task_is_refused():
    task = get_task("nb201-cifar10")
    with pytest.raises(ValueError, match="look-up table"):
        require_trainable(task)
    with pytest.raises(ValueError, match="look-up table"):
        final_evaluate(None, task, SMOKE)


def test_save_never_leaves_a_half_written_folder(final, tmp_path, monkeypatch):
    save_final(final, tmp_path / "f")
    with pytest.raises(ValueError, match="exists"):
        save_final(final, tmp_path / "f")
    assert save_final(final, tmp_path / "f", replace=True) and sorted(os.listdir(tmp_path)) == ["f"]

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(data.final, "_write_weights", broken)
    with pytest.raises(OSError, match="disk full"):
        save_final(final, tmp_path / "g")
    assert sorted(os.listdir(tmp_path)) == ["f"]


def test_load_network_checks_what_it_loads(final, tmp_path):
    out = tmp_path / "f"
    save_final(final, out)
    weights = out / WEIGHTS_FILE
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="SHA-256"):
        load_network(out)

    save_final(final, tmp_path / "g")
    (tmp_path / "g" / ARCH_FILE).write_text("sequential(computation<relu>, computation<relu>)\n")
    with pytest.raises(ValueError, match="not the architecture recorded"):
        load_network(tmp_path / "g")
    with pytest.raises(ValueError, match="no final.json"):
        load_network(tmp_path)


def test_weights_are_the_same_bytes_for_the_same_seed(final, blobs_task, tmp_path):
    again = final_evaluate(conv(blobs_task), blobs_task, SMOKE, seed=0, validation=None)
    save_final(final, tmp_path / "a")
    save_final(again, tmp_path / "b")
    assert (tmp_path / "a" / WEIGHTS_FILE).read_bytes() == (tmp_path / "b" / WEIGHTS_FILE).read_bytes()
    assert np.isfinite(load_final(tmp_path / "a")["metrics"]["test_loss"])
