import json
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from data.archive import Archive
from data.training import Evaluation
from nas.sampler import Sampler
from surrogates.ensemble import EnsembleSurrogate
from surrogates.persistence import (
    MANIFEST,
    SCHEMA_VERSION,
    PersistenceError,
    load_surrogate,
    read_manifest,
    save_surrogate,
)
from surrogates.tabular import TabularSurrogate, fit_from_archive
from surrogates.transfer import TransferSurrogate


def data(n=50, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = X[:, 0] - X[:, 1] + 0.1 * rng.normal(size=n)
    X[1, 2], X[2, 0] = np.nan, np.inf
    return X, y


def small(model, **kw):
    """A quick surrogate; on feature matrices unless ``features`` is given."""
    return TabularSurrogate(model, model_params={"n_estimators": 15}, **{"features": None, **kw})


def saved_files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("make", [
    lambda: small("rf", random_state=3),
    lambda: small("xgb", random_state=3),
    lambda: small("xgb_tuned"),
    lambda: EnsembleSurrogate(n_seeds=1, features=None),
    lambda: EnsembleSurrogate(members=[small("rf"), EnsembleSurrogate(members=[small("xgb")], features=None)],
                              features=None),
], ids=["rf", "xgb", "xgb_tuned", "ensemble", "nested"])
def test_round_trip_matrix(tmp_path, make):
    X, y = data()
    model = make().fit_matrix(X, y, [f"f{i}" for i in range(4)])
    save_surrogate(model, tmp_path / "m")
    back = load_surrogate(tmp_path / "m")
    assert type(back) is type(model) and back.get_params(deep=False).keys() == model.get_params(deep=False).keys()
    np.testing.assert_array_equal(back.predict(X), model.predict(X))
    assert list(back.feature_names_) == ["f0", "f1", "f2", "f3"]
    assert all(f.endswith((".json", ".csv")) for f in saved_files(tmp_path / "m"))  # no pickle anywhere
    manifest = read_manifest(tmp_path / "m")
    assert manifest["schema_version"] == SCHEMA_VERSION and manifest["training"]["n_rows"] == 50
    assert "scikit-learn" in manifest["software"] and len(manifest["check"]["predictions"]) == 5
    if isinstance(model, EnsembleSurrogate):
        np.testing.assert_array_equal(back.predict_std(X), model.predict_std(X))


def test_rf_is_saved_as_training_data_and_refitted(tmp_path):
    X, y = data()
    model = small("rf").fit(X, y)
    save_surrogate(model, tmp_path / "rf")
    assert saved_files(tmp_path / "rf") == ["features.csv", MANIFEST]
    manifest = read_manifest(tmp_path / "rf")
    assert manifest["model"]["format"] == "refit-csv" and manifest["params"]["random_state"] == 0
    back = load_surrogate(tmp_path / "rf")
    np.testing.assert_array_equal(back.train_X_, model.train_X_)  # NaN (and inf, as NaN) survive the CSV
    save_surrogate(back, tmp_path / "rf")  # saving again over a saved surrogate is fine
    with pytest.raises(PersistenceError, match="integer random_state"):
        save_surrogate(small("rf", random_state=None).fit(X, y), tmp_path / "none")


def test_xgb_is_saved_in_its_json_format(tmp_path):
    X, y = data()
    save_surrogate(small("xgb").fit(X, y), tmp_path / "x")
    assert saved_files(tmp_path / "x") == [MANIFEST, "model.json"]
    json.loads((tmp_path / "x" / "model.json").read_text())


def test_transfer_round_trip(tmp_path):
    X, y = data()
    model = TransferSurrogate(base="xgb", normalisation="percentile", model_params={"n_estimators": 10},
                              features=None).fit_sources([(X[:25], y[:25], "a"), (X[25:], 3 * y[25:], "b")],
                                                         current=(X[:10], y[:10] + 1))
    save_surrogate(model, tmp_path / "t")
    back = load_surrogate(tmp_path / "t")
    np.testing.assert_array_equal(back.predict(X), model.predict(X))
    assert back.blocks_ == model.blocks_ and back.normalisation == "percentile"
    np.testing.assert_array_equal(back.source_X_, model.source_X_)  # the source rows travel with the surrogate
    np.testing.assert_array_equal(back.fit(X[:10], y[:10] + 1).predict(X), model.predict(X))  # and refit the same
    rf = TransferSurrogate(model_params={"n_estimators": 10}, features=None).fit_sources([(X, y, "a")])
    rf.save(tmp_path / "rf")
    back = load_surrogate(tmp_path / "rf")
    assert isinstance(back, TransferSurrogate)
    np.testing.assert_array_equal(back.predict(X), rf.predict(X))


def test_round_trip_on_architectures_from_an_archive(tmp_path):
    sampler = Sampler("einspace", (3, 8, 8))
    archs = [sampler.sample(i) for i in range(16)]
    with Archive(tmp_path / "a.sqlite") as archive:
        for arch in archs:
            archive.add_evaluation(Evaluation(arch.hash, "toy", "p", 0, "ok", {"val_acc": 0.01 * arch.num_nodes}), arch)
        model = fit_from_archive(small("rf", features="graf"), archive, "toy")
    model.save(tmp_path / "m")
    back = load_surrogate(tmp_path / "m")
    assert isinstance(back, TabularSurrogate)
    np.testing.assert_array_equal(back.predict(archs), model.predict(archs))  # featurises architectures itself
    manifest = read_manifest(tmp_path / "m")
    assert manifest["featuriser"]["spec"] == "graf" and manifest["featuriser"]["parts"][0]["name"] == "graf"
    assert manifest["training"]["archive"].endswith("a.sqlite") and manifest["training"]["task"] == "toy"
    assert manifest["training"]["arch_hashes"] == [a.hash for a in archs] and manifest["task"] == {"name": "toy"}
    assert load_surrogate(tmp_path / "m", task="other").task.name == "other"  # task override


@pytest.fixture
def saved(tmp_path):
    X, y = data()
    save_surrogate(small("rf").fit_matrix(X, y, ["a", "b", "c", "d"]), tmp_path / "rf")
    save_surrogate(small("xgb").fit(X, y), tmp_path / "xgb")
    return tmp_path


def edit_manifest(folder, **changes):
    path = folder / MANIFEST
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def test_missing_folder_or_manifest(tmp_path):
    with pytest.raises(PersistenceError, match="no such folder"):
        load_surrogate(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PersistenceError, match=r"manifest\.json: missing"):
        load_surrogate(tmp_path / "empty")


def test_corrupted_json(saved):
    path = saved / "rf" / MANIFEST
    path.write_text(path.read_text()[:100])
    with pytest.raises(PersistenceError, match=r"rf/manifest\.json: corrupted JSON \(line"):
        load_surrogate(saved / "rf")
    path.write_text("[1, 2]")
    with pytest.raises(PersistenceError, match="expected a JSON object"):
        load_surrogate(saved / "rf")


def test_unknown_kind_and_schema_version(saved):
    edit_manifest(saved / "rf", kind="svm")
    with pytest.raises(PersistenceError, match="unknown kind 'svm'"):
        load_surrogate(saved / "rf")
    edit_manifest(saved / "xgb", schema_version=99)
    with pytest.raises(PersistenceError, match=r"xgb/manifest\.json: schema version 99"):
        load_surrogate(saved / "xgb")


def test_mismatched_feature_names(saved):
    csv_path = saved / "rf" / "features.csv"
    lines = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join(["a,b,x,d,y"] + lines[1:]) + "\n")
    edit_manifest(saved / "rf", model={**read_manifest(saved / "rf")["model"], "sha256": None})
    with pytest.raises(PersistenceError, match=r"features\.csv: feature names do not match the manifest: column 2 is 'x', expected 'c'"):
        load_surrogate(saved / "rf")
    manifest = read_manifest(saved / "xgb")
    edit_manifest(saved / "xgb", feature_names=manifest["feature_names"][:3], n_features=3)
    with pytest.raises(PersistenceError, match="the model has 4 features but .* names 3"):
        load_surrogate(saved / "xgb")


