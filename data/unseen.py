"""Read and write tasks in the Unseen-NAS folder format, so the published datasets drop in unchanged.

A folder holds a ``metadata`` file (JSON: ``num_classes``, ``input_shape`` with or without the example count in
front, ``codename``, ``benchmark``, often ``name``) and six arrays ``{train,valid,test}_{x,y}.npy`` (``x``:
N×C×H×W, ``y``: N).  Arrays are read with ``allow_pickle=False``; every problem is reported with the folder and
the file at fault.  ``export_unseen`` writes the same layout and stores the task's name and metadata, so
``load_unseen(export_unseen(task, folder))`` gives back the same data.  A folder task is identified by the
bytes of its arrays as read (``Task.fingerprint``; files, unlike float computations, are the same on every
machine), so an exported generated task is another task than the generator's (identified by its recipe).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from data.task import SPLITS, Split, Task
from nas.jsonsafe import jsonable

logger = logging.getLogger(__name__)

METADATA_FILE = "metadata"
#: key under which ``export_unseen`` keeps the task's own metadata (ignored by other Unseen-NAS readers)
TASK_METADATA_KEY = "task_metadata"
_NUMERIC_KINDS = "biuf"  # bool, signed, unsigned, floating


class UnseenFormatError(ValueError):
    """A folder that does not follow the Unseen-NAS layout; the message names the folder and the file."""


def _fail(folder: Path, file: str, problem: str) -> UnseenFormatError:
    return UnseenFormatError(f"Unseen-NAS folder {folder}: {file}: {problem}")


def _read_metadata(folder: Path) -> tuple[str, dict[str, Any]]:
    for file in (METADATA_FILE, METADATA_FILE + ".json"):
        path = folder / file
        if path.is_file():
            break
    else:
        raise _fail(folder, METADATA_FILE, "missing (expected a JSON file named 'metadata')")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(folder, file, f"not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise _fail(folder, file, f"expected a JSON object, got {type(meta).__name__}")
    return file, meta


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_declared_size(folder: Path, file: str, fh: Any, file_size: int) -> None:
    """Refuse a header that declares more data than the file holds (e.g. 10¹² elements in a few bytes),
    before NumPy tries to allocate it.  Headers of versions other than 1.0 and 2.0 are left to ``np.load``."""
    try:
        version = np.lib.format.read_magic(fh)
        reader = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if reader is None:
            return
        shape, _, dtype = reader(fh)
    except ValueError as exc:
        raise _fail(folder, file, f"not a readable .npy array ({exc})") from None
    if dtype.hasobject:
        return  # refused by np.load(allow_pickle=False) with its own message
    elements = math.prod(shape)
    needed, available = elements * dtype.itemsize, file_size - fh.tell()
    if needed > available:
        raise _fail(folder, file, f"header declares shape {tuple(shape)} ({elements:,} elements of {dtype}, "
                    f"{needed:,} bytes) but the file holds {available:,} bytes of data")


def _load_array(folder: Path, file: str) -> np.ndarray:
    path = folder / file
    if not path.is_file():
        raise _fail(folder, file, "missing")
    with open(path, "rb") as fh:
        magic = fh.read(6)
        if magic.startswith(b"PK\x03\x04"):
            raise _fail(folder, file, "is an .npz archive, expected a single .npy array")
        if magic != b"\x93NUMPY":
            raise _fail(folder, file, "not a readable .npy array (no NumPy header)")
        fh.seek(0)
        _check_declared_size(folder, file, fh, path.stat().st_size)
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise _fail(folder, file, "holds Python objects (a pickled array); only numeric arrays are read") from None
        raise _fail(folder, file, f"not a readable .npy array ({exc})") from None
    except (OSError, EOFError) as exc:
        raise _fail(folder, file, f"not a readable .npy array ({exc})") from None
    except MemoryError:
        raise _fail(folder, file, "too large to load into memory") from None
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise _fail(folder, file, f"has non-numeric dtype {arr.dtype}; expected integers or floats")
    return arr


def _inputs(folder: Path, file: str, x: np.ndarray, example_ndim: int | None) -> np.ndarray:
    if example_ndim is None:
        if x.ndim not in (3, 4):
            raise _fail(folder, file, f"has shape {x.shape}; expected N×C×H×W (or N×S×D for sequences)")
    elif x.ndim != example_ndim + 1:
        raise _fail(
            folder, file, f"has shape {x.shape} ({x.ndim} dims); metadata input_shape implies {example_ndim + 1}"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        out = x.astype(np.float32)
    if out.size and not np.isfinite(out).all():
        raise _fail(folder, file, "holds NaN or infinite values (after conversion to float32)")
    return out


def _labels(folder: Path, file: str, y: np.ndarray, n: int, x_file: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise _fail(folder, file, f"has shape {y.shape}; expected one label per example (N,)")
    if len(y) != n:
        raise _fail(folder, file, f"holds {len(y)} labels but {x_file} holds {n} examples")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or not np.array_equal(y, np.round(y)):
            raise _fail(folder, file, "holds non-integer float labels; expected class indices")
    return y.astype(np.int64)


def load_unseen(folder: str | Path) -> Task:
    """Read a task from a folder in the Unseen-NAS format (``metadata`` plus ``{train,valid,test}_{x,y}.npy``),
    as float32 inputs and int64 labels; raises ``UnseenFormatError`` naming the folder and file at fault."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Unseen-NAS folder {folder}: not a directory")
    meta_file, meta = _read_metadata(folder)

    shape_meta = meta.get("input_shape")
    if shape_meta is not None and (
        not isinstance(shape_meta, list) or not shape_meta or not all(_positive_int(d) for d in shape_meta)
    ):
        raise _fail(folder, meta_file, f"input_shape must be a list of positive integers, got {shape_meta!r}")
    num_classes = meta.get("num_classes")
    if num_classes is not None and not _positive_int(num_classes):
        raise _fail(folder, meta_file, f"num_classes must be a positive integer, got {num_classes!r}")

    raw = {f"{s}_{v}": _load_array(folder, f"{s}_{v}.npy") for s in SPLITS for v in ("x", "y")}

    # input_shape may carry the example count in front ([N, C, H, W]) or not ([C, H, W])
    train_ndim = raw["train_x"].ndim
    example_shape: tuple[int, ...] | None = None
    if shape_meta is not None:
        if len(shape_meta) == train_ndim:
            example_shape = tuple(shape_meta[1:])
        elif len(shape_meta) == train_ndim - 1:
            example_shape = tuple(shape_meta)
        else:
            raise _fail(
                folder,
                meta_file,
                f"input_shape {shape_meta} does not fit train_x.npy of shape {raw['train_x'].shape}",
            )

    splits: dict[str, Split] = {}
    for s in SPLITS:
        x_file, y_file = f"{s}_x.npy", f"{s}_y.npy"
        x = _inputs(folder, x_file, raw[f"{s}_x"], None if example_shape is None else len(example_shape))
        if example_shape is None:
            example_shape = tuple(int(d) for d in x.shape[1:])
        if tuple(x.shape[1:]) != example_shape:
            source = "metadata input_shape" if shape_meta is not None else "train_x.npy"
            raise _fail(folder, x_file, f"has example shape {tuple(x.shape[1:])}, but {source} says {example_shape}")
        y = _labels(folder, y_file, raw[f"{s}_y"], len(x), x_file)
        splits[s] = Split(x, y)
    if not len(splits["train"]):
        raise _fail(folder, "train_x.npy", "holds no examples")

    if num_classes is None:
        num_classes = int(max(int(sp.y.max()) for sp in splits.values() if len(sp)) + 1)
        logger.warning(
            "Unseen-NAS folder %s: metadata has no num_classes; using %d from the labels", folder, num_classes
        )
    for s in SPLITS:
        y = splits[s].y
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise _fail(
                folder,
                f"{s}_y.npy",
                f"labels range over {int(y.min())}..{int(y.max())}, outside 0..{num_classes - 1} "
                f"(num_classes = {num_classes} in {meta_file})",
            )

    name = str(meta.get("name") or meta.get("codename") or folder.name)
    stored = meta.get(TASK_METADATA_KEY)
    if isinstance(stored, dict):
        task_meta: dict[str, Any] = dict(stored)
    else:
        task_meta = {k: v for k, v in meta.items() if k not in ("input_shape", "num_classes", "name")}
        task_meta.update(source="unseen-nas folder", folder=str(folder))
    assert example_shape is not None
    task = Task(name, example_shape, num_classes, splits["train"], splits["valid"], splits["test"], task_meta)
    logger.info(
        "loaded Unseen-NAS task %r from %s: %s, %d classes, %s",
        name, folder, example_shape, num_classes, {s: len(splits[s]) for s in SPLITS},
    )
    return task


