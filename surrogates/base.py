"""The surrogate contract, the feature-based surrogates' shared featurisation, and task identities.

Every surrogate is a scikit-learn regressor (``Surrogate``) over *architectures*: ``fit(archs, y)`` and
``predict(archs) -> 1-D float array`` (higher = better), ``save(directory)`` and ``from_folder`` for
``surrogates.persistence``, and ``kind``, the name its folders are saved under.  Fitted-ness is checked with
``sklearn.utils.validation.check_is_fitted``.

``FeatureSurrogate`` is the base of the surrogates that regress on a feature matrix (tabular, ensemble,
transfer).  Featurisation is an explicit step, decided by the ``features`` parameter, never by looking at the
input: ``fit(archs, y)`` computes the feature matrix of ``archs`` with ``make_featuriser()`` (``features`` on
``task``) and calls ``fit_matrix(X, y, feature_names)``; ``predict(archs)`` featurises, checks the columns
against the fitted ones and calls ``predict_matrix(X)``.  With ``features=None`` the input *is* the feature
matrix (``fit`` is ``fit_matrix``), which is how scikit-learn's estimator checks and the transfer protocols use
them.  ``fit_cached`` / ``predict_cached`` featurise through an archive's feature cache.

A surrogate keeps a task's identity, ``TaskRef(name, fingerprint)``, not the task and its data: the zero-cost
proxies look the task up at featurisation time (``resolve_task``): the task object the reference was made from
while it is alive, else ``data.tasks.get_task(name)``.
"""

from __future__ import annotations

import abc
import functools
import hashlib
import logging
import numbers
import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from data.tasks import get_task
from features.cache import CachedFeaturiser, MemoryStore, featuriser_key
from features.pipeline import Concat, cached, make_featuriser, uses_proxies
from surrogates import folder
from surrogates.folder import MANIFEST, PersistenceError
from surrogates.sources import feature_store_of

log = logging.getLogger(__name__)

#: Training rows whose predictions are recorded for checking a reloaded model.
CHECK_ROWS = 5
#: ``load(directory, task=None)``: how a folder's nested surrogates are loaded (``persistence.load_surrogate``).
Loader = Callable[..., "Surrogate"]


# --------------------------------------------------------------------------------------------------
# Task identities
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskRef:
    """A task's identity: its registered name (or Unseen-NAS folder) and, when known, the fingerprint of its data."""

    name: str
    fingerprint: str | None = None

    def __str__(self) -> str:
        return self.name

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "fingerprint": self.fingerprint} if self.fingerprint else {"name": self.name}


#: Task objects that references were made from, while their owners keep them alive.
_LIVE: "weakref.WeakValueDictionary[TaskRef, Any]" = weakref.WeakValueDictionary()


def _fingerprint(task: Any) -> str | None:
    try:
        return str(task.fingerprint())
    except Exception as exc:  # noqa: BLE001 - a fingerprint is informative only
        log.debug("no fingerprint for task %s: %s", getattr(task, "name", task), exc)
        return None


def task_ref(task: Any, strict: bool = True) -> Any:
    """A task parameter (None, a name, a ``TaskRef`` or a task object) as a ``TaskRef``; a task object is
    remembered (weakly) so that ``resolve_task`` finds it without a registry look-up.  Anything else is a
    ``TypeError``, or with ``strict=False`` (in constructors, which scikit-learn wants free of errors) returned
    as it is, to fail when used."""
    if task is None or isinstance(task, TaskRef):
        return task
    if isinstance(task, str):
        return TaskRef(task)
    name = getattr(task, "name", None)
    if not isinstance(name, str):
        if not strict:
            return task
        raise TypeError(f"task must be a name, a TaskRef or a task object with a name; got {type(task).__name__}")
    ref = TaskRef(name, _fingerprint(task))
    try:
        _LIVE[ref] = task
    except TypeError:  # an object without weak references: looked up by name instead
        pass
    return ref