def test_damaged_model_files(saved):
    model = saved / "xgb" / "model.json"
    model.write_text(model.read_text()[:200])
    with pytest.raises(PersistenceError, match=r"model\.json: contents changed since saving"):
        load_surrogate(saved / "xgb")
    edit_manifest(saved / "xgb", model={"format": "xgboost-json", "file": "model.json"})
    with pytest.raises(PersistenceError, match=r"model\.json: not a readable XGBoost model"):
        load_surrogate(saved / "xgb")
    (saved / "rf" / "features.csv").unlink()
    with pytest.raises(PersistenceError, match=r"features\.csv: model file named in .* is missing"):
        load_surrogate(saved / "rf")


def test_refit_must_reproduce_recorded_predictions(saved):
    manifest = read_manifest(saved / "rf")
    manifest["check"]["predictions"][0] += 1e-6
    (saved / "rf" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(PersistenceError, match="does not reproduce the recorded predictions"):
        load_surrogate(saved / "rf")


def test_save_refusals(tmp_path):
    with pytest.raises(NotFittedError):
        save_surrogate(small("rf"), tmp_path / "unfitted")
    X, y = data()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(PersistenceError, match="not empty and holds no manifest.json"):
        save_surrogate(small("rf").fit(X, y), tmp_path / "busy")
    with pytest.raises(PersistenceError, match="parameter model_params.f"):
        save_surrogate(small("xgb").fit(X, y).set_params(model_params={"f": object()}), tmp_path / "p")
    with pytest.raises(PersistenceError, match="cannot save a list"):
        save_surrogate([], tmp_path / "l")


def test_lm_kind_is_dispatched_through_the_registry(tmp_path, monkeypatch):
    import surrogates.lm

    (tmp_path / "lm").mkdir()
    (tmp_path / "lm" / MANIFEST).write_text(json.dumps({"kind": "lm", "schema_version": 7}))
    monkeypatch.setattr(surrogates.lm, "load_lm", lambda directory: ("lm loaded from", directory))
    assert load_surrogate(tmp_path / "lm") == ("lm loaded from", tmp_path / "lm")

    class Saves:
        def save(self, directory):
            self.saved = directory

    with pytest.raises(PersistenceError, match="cannot save a Saves: not a surrogates.base.Surrogate"):
        save_surrogate(Saves(), tmp_path / "x")
