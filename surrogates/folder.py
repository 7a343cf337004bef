"""The on-disk format of a saved surrogate: one folder, a JSON manifest plus safe model files, never pickle.

``manifest.json`` records the kind (a key of ``surrogates.registry.KINDS``), the class, the parameters, the
task's identity (name and fingerprint), the featuriser (spec, names and versions), the feature names, a
description of the training set, the software versions, the schema version, and a few training rows with their
predictions.  Each surrogate class writes and reads its own model files with these helpers (``save`` and
``from_folder``); ``surrogates.persistence`` dispatches on the kind.  Every error names the file.

Saving is atomic (``staged_dir``): a surrogate is written to a temporary folder beside the target, which replaces
the target only once complete, so a killed save leaves the previous surrogate (or nothing) at the target.
Loading validates the manifest before any model is built (``check_manifest``): parameters within sane ranges
(``PARAM_RANGES``), recorded check rows, and no file or link that leads outside the folder.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import math
import os
import shutil
import socket
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

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


def _check_target(directory: Path) -> None:
    """``directory`` may receive a saved surrogate: absent, empty, or a saved surrogate (holding a manifest)."""
    if directory.exists() and not directory.is_dir():
        raise PersistenceError(f"{directory}: exists and is not a folder")
    if directory.is_dir() and not (directory / MANIFEST).exists() and any(directory.iterdir()):
        raise PersistenceError(f"{directory}: folder is not empty and holds no {MANIFEST}; refusing to save over it")


def prepare_dir(directory: Path) -> None:
    """Create ``directory``, refusing a non-empty folder that is not a saved surrogate; drop an old manifest
    first, so a save into it that is interrupted never looks complete (``staged_dir`` gives a fresh folder)."""
    _check_target(directory)
    directory.mkdir(parents=True, exist_ok=True)
    manifest = directory / MANIFEST
    if manifest.exists():
        manifest.unlink()


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest last and atomically: a folder without one is an incomplete save."""
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, directory / MANIFEST)


# --------------------------------------------------------------------------------------------------
# Atomic saves: write beside the target, then rename
# --------------------------------------------------------------------------------------------------

#: Infixes of the temporary folders beside a target: ``.<name>.saving-<host>-<pid>-<random>`` (being written)
#: and ``.<name>.old-<host>-<pid>-<random>`` (the replaced surrogate, until the new one is in place).
SAVING, OLD = "saving", "old"


@contextmanager
def staged_dir(directory: "str | os.PathLike[str]") -> Iterator[Path]:
    """A fresh, empty folder beside ``directory`` to save a surrogate into; when the block completes it
    replaces ``directory`` (a surrogate saved there before is kept until then).  If the block raises or the
    process dies, ``directory`` is unchanged; temporary folders left by saves that were killed are removed
    (or, for a replaced surrogate whose successor never arrived, put back) by the next save to ``directory``."""
    _check_target(Path(directory))
    target = Path(directory).resolve()  # a link to a folder: the folder it leads to is replaced
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target)
    stage = Path(tempfile.mkdtemp(prefix=f"{_temp_prefix(target, SAVING)}{os.getpid()}-", dir=target.parent))
    try:
        yield stage
        _sync_tree(stage)
        _replace(stage, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)  # gone already after a successful rename


def _temp_prefix(directory: Path, what: str) -> str:
    """The start of the name of a temporary folder beside ``directory`` made on this machine (the process
    id follows)."""
    return f".{directory.name}.{what}-{socket.gethostname()}-"


def _replace(stage: Path, directory: Path) -> None:
    """Rename ``stage`` to ``directory``; an existing surrogate there is renamed aside first and removed after."""
    if directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
    if not directory.exists():
        os.rename(stage, directory)
        return
    old = Path(tempfile.mkdtemp(prefix=f"{_temp_prefix(directory, OLD)}{os.getpid()}-", dir=directory.parent))
    os.rename(directory, old / "surrogate")
    try:
        os.rename(stage, directory)
    except OSError as exc:
        os.rename(old / "surrogate", directory)
        shutil.rmtree(old, ignore_errors=True)
        raise PersistenceError(f"{directory}: could not be replaced ({exc}); the surrogate saved there is kept") from None
    shutil.rmtree(old, ignore_errors=True)