@functools.lru_cache(maxsize=2)
def _lookup(ref: TaskRef) -> Any:
    try:
        task = get_task(ref.name)
    except (KeyError, FileNotFoundError) as exc:
        raise ValueError(f"cannot resolve task {ref.name!r} for feature computation: {exc}") from None
    if ref.fingerprint and _fingerprint(task) not in (None, ref.fingerprint):
        log.warning("task %r now has other data than the surrogate was fitted on (fingerprints differ); "
                    "zero-cost-proxy features will not match", ref.name)
    return task


def resolve_task(ref: "TaskRef | str | None") -> Any:
    """The task object of a reference: the one it was made from (while alive), else looked up by name."""
    ref = task_ref(ref)
    if ref is None:
        return None
    task = _LIVE.get(ref)
    return task if task is not None else _lookup(ref)


def task_label(task: Any) -> str | None:
    """A task parameter (name, ``TaskRef``, task object or None) as a name."""
    ref = task_ref(task)
    return None if ref is None else ref.name


# --------------------------------------------------------------------------------------------------
# Featurisation helpers
# --------------------------------------------------------------------------------------------------


def _is_number(v: Any) -> bool:
    return isinstance(v, (numbers.Real, np.number)) and not isinstance(v, (str, bytes))


def is_feature_matrix(X: Any) -> bool:
    """True when ``X`` looks like a feature matrix rather than architectures: a numpy array (except a 1-D
    object array), a sparse matrix, another object with ``__array__``, or a list/tuple whose first row is a
    sequence of numbers.  Used only to explain a wrong call (featurisation never depends on it)."""
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
    """``X`` as float64 with ±inf replaced by NaN (a missing value for both tree models)."""
    X = np.asarray(X, dtype=np.float64)
    inf = np.isinf(X)
    if inf.any():
        log.debug("%d infinite feature value(s) treated as missing", int(inf.sum()))
        X = np.where(inf, np.nan, X)
    return X


def grammar_of(items: Sequence[Any]) -> str | None:
    """The grammar name of the first architecture (None for an empty list or strings)."""
    grammar = getattr(items[0], "grammar", None) if items else None
    return getattr(grammar, "name", None)


def featuriser_info(featuriser: Any) -> list[dict[str, str]]:
    """``[{"name", "version"}, ...]`` of every part, as keyed in the feature cache (``features.cache.featuriser_key``)."""
    parts = list(featuriser.parts) if isinstance(featuriser, Concat) else [featuriser]
    parts = [p.featuriser if isinstance(p, CachedFeaturiser) else p for p in parts]
    return [dict(zip(("name", "version"), featuriser_key(p))) for p in parts]


def build_featuriser(features: str, task: Any = None, grammar: str | None = None, archive: Any = None,
                     task_name: str | None = None, progress: bool = False) -> Any:
    """The featuriser of a feature spec (``"graf"``, ``"zcp"``, ``"graf,zcp"``) on ``task`` (a reference or
    object); with ``archive``, cached there under ``task_name`` (default: the task's name).  The task is
    resolved only when needed (zero-cost proxies, or the grammar of a tabular task)."""
    needs_task = uses_proxies(features) or grammar is None
    resolved = resolve_task(task) if needs_task else None
    featuriser = make_featuriser(features, resolved, grammar=grammar)
    if archive is not None:
        name = task_name or task_label(task)
        if name is None:
            raise ValueError("caching features in an archive needs a task name (task_name=...)")
        featuriser = cached(featuriser, feature_store_of(archive), name, progress=progress)
    return featuriser


def featurise_with(featuriser: Any, items: list[Any]) -> tuple[np.ndarray, list[str], list[dict[str, str]]]:
    """The feature matrix of ``items`` under a (stateless) ``featuriser``, its column names and its parts'
    names and versions (``featuriser_info``)."""
    matrix = np.asarray(featuriser.fit(items).transform(items), dtype=np.float64)
    return matrix, [str(n) for n in featuriser.get_feature_names_out()], featuriser_info(featuriser)


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


