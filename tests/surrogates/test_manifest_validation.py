"""A saved surrogate's manifest is validated before any model is built: sane parameters, files only inside the
folder (their contents never shown otherwise), check rows required."""

import hashlib
import json
import os

import numpy as np
import pytest

import surrogates.tabular
from surrogates.ensemble import EnsembleSurrogate
from surrogates.folder import PARAM_RANGES
from surrogates.persistence import MANIFEST, PersistenceError, load_surrogate, save_surrogate
from surrogates.tabular import TabularSurrogate

SECRET = "SECRET-CONTENT,1\n"


def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    return X, X[:, 0] - X[:, 1]


@pytest.fixture
def saved(tmp_path):
    X, y = data()
    for model in ("rf", "xgb"):
        save_surrogate(TabularSurrogate(model, features=None, model_params={"n_estimators": 8}).fit_matrix(X, y),
                       tmp_path / model)
    return tmp_path


def edit(directory, change):
    path = directory / MANIFEST
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def no_model_may_be_built(monkeypatch):
    def build(*args, **kwargs):
        raise AssertionError("a model was built from a manifest that should have been refused")

    monkeypatch.setattr(surrogates.tabular, "build_model", build)


@pytest.mark.parametrize("field, value", [
    ("n_estimators", 10_000_000), ("n_estimators", 0), ("n_estimators", 8.5), ("n_estimators", True),
    ("max_depth", 10 ** 6), ("learning_rate", 0), ("subsample", 2.0), ("n_jobs", 10 ** 6), ("max_bin", 10 ** 9),
])
def test_model_params_out_of_range_are_refused_before_any_refit(saved, monkeypatch, field, value):
    for model in ("rf", "xgb"):
        edit(saved / model, lambda m: m["params"]["model_params"].update({field: value}))
        no_model_may_be_built(monkeypatch)
        with pytest.raises(PersistenceError) as caught:
            load_surrogate(saved / model)
        message = str(caught.value)
        assert f"field 'params.model_params.{field}' is {value!r}; expected" in message and "\n" not in message
        assert f"{model}/{MANIFEST}" in message


@pytest.mark.parametrize("field, value", [("random_state", -1), ("random_state", 2 ** 40), ("n_jobs", "all"),
                                          ("model_params", [1])])
def test_top_level_params_out_of_range_are_refused(saved, field, value):
    edit(saved / "rf", lambda m: m["params"].update({field: value}))
    with pytest.raises(PersistenceError, match=f"field 'params.{field}'"):
        load_surrogate(saved / "rf")


def test_ranges_admit_the_published_settings():
    assert PARAM_RANGES["n_estimators"].admits(10_000)  # xgb_tuned
    assert PARAM_RANGES["max_depth"].admits(None) and PARAM_RANGES["n_jobs"].admits(-1)
    assert PARAM_RANGES["learning_rate"].admits(0.01) and not PARAM_RANGES["learning_rate"].admits(float("nan"))


def test_nested_members_are_validated(tmp_path, monkeypatch):
    X, y = data()
    model = EnsembleSurrogate(members=[TabularSurrogate("rf", features=None, model_params={"n_estimators": 8})],
                              features=None).fit_matrix(X, y)
    save_surrogate(model, tmp_path / "e")
    edit(tmp_path / "e" / "members" / "000", lambda m: m["params"]["model_params"].update(n_estimators=10 ** 7))
    no_model_may_be_built(monkeypatch)
    with pytest.raises(PersistenceError, match=r"members/000/manifest\.json: field 'params\.model_params\.n_estimators'"):
        load_surrogate(tmp_path / "e")


def test_a_surrogate_that_could_not_be_loaded_is_not_saved(tmp_path):
    X, y = data()
    model = TabularSurrogate("xgb", features=None, model_params={"n_estimators": 8}).fit_matrix(X, y)
    model.set_params(model_params={"n_estimators": 10 ** 7})  # after fitting, so the test stays quick
    with pytest.raises(PersistenceError, match="'params.model_params.n_estimators' is 10000000"):
        save_surrogate(model, tmp_path / "m")
    assert sorted(os.listdir(tmp_path)) == []


def secret_file(tmp_path):
    path = tmp_path / "secret.csv"
    path.write_text(SECRET)
    return path


def point_model_file_at(directory, file, content_path):
    digest = hashlib.sha256(content_path.read_bytes()).hexdigest()
    edit(directory, lambda m: m["model"].update(file=file, sha256=digest))


@pytest.mark.parametrize("how", ["relative", "absolute", "etc-passwd"])
def test_model_files_outside_the_folder_are_refused(saved, how):
    secret = secret_file(saved)
    file = {"relative": "../secret.csv", "absolute": str(secret), "etc-passwd": "../../../../etc/passwd"}[how]
    point_model_file_at(saved / "rf", file, secret)
    with pytest.raises(PersistenceError, match="model file .* is not a relative path inside") as caught:
        load_surrogate(saved / "rf")
    assert "SECRET" not in str(caught.value) and "root:" not in str(caught.value)


def test_links_out_of_the_folder_are_refused_without_showing_the_target(saved):
    secret = secret_file(saved)
    (saved / "rf" / "features.csv").unlink()
    (saved / "rf" / "features.csv").symlink_to(secret)  # the model file itself, its sha256 updated
    point_model_file_at(saved / "rf", "features.csv", secret)
    with pytest.raises(PersistenceError, match="features.csv: a link leading outside") as caught:
        load_surrogate(saved / "rf")
    assert "SECRET" not in str(caught.value)
    (saved / "xgb" / "extra").symlink_to(secret)  # any link out of the folder, read or not
    with pytest.raises(PersistenceError, match="extra: a link leading outside"):
        load_surrogate(saved / "xgb")


def test_links_inside_the_folder_are_fine(saved):
    X, _ = data()
    before = load_surrogate(saved / "xgb").predict(X)
    os.rename(saved / "xgb" / "model.json", saved / "xgb" / "real.json")
    (saved / "xgb" / "model.json").symlink_to("real.json")
    np.testing.assert_array_equal(load_surrogate(saved / "xgb").predict(X), before)


def test_check_rows_are_required(saved):
    """A forged features.csv (its sha256 updated) with the check rows removed must not load silently."""
    csv = saved / "rf" / "features.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([lines[0]] + [",".join(["0.0"] * 3 + ["1.0"])] * 40) + "\n")
    point_model_file_at(saved / "rf", "features.csv", csv)
    edit(saved / "rf", lambda m: m.update(check={"rows": [], "predictions": []}))
    with pytest.raises(PersistenceError, match="field 'check.rows' is empty"):
        load_surrogate(saved / "rf")
    edit(saved / "rf", lambda m: m.pop("check"))
    with pytest.raises(PersistenceError, match="field 'check' is missing"):
        load_surrogate(saved / "rf")


def test_check_rows_and_predictions_must_pair(saved):
    edit(saved / "xgb", lambda m: m["check"]["predictions"].pop())
    with pytest.raises(PersistenceError, match="5 check rows but 4 recorded predictions"):
        load_surrogate(saved / "xgb")
