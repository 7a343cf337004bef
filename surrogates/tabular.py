"""Tabular surrogates: a random forest or XGBoost regressor on GRAF and zero-cost-proxy features.

``TabularSurrogate(model="rf" | "xgb" | "xgb_tuned")`` is a ``surrogates.base.FeatureSurrogate``: ``fit(archs,
y)`` featurises the architectures (``features`` on ``task``) and calls ``fit_matrix``; ``fit_cached`` /
``predict_cached`` read the features through an archive's cache, and callers with a feature matrix call
``fit_matrix`` / ``predict_matrix`` themselves.  Feature values of ±inf become NaN, which both
models accept as missing values (scikit-learn ≥ 1.4 forests, XGBoost natively).  The published models and their
defaults:

* ``rf``: ``RandomForestRegressor(random_state=seed)`` with scikit-learn's defaults (100 trees,
  ``max_features=1.0``, bootstrap, ``min_samples_leaf=1``) and ``n_jobs=1``;
* ``xgb``: ``XGBRegressor(random_state=seed)`` with XGBoost's defaults;
* ``xgb_tuned``: XGBoost with ``tree_method="hist"``, ``subsample=0.9``, ``n_estimators=10_000``,
  ``learning_rate=0.01`` and no early stopping.  Slow (10,000 rounds: minutes on a few thousand rows);
  pass ``model_params={"n_estimators": ...}`` for quick runs.

``model_params`` overrides any of these.  Saved as XGBoost's own JSON format, or, for a forest (which has no
safe file format), as its training data (``features.csv``) that loading refits from with the same seed.
``fit_from_archive`` fits on an archive's evaluations of a task through the archive's feature cache, so
features are computed once per architecture.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from sklearn.ensemble import RandomForestRegressor
from sklearn.utils.validation import check_is_fitted

from surrogates import folder
from surrogates.base import FeatureSurrogate, Loader, Surrogate, task_ref
from surrogates.folder import MANIFEST, PersistenceError

log = logging.getLogger(__name__)

MODELS: tuple[str, ...] = ("rf", "xgb", "xgb_tuned")
#: The ``xgb_tuned`` settings of the published code (before ``model_params``).
XGB_TUNED: Mapping[str, Any] = {"tree_method": "hist", "subsample": 0.9, "n_estimators": 10_000, "learning_rate": 0.01}
XGB_FILE = "model.json"
RF_FILE = "features.csv"


def build_model(model: str, random_state: Any = 0, n_jobs: int | None = 1,
                model_params: Mapping[str, Any] | None = None) -> Any:
    """A fresh, unfitted regressor for a model key of ``MODELS`` with the published defaults, then ``model_params``."""
    params = dict(model_params or {})
    if model == "rf":
        try:
            return RandomForestRegressor(**{"random_state": random_state, "n_jobs": n_jobs, **params})
        except TypeError as exc:
            raise ValueError(f"model_params for 'rf' are not RandomForestRegressor parameters: {exc}") from None
    if model in ("xgb", "xgb_tuned"):
        from xgboost import XGBRegressor  # deferred: xgboost

        base: dict[str, Any] = {"random_state": random_state, "n_jobs": n_jobs}
        if model == "xgb_tuned":
            base.update(XGB_TUNED)
        return XGBRegressor(**{**base, **params})
    raise ValueError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")


# --------------------------------------------------------------------------------------------------
# The tabular surrogate
# --------------------------------------------------------------------------------------------------


class TabularSurrogate(FeatureSurrogate):
    """A random forest (``"rf"``) or XGBoost (``"xgb"``, ``"xgb_tuned"``) regressor of validation accuracy on
    architecture features.  ``features`` names the feature sets (None: inputs are feature matrices), ``task``
    (a name, ``TaskRef`` or task object, kept as a ``TaskRef``) is what the zero-cost proxies are computed on;
    ``model_params`` override the published defaults.

    Fitted attributes: ``model_`` (the regressor), those of ``FeatureSurrogate`` and, for ``rf`` only,
    ``train_X_``/``train_y_`` (the training data itself: a forest has no safe file format, so saving records
    the data to refit from).
    """

    kind = "tabular"

    def __init__(self, model: str = "rf", features: str | None = "graf,zcp", task: Any = None, random_state: Any = 0,
                 model_params: Mapping[str, Any] | None = None, n_jobs: int | None = 1) -> None:
        self.model = model
        self.features = features
        self.task = task_ref(task, strict=False)
        self.random_state = random_state
        self.model_params = model_params
        self.n_jobs = n_jobs

    def fit_matrix(self, X: Any, y: Any, feature_names: Sequence[str] | None = None, *,
                   featuriser_info: list[dict[str, str]] | None = None, source: str = "matrix",
                   archs: Sequence[Any] | None = None) -> "TabularSurrogate":
        X, y, names = self._fit_input(X, y, feature_names)
        model = build_model(self.model, self.random_state, self.n_jobs, self.model_params)
        model.fit(X, y)
        self.model_ = model
        self._set_fitted(X, y, names, featuriser_info, source, archs)
        self.train_X_, self.train_y_ = (X, y) if self.model == "rf" else (None, None)
        log.debug("TabularSurrogate(%s): fitted on %d rows x %d features", self.model, X.shape[0], X.shape[1])
        return self

    def predict_matrix(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        return np.asarray(self.model_.predict(self._predict_input(X)), dtype=np.float64).reshape(-1)

    def _save_model(self, directory: Path) -> dict[str, Any]:
        if self.model != "rf":
            path = directory / XGB_FILE
            self.model_.save_model(os.fspath(path))
            return {"model": {"format": "xgboost-json", "file": XGB_FILE, "sha256": folder.sha256(path)}}
        rs = self.random_state
        if not isinstance(rs, (int, np.integer)) or isinstance(rs, bool):
            raise PersistenceError(f"a random forest is saved by recording its training data and refitting, which needs "
                                   f"an integer random_state; this one has {rs!r}")
        path = directory / RF_FILE
        folder.write_training_csv(path, [str(n) for n in self.feature_names_], self.train_X_, self.train_y_)
        return {"model": {"format": "refit-csv", "file": RF_FILE, "n_rows": int(len(self.train_y_)),
                          "sha256": folder.sha256(path)}}

    def _load_model(self, directory: Path, manifest: Mapping[str, Any], load: Loader | None) -> None:
        path = directory / MANIFEST
        info = folder.field(manifest, "model", dict, path)
        fmt, names = info.get("format"), manifest["feature_names"]
        model_path = folder.model_file(directory, info, path)
        try:
            model = build_model(self.model, self.random_state, self.n_jobs, self.model_params)
        except ValueError as exc:
            raise PersistenceError(f"{path}: {exc}") from None
        expected = {"xgboost-json": ("xgb", "xgb_tuned"), "refit-csv": ("rf",)}
        if fmt not in expected:
            raise PersistenceError(f"{path}: unknown model format {fmt!r}; expected xgboost-json or refit-csv")
        if self.model not in expected[fmt]:
            raise PersistenceError(f"{path}: model format {fmt} for model {self.model!r}")
        if fmt == "refit-csv":
            X, y = folder.read_training_csv(model_path, names)
            model.fit(X, y)
            self.train_X_, self.train_y_ = X, y
        else:
            _load_xgboost(model, model_path, len(names), path)
            self.train_X_, self.train_y_ = None, None
        self.model_ = model


def _load_xgboost(model: Any, model_path: Path, n_features: int, manifest_path: Path) -> None:
    try:
        model.load_model(os.fspath(model_path))
        n = model.get_booster().num_features()
    except Exception as exc:  # noqa: BLE001 - XGBoostError and friends
        raise PersistenceError(f"{model_path}: not a readable XGBoost model ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if n != n_features:
        raise PersistenceError(f"{model_path}: the model has {n} features but {manifest_path} names {n_features}")


def fit_from_archive(surrogate: Surrogate, archive: Any, task_name: str, protocol: str | None = None, *,
                     include_failed: bool = False, failed_value: float = 0.0, progress: bool = False) -> Surrogate:
    """Fit a surrogate on ``archive.dataset(task_name, protocol)`` (one row per architecture, mean over
    seeds; failures left out unless ``include_failed``), with the features read from and written to the
    archive's feature cache.  A surrogate without a task gets ``task_name``.  Returns the fitted surrogate."""
    archs, y = archive.dataset(task_name, protocol, include_failed=include_failed, failed_value=failed_value)
    if not archs:
        raise ValueError(f"{archive.path}: no usable evaluations of task {task_name!r}"
                         + (f" under protocol {protocol!r}" if protocol else ""))
    if "task" in surrogate.get_params(deep=False) and surrogate.task is None:
        surrogate.set_params(task=task_name)
    surrogate.fit_cached(archs, y, archive, task_name, progress)
    if isinstance(getattr(surrogate, "training_", None), dict):
        surrogate.training_.update({"archive": os.path.abspath(archive.path), "task": task_name,
                                    "protocol": protocol, "include_failed": include_failed})
    log.info("fitted %s on %d architectures of %s from %s", type(surrogate).__name__, len(archs), task_name, archive.path)
    return surrogate
