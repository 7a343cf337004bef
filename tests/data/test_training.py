import math

import numpy as np
import pytest

from data.tasks import Split, Task
from data.training import (
    PROTOCOLS,
    Evaluation,
    TrainingProtocol,
    estimate_memory_mb,
    get_protocol,
    train_and_evaluate,
)
from nas.architecture import Architecture

CONV = "sequential(routing[im2col(3,1,1), computation<linear(16)>, col2im], computation<relu>)"
FAST = TrainingProtocol(name="test", epochs=2, batch_size=32)
TIMING = ("seconds_per_epoch",)


def conv(task):
    return Architecture.from_string(CONV, task.input_shape)


def stable(metrics):
    return {k: v for k, v in metrics.items() if k not in TIMING}


def test_published_protocol_is_the_default():
    p = TrainingProtocol()
    assert (p.epochs, p.batch_size, p.lr, p.momentum, p.weight_decay, p.schedule) == (8, 256, 0.04, 0.9, 3e-4, "cosine")
    assert get_protocol("published") == p and p.drop_last and p.normalize


def test_protocol_key_changes_with_any_field_and_round_trips():
    p = PROTOCOLS["reduced"]
    assert p.key.startswith("reduced-") and p.key != p.replace(lr=0.05).key
    assert TrainingProtocol.from_dict(p.to_dict()) == p
    with pytest.raises(ValueError, match="unknown training-protocol fields: bogus"):
        TrainingProtocol.from_dict({"bogus": 1})
    with pytest.raises(KeyError, match="unknown training protocol"):
        get_protocol("nope")


