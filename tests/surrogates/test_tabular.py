import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from data.archive import Archive
from data.training import Evaluation
from features.cache import featuriser_key
from features.graf import GRAF
from nas.sampler import Sampler
from surrogates.ensemble import EnsembleSurrogate
from surrogates.metrics import kendall_tau
from surrogates.base import TaskRef, is_feature_matrix
from surrogates.tabular import XGB_TUNED, TabularSurrogate, build_model, fit_from_archive


def small(model, **kw):
    """A quick surrogate; on feature matrices unless ``features`` is given."""
    return TabularSurrogate(model, model_params={"n_estimators": 10}, **{"features": None, **kw})


def small_ensemble():
    return EnsembleSurrogate(members=[small("rf"), small("xgb", random_state=1)], features=None)


# Matrix mode (features=None: the input is a float feature matrix).  Every applicable scikit-learn check passes; the only ones
# not run are skipped by scikit-learn itself: array-API input (SCIPY_ARRAY_API unset) and pandas input
# (pandas is not installed).  check_estimators_nan_inf is not generated because the estimators declare
# allow_nan (NaN is a missing value, ±inf is mapped to NaN).
@parametrize_with_checks([small("rf"), small("xgb"), small_ensemble()])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def data(n=60, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, X[:, 0] - 0.5 * X[:, 1] + 0.05 * rng.normal(size=n)


def test_published_defaults():
    rf = build_model("rf", random_state=7)
    p = rf.get_params()
    assert (p["n_estimators"], p["max_features"], p["n_jobs"], p["random_state"], p["bootstrap"], p["min_samples_leaf"]) == (
        100, 1.0, 1, 7, True, 1)
    tuned = build_model("xgb_tuned", random_state=3, model_params={"n_estimators": 5}).get_params()
    assert tuned["tree_method"] == "hist" and tuned["subsample"] == 0.9 and tuned["learning_rate"] == 0.01
    assert tuned["n_estimators"] == 5 and XGB_TUNED["n_estimators"] == 10_000 and tuned["random_state"] == 3
    assert build_model("xgb", random_state=2).get_params()["random_state"] == 2
    with pytest.raises(ValueError, match="unknown model 'svm'"):
        build_model("svm")
    with pytest.raises(ValueError, match="not RandomForestRegressor parameters"):
        build_model("rf", model_params={"learning_rate": 0.1})


@pytest.mark.parametrize("make", [lambda: small("rf"), lambda: small("xgb"), lambda: small("xgb_tuned"), small_ensemble])
def test_nan_and_inf_features_do_not_crash(make):
    X, y = data()
    X[0, 1], X[1, 2], X[2, 3], X[3, :] = np.nan, np.inf, -np.inf, np.nan
    model = make().fit(X, y)
    pred = model.predict(X)
    assert pred.shape == (len(y),) and pred.dtype == np.float64 and np.all(np.isfinite(pred))
    # +inf and -inf are the same missing value as NaN
    same = X.copy()
    same[~np.isfinite(same)] = np.nan
    np.testing.assert_array_equal(pred, make().fit(same, y).predict(same))


def test_clone_and_params():
    est = TabularSurrogate("xgb", features="graf", task="nb201-cifar10", random_state=5, model_params={"max_depth": 3})
    twin = clone(est)
    assert twin.get_params() == est.get_params() and est.task == TaskRef("nb201-cifar10")  # a name, not the data
    X, y = data()
    a = est.fit_matrix(X, y).predict_matrix(X)
    np.testing.assert_array_equal(a, clone(est).fit_matrix(X, y).predict_matrix(X))  # deterministic per seed
    assert not hasattr(twin, "model_")
    assert est.model_.get_params()["max_depth"] == 3


def test_is_feature_matrix():
    assert is_feature_matrix(np.zeros((2, 3)))
    assert is_feature_matrix(np.zeros(3))  # 1-D numbers: a (bad) matrix, rejected by validation
    assert is_feature_matrix([[1.0, 2.0], [3.0, 4.0]])
    assert not is_feature_matrix([("none",) * 6])  # NB201 op tuples are architectures
    assert not is_feature_matrix(["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"])
    assert not is_feature_matrix(np.array([object(), object()], dtype=object))


def einspace_archs(n):
    sampler = Sampler("einspace", (3, 8, 8))
    return [sampler.sample(i) for i in range(n)]


def test_architectures_and_matrices_agree():
    archs = einspace_archs(30)
    y = np.array([a.num_nodes for a in archs], dtype=float)
    model = small("rf", features="graf").fit(archs, y)
    X = model.featurise(archs)
    assert X.shape == (30, model.n_features_in_) and len(model.feature_names_) == X.shape[1]
    assert model.featuriser_[0]["name"] == "graf" and model.training_["source"] == "architectures"
    assert model.training_["arch_hashes"] == [a.hash for a in archs]
    np.testing.assert_array_equal(model.predict(archs), model.predict_matrix(X))
    np.testing.assert_array_equal(model.predict(archs), small("rf").fit(X, y).predict(X))
    ens = EnsembleSurrogate(members=[small("rf"), small("xgb")], features="graf").fit(archs, y)
    np.testing.assert_allclose(ens.predict(archs), ens.predict_members(archs).mean(axis=0))
    np.testing.assert_allclose(ens.predict(archs), ens.predict_matrix(X))
    assert np.all(ens.predict_std(archs) >= 0) and ens.predict_std(archs).shape == (30,)
    with pytest.raises(TypeError, match="for a feature matrix call fit_matrix"):
        small("rf", features="graf").fit(X, y)  # featurisation is decided by features=, never guessed


def test_bare_matrix_model_refuses_architectures():
    archs = einspace_archs(4)
    X, y = data(n=4)
    model = small("rf", features="graf").fit_matrix(X, y)
    with pytest.raises(ValueError, match="bare feature matrix"):
        model.predict(archs)
    with pytest.raises(ValueError, match="no architectures"):
        small("rf", features="graf").fit([], [])


def test_fit_from_archive_uses_the_feature_cache(tmp_path):
    archs = einspace_archs(12)
    with Archive(tmp_path / "a.sqlite") as archive:
        for i, arch in enumerate(archs):
            status = "failed" if i == 3 else "ok"
            metrics = {} if status == "failed" else {"val_acc": 0.1 + 0.05 * (arch.num_nodes % 7)}
            archive.add_evaluation(Evaluation(arch.hash, "toy", "p", 0, status, metrics), arch)
        model = fit_from_archive(small("rf", features="graf"), archive, "toy")
        assert model.task == TaskRef("toy") and model.training_["source"] == "archive"
        assert model.training_["n_rows"] == 11 and model.training_["task"] == "toy"
        name, version = featuriser_key(GRAF())
        assert len(archive.get_features([a.hash for a in archs], "toy", name, version)) == 11  # cached
        kept, y = archive.dataset("toy")
        np.testing.assert_array_equal(model.predict(kept), small("rf", features="graf").fit(kept, y).predict(kept))
        with_failed = fit_from_archive(small("rf", features="graf"), archive, "toy", include_failed=True)
        assert with_failed.training_["n_rows"] == 12 and with_failed.training_["y_min"] == 0.0
        with pytest.raises(ValueError, match="no usable evaluations of task 'other'"):
            fit_from_archive(small("rf", features="graf"), archive, "other")


@pytest.fixture(scope="module")
def nb201():
    from data.nb201 import find_data_dir

    try:
        find_data_dir()
    except FileNotFoundError as exc:
        pytest.skip(f"NB201 tables absent: {exc}")
    from data.tasks import get_task

    task = get_task("nb201-cifar10")
    cells = list(task.all_cells())
    idx = np.random.default_rng(0).permutation(len(cells))[:1256]
    archs = [cells[i].architecture() for i in idx]
    y = np.array([cells[i].val_acc for i in idx])
    return task, archs, y


@pytest.mark.parametrize("model", ["rf", "xgb"])
def test_nb201_graf_and_table_proxies_rank_well(nb201, model):
    task, archs, y = nb201
    surrogate = TabularSurrogate(model, features="graf,zcp", task=task).fit(archs[:256], y[:256])
    assert surrogate.n_features_in_ == 65 + 13
    tau = kendall_tau(y[256:], surrogate.predict(archs[256:]))
    assert tau > 0.6, tau