def _metadata_json(metadata: Mapping[str, Any]) -> Any:
    """The task's metadata as JSON types; a value JSON cannot hold (non-finite, unknown type) is an error."""
    try:
        return jsonable(dict(metadata), "task metadata", nonfinite="error")
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def export_unseen(task: Task, folder: str | Path, overwrite: bool = False) -> Path:
    """Write ``task`` as an Unseen-NAS folder (``metadata`` plus six ``.npy`` arrays) and return the folder;
    the task's name and metadata are stored too, so ``load_unseen`` gives back the same task."""
    if getattr(task, "is_tabular", False) or not isinstance(task, Task):
        raise TypeError(f"only array tasks can be exported, not {type(task).__name__} {getattr(task, 'name', '')!r}")
    folder = Path(folder)
    files = [METADATA_FILE] + [f"{s}_{v}.npy" for s in SPLITS for v in ("x", "y")]
    if not overwrite:
        existing = [f for f in files if (folder / f).exists()]
        if existing:
            raise FileExistsError(f"Unseen-NAS folder {folder}: {', '.join(existing)} already exist (overwrite=True)")
    task_meta = _metadata_json(task.metadata)
    meta = {
        "name": task.name,
        "codename": str(task.metadata.get("codename", task.name)),
        "num_classes": int(task.num_classes),
        "input_shape": [len(task.train), *(int(d) for d in task.input_shape)],
        "benchmark": task_meta.get("benchmark"),
        TASK_METADATA_KEY: task_meta,
    }
    folder.mkdir(parents=True, exist_ok=True)
    for s in SPLITS:
        split = task.split(s)
        np.save(folder / f"{s}_x.npy", np.ascontiguousarray(split.x, dtype=np.float32), allow_pickle=False)
        np.save(folder / f"{s}_y.npy", np.ascontiguousarray(split.y, dtype=np.int64), allow_pickle=False)
    # the metadata goes last: a folder with metadata is complete
    (folder / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    logger.info("exported task %r to %s", task.name, folder)
    return folder
