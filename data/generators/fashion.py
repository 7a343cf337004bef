"""Fashion-MNIST subsets and AddNIST from Fashion-MNIST images, where the idx files are on disk."""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import time
from pathlib import Path

import numpy as np

from data.generators.common import N_TEST, N_TRAIN, N_VALID, build_task, check_sizes, recipe_metadata, with_recipe, task_rng
from data.generators.digits import addnist_bins, make_triple_task
from data.task import Task

#: where Debian's ``dataset-fashion-mnist`` puts the idx files; ``NAS_FASHION_MNIST_DIR`` takes precedence
FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
FASHION_MNIST_ENV = "NAS_FASHION_MNIST_DIR"

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_FASHION_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an idx file (the MNIST container format; gzip-compressed when the name ends in ``.gz``)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an idx file (bad magic number)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown idx element type 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated idx header")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[code])
    count = int(np.prod(dims)) if dims else 1
    if len(raw) - header != count * dtype.itemsize:
        raise ValueError(f"{path}: idx header says {dims} but the file holds {len(raw) - header} data bytes")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)


def fashion_mnist_dir() -> Path | None:
    """The first folder holding the four Fashion-MNIST idx files (``$NAS_FASHION_MNIST_DIR``, then Debian's
    location), or None."""
    candidates = [os.environ.get(FASHION_MNIST_ENV, "")] + list(FASHION_MNIST_DIRS)
    for folder in candidates:
        if folder and all(_find_idx(Path(folder), stem) for stem in _FASHION_FILES.values()):
            return Path(folder)
    return None


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


@functools.lru_cache(maxsize=2)
def _fashion_arrays(folder: str) -> dict[str, np.ndarray]:
    out = {}
    for key, stem in _FASHION_FILES.items():
        path = _find_idx(Path(folder), stem)
        if path is None:
            raise FileNotFoundError(f"Fashion-MNIST folder {folder}: missing {stem}(.gz)")
        out[key] = read_idx(path)
    for split in ("train", "test"):
        x, y = out[f"{split}_x"], out[f"{split}_y"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"Fashion-MNIST folder {folder}: {split} images {x.shape} and labels {y.shape} differ")
    return out


def _identified(params: dict) -> dict:
    """A generator's parameters with ``folder`` replaced by the SHA-256 of the Fashion-MNIST images and labels
    it read (their decoded bytes: the same for plain and gzipped idx files, on every machine)."""
    return {**params, "folder": fashion_digest(str(_fashion_folder(params.get("folder"))))}


@functools.lru_cache(maxsize=2)
def fashion_digest(folder: str) -> str:
    """SHA-256 over the four Fashion-MNIST arrays of ``folder`` (names, dtypes, shapes and bytes)."""
    h = hashlib.sha256()
    for key, array in sorted(_fashion_arrays(folder).items()):
        h.update(repr((key, array.dtype.str, array.shape)).encode())
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


@with_recipe("fashion-mnist", _identified)
def make_fashion_mnist(
    seed: int = 0,
    n_train: int = N_TRAIN,
    n_valid: int = N_VALID,
    n_test: int = N_TEST,
    downsample: int = 2,
    folder: str | os.PathLike | None = None,
) -> Task:
    """A random subset of Fashion-MNIST (train and valid from its training set, test from its test set),
    2×2-average-pooled to 1×14×14 by default, pixels in [0, 1].  Needs the idx files on disk."""
    name = "fashion-mnist"
    started = time.perf_counter()
    check_sizes(name, n_train=n_train, n_valid=n_valid, n_test=n_test, downsample=downsample)
    found = _fashion_folder(folder)
    arrays = _fashion_arrays(str(found))
    rng = task_rng(name, seed)
    if n_train + n_valid > len(arrays["train_y"]) or n_test > len(arrays["test_y"]):
        raise ValueError(f"task {name!r}: sizes exceed the {len(arrays['train_y'])}/{len(arrays['test_y'])} images")
    pick = rng.permutation(len(arrays["train_y"]))[: n_train + n_valid]
    pick_test = rng.permutation(len(arrays["test_y"]))[:n_test]

    def prep(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float32) / 255.0
        n, h, w = x.shape
        h2, w2 = h // downsample, w // downsample
        x = x[:, : h2 * downsample, : w2 * downsample].reshape(n, h2, downsample, w2, downsample).mean((2, 4))
        return x[:, None]

    splits = {
        "train": (prep(arrays["train_x"][pick[:n_train]]), arrays["train_y"][pick[:n_train]]),
        "valid": (prep(arrays["train_x"][pick[n_train:]]), arrays["train_y"][pick[n_train:]]),
        "test": (prep(arrays["test_x"][pick_test]), arrays["test_y"][pick_test]),
    }
    meta = recipe_metadata(
        name,
        seed,
        f"random subset of Fashion-MNIST, {downsample}x{downsample} average-pooled, pixels / 255",
        f"Fashion-MNIST idx files in {found}",
        downsample=downsample,
    )
    return build_task(name, splits, 10, meta, started)


@with_recipe("addnist-fashion", _identified)
def make_addnist_fashion(
    seed: int = 0,
    n_train: int = N_TRAIN,
    n_valid: int = N_VALID,
    n_test: int = N_TEST,
    noise: float = 0.05,
    base_images: int = 6000,
    folder: str | os.PathLike | None = None,
) -> Task:
    """AddNIST built from real images: three Fashion-MNIST images (2×2-average-pooled to 14×14) as channels,
    label = binned sum of their classes as in ``addnist-mini``; test triples and test images unseen."""
    name = "addnist-fashion"
    check_sizes(name, base_images=base_images)
    found = _fashion_folder(folder)
    arrays = _fashion_arrays(str(found))
    pick = task_rng(name + "/base", seed).permutation(len(arrays["train_y"]))[:base_images]
    images = arrays["train_x"][pick].astype(np.float32) / 255.0
    images = images.reshape(len(pick), 14, 2, 14, 2).mean((2, 4))
    return make_triple_task(
        name,
        seed,
        addnist_bins,
        9,
        "3 Fashion-MNIST images (14x14) as channels; label = min(i+j+k, 26) // 3 of their classes (9 classes), "
        "balanced; test triples unseen",
        n_train,
        n_valid,
        n_test,
        noise,
        0,
        0.25,
        images=images,
        image_labels=arrays["train_y"][pick].astype(np.int64),
        source=f"Fashion-MNIST idx files in {found}",
        upsample=1,
    )


def _fashion_folder(folder: str | os.PathLike | None) -> Path:
    found = Path(folder) if folder is not None else fashion_mnist_dir()
    if found is None:
        raise FileNotFoundError(
            f"Fashion-MNIST idx files not found: set ${FASHION_MNIST_ENV} or install Debian's "
            f"dataset-fashion-mnist (looked in {', '.join(FASHION_MNIST_DIRS)})"
        )
    return found

