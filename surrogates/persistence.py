"""Saving and loading surrogates without pickle: a JSON manifest plus safe model files, in one folder.

``manifest.json`` records the kind (``tabular``, ``ensemble``, ``transfer``, ``lm``), the class, the
parameters, the featuriser (spec, names and versions), the feature names, a description of the training
set, the software versions, the schema version, and a few training rows with their predictions.  Models:

* XGBoost: its own JSON format (``model.json``, ``XGBModel.save_model``);
* random forest: there is no safe file format, so the training matrix and targets are saved as
  ``features.csv`` (the feature names as header, then ``y``; full-precision floats, ``nan`` for missing
  values) and ``load`` refits with the same parameters and ``random_state``;
* ensembles: every member in ``members/000``, ``members/001``, ...; transfer surrogates: the pooled model
  in ``base/``;
* LM surrogates (``kind: "lm"``): saved by their own ``save`` method and loaded by ``surrogates.lm.load_lm``.

``load_surrogate`` validates what it reads and recomputes the recorded predictions of the stored rows, which
must agree within ``CHECK_TOLERANCE``: a refit that does not reproduce the saved model (another
scikit-learn version, say) is an error, not a silently different model.  Every error names the file.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from sklearn.base import clone

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
KINDS: tuple[str, ...] = ("tabular", "ensemble", "transfer", "lm")
CLASSES: Mapping[str, str] = {
    "tabular": "surrogates.tabular.TabularSurrogate",
    "ensemble": "surrogates.ensemble.EnsembleSurrogate",
    "transfer": "surrogates.transfer.TransferSurrogate",
}
#: Largest difference allowed between recorded and recomputed predictions of the stored rows.
CHECK_TOLERANCE = 1e-9
XGB_FILE = "model.json"
RF_FILE = "features.csv"
TARGET_COLUMN = "y"


class PersistenceError(ValueError):
    """A saved surrogate folder is missing, damaged or incompatible (the message names the file)."""


# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------


def software_versions() -> dict[str, str]:
    """Versions of the packages that decide a saved model's behaviour."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("surrogate-nas", "scikit-learn", "xgboost", "xgboost-cpu", "numpy", "scipy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _jsonable(value: Any, where: str) -> Any:
    """A JSON-safe copy of a parameter value (numpy scalars to Python; non-finite floats to None)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    raise PersistenceError(f"parameter {where} = {value!r} ({type(value).__name__}) cannot be saved as JSON")


def _rows_to_json(X: np.ndarray) -> list[list[float | None]]:
    return [[float(v) if math.isfinite(v) else None for v in row] for row in np.asarray(X, dtype=float)]


def _rows_from_json(rows: Any, where: str, width: int) -> np.ndarray:
    try:
        X = np.array([[np.nan if v is None else float(v) for v in row] for row in rows], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PersistenceError(f"{where}: check rows are not numbers ({exc})") from None
    X = X.reshape(-1, width) if X.size == 0 else X
    if X.ndim != 2 or X.shape[1] != width:
        raise PersistenceError(f"{where}: check rows have {X.shape[-1] if X.ndim else 0} columns, expected {width}")
    return X


def _task_record(task: Any) -> dict[str, Any] | None:
    from surrogates.tabular import task_label

    if task is None:
        return None
    record: dict[str, Any] = {"name": task_label(task)}
    if not isinstance(task, str) and hasattr(task, "fingerprint"):
        try:
            record["fingerprint"] = task.fingerprint()
        except Exception as exc:  # noqa: BLE001 - a fingerprint is informative only
            log.debug("no fingerprint for task %s: %s", record["name"], exc)
    return record


def _params(surrogate: Any, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    from surrogates.tabular import task_label

    out = {}
    for key, value in surrogate.get_params(deep=False).items():
        if key in exclude:
            continue
        out[key] = task_label(value) if key == "task" else _jsonable(value, key)
    return out


def _prepare_dir(directory: Path) -> None:
    """Create ``directory``, refusing a non-empty folder that is not a saved surrogate; drop an old manifest
    first, so an interrupted save never looks complete."""
    if directory.exists() and not directory.is_dir():
        raise PersistenceError(f"{directory}: exists and is not a folder")
    directory.mkdir(parents=True, exist_ok=True)
    manifest = directory / MANIFEST
    if manifest.exists():
        manifest.unlink()
    elif any(directory.iterdir()):
        raise PersistenceError(f"{directory}: folder is not empty and holds no {MANIFEST}; refusing to save over it")


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, directory / MANIFEST)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _base_manifest(kind: str, surrogate: Any, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    names = [str(n) for n in surrogate.feature_names_]
    check_X = np.asarray(surrogate.check_X_, dtype=float)
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "class": CLASSES[kind],
        "params": _params(surrogate, exclude),
        "task": _task_record(surrogate.task),
        "featuriser": {"spec": surrogate.features, "parts": surrogate.featuriser_},
        "n_features": len(names),
        "feature_names": names,
        "training": _jsonable(surrogate.training_, "training"),
        "check": {"rows": _rows_to_json(check_X),
                  "predictions": [float(v) for v in surrogate.predict(check_X)] if len(check_X) else []},
        "software": software_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


# --------------------------------------------------------------------------------------------------
# Save
# --------------------------------------------------------------------------------------------------


def save_surrogate(surrogate: Any, directory: "str | os.PathLike[str]") -> Path:
    """Save a fitted ``TabularSurrogate``, ``EnsembleSurrogate`` or ``TransferSurrogate`` to ``directory``
    (created; an existing saved surrogate there is replaced).  Any other object with a ``save(directory)``
    method (the LM surrogate) saves itself.  Returns the folder."""
    from sklearn.utils.validation import check_is_fitted

    from surrogates.ensemble import EnsembleSurrogate
    from surrogates.tabular import TabularSurrogate
    from surrogates.transfer import TransferSurrogate

    directory = Path(directory)
    if isinstance(surrogate, TabularSurrogate):
        check_is_fitted(surrogate, "model_")
        _save_tabular(surrogate, directory)
    elif isinstance(surrogate, EnsembleSurrogate):
        check_is_fitted(surrogate, "members_")
        _save_ensemble(surrogate, directory)
    elif isinstance(surrogate, TransferSurrogate):
        check_is_fitted(surrogate, "model_")
        _save_transfer(surrogate, directory)
    elif callable(getattr(surrogate, "save", None)):
        surrogate.save(directory)
    else:
        raise PersistenceError(f"cannot save a {type(surrogate).__name__}: not a surrogate of this package and it has "
                               "no save(directory) method")
    log.info("saved %s to %s", type(surrogate).__name__, directory)
    return directory


def _save_tabular(surrogate: Any, directory: Path) -> None:
    _prepare_dir(directory)
    manifest = _base_manifest("tabular", surrogate)
    if surrogate.model == "rf":
        rs = surrogate.random_state
        if not isinstance(rs, (int, np.integer)) or isinstance(rs, bool):
            raise PersistenceError(f"a random forest is saved by recording its training data and refitting, which needs "
                                   f"an integer random_state; this one has {rs!r}")
        names = [str(n) for n in surrogate.feature_names_]
        if TARGET_COLUMN in names:
            raise PersistenceError(f"a feature is named {TARGET_COLUMN!r}, which {RF_FILE} uses for the targets")
        path = directory / RF_FILE
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(names + [TARGET_COLUMN])
            for row, target in zip(surrogate.train_X_, surrogate.train_y_):
                writer.writerow([repr(float(v)) for v in row] + [repr(float(target))])
        manifest["model"] = {"format": "refit-csv", "file": RF_FILE, "n_rows": int(len(surrogate.train_y_)),
                             "sha256": _sha256(path)}
    else:
        path = directory / XGB_FILE
        surrogate.model_.save_model(os.fspath(path))
        manifest["model"] = {"format": "xgboost-json", "file": XGB_FILE, "sha256": _sha256(path)}
    _write_manifest(directory, manifest)


def _save_ensemble(surrogate: Any, directory: Path) -> None:
    _prepare_dir(directory)
    manifest = _base_manifest("ensemble", surrogate, exclude=("members",))
    members = []
    for i, member in enumerate(surrogate.members_):
        sub = f"members/{i:03d}"
        try:
            save_surrogate(member, directory / sub)
        except PersistenceError as exc:
            raise PersistenceError(f"ensemble member {i} ({type(member).__name__}): {exc}") from None
        members.append({"path": sub, "class": f"{type(member).__module__}.{type(member).__qualname__}"})
    manifest["members"] = members
    _write_manifest(directory, manifest)


def _save_transfer(surrogate: Any, directory: Path) -> None:
    _prepare_dir(directory)
    manifest = _base_manifest("transfer", surrogate)
    save_surrogate(surrogate.model_, directory / "base")
    manifest["base"] = "base"
    manifest["blocks"] = _jsonable(surrogate.blocks_, "blocks")
    _write_manifest(directory, manifest)


# --------------------------------------------------------------------------------------------------
# Load
# --------------------------------------------------------------------------------------------------


def read_manifest(directory: "str | os.PathLike[str]") -> dict[str, Any]:
    """The parsed ``manifest.json`` of a saved surrogate (checked to be a JSON object with a known kind)."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        raise PersistenceError(f"{directory}: no such folder")
    if not path.is_file():
        raise PersistenceError(f"{path}: missing; {directory} does not hold a saved surrogate")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PersistenceError(f"{path}: corrupted JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise PersistenceError(f"{path}: not UTF-8 text ({exc})") from None
    if not isinstance(manifest, dict):
        raise PersistenceError(f"{path}: expected a JSON object, found {type(manifest).__name__}")
    kind = manifest.get("kind")
    if kind not in KINDS:
        raise PersistenceError(f"{path}: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    return manifest


def _field(manifest: Mapping[str, Any], key: str, types: Any, path: Path) -> Any:
    if key not in manifest:
        raise PersistenceError(f"{path}: field {key!r} is missing")
    value = manifest[key]
    if not isinstance(value, types):
        raise PersistenceError(f"{path}: field {key!r} should be {getattr(types, '__name__', types)}, "
                               f"found {type(value).__name__}")
    return value


def load_surrogate(directory: "str | os.PathLike[str]", task: Any = None) -> Any:
    """Load a surrogate saved by ``save_surrogate``.  ``task`` (name or object) replaces the recorded task
    name, e.g. for a generated task with a non-default seed or a task read from a folder."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    path = directory / MANIFEST
    kind = manifest["kind"]
    if kind == "lm":
        try:
            from surrogates.lm import load_lm
        except ImportError as exc:
            raise PersistenceError(f"{path}: kind 'lm' needs surrogates.lm.load_lm, which cannot be imported "
                                   f"({exc})") from None
        return load_lm(directory)
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise PersistenceError(f"{path}: schema version {version!r}, this software reads version {SCHEMA_VERSION}")
    cls = _field(manifest, "class", str, path)
    if cls != CLASSES[kind]:
        raise PersistenceError(f"{path}: kind {kind!r} must be class {CLASSES[kind]}, found {cls}")
    params = dict(_field(manifest, "params", dict, path))
    names = _field(manifest, "feature_names", list, path)
    if _field(manifest, "n_features", int, path) != len(names) or not all(isinstance(n, str) for n in names):
        raise PersistenceError(f"{path}: feature_names ({len(names)} entries) do not match n_features "
                               f"({manifest['n_features']}) or are not all strings")
    if task is not None:
        _compare_task(manifest.get("task"), task, path)
        params["task"] = task
    loader = {"tabular": _load_tabular, "ensemble": _load_ensemble, "transfer": _load_transfer}[kind]
    surrogate = loader(directory, manifest, params, task)
    _check_predictions(surrogate, manifest, path)
    log.info("loaded %s from %s", type(surrogate).__name__, directory)
    return surrogate


def _compare_task(record: Any, task: Any, path: Path) -> None:
    if not isinstance(record, dict) or isinstance(task, str) or not record.get("fingerprint"):
        return
    try:
        now = task.fingerprint()
    except Exception:  # noqa: BLE001 - nothing to compare
        return
    if now != record["fingerprint"]:
        log.warning("%s: task %r given at load differs from the task %r the surrogate was fitted on (fingerprints "
                    "differ); zero-cost-proxy features will not match", path, getattr(task, "name", task),
                    record.get("name"))


def _common(surrogate: Any, manifest: Mapping[str, Any], path: Path) -> None:
    """Set the fitted attributes every surrogate shares from the manifest."""
    names = manifest["feature_names"]
    featuriser = manifest.get("featuriser") or {}
    surrogate.n_features_in_ = len(names)
    surrogate.feature_names_ = np.asarray(names, dtype=object)
    surrogate.featuriser_ = featuriser.get("parts")
    surrogate.training_ = dict(manifest.get("training") or {})
    check = manifest.get("check") or {}
    surrogate.check_X_ = _rows_from_json(check.get("rows", []), str(path), len(names))


def _make(cls: type, params: Mapping[str, Any], path: Path) -> Any:
    try:
        return cls(**params)
    except TypeError as exc:
        raise PersistenceError(f"{path}: params do not fit {cls.__name__} ({exc})") from None


def _load_tabular(directory: Path, manifest: Mapping[str, Any], params: Mapping[str, Any], task: Any) -> Any:
    from surrogates.tabular import TabularSurrogate, build_model

    path = directory / MANIFEST
    surrogate = _make(TabularSurrogate, params, path)
    model_info = _field(manifest, "model", dict, path)
    fmt, file = model_info.get("format"), model_info.get("file")
    names = manifest["feature_names"]
    if not isinstance(file, str) or not (directory / file).is_file():
        raise PersistenceError(f"{directory / str(file)}: model file named in {path} is missing")
    model_path = directory / file
    expected = model_info.get("sha256")
    if expected is not None and _sha256(model_path) != expected:
        raise PersistenceError(f"{model_path}: contents changed since saving (SHA-256 differs from {path})")
    try:
        model = build_model(surrogate.model, surrogate.random_state, surrogate.n_jobs, surrogate.model_params)
    except ValueError as exc:
        raise PersistenceError(f"{path}: {exc}") from None
    if fmt == "xgboost-json":
        if surrogate.model not in ("xgb", "xgb_tuned"):
            raise PersistenceError(f"{path}: model format xgboost-json for model {surrogate.model!r}")
        try:
            model.load_model(os.fspath(model_path))
            n = model.get_booster().num_features()
        except Exception as exc:  # noqa: BLE001 - XGBoostError and friends
            raise PersistenceError(f"{model_path}: not a readable XGBoost model ({type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        if n != len(names):
            raise PersistenceError(f"{model_path}: the model has {n} features but {path} names {len(names)}")
        surrogate.train_X_, surrogate.train_y_ = None, None
    elif fmt == "refit-csv":
        if surrogate.model != "rf":
            raise PersistenceError(f"{path}: model format refit-csv for model {surrogate.model!r}")
        X, y = _read_training_csv(model_path, names)
        model.fit(X, y)
        surrogate.train_X_, surrogate.train_y_ = X, y
    else:
        raise PersistenceError(f"{path}: unknown model format {fmt!r}; expected xgboost-json or refit-csv")
    _common(surrogate, manifest, path)
    surrogate.model_ = model
    return surrogate


def _read_training_csv(path: Path, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            expected = names + [TARGET_COLUMN]
            if header != expected:
                if header is None:
                    raise PersistenceError(f"{path}: empty file")
                i = next((i for i, (a, b) in enumerate(zip(header, expected)) if a != b), min(len(header), len(expected)))
                got = header[i] if i < len(header) else "<none>"
                want = expected[i] if i < len(expected) else "<none>"
                raise PersistenceError(f"{path}: feature names do not match the manifest: column {i} is {got!r}, "
                                       f"expected {want!r} ({len(header)} columns, expected {len(expected)})")
            rows = []
            for line, row in enumerate(reader, start=2):
                if len(row) != len(expected):
                    raise PersistenceError(f"{path}, line {line}: {len(row)} fields, expected {len(expected)}")
                try:
                    rows.append([float(v) for v in row])
                except ValueError as exc:
                    raise PersistenceError(f"{path}, line {line}: not a number ({exc})") from None
    except UnicodeDecodeError as exc:
        raise PersistenceError(f"{path}: not UTF-8 text ({exc})") from None
    if not rows:
        raise PersistenceError(f"{path}: no training rows")
    data = np.asarray(rows, dtype=np.float64)
    return data[:, :-1], data[:, -1]


def _load_ensemble(directory: Path, manifest: Mapping[str, Any], params: Mapping[str, Any], task: Any) -> Any:
    from surrogates.ensemble import EnsembleSurrogate

    path = directory / MANIFEST
    entries = _field(manifest, "members", list, path)
    if not entries:
        raise PersistenceError(f"{path}: an ensemble with no members")
    members = []
    for i, entry in enumerate(entries):
        sub = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(sub, str) or Path(sub).is_absolute() or ".." in Path(sub).parts:
            raise PersistenceError(f"{path}: member {i} has no valid relative path ({entry!r})")
        members.append(load_surrogate(directory / sub, task=task))
    surrogate = _make(EnsembleSurrogate, {**params, "members": [clone(m) for m in members]}, path)
    _common(surrogate, manifest, path)
    surrogate.members_ = members
    return surrogate


def _load_transfer(directory: Path, manifest: Mapping[str, Any], params: Mapping[str, Any], task: Any) -> Any:
    from surrogates.tabular import TabularSurrogate
    from surrogates.transfer import TransferSurrogate

    path = directory / MANIFEST
    base = _field(manifest, "base", str, path)
    if Path(base).is_absolute() or ".." in Path(base).parts:
        raise PersistenceError(f"{path}: base {base!r} is not a relative folder")
    model = load_surrogate(directory / base, task=task)
    if not isinstance(model, TabularSurrogate):
        raise PersistenceError(f"{directory / base}: expected a tabular surrogate, found {type(model).__name__}")
    surrogate = _make(TransferSurrogate, params, path)
    _common(surrogate, manifest, path)
    surrogate.model_ = model
    surrogate.blocks_ = list(manifest.get("blocks") or [])
    return surrogate


def _check_predictions(surrogate: Any, manifest: Mapping[str, Any], path: Path) -> None:
    """The reloaded model must reproduce the predictions recorded for the stored rows."""
    check = manifest.get("check") or {}
    recorded = np.asarray([np.nan if v is None else v for v in check.get("predictions", [])], dtype=np.float64)
    X = surrogate.check_X_
    if recorded.size != len(X):
        raise PersistenceError(f"{path}: {len(X)} check rows but {recorded.size} recorded predictions")
    if not len(X):
        return
    now = surrogate.predict(X)
    diff = np.abs(now - recorded)
    if not np.all((np.isfinite(diff) & (diff <= CHECK_TOLERANCE)) | (np.isnan(now) & np.isnan(recorded))):
        saved, now_sw = manifest.get("software") or {}, software_versions()
        raise PersistenceError(
            f"{path}: the reloaded model does not reproduce the recorded predictions (largest difference "
            f"{np.nanmax(diff):.3g}, tolerance {CHECK_TOLERANCE:g}); saved with scikit-learn "
            f"{saved.get('scikit-learn')}, xgboost {saved.get('xgboost') or saved.get('xgboost-cpu')}; now "
            f"{now_sw.get('scikit-learn')}, {now_sw.get('xgboost') or now_sw.get('xgboost-cpu')}")
