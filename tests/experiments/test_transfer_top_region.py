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
