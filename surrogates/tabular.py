"""Tabular surrogates: a random forest or XGBoost regressor on GRAF and zero-cost-proxy features (spec §3.1).

``TabularSurrogate(model="rf" | "xgb" | "xgb_tuned")`` is a scikit-learn regressor.  ``fit`` and ``predict``
take either architectures (featurised with ``features.pipeline.make_featuriser(features, task)``) or a
precomputed 2-D float feature matrix (callers with cached features; see ``is_feature_matrix`` for how the two
are told apart).  Feature values of ±inf become NaN, which both models accept as missing values (scikit-learn
≥ 1.4 forests, XGBoost natively).  The published models and their defaults:

* ``rf``: ``RandomForestRegressor(random_state=seed)`` with scikit-learn's defaults (100 trees,
  ``max_features=1.0``, bootstrap, ``min_samples_leaf=1``) and ``n_jobs=1``;
* ``xgb``: ``XGBRegressor(random_state=seed)`` with XGBoost's defaults;
* ``xgb_tuned``: XGBoost with ``tree_method="hist"``, ``subsample=0.9``, ``n_estimators=10_000``,
  ``learning_rate=0.01`` and no early stopping.  Slow (10,000 rounds: minutes on a few thousand rows);
  pass ``model_params={"n_estimators": ...}`` for quick runs.

``model_params`` overrides any of these.  ``fit_from_archive`` fits on an archive's evaluations of a task
through the archive's feature cache, so features are computed once per architecture.
"""

from __future__ import annotations

import hashlib
import logging
import numbers
import os
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

log = logging.getLogger(__name__)

MODELS: tuple[str, ...] = ("rf", "xgb", "xgb_tuned")
#: The ``xgb_tuned`` settings of the published code (before ``model_params``).
XGB_TUNED: Mapping[str, Any] = {"tree_method": "hist", "subsample": 0.9, "n_estimators": 10_000, "learning_rate": 0.01}
#: Training rows whose predictions are recorded for checking a reloaded model.
CHECK_ROWS = 5


# --------------------------------------------------------------------------------------------------
# Helpers shared by the surrogates
# --------------------------------------------------------------------------------------------------


def build_model(model: str, random_state: Any = 0, n_jobs: int | None = 1,
                model_params: Mapping[str, Any] | None = None) -> Any:
    """A fresh, unfitted regressor for a model key of ``MODELS`` with the published defaults, then ``model_params``."""
    params = dict(model_params or {})
    if model == "rf":
        from sklearn.ensemble import RandomForestRegressor

        try:
            return RandomForestRegressor(**{"random_state": random_state, "n_jobs": n_jobs, **params})
        except TypeError as exc:
            raise ValueError(f"model_params for 'rf' are not RandomForestRegressor parameters: {exc}") from None
    if model in ("xgb", "xgb_tuned"):
        from xgboost import XGBRegressor

        base: dict[str, Any] = {"random_state": random_state, "n_jobs": n_jobs}
        if model == "xgb_tuned":
            base.update(XGB_TUNED)
        return XGBRegressor(**{**base, **params})
    raise ValueError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (numbers.Real, np.number)) and not isinstance(v, (str, bytes))


def is_feature_matrix(X: Any) -> bool:
    """True when ``X`` is a feature matrix rather than a collection of architectures: a numpy array (except a
    1-D object array, which holds architectures), a sparse matrix, any other object with ``__array__``
    (array wrappers, data frames), or a list/tuple whose first row is a list/tuple/array of numbers.  Everything
    else (lists of ``Architecture`` values, NB201 cell strings or 6-tuples of op names) is architectures."""
    if sparse.issparse(X):
        return True
    if isinstance(X, np.ndarray):
        return not (X.ndim == 1 and X.dtype == object)
    if hasattr(X, "__array__") and not isinstance(X, (str, bytes)):
        return True
    if isinstance(X, (list, tuple)) and len(X) and isinstance(X[0], (list, tuple, np.ndarray)):
        row = X[0]
        return len(row) > 0 and all(_is_number(v) for v in row)
    return False


def clean_features(X: np.ndarray) -> np.ndarray:
    """``X`` as float64 with ±inf replaced by NaN (a missing value for both models)."""
    X = np.asarray(X, dtype=np.float64)
    inf = np.isinf(X)
    if inf.any():
        log.debug("%d infinite feature value(s) treated as missing", int(inf.sum()))
        X = np.where(inf, np.nan, X)
    return X