def column_names(n_columns: int, feature_names: Sequence[str] | None, who: str) -> list[str]:
    """``feature_names`` as strings (``x0, x1, ...`` when None), checked against the number of columns."""
    names = [f"x{i}" for i in range(n_columns)] if feature_names is None else [str(n) for n in feature_names]
    if len(names) != n_columns:
        raise ValueError(f"{who}.fit: {len(names)} feature names for {n_columns} columns")
    return names


# --------------------------------------------------------------------------------------------------
# The contract
# --------------------------------------------------------------------------------------------------


class Surrogate(RegressorMixin, BaseEstimator, abc.ABC):
    """A regressor of an architecture's score (see the module docstring).  Subclasses set ``kind`` and
    implement ``fit``, ``predict``, ``save`` and ``from_folder``."""

    #: The key of ``surrogates.registry.KINDS`` its folders are saved under.
    kind: ClassVar[str]

    @abc.abstractmethod
    def fit(self, archs: Sequence[Any], y: Any) -> "Surrogate":
        """Fit on architectures and their scores; returns self."""

    @abc.abstractmethod
    def predict(self, archs: Sequence[Any]) -> np.ndarray:
        """Scores of architectures (1-D float64, higher = better)."""

    @abc.abstractmethod
    def save(self, directory: "str | os.PathLike[str]") -> Path:
        """Write this fitted surrogate to ``directory`` (see ``surrogates.folder``); returns the folder."""

    @classmethod
    @abc.abstractmethod
    def from_folder(cls, directory: Path, manifest: Mapping[str, Any], task: Any = None,
                    load: Loader | None = None) -> "Surrogate":
        """The surrogate saved in ``directory`` (its parsed ``manifest`` given); ``task`` replaces the recorded
        task; ``load`` loads nested surrogate folders."""

    @property
    def task_name(self) -> str | None:
        """The name of the task this surrogate featurises on (None when it has none)."""
        return task_label(getattr(self, "task", None))

    def fit_cached(self, archs: Sequence[Any], y: Any, archive: Any, task_name: str,
                   progress: bool = False) -> "Surrogate":
        """``fit``, with any features read from and written to ``archive``'s cache under ``task_name``
        (``progress``: a progress bar while features are computed)."""
        return self.fit(archs, y)

    def predict_cached(self, archs: Sequence[Any], archive: Any, task_name: str) -> np.ndarray:
        """``predict``, with any features read from and written to ``archive``'s cache under ``task_name``."""
        return self.predict(archs)


def _architectures(who: str, X: Any, what: str) -> list[Any]:
    if is_feature_matrix(X):
        raise TypeError(f"{who}.{what} takes architectures; for a feature matrix call {what}_matrix(X, ...) or "
                        "construct the surrogate with features=None")
    return list(X)