def clean_stale(directory: "str | os.PathLike[str]") -> None:
    """Remove the temporary folders beside ``directory`` left by saves on this machine whose process is gone;
    a surrogate such a save had moved aside is put back when ``directory`` is missing."""
    directory = Path(directory).resolve()
    if not directory.parent.is_dir():
        return
    for what in (OLD, SAVING):  # put an old surrogate back before anything else
        prefix = _temp_prefix(directory, what)
        for temp in sorted(directory.parent.glob(glob.escape(prefix) + "*")):
            pid = temp.name[len(prefix):].split("-", 1)[0]
            if not pid.isdigit() or _alive(int(pid)):
                continue
            if what == OLD and (temp / "surrogate" / MANIFEST).is_file() and not directory.exists():
                os.rename(temp / "surrogate", directory)
            shutil.rmtree(temp, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (True where that cannot be told, so nothing is removed)."""
    if pid == os.getpid():
        return True
    if os.name != "posix":
        return True  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sync_tree(root: Path) -> None:
    """Flush every file and folder under ``root`` to disk before it is renamed into place."""
    for base, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(base, name), "rb") as fh:
                os.fsync(fh.fileno())
        try:
            fd = os.open(base, os.O_RDONLY)
        except OSError:
            continue  # folders cannot be opened on Windows
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)


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
    """``directory / sub`` for a relative path recorded in the manifest, refused unless it stays inside the
    folder once links are followed (its contents are never read or shown otherwise)."""
    if not isinstance(sub, str) or not sub or Path(sub).is_absolute() or ".." in Path(sub).parts:
        raise PersistenceError(f"{path}: {what} {sub!r} is not a relative path inside {directory}")
    target = directory / sub
    if not target.resolve().is_relative_to(directory.resolve()):
        raise PersistenceError(f"{path}: {what} {sub!r} leads outside {directory}")
    return target


def model_file(directory: Path, info: Mapping[str, Any], path: Path) -> Path:
    """The model file named in the manifest's ``info``: inside the folder, present, and unchanged (SHA-256)."""
    model_path = subfolder(directory, info.get("file"), path, "model file")
    if not model_path.is_file():
        raise PersistenceError(f"{model_path}: model file named in {path} is missing")
    expected = info.get("sha256")
    if expected is not None and sha256(model_path) != expected:
        raise PersistenceError(f"{model_path}: contents changed since saving (SHA-256 differs from {path})")
    return model_path


def check_links(directory: Path) -> None:
    """Refuse a saved folder holding a link that leads outside it: loading reads only files inside the folder."""
    root = directory.resolve()
    for base, dirs, files in os.walk(directory):
        for name in dirs + files:
            entry = Path(base) / name
            if entry.is_symlink() and not entry.resolve().is_relative_to(root):
                raise PersistenceError(f"{entry}: a link leading outside {directory}; a saved surrogate reads only "
                                       "files inside its folder")


# --------------------------------------------------------------------------------------------------
# Manifest validation: sane parameters and recorded check rows, before any model is built
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """The values a parameter may take in a manifest: ``low``..``high`` (``low`` excluded when ``open_low``),
    integers only when ``integer``, ``None`` allowed when ``optional``."""

    low: float
    high: float
    integer: bool = True
    optional: bool = False
    open_low: bool = False

    def admits(self, value: Any) -> bool:
        if value is None:
            return self.optional
        kinds = (int,) if self.integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
            return False
        return (self.low < value if self.open_low else self.low <= value) and value <= self.high

    def __str__(self) -> str:
        text = f"{'an integer' if self.integer else 'a number'} from {self.low:g}{' (excluded)' * self.open_low} " \
               f"to {self.high:g}"
        return text + " or null" * self.optional


_FRACTION = Range(0.0, 1.0, integer=False, open_low=True)
#: Sane ranges of the estimator parameters a manifest may hold, at its top level (``params``) or in
#: ``params.model_params``: what a loaded surrogate is built (and a random forest refitted) with.  Beyond them a
#: tampered manifest could make loading run for hours or exhaust memory; parameters not listed are checked by
#: the estimator itself.
PARAM_RANGES: Mapping[str, Range] = {
    "n_estimators": Range(1, 20_000),          # trees / boosting rounds; xgb_tuned uses 10,000
    "num_parallel_tree": Range(1, 1_000),      # XGBoost: trees per round
    "n_seeds": Range(1, 1_000),                # ensemble: members per model
    "max_depth": Range(0, 128, optional=True),
    "max_leaves": Range(0, 1 << 20),           # XGBoost
    "max_leaf_nodes": Range(2, 1 << 24, optional=True),
    "max_bin": Range(2, 1 << 16),              # XGBoost histogram bins
    "learning_rate": _FRACTION,
    "subsample": _FRACTION,
    "colsample_bytree": _FRACTION,
    "colsample_bylevel": _FRACTION,
    "colsample_bynode": _FRACTION,
    "n_jobs": Range(-1, 1_024, optional=True),
    "nthread": Range(-1, 1_024, optional=True),
    "random_state": Range(0, 2 ** 32 - 1, optional=True),
}


def check_params(params: Mapping[str, Any], where: str, prefix: str = "params") -> None:
    """Every parameter of ``PARAM_RANGES`` in ``params`` (and its ``model_params``) within its range; the
    error names the field."""
    for key, value in params.items():
        name = f"{prefix}.{key}"
        if key in PARAM_RANGES and not PARAM_RANGES[key].admits(value):
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            raise PersistenceError(f"{where}: field {name!r} is {shown}; expected {PARAM_RANGES[key]}")
        if key == "model_params" and value is not None:
            if not isinstance(value, Mapping):
                raise PersistenceError(f"{where}: field {name!r} should be an object, found {type(value).__name__}")
            check_params(value, where, name)


def check_manifest(directory: Path, manifest: Mapping[str, Any]) -> None:
    """Validate the manifest of a feature surrogate before its model is built: parameters within
    ``PARAM_RANGES`` and at least one check row with its recorded prediction (so that loading always
    verifies the model it rebuilds)."""
    path = directory / MANIFEST
    check_params(field(manifest, "params", dict, path), str(path))
    check = field(manifest, "check", dict, path)
    rows, predictions = check.get("rows"), check.get("predictions")
    if not isinstance(rows, list) or not isinstance(predictions, list):
        raise PersistenceError(f"{path}: field 'check' needs lists 'rows' and 'predictions'")
    if not rows:
        raise PersistenceError(f"{path}: field 'check.rows' is empty; a saved surrogate records training rows and "
                               "their predictions so that loading can verify the model")
    if len(rows) != len(predictions):
        raise PersistenceError(f"{path}: {len(rows)} check rows but {len(predictions)} recorded predictions")


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