def test_training_learns_and_reports_metrics(blobs_task):
    ev = train_and_evaluate(conv(blobs_task), blobs_task, FAST, seed=0)
    assert ev.ok and ev.reason == ""
    assert ev.val_acc > 0.5  # four well-separated blobs; chance is about 0.25
    m = ev.metrics
    assert m["epochs"] == 2 and m["steps"] == 2 * (256 // 32)
    assert m["params"] == conv(blobs_task).num_params + 16 * 4 + 4
    assert ev.task == "blobs" and ev.protocol == FAST.key and ev.arch_hash == conv(blobs_task).hash


def test_trainer_is_deterministic_on_cpu(blobs_task):
    a = train_and_evaluate(conv(blobs_task), blobs_task, FAST, seed=3)
    b = train_and_evaluate(conv(blobs_task), blobs_task, FAST, seed=3)
    c = train_and_evaluate(conv(blobs_task), blobs_task, FAST, seed=4)
    assert stable(a.metrics) == stable(b.metrics)
    assert stable(a.metrics) != stable(c.metrics)


def test_evaluation_round_trips_as_dict(blobs_task):
    ev = train_and_evaluate(conv(blobs_task), blobs_task, FAST.replace(epochs=1), seed=0)
    assert Evaluation.from_dict(ev.to_dict()) == ev


def test_exception_is_recorded_not_raised(blobs_task, monkeypatch):
    import nas.compile

    def boom(*a, **k):
        raise RuntimeError("builder exploded")

    monkeypatch.setattr(nas.compile, "compile_architecture", boom)
    ev = train_and_evaluate(conv(blobs_task), blobs_task, FAST, seed=0)
    assert ev.status == "failed" and ev.reason == "exception: RuntimeError: builder exploded"
    assert math.isnan(ev.val_acc)


def test_out_of_memory_is_recorded(blobs_task, monkeypatch):
    import nas.compile

    def oom(*a, **k):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(nas.compile, "compile_architecture", oom)
    ev = train_and_evaluate(conv(blobs_task), blobs_task, FAST, seed=0)
    assert ev.status == "failed" and ev.reason.startswith("out of memory:")


def test_non_finite_loss_is_recorded(blobs_task):
    x = blobs_task.train.x.copy()
    x[5, 0, 0, 0] = np.nan
    bad = Task("bad", blobs_task.input_shape, 4, Split(x, blobs_task.train.y), blobs_task.valid, blobs_task.test)
    ev = train_and_evaluate(conv(bad), bad, FAST.replace(normalize=False), seed=0)
    assert ev.status == "failed" and ev.reason.startswith("non-finite loss (nan) at epoch 1, step")


def test_diverging_learning_rate_is_a_non_finite_loss(blobs_task):
    ev = train_and_evaluate(conv(blobs_task), blobs_task, FAST.replace(lr=1e12, epochs=3), seed=0)
    assert ev.status == "failed" and "non-finite" in ev.reason


def test_time_budget_is_recorded(blobs_task):
    ev = train_and_evaluate(conv(blobs_task), blobs_task, FAST.replace(max_seconds=1e-9), seed=0)
    assert ev.status == "failed" and ev.reason.startswith("over time budget:") and "epoch 1, step 1" in ev.reason


def test_memory_budget_is_checked_before_training(blobs_task):
    arch = conv(blobs_task)
    mb = estimate_memory_mb(arch, 4, 32)
    # by hand: params 448 + head 68 = 516, ×3 copies; activations per sample 64·27 (im2col) + 64·16 (linear)
    # + 16·64 (col2im) + 16·64 (relu) = 4800, ×2 copies ×32 samples; 4 bytes each
    assert mb == pytest.approx((3 * 516 + 2 * 4800 * 32) * 4 / 2**20)
    ev = train_and_evaluate(arch, blobs_task, FAST.replace(max_memory_mb=mb / 2), seed=0)
    assert ev.status == "failed" and ev.reason.startswith("over memory budget: estimated")


def test_shape_mismatch_and_tiny_training_set(blobs_task):
    other = Architecture.from_string(CONV, (3, 16, 16))
    ev = train_and_evaluate(other, blobs_task, FAST, seed=0)
    assert ev.status == "failed" and "input shape mismatch" in ev.reason
    ev = train_and_evaluate(conv(blobs_task), blobs_task, FAST.replace(train_subset=10), seed=0)
    assert ev.status == "failed" and "no training step" in ev.reason


def test_col_mode_task_trains():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    x = (rng.normal(size=(200, 6, 8)) + y[:, None, None]).astype(np.float32)
    s = Split(x, y)
    task = Task("seq", (6, 8), 3, s, s, s)
    arch = Architecture.from_string("sequential(computation<linear(16)>, computation<relu>)", (6, 8))
    ev = train_and_evaluate(arch, task, FAST.replace(epochs=20, lr=0.1), seed=0)
    assert ev.ok and ev.val_acc > 0.5


def test_subsets_and_test_accuracy(blobs_task):
    ev = train_and_evaluate(conv(blobs_task), blobs_task,
                            FAST.replace(train_subset=64, valid_subset=50, evaluate_test=True), seed=0)
    assert ev.metrics["steps"] == 2 * 2 and "test_acc" in ev.metrics


# -- the transferable protocol and early stopping ------------------------------------------------------


def test_keys_of_the_earlier_protocols_do_not_change():
    # archives are keyed by these: the fields added later (patience, final_epochs) enter a key only when set
    keys = {name: PROTOCOLS[name].key for name in ("published", "reduced", "smoke")}
    assert keys == {"published": "published-2aaac074", "reduced": "reduced-f652bccd", "smoke": "smoke-7bb6ed5a"}
    p = PROTOCOLS["reduced"]
    assert p.replace(patience=3).key != p.key and p.replace(final_epochs=3).key != p.key


def test_transferable_protocol_and_its_final_retrain():
    t = get_protocol("transferable")
    assert (t.epochs, t.patience, t.final_epochs, t.batch_size, t.lr, t.schedule) == (16, 8, 64, 256, 0.04, "cosine")
    assert TrainingProtocol.from_dict(t.to_dict()) == t and t.key.startswith("transferable-")
    final = t.for_final()
    assert (final.epochs, final.patience) == (64, None)
    assert PROTOCOLS["published"].for_final() == PROTOCOLS["published"]
    for bad in (0, -1, True, 1.5, "8"):
        with pytest.raises(ValueError, match="field 'patience' must be a positive integer"):
            TrainingProtocol(patience=bad)
        with pytest.raises(ValueError, match="field 'final_epochs' must be a positive integer"):
            TrainingProtocol(final_epochs=bad)


def test_patience_stops_training_early(blobs_task):
    # lr 1e-9: the weights do not move, validation accuracy never beats epoch 1, so patience 2 stops after
    # epoch 3 instead of 10
    frozen = FAST.replace(epochs=10, lr=1e-9, patience=2)
    ev = train_and_evaluate(conv(blobs_task), blobs_task, frozen, seed=0)
    assert ev.ok and ev.metrics["epochs"] == 3 and ev.metrics["best_epoch"] == 1
    assert ev.metrics["steps"] == 3 * (256 // 32) and ev.metrics["best_val_acc"] == ev.val_acc
    # a network that keeps learning with a large patience trains every epoch
    learning = FAST.replace(epochs=4, patience=4)
    ev = train_and_evaluate(conv(blobs_task), blobs_task, learning, seed=0)
    assert ev.ok and ev.metrics["epochs"] == 4 and ev.metrics["best_val_acc"] >= ev.val_acc
    # without patience nothing changes: no per-epoch validation metrics
    assert "best_epoch" not in train_and_evaluate(conv(blobs_task), blobs_task, FAST, seed=0).metrics


def test_the_final_retrain_trains_for_final_epochs(blobs_task):
    from data.final import final_evaluate

    protocol = FAST.replace(epochs=1, final_epochs=3, patience=1)
    result = final_evaluate(conv(blobs_task), blobs_task, protocol, seed=0)
    assert result.status == "ok" and result.metrics["epochs"] == 3 and "best_epoch" not in result.metrics
    assert 0 <= result.metrics["test_acc"] <= 1
