"""The on-disk format of a saved surrogate: one folder, a JSON manifest plus safe model files, never pickle.

``manifest.json`` records the kind (a key of ``surrogates.registry.KINDS``), the class, the parameters, the
task's identity (name and fingerprint), the featuriser (spec, names and versions), the feature names, a
description of the training set, the software versions, the schema version, and a few training rows with their
predictions.  Each surrogate class writes and reads its own model files with these helpers (``save`` and
``from_folder``); ``surrogates.persistence`` dispatches on the kind.  Every error names the file.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from nas.jsonsafe import jsonable
from nas.versions import software_versions

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
#: Largest difference allowed between recorded and recomputed predictions of the stored rows.
CHECK_TOLERANCE = 1e-9
#: Packages whose versions decide a saved tabular model's behaviour (recorded in the manifest).
PACKAGES = ("surrogate-nas", "scikit-learn", "xgboost", "xgboost-cpu", "numpy", "scipy")
TARGET_COLUMN = "y"


class PersistenceError(ValueError):
    """A saved surrogate folder is missing, damaged or incompatible (the message names the file)."""


def to_json(value: Any, where: str) -> Any:
    """A JSON-safe copy of ``value`` (non-finite floats become null); a ``PersistenceError`` for other types."""
    try:
        return jsonable(value, where)
    except TypeError as exc:
        raise PersistenceError(str(exc)) from None


def class_path(cls: type) -> str:
    """``module.QualName`` of a class, as recorded in the manifest."""
    return f"{cls.__module__}.{cls.__qualname__}"


def rows_to_json(X: np.ndarray) -> list[list[float | None]]:
    return [[float(v) if math.isfinite(v) else None for v in row] for row in np.asarray(X, dtype=float)]


def rows_from_json(rows: Any, where: str, width: int) -> np.ndarray:
    try:
        X = np.array([[np.nan if v is None else float(v) for v in row] for row in rows], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PersistenceError(f"{where}: check rows are not numbers ({exc})") from None
    X = X.reshape(-1, width) if X.size == 0 else X
    if X.ndim != 2 or X.shape[1] != width:
        raise PersistenceError(f"{where}: check rows have {X.shape[-1] if X.ndim else 0} columns, expected {width}")
    return X


def prepare_dir(directory: Path) -> None:
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


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest last and atomically: a folder without one is an incomplete save."""
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, directory / MANIFEST)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def created() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def tabular_software() -> dict[str, str]:
    return software_versions(PACKAGES)


def read_manifest(directory: "str | os.PathLike[str]", kinds: Sequence[str] | None = None) -> dict[str, Any]:
    """The parsed ``manifest.json`` of a saved surrogate (a JSON object; its kind one of ``kinds`` if given)."""
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
    if kinds is not None and kind not in kinds:
        raise PersistenceError(f"{path}: unknown kind {kind!r}; expected one of {', '.join(kinds)}")
    return manifest


def field(manifest: Mapping[str, Any], key: str, types: Any, path: Path) -> Any:
    """``manifest[key]``, which must exist and be of ``types``."""
    if key not in manifest:
        raise PersistenceError(f"{path}: field {key!r} is missing")
    value = manifest[key]
    if not isinstance(value, types):
        raise PersistenceError(f"{path}: field {key!r} should be {getattr(types, '__name__', types)}, "
                               f"found {type(value).__name__}")
    return value


def subfolder(directory: Path, sub: Any, path: Path, what: str) -> Path:
    """``directory / sub`` for a relative path recorded in the manifest; nothing outside the folder."""
    if not isinstance(sub, str) or Path(sub).is_absolute() or ".." in Path(sub).parts:
        raise PersistenceError(f"{path}: {what} has no valid relative path ({sub!r})")
    return directory / sub


def model_file(directory: Path, info: Mapping[str, Any], path: Path) -> Path:
    """The model file named in the manifest's ``info``: inside the folder, present, and unchanged (SHA-256)."""
    file = info.get("file")
    if not isinstance(file, str) or Path(file).is_absolute() or ".." in Path(file).parts \
            or not (directory / file).is_file():
        raise PersistenceError(f"{directory / str(file)}: model file named in {path} is missing")
    model_path = directory / file
    expected = info.get("sha256")
    if expected is not None and sha256(model_path) != expected:
        raise PersistenceError(f"{model_path}: contents changed since saving (SHA-256 differs from {path})")
    return model_path


def write_training_csv(path: Path, names: Sequence[str], X: np.ndarray, y: np.ndarray) -> None:
    """Training rows as CSV: the feature names and ``y`` as header, full-precision floats, ``nan`` for missing."""
    if TARGET_COLUMN in names:
        raise PersistenceError(f"a feature is named {TARGET_COLUMN!r}, which {path.name} uses for the targets")
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(names) + [TARGET_COLUMN])
        for row, target in zip(X, y):
            writer.writerow([repr(float(v)) for v in row] + [repr(float(target))])


def _header_mismatch(path: Path, header: list[str] | None, expected: list[str]) -> PersistenceError:
    if header is None:
        return PersistenceError(f"{path}: empty file")
    i = next((i for i, (a, b) in enumerate(zip(header, expected)) if a != b), min(len(header), len(expected)))
    got = header[i] if i < len(header) else "<none>"
    want = expected[i] if i < len(expected) else "<none>"
    return PersistenceError(f"{path}: feature names do not match the manifest: column {i} is {got!r}, "
                            f"expected {want!r} ({len(header)} columns, expected {len(expected)})")


def read_training_csv(path: Path, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` written by ``write_training_csv``; the header must be ``names`` then ``y``."""
    expected = names + [TARGET_COLUMN]
    rows = []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header != expected:
                raise _header_mismatch(path, header, expected)
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