def task_label(task: Any) -> str | None:
    """A task parameter (name, ``Task``/``TabularTask`` object or None) as a name."""
    if task is None or isinstance(task, str):
        return task
    return str(getattr(task, "name", type(task).__name__))


def resolve_task(task: Any) -> Any:
    """A task parameter as a task object: names (or Unseen-NAS folders) through ``data.tasks.get_task``."""
    if task is None or not isinstance(task, str):
        return task
    from data.tasks import get_task

    try:
        return get_task(task)
    except KeyError as exc:
        raise ValueError(f"cannot resolve task {task!r} for feature computation: {exc}") from None


def _grammar_of(items: Sequence[Any]) -> str | None:
    grammar = getattr(items[0], "grammar", None) if items else None
    return getattr(grammar, "name", None)


def _feature_parts(featuriser: Any) -> list[Any]:
    """The underlying featurisers of a (possibly concatenated, possibly cached) featuriser."""
    from features.pipeline import Concat

    parts = list(featuriser.parts) if isinstance(featuriser, Concat) else [featuriser]
    return [getattr(p, "featuriser", p) if type(p).__name__ == "CachedFeaturiser" else p for p in parts]


def featuriser_info(featuriser: Any) -> list[dict[str, str]]:
    """``[{"name", "version"}, ...]`` of every part, as keyed in the feature cache (``features.cache.featuriser_key``)."""
    from features.cache import featuriser_key

    return [dict(zip(("name", "version"), featuriser_key(p))) for p in _feature_parts(featuriser)]


def build_featuriser(features: str, task: Any = None, grammar: str | None = None, archive: Any = None,
                     task_name: str | None = None) -> Any:
    """The featuriser of a feature spec (``"graf"``, ``"zcp"``, ``"graf,zcp"``) on ``task``; with ``archive``,
    cached there under ``task_name`` (default: the task's name).  The task is resolved only when needed
    (zero-cost proxies, or the grammar of a tabular task)."""
    from features.pipeline import cached, make_featuriser, parse_feature_sets

    needs_task = "zcp" in parse_feature_sets(features) or grammar is None
    resolved = resolve_task(task) if needs_task else None
    featuriser = make_featuriser(features, resolved, grammar=grammar)
    if archive is not None:
        name = task_name or task_label(task)
        if name is None:
            raise ValueError("caching features in an archive needs a task name (task_name=...)")
        featuriser = cached(featuriser, archive, name)
    return featuriser


def describe_training(X: np.ndarray, y: np.ndarray, source: str, items: Sequence[Any] | None = None) -> dict[str, Any]:
    """A JSON-able description of a training set: size, digests of the features and targets, target range,
    and the architectures' hashes when they are known."""
    X = np.ascontiguousarray(X, dtype="<f8")
    y = np.ascontiguousarray(y, dtype="<f8")
    desc: dict[str, Any] = {
        "source": source,
        "n_rows": int(X.shape[0]),
        "n_features": int(X.shape[1]) if X.ndim == 2 else 0,
        "X_sha256": hashlib.sha256(X.tobytes()).hexdigest(),
        "y_sha256": hashlib.sha256(y.tobytes()).hexdigest(),
        "y_min": float(np.min(y)) if y.size else None,
        "y_max": float(np.max(y)) if y.size else None,
        "y_mean": float(np.mean(y)) if y.size else None,
    }
    hashes = [getattr(a, "hash", None) for a in items] if items is not None else []
    if hashes and all(isinstance(h, str) for h in hashes):
        desc["arch_hashes"] = hashes
    return desc


