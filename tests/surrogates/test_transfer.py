import csv

import numpy as np
import pytest
from sklearn.base import clone

from nas.sampler import Sampler
from surrogates.tabular import TabularSurrogate
from surrogates.transfer import (
    TaskData,
    TransferSurrogate,
    failed_mask,
    heatmap,
    leave_one_out,
    matrix_rows,
    normalise_targets,
    one_to_one,
    pivot,
    prepare_block,
    size_bands_of,
    source_signal,
    write_table,
)


def test_normalisations_by_hand():
    y = np.array([0.2, 0.4, 0.4, 0.8, np.nan])
    np.testing.assert_allclose(normalise_targets(y, "minmax")[:4], [0.0, 1 / 3, 1 / 3, 1.0])
    # average ranks 1, 2.5, 2.5, 4 over the 4 finite values
    np.testing.assert_allclose(normalise_targets(y, "percentile")[:4], [0.25, 0.625, 0.625, 1.0])
    assert np.isnan(normalise_targets(y, "minmax")[4]) and np.isnan(normalise_targets(y, "percentile")[4])
    np.testing.assert_array_equal(normalise_targets(y[:4], "none"), y[:4])
    np.testing.assert_array_equal(normalise_targets(y[:4], None), y[:4])
    np.testing.assert_array_equal(normalise_targets([0.3, 0.3], "minmax"), [0.5, 0.5])
    np.testing.assert_array_equal(failed_mask([0.0, -1.0, np.nan, 0.1]), [True, True, True, False])
    with pytest.raises(ValueError, match="unknown normalisation 'zscore'"):
        normalise_targets(y, "zscore")