class FeatureSurrogate(Surrogate):
    """A surrogate that regresses on a feature matrix (see the module docstring).  Subclasses have the
    parameters ``features`` and ``task`` and implement ``fit_matrix``, ``predict_matrix``, ``_save_model``
    and ``_load_model``.

    Fitted attributes set by ``fit_matrix``: ``n_features_in_``, ``feature_names_`` (the featuriser's column
    names, or ``x0, x1, ...`` for a bare matrix), ``featuriser_`` (names and versions of the featurisers, None
    for a matrix), ``training_`` (a description of the training set) and ``check_X_`` (the first training
    rows, used to verify a reloaded model)."""

    features: str | None
    task: TaskRef | None
    #: Parameters not written to the manifest (saved as files of their own).
    _unsaved_params: ClassVar[tuple[str, ...]] = ()

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def set_params(self, **params: Any) -> "FeatureSurrogate":
        if "task" in params:
            params["task"] = task_ref(params["task"], strict=False)
        return super().set_params(**params)

    # -- featurisation ----------------------------------------------------------------------------

    def make_featuriser(self, archive: Any = None, task_name: str | None = None, grammar: str | None = None,
                        progress: bool = False) -> Any:
        """This surrogate's featuriser (unfitted; stateless), cached in ``archive`` under ``task_name``, or
        without an archive in a store private to this instance, so that refitting during a search never
        featurises an architecture twice."""
        if self.features is None:
            raise ValueError(f"{type(self).__name__}(features=None) takes feature matrices and has no featuriser")
        if archive is None:
            archive = self.__dict__.setdefault("_feature_memo", MemoryStore())
            task_name = task_name or self.task_name or "-"
        return build_featuriser(self.features, self.task, grammar, archive, task_name, progress)

    def _featurise(self, items: list[Any], archive: Any = None, task_name: str | None = None,
                   progress: bool = False) -> tuple[np.ndarray, list[str], list[dict[str, str]]]:
        return featurise_with(self.make_featuriser(archive, task_name, grammar_of(items), progress), items)

    def featurise(self, archs: Sequence[Any]) -> np.ndarray:
        """The feature matrix of architectures (``features`` on ``task``)."""
        return self._featurise(list(archs))[0]

    def _check_columns(self, names: list[str], info: list[dict[str, str]]) -> None:
        """Architectures' columns must be the ones the model was fitted on."""
        who = type(self).__name__
        recorded = getattr(self, "featuriser_", None)
        fitted = [str(n) for n in self.feature_names_]
        if recorded is None and all(n == f"x{i}" for i, n in enumerate(fitted)):
            raise ValueError(f"{who} was fitted on a bare feature matrix (no feature names), so it cannot featurise "
                             "architectures; call predict_matrix, or fit_matrix with feature_names=")
        if names != fitted:
            diff = next((i for i, (a, b) in enumerate(zip(names, fitted)) if a != b), min(len(names), len(fitted)))
            raise ValueError(f"{who}: features {self.features!r} give {len(names)} columns but the model was fitted "
                             f"on {len(fitted)}; first difference at column {diff}")
        if recorded is not None and info != recorded:
            raise ValueError(f"{who}: the featurisers changed since fitting (fitted with {recorded}, now {info}); "
                             "refit the surrogate")

    def _checked_features(self, items: list[Any], archive: Any = None, task_name: str | None = None) -> np.ndarray:
        """The feature matrix of architectures to predict for, its columns checked against the fitted ones."""
        X, names, info = self._featurise(items, archive, task_name)
        self._check_columns(names, info)
        return X

    # -- fit and predict --------------------------------------------------------------------------

    def _fit_architectures(self, items: list[Any], y: Any, source: str, archive: Any = None,
                           task_name: str | None = None, progress: bool = False) -> "FeatureSurrogate":
        if not items:
            raise ValueError(f"{type(self).__name__}.fit: no architectures given")
        X, names, info = self._featurise(items, archive, task_name, progress)
        return self.fit_matrix(X, y, names, featuriser_info=info, source=source, archs=items)

    def fit(self, archs: Any, y: Any) -> "FeatureSurrogate":
        """Featurise ``archs`` and ``fit_matrix`` on them (with ``features=None``: ``archs`` is the matrix)."""
        if self.features is None:
            return self.fit_matrix(archs, y)
        return self._fit_architectures(_architectures(type(self).__name__, archs, "fit"), y, "architectures")

    def fit_cached(self, archs: Sequence[Any], y: Any, archive: Any, task_name: str,
                   progress: bool = False) -> "FeatureSurrogate":
        return self._fit_architectures(list(archs), y, "archive", archive, task_name, progress)

    def predict(self, archs: Any) -> np.ndarray:
        """Featurise ``archs`` (columns checked against the fitted ones) and ``predict_matrix``."""
        check_is_fitted(self)
        if self.features is None:
            return self.predict_matrix(archs)
        items = _architectures(type(self).__name__, archs, "predict")
        if not items:
            return np.zeros(0)
        return self.predict_matrix(self._checked_features(items))

    def predict_cached(self, archs: Sequence[Any], archive: Any, task_name: str) -> np.ndarray:
        check_is_fitted(self)
        return self.predict_matrix(self._checked_features(list(archs), archive, task_name))

    def _fit_input(self, X: Any, y: Any,
                   feature_names: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """``fit_matrix``'s input checked by scikit-learn (setting ``n_features_in_``): ``X`` as float64 with
        ±inf as NaN, ``y`` as float64, and the column names."""
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_all_finite=False, y_numeric=True)
        names = column_names(X.shape[1], feature_names, type(self).__name__)
        return clean_features(X), np.asarray(y, dtype=np.float64), names

    def _predict_input(self, X: Any) -> np.ndarray:
        """``predict_matrix``'s input checked against the fitted width, as float64 with ±inf as NaN."""
        return clean_features(validate_data(self, X, reset=False, dtype=np.float64, ensure_all_finite=False))

    @abc.abstractmethod
    def fit_matrix(self, X: Any, y: Any, feature_names: Sequence[str] | None = None, *,
                   featuriser_info: list[dict[str, str]] | None = None, source: str = "matrix",
                   archs: Sequence[Any] | None = None) -> "FeatureSurrogate":
        """Fit on a feature matrix whose columns are ``feature_names`` (computed by ``featuriser_info``, from
        ``archs`` when known; ``source`` says where the matrix came from)."""

    @abc.abstractmethod
    def predict_matrix(self, X: Any) -> np.ndarray:
        """Predictions (1-D float64) for a feature matrix with the fitted columns."""

    def _set_fitted(self, X: np.ndarray, y: np.ndarray, names: Sequence[str], info: list[dict[str, str]] | None,
                    source: str, archs: Sequence[Any] | None) -> None:
        self.feature_names_ = np.asarray(list(names), dtype=object)
        self.featuriser_ = info
        self.training_ = describe_training(X, y, source, archs)
        self.check_X_ = X[:CHECK_ROWS].copy()

    # -- saving and loading -----------------------------------------------------------------------

    def save(self, directory: "str | os.PathLike[str]") -> Path:
        """Write the manifest and this surrogate's model files to ``directory`` (created; a surrogate saved
        there before is replaced, any other non-empty folder refused)."""
        check_is_fitted(self)
        directory = Path(directory)
        folder.prepare_dir(directory)
        manifest = self._manifest()
        manifest.update(self._save_model(directory))
        folder.write_manifest(directory, manifest)
        log.info("saved %s to %s", type(self).__name__, directory)
        return directory

    def _manifest(self) -> dict[str, Any]:
        names = [str(n) for n in self.feature_names_]
        check_X = np.asarray(self.check_X_, dtype=float)
        params = {key: task_label(value) if key == "task" else folder.to_json(value, f"parameter {key}")
                  for key, value in self.get_params(deep=False).items() if key not in self._unsaved_params}
        return {
            "schema_version": folder.SCHEMA_VERSION,
            "kind": self.kind,
            "class": folder.class_path(type(self)),
            "params": params,
            "task": None if self.task is None else self.task.to_json(),
            "featuriser": {"spec": self.features, "parts": self.featuriser_},
            "n_features": len(names),
            "feature_names": names,
            "training": folder.to_json(self.training_, "training"),
            "check": {"rows": folder.rows_to_json(check_X),
                      "predictions": [float(v) for v in self.predict_matrix(check_X)] if len(check_X) else []},
            "software": folder.tabular_software(),
            "created": folder.created(),
        }

    @abc.abstractmethod
    def _save_model(self, directory: Path) -> dict[str, Any]:
        """Write the model files; returns the manifest fields that describe them."""

    @abc.abstractmethod
    def _load_model(self, directory: Path, manifest: Mapping[str, Any], load: Loader | None) -> None:
        """Read the model files written by ``_save_model`` into this (parameterised, unfitted) surrogate."""

    @classmethod
    def from_folder(cls, directory: Path, manifest: Mapping[str, Any], task: Any = None,
                    load: Loader | None = None) -> "FeatureSurrogate":
        path = Path(directory) / MANIFEST
        version = manifest.get("schema_version")
        if version != folder.SCHEMA_VERSION:
            raise PersistenceError(f"{path}: schema version {version!r}, this software reads version "
                                   f"{folder.SCHEMA_VERSION}")
        recorded_class = folder.field(manifest, "class", str, path)
        if recorded_class != folder.class_path(cls):
            raise PersistenceError(f"{path}: kind {cls.kind!r} must be class {folder.class_path(cls)}, "
                                   f"found {recorded_class}")
        params = dict(folder.field(manifest, "params", dict, path))
        names = folder.field(manifest, "feature_names", list, path)
        if folder.field(manifest, "n_features", int, path) != len(names) or not all(isinstance(n, str) for n in names):
            raise PersistenceError(f"{path}: feature_names ({len(names)} entries) do not match n_features "
                                   f"({manifest['n_features']}) or are not all strings")
        params["task"] = _loaded_task(manifest.get("task"), params.get("task"), task, path)
        try:
            surrogate = cls(**params)
        except TypeError as exc:
            raise PersistenceError(f"{path}: params do not fit {cls.__name__} ({exc})") from None
        surrogate._load_model(Path(directory), manifest, load)
        surrogate.n_features_in_ = len(names)
        surrogate.feature_names_ = np.asarray(names, dtype=object)
        surrogate.featuriser_ = (manifest.get("featuriser") or {}).get("parts")
        surrogate.training_ = dict(manifest.get("training") or {})
        check = manifest.get("check") or {}
        surrogate.check_X_ = folder.rows_from_json(check.get("rows", []), str(path), len(names))
        surrogate._check_predictions(manifest, path)
        return surrogate

    def _check_predictions(self, manifest: Mapping[str, Any], path: Path) -> None:
        """The reloaded model must reproduce the predictions recorded for the stored rows."""
        check = manifest.get("check") or {}
        recorded = np.asarray([np.nan if v is None else v for v in check.get("predictions", [])], dtype=np.float64)
        X = self.check_X_
        if recorded.size != len(X):
            raise PersistenceError(f"{path}: {len(X)} check rows but {recorded.size} recorded predictions")
        if not len(X):  # a forged folder without check rows would load unchecked
            raise PersistenceError(f"{path}: no check rows: the saved model cannot be verified")
        now = self.predict_matrix(X)
        diff = np.abs(now - recorded)
        if not np.all((np.isfinite(diff) & (diff <= folder.CHECK_TOLERANCE)) | (np.isnan(now) & np.isnan(recorded))):
            raise PersistenceError(
                f"{path}: the reloaded model does not reproduce the recorded predictions (largest difference "
                f"{np.nanmax(diff):.3g}, tolerance {folder.CHECK_TOLERANCE:g}); saved with "
                f"{_versions(manifest.get('software'))}, now "
                f"{_versions(folder.tabular_software())}")


def _versions(software: Any) -> str:
    software = software if isinstance(software, Mapping) else {}
    return (f"scikit-learn {software.get('scikit-learn')}, "
            f"xgboost {software.get('xgboost') or software.get('xgboost-cpu')}")


def _loaded_task(record: Any, name: Any, task: Any, path: Path) -> TaskRef | None:
    """The task of a loaded surrogate: ``task`` when given (a warning if its data differ from the recorded
    fingerprint), else the recorded name and fingerprint."""
    fingerprint = record.get("fingerprint") if isinstance(record, Mapping) else None
    if task is None:
        return None if name is None else TaskRef(str(name), fingerprint)
    ref = task_ref(task)
    if fingerprint and ref.fingerprint and ref.fingerprint != fingerprint:
        log.warning("%s: task %r given at load differs from the task %r the surrogate was fitted on (fingerprints "
                    "differ); zero-cost-proxy features will not match", path, ref.name,
                    record.get("name") if isinstance(record, Mapping) else None)
    return ref