class FeaturesMixin:
    """Featurisation shared by the surrogates: architectures → feature matrix with ``features`` on ``task``,
    and the checks that predictions see the same columns as training did; and saving and loading through
    ``surrogates.persistence``."""

    features: str
    task: Any

    def save(self, directory: "str | os.PathLike[str]") -> None:
        """Save to a folder (see ``surrogates.persistence.save_surrogate``)."""
        from surrogates.persistence import save_surrogate

        save_surrogate(self, directory)

    @classmethod
    def load(cls, directory: "str | os.PathLike[str]", task: Any = None) -> Any:
        """Load a surrogate saved with ``save``; a ``TypeError`` if the folder holds another kind."""
        from surrogates.persistence import load_surrogate

        surrogate = load_surrogate(directory, task=task)
        if not isinstance(surrogate, cls):
            raise TypeError(f"{directory}: holds a {type(surrogate).__name__}, not a {cls.__name__}")
        return surrogate

    def make_featuriser(self, archive: Any = None, task_name: str | None = None, grammar: str | None = None) -> Any:
        """This surrogate's featuriser (unfitted; stateless), cached in ``archive`` under ``task_name``, or
        without an archive in a store private to this instance, so that refitting during a search never
        featurises an architecture twice."""
        if archive is None:
            from features.cache import MemoryStore

            archive = self.__dict__.setdefault("_feature_memo", MemoryStore())
            task_name = task_name or task_label(self.task) or "-"
        return build_featuriser(self.features, self.task, grammar=grammar, archive=archive, task_name=task_name)

    def featurise(self, archs: Sequence[Any]) -> np.ndarray:
        """Feature matrix of architectures (no cache; see ``make_featuriser(archive=...)`` for one)."""
        items = list(archs)
        featuriser = self.make_featuriser(grammar=_grammar_of(items))
        return np.asarray(featuriser.fit(items).transform(items), dtype=np.float64)

    def _prepare_fit(self, X: Any) -> tuple[Any, list[str] | None, list[dict[str, str]] | None, list[Any] | None]:
        """``(matrix, feature names, featuriser info, architectures)`` for training input ``X``."""
        if is_feature_matrix(X):
            return X, None, None, None
        items = list(X)
        if not items:
            raise ValueError(f"{type(self).__name__}.fit: no architectures given")
        featuriser = self.make_featuriser(grammar=_grammar_of(items))
        matrix = np.asarray(featuriser.fit(items).transform(items), dtype=np.float64)
        names = [str(n) for n in featuriser.get_feature_names_out()]
        return matrix, names, featuriser_info(featuriser), items

    def _prepare_predict(self, X: Any) -> Any:
        """Input ``X`` of ``predict`` as a matrix: architectures are featurised and their columns checked
        against the ones the model was fitted on."""
        if is_feature_matrix(X):
            return X
        items = list(X)
        name = type(self).__name__
        if not items:
            return np.zeros((0, self.n_features_in_))
        recorded = getattr(self, "featuriser_", None)
        if recorded is None and all(n == f"x{i}" for i, n in enumerate(self.feature_names_)):
            raise ValueError(f"{name} was fitted on a bare feature matrix (no feature names), so it cannot featurise "
                             "architectures; pass a feature matrix to predict, or fit with feature_names=")
        featuriser = self.make_featuriser(grammar=_grammar_of(items))
        names = [str(n) for n in featuriser.get_feature_names_out()]
        if names != [str(n) for n in self.feature_names_]:
            fitted = [str(n) for n in self.feature_names_]
            diff = next((i for i, (a, b) in enumerate(zip(names, fitted)) if a != b), min(len(names), len(fitted)))
            raise ValueError(f"{name}: features {self.features!r} give {len(names)} columns but the model was fitted on "
                             f"{len(self.feature_names_)}; first difference at column {diff}")
        info = featuriser_info(featuriser)
        if recorded is not None and info != recorded:
            raise ValueError(f"{name}: the featurisers changed since fitting (fitted with {recorded}, now {info}); "
                             "refit the surrogate")
        return np.asarray(featuriser.fit(items).transform(items), dtype=np.float64)


# --------------------------------------------------------------------------------------------------
# The tabular surrogate
# --------------------------------------------------------------------------------------------------