def world(seed, n=160, d=5):
    """Features and a latent quality score shared by every synthetic task."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, size=(n, d))
    return X, X[:, 0] + 0.6 * X[:, 1] - 0.3 * X[:, 2] ** 2


# Monotone transforms of the latent score, on very different scales: transfer must work across them.
TRANSFORMS = {
    "a": lambda z: 0.5 + 0.1 * z,
    "b": lambda z: 0.95 - 0.1 * np.exp(-z),
    "c": lambda z: 1.0 / (1.0 + np.exp(-3 * z)) * 0.3 + 0.05,
}


def factory():
    return TabularSurrogate("rf", model_params={"n_estimators": 30}, random_state=0, features=None)


def test_transfer_across_monotone_transforms_but_not_to_noise():
    sources = []
    for i, name in enumerate(("a", "b")):
        X, z = world(i)
        sources.append((X, TRANSFORMS[name](z), name))
    X, z = world(9)
    model = TransferSurrogate(model_params={"n_estimators": 30}, features=None).fit_sources(sources)
    pred = model.predict(X)
    assert np.all((pred >= 0) & (pred <= 1))  # min-max scale
    from surrogates.metrics import kendall_tau

    assert kendall_tau(TRANSFORMS["c"](z), pred) > 0.8
    noise = np.random.default_rng(5).uniform(0.1, 0.9, size=len(z))  # a task unrelated to the features
    assert abs(kendall_tau(noise, pred)) < 0.2
    twin = clone(model)
    assert twin.get_params() == model.get_params() and not hasattr(twin, "model_")


def test_failed_rows_are_dropped_from_training_and_blocks_normalised_separately():
    X, z = world(0, n=40)
    y = TRANSFORMS["a"](z)
    y[:5] = 0.0
    cur_X, cur_z = world(1, n=20)
    model = TransferSurrogate(normalisation="percentile", model_params={"n_estimators": 5}, features=None).fit_sources(
        [(X, y, "a"), (X, 100 * TRANSFORMS["b"](z), "b")], current=(cur_X, TRANSFORMS["c"](cur_z)))
    assert [b["n_dropped"] for b in model.blocks_] == [5, 0, 0]
    assert [b["name"] for b in model.blocks_] == ["a", "b", "block2 (current)"]
    assert model.model_.training_["n_rows"] == 35 + 40 + 20
    assert model.model_.train_y_.max() == 1.0 and model.model_.train_y_.min() > 0  # percentiles in (0, 1]
    kept = TransferSurrogate(drop_failed=False, model_params={"n_estimators": 5}, features=None).fit_sources(
        [(X, y, "a")])
    assert kept.blocks_[0]["n_dropped"] == 0
    with pytest.raises(ValueError, match="every training row was dropped"):
        TransferSurrogate(features=None).fit_sources([(X[:3], np.zeros(3), "a")])
    with pytest.raises(ValueError, match="different feature widths"):
        TransferSurrogate(features=None).fit_sources([(X, y, "a"), (X[:, :2], y, "b")])
    # a refit (the surrogate contract a search uses) keeps the sources and replaces the current block
    refit = model.fit(cur_X[:10], TRANSFORMS["c"](cur_z[:10]))
    assert [b["name"] for b in refit.blocks_] == ["a", "b", "block2 (current)"]
    assert refit.model_.training_["n_rows"] == 35 + 40 + 10


def test_transfer_on_architectures():
    sampler = Sampler("einspace", (3, 8, 8))
    archs = [sampler.sample(i) for i in range(24)]
    y = np.array([0.1 + 0.01 * a.num_nodes for a in archs])
    model = TransferSurrogate(features="graf", model_params={"n_estimators": 5}).fit_sources(
        [(archs[:12], y[:12], "s"), (archs[12:], 2 * y[12:], "t")])
    assert model.featuriser_[0]["name"] == "graf"
    np.testing.assert_array_equal(model.predict(archs), model.predict_matrix(model.featurise(archs)))
    # the crash of a loaded transfer surrogate in a filtered search: fit(archs, y) is the surrogate contract
    model.fit(archs[:6], y[:6])
    assert model.blocks_[-1]["name"] == "block2 (current)" and model.model_.training_["n_rows"] == 24 + 6


def test_size_bands_by_hand():
    # log1p sizes of 1, 10, 100, 1000, 10000, 100000: two bands split at the median (between 100 and 1000)
    np.testing.assert_array_equal(size_bands_of([1, 10, 100, 1000, 10000, 100000], 2), [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(size_bands_of([5, 5, 5, 5], 3), [0, 0, 0, 0])  # one size: one band
    np.testing.assert_array_equal(size_bands_of([1, 2, 3], 1), [0, 0, 0])
    # a block where the larger half is better: whole, min-max says so; within 2 size bands it does not
    y = np.array([0.0, 0.1, 0.3, 0.2, 0.6, 0.8, 0.7, 0.9])
    sizes = [10, 20, 30, 40, 1000, 2000, 3000, 4000]
    _, whole, _ = prepare_block(np.zeros((8, 1)), y, "minmax", False)
    assert whole[4:].mean() > whole[:4].mean() + 0.5
    # small band 0.1, 0.3, 0.2 over 0.1..0.3 (0.0 is a failure, dropped); large band 0.6..0.9
    _, banded, _ = prepare_block(np.zeros((8, 1)), y, "minmax", True, sizes=sizes, bands=2)
    np.testing.assert_allclose(banded, [0.0, 1.0, 0.5, 0.0, 2 / 3, 1 / 3, 1.0])
    with pytest.raises(ValueError, match="8 rows but 3 sizes"):
        prepare_block(np.zeros((8, 1)), y, "minmax", True, sizes=[1, 2, 3], bands=2)


def test_transfer_with_size_bands_on_architectures():
    sampler = Sampler("einspace", (3, 8, 8))
    archs = [sampler.sample(i) for i in range(40)]
    params = np.array([a.num_params for a in archs], dtype=float)
    y = 0.2 + 0.5 * np.argsort(np.argsort(params)) / len(archs)  # the larger, the better, on the source
    model = TransferSurrogate(features="graf", size_bands=4, model_params={"n_estimators": 5}).fit_sources(
        [(archs, y, "s")])
    bands = size_bands_of(params, 4)
    for band in np.unique(bands):  # every band spans [0, 1] on its own
        assert model.source_y_[bands == band].min() == 0.0 and model.source_y_[bands == band].max() == 1.0
    assert model.get_params()["size_bands"] == 4
    with pytest.raises(ValueError, match="size_bands=4 needs the architectures of block 'm'"):
        TransferSurrogate(features=None, size_bands=4).fit_sources([(np.zeros((4, 2)), np.ones(4), "m")])


def datasets(with_noise=True):
    out = {}
    for i, name in enumerate(TRANSFORMS):
        X, z = world(10 + i)
        out[name] = (X, TRANSFORMS[name](z))
    if with_noise:
        X, _ = world(20)
        out["noise"] = (X, np.random.default_rng(3).uniform(0.1, 0.9, size=len(X)))
    return out


def test_one_to_one_table():
    rows = one_to_one(datasets(), factory)
    assert len(rows) == 16
    m, sources, targets = pivot(rows)
    assert sources == targets == ["a", "b", "c", "noise"]
    assert np.all(m[:3, :3] > 0.7), m  # transfer among the monotone tasks, diagonal included
    assert np.all(np.abs(m[:3, 3]) < 0.25) and np.all(np.abs(m[3, :3]) < 0.25), m  # nothing to or from noise
    # the diagonal splits the one run into two seeded halves of 80 rows each
    diag = next(r for r in rows if r["source"] == r["target"] == "a")
    assert diag["n_train"] == 80 and diag["n_test"] == 80
    table = matrix_rows(m, sources, targets)
    assert table[0]["source \\ target"] == "a" and table[0]["avg off-diagonal"] == pytest.approx(np.mean(m[0, 1:]))


def test_one_to_one_with_two_runs_keeps_failures_in_test():
    X0, z0 = world(0)
    X1, z1 = world(1)
    y0, y1 = TRANSFORMS["a"](z0), TRANSFORMS["a"](z1)
    y0[:10] = 0.0  # failures of the test run stay in the test data
    y1[:10] = 0.0  # failures of the training run are dropped
    rows = one_to_one([TaskData("a", X1, y1, X0, y0)], factory)
    assert rows[0]["n_train"] == 150 and rows[0]["n_test"] == 160
    rows = one_to_one([TaskData("a", X1, y1, X0, y0)], factory, drop_failed=False)
    assert rows[0]["n_train"] == 160


def test_leave_one_out():
    rows = leave_one_out(datasets(with_noise=False), factory)
    assert [r["target"] for r in rows] == ["a", "b", "c"]
    for r in rows:
        assert r["kendall_tau"] > 0.7, r
        assert r["n_train"] == 320 and r["n_test"] == 160  # both runs (here: halves) of two others; all of T
    noise = leave_one_out(datasets(), factory)[-1]
    assert noise["target"] == "noise" and abs(noise["kendall_tau"]) < 0.25
    with pytest.raises(ValueError, match="at least two"):
        leave_one_out({"a": datasets()["a"]}, factory)


def test_leave_one_out_screens_sources_without_a_signal_of_their_own():
    signal = source_signal(datasets(), factory)
    assert all(signal[n] > 0.7 for n in "abc") and abs(signal["noise"]) < 0.25, signal
    plain = {r["target"]: r for r in leave_one_out(datasets(), factory)}
    screened = {r["target"]: r for r in leave_one_out(datasets(), factory, min_source_tau=0.3)}
    for name in "abc":  # trained on the other two monotone tasks only: the noise task's 160 rows are left out
        assert plain[name]["n_sources"] == 3 and plain[name]["n_train"] == 480
        assert screened[name]["n_sources"] == 2 and screened[name]["n_train"] == 320
        assert screened[name]["kendall_tau"] > 0.7
    assert screened["noise"]["n_sources"] == 3  # still a target, with every usable source
    with pytest.raises(ValueError, match="no source left to train for target 'a'"):
        leave_one_out(datasets(), factory, min_source_tau=2.0)


def test_reports(tmp_path):
    rows = [{"source": "a", "target": "b", "kendall_tau": 0.5, "n": 3},
            {"source": "b", "target": "a", "kendall_tau": float("nan"), "n": 4}]
    text = write_table(rows, tmp_path / "t.md", tmp_path / "t.csv")
    assert text.splitlines()[0] == "| source | target | kendall_tau | n |"
    assert "| a | b | 0.500 | 3 |" in text and "| b | a | nan | 4 |" in text
    assert (tmp_path / "t.md").read_text() == text
    with open(tmp_path / "t.csv", newline="") as fh:
        read = list(csv.DictReader(fh))
    assert read[0]["kendall_tau"] == "0.5" and read[1]["n"] == "4"
    m, r, c = pivot(rows)
    assert r == ["a", "b"] and c == ["b", "a"]  # first-seen order
    assert m[0, 0] == 0.5 and np.isnan(m[1, 1]) and np.isnan(m[0, 1])  # a->a was never computed
    heatmap(m, r, tmp_path / "h.png", col_labels=c, title="one-to-one")
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="matrix of shape"):
        heatmap(m, ["only one"], tmp_path / "bad.png")
