"""experiments/transfer_top_region.py: ranking among a task's good networks, with weighted target rows."""

from __future__ import annotations

import numpy as np
import pytest

from surrogates.transfer import TaskData


def test_pick_gain_by_hand():
    from experiments.transfer_top_region import pick_gain

    y = np.arange(20, dtype=float) / 100  # one pool of all 20 rows
    rng = np.random.default_rng(0)
    # A perfect ranking picks the best (0.19); the random five's best is what the same draw gives.
    perfect = pick_gain(y, y, np.random.default_rng(0), pools=1)
    pool = rng.choice(20, 20, replace=False)
    random_best = y[rng.choice(pool, 5, replace=False)].max()
    assert perfect == pytest.approx(0.19 - random_best)
    assert pick_gain(-y, y, np.random.default_rng(0), pools=1) == pytest.approx(0.04 - random_best)  # worst five


def test_training_rows_weights_and_failures():
    from experiments.transfer_top_region import training_rows

    src = [(np.ones((4, 2)), np.array([0.2, 0.4, 0.0, 0.6])), (np.zeros((3, 2)), np.array([0.1, 0.3, 0.5]))]
    X_cur, y_cur = np.full((3, 2), 2.0), np.array([0.5, 0.7, 0.0])
    X, y, w = training_rows("uniform", src, X_cur, y_cur)
    # the failures (0.0) are dropped: 3 + 3 source rows, 2 current rows, each block min-max normalised
    assert X.shape == (8, 2) and np.allclose(y, [0, 0.5, 1, 0, 0.5, 1, 0, 1]) and np.allclose(w, 1)
    assert np.allclose(training_rows("w5", src, X_cur, y_cur)[2], [1] * 6 + [5, 5])
    assert np.allclose(training_rows("balanced", src, X_cur, y_cur)[2], [1] * 6 + [3, 3])  # 6 source rows / 2
    Xt, yt, wt = training_rows("target", src, X_cur, y_cur)
    assert Xt.shape == (2, 2) and np.allclose(yt, [0, 1]) and np.allclose(wt, 1)
    assert training_rows("target", src, X_cur[:0], y_cur[:0]) is None  # needs the target's rows
    assert training_rows("w5", src, X_cur[:0], y_cur[:0]) is None
    assert training_rows("uniform", src, X_cur[:0], y_cur[:0])[0].shape == (6, 2)  # sources alone


def test_study_target_leaves_out_the_test_networks_and_scores_every_scheme():
    from experiments.transfer_top_region import study_target

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = 0.5 + 0.1 * X[:, 0]
    test = np.random.default_rng(0).permutation(40)[10:]  # the split study_target draws for rep 0, n 10
    y_other = y.copy()
    y_other[test] = 1.0 - y[test]  # the source labels the target's test networks the wrong way round
    target, other = TaskData("t", X, y), TaskData("o", X.copy(), y_other)
    hashes = {"t": [f"h{i}" for i in range(40)], "o": [f"h{i}" for i in range(40)]}  # the same networks
    rows = study_target(target, [other], hashes, 10, 0, ("uniform", "w5", "target"), 0.5)
    assert [r["scheme"] for r in rows] == ["uniform", "w5", "target"]
    # had the test networks stayed in the source, the forest would rank them backwards (tau near -1)
    assert all(r["tau"] > 0.5 for r in rows)
    assert all(np.isfinite(r["pick_gain"]) and np.isfinite(r["tau_top"]) for r in rows)


def _signal(seed: int, n: int, sign: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    X = np.random.default_rng(seed).normal(size=(n, 3))
    return X, 0.5 + sign * 0.1 * X[:, 0]


def test_auto_chooses_the_target_forest_only_when_it_ranks_the_current_rows_better():
    from experiments.transfer_top_region import choose_scheme

    X_cur, y_cur = _signal(1, 30)
    misleading = [_signal(2, 60, sign=-1.0)]  # the sources rank this task's networks backwards
    helpful = [_signal(3, 60)]
    assert choose_scheme(misleading, X_cur, y_cur, 0) == "target"
    # the sources know the signal exactly; the run's own 30 rows carry it under as much noise again, so a forest
    # on them alone ranks them worse (out of fold) than the sources' forest does
    y_noisy = y_cur + 0.1 * np.random.default_rng(4).normal(size=30)
    assert choose_scheme(helpful, X_cur, y_noisy, 0) == "uniform"
    assert choose_scheme(misleading, X_cur[:9], y_cur[:9], 0) == "uniform"  # too few rows to check


def test_study_run_fits_on_the_first_rows_and_scores_the_next_window():
    from experiments.transfer_top_region import study_run

    X, y = _signal(5, 40)
    run = TaskData("t", X, y)
    others = [TaskData("o", *_signal(6, 50, sign=-1.0))]
    hashes = {"o": [f"o{i}" for i in range(50)]}
    rows = study_run(run, [f"r{i}" for i in range(40)], others, hashes, 15, 20, 3, ("uniform", "auto"))
    assert [r["scheme"] for r in rows] == ["uniform", "auto"]
    assert rows[1]["chose"] == "target" and rows[1]["rep"] == 3  # the misleading source is noticed
    assert rows[0]["tau"] < 0 < rows[1]["tau"]
    assert rows[1]["tau_top"] == pytest.approx(rows[1]["tau"])  # every scored row counts in a search run
    assert study_run(run, [f"r{i}" for i in range(40)], others, hashes, 38, 20, 3, ("uniform",)) == []  # no window


def test_run_datasets_read_plain_re_runs_in_evaluation_order(tmp_path):
    from data.archive import Archive
    from data.training import Evaluation
    from experiments.transfer_top_region import run_datasets
    from nas.sampler import Sampler
    from nas.search.budgets import CPU_BUDGET

    archs = [Sampler("einspace", (3, 8, 8), CPU_BUDGET).sample(900 + i) for i in range(3)]
    with Archive(tmp_path / "t-re-s3.sqlite") as archive:
        archive.start_run("re", "search", {})
        for seq, (arch, acc) in enumerate(zip(archs, (0.3, 0.1, 0.2))):
            ev = Evaluation(arch.hash, "t", "p", 0, "ok", {"val_acc": acc})
            archive.add_evaluation(ev, arch, run="re")
            archive.append_history("re", seq, ev, "trained", float(seq), 0.0, {})
    (tmp_path / "t-filtered-s3.sqlite").write_bytes(b"")  # another variant's file is not read
    [(data, hashes, seed)] = run_datasets(str(tmp_path), "t", "graf")
    assert seed == 3 and hashes == [a.hash for a in archs]
    assert np.allclose(data.y, [0.3, 0.1, 0.2]) and data.X.shape[0] == 3