class TabularSurrogate(FeaturesMixin, RegressorMixin, BaseEstimator):
    """A random forest (``"rf"``) or XGBoost (``"xgb"``, ``"xgb_tuned"``) regressor of validation accuracy on
    architecture features.  ``features`` names the feature sets, ``task`` (a name or task object) is what
    the zero-cost proxies are computed on; ``model_params`` override the published defaults.

    Fitted attributes: ``model_`` (the regressor), ``n_features_in_``, ``feature_names_`` (the featuriser's
    column names, or ``x0, x1, ...`` for a bare matrix), ``featuriser_`` (names and versions of the
    featurisers, None for a matrix), ``training_`` (a description of the training set), ``check_X_`` (the first
    training rows, used to verify a reloaded model) and, for ``rf`` only, ``train_X_``/``train_y_`` (the training
    data itself: a forest has no safe file format, so saving records the data to refit from).
    """

    def __init__(self, model: str = "rf", features: str = "graf,zcp", task: Any = None, random_state: Any = 0,
                 model_params: Mapping[str, Any] | None = None, n_jobs: int | None = 1) -> None:
        self.model = model
        self.features = features
        self.task = task
        self.random_state = random_state
        self.model_params = model_params
        self.n_jobs = n_jobs

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def fit(self, X: Any, y: Any, *, feature_names: Sequence[str] | None = None) -> "TabularSurrogate":
        """Fit on architectures or a feature matrix ``X`` and targets ``y``.  ``feature_names`` names the
        columns of a matrix (so that the fitted model can later featurise architectures itself)."""
        matrix, names, info, items = self._prepare_fit(X)
        source = "matrix" if items is None else "architectures"
        return self._fit_features(matrix, y, feature_names if names is None else names, info, source, items)

    def _fit_features(self, X: Any, y: Any, feature_names: Sequence[str] | None, info: list[dict[str, str]] | None,
                      source: str, items: Sequence[Any] | None = None) -> "TabularSurrogate":
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_all_finite=False, y_numeric=True)
        X = clean_features(X)
        y = np.asarray(y, dtype=np.float64)
        names = [f"x{i}" for i in range(X.shape[1])] if feature_names is None else [str(n) for n in feature_names]
        if len(names) != X.shape[1]:
            raise ValueError(f"TabularSurrogate.fit: {len(names)} feature names for {X.shape[1]} columns")
        model = build_model(self.model, self.random_state, self.n_jobs, self.model_params)
        model.fit(X, y)
        self.model_ = model
        self.feature_names_ = np.asarray(names, dtype=object)
        self.featuriser_ = info
        self.training_ = describe_training(X, y, source, items)
        self.check_X_ = X[:CHECK_ROWS].copy()
        self.train_X_, self.train_y_ = (X, y) if self.model == "rf" else (None, None)
        log.debug("TabularSurrogate(%s): fitted on %d rows x %d features", self.model, X.shape[0], X.shape[1])
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets (1-D float64) for architectures or a feature matrix."""
        check_is_fitted(self, "model_")
        X = validate_data(self, self._prepare_predict(X), reset=False, dtype=np.float64, ensure_all_finite=False)
        return np.asarray(self.model_.predict(clean_features(X)), dtype=np.float64).reshape(-1)


def fit_from_archive(surrogate: Any, archive: Any, task_name: str, protocol: str | None = None, *,
                     include_failed: bool = False, failed_value: float = 0.0, progress: bool = False) -> Any:
    """Fit ``surrogate`` (a ``TabularSurrogate`` or ``EnsembleSurrogate``) on ``archive.dataset(task_name,
    protocol)`` (one row per architecture, mean over seeds; failures left out unless ``include_failed``), with
    the features read from and written to the archive's feature cache.  A surrogate without a task gets
    ``task_name``.  Returns the fitted surrogate."""
    archs, y = archive.dataset(task_name, protocol, include_failed=include_failed, failed_value=failed_value)
    if not archs:
        raise ValueError(f"{archive.path}: no usable evaluations of task {task_name!r}"
                         + (f" under protocol {protocol!r}" if protocol else ""))
    if surrogate.task is None:
        surrogate.set_params(task=task_name)
    from features.pipeline import cached

    featuriser = build_featuriser(surrogate.features, surrogate.task, grammar=_grammar_of(archs))
    info = featuriser_info(featuriser)
    store = cached(featuriser, archive, task_name, progress=progress)
    X = np.asarray(store.fit(archs).transform(archs), dtype=np.float64)
    names = [str(n) for n in store.get_feature_names_out()]
    surrogate._fit_features(X, y, names, info, "archive", archs)
    surrogate.training_.update({"archive": os.path.abspath(archive.path), "task": task_name, "protocol": protocol,
                                "include_failed": include_failed})
    log.info("fitted %s on %d architectures of %s from %s", type(surrogate).__name__, len(archs), task_name, archive.path)
    return surrogate
