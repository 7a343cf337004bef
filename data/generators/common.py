"""Helpers shared by the task generators: seeded streams, argument checks, metadata, digit images and pools."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from data.task import Split, Task, make_recipe

logger = logging.getLogger("data.generators")

#: bumped whenever a generator's output for a given seed changes
GENERATOR_VERSION = 1

#: default sizes of the generated splits
N_TRAIN, N_VALID, N_TEST = 4000, 1000, 1000


POOL_FRACTIONS = (0.6, 0.2, 0.2)  # train / valid / test share of the base digit images of every class



def task_rng(name: str, seed: int) -> np.random.Generator:
    """A generator seeded by the task name and the seed, so tasks with the same seed draw independent streams."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"task {name!r}: seed must be a non-negative integer, got {seed!r}")
    salt = int.from_bytes(name.encode(), "little") % (2**63)
    return np.random.default_rng([int(seed), salt])


def check_sizes(name: str, **sizes: int) -> None:
    for key, value in sizes.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"task {name!r}: {key} must be a positive integer, got {value!r}")


def check_range(name: str, key: str, value: Any, low: float, high: float = float("inf")) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not (
        low <= value <= high
    ):
        raise ValueError(f"task {name!r}: {key} must be a number in [{low}, {high}], got {value!r}")


def recipe_metadata(name: str, seed: int, recipe: str, source: str, **extra: Any) -> dict[str, Any]:
    return {
        "source": source,
        "recipe": recipe,
        "seed": int(seed),
        "generator_version": GENERATOR_VERSION,
        "generator": f"data.generators:{name}",
        **extra,
    }


def with_recipe(name: str, inputs: "Callable[[Mapping[str, Any]], dict[str, Any]] | None" = None
                ) -> Callable[[Callable[..., Task]], Callable[..., Task]]:
    """Decorate a generator so that its task carries its recipe (``Task.recipe``): ``name``, ``GENERATOR_VERSION``
    and every parameter of the call, defaults included.  ``inputs`` rewrites parameters that name files into
    what identifies their content (a folder's path differs between machines, its data must not)."""

    def decorate(generator: Callable[..., Task]) -> Callable[..., Task]:
        signature = inspect.signature(generator)

        @functools.wraps(generator)
        def make(*args: Any, **kwargs: Any) -> Task:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            params = {k: v.item() if isinstance(v, np.generic) else v for k, v in bound.arguments.items()}
            task = generator(*args, **kwargs)
            params = inputs(params) if inputs is not None else params
            return dataclasses.replace(task, recipe=make_recipe(f"data.generators:{name}", GENERATOR_VERSION, params))

        return make

    return decorate


def balanced_labels(n: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` labels with every class as equally often as possible, in random order."""
    return rng.permutation(np.resize(np.arange(num_classes, dtype=np.int64), n))


def build_task(
    name: str,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    num_classes: int,
    metadata: dict[str, Any],
    started: float,
) -> Task:
    parts = {
        k: Split(np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y, dtype=np.int64))
        for k, (x, y) in splits.items()
    }
    shape = tuple(int(d) for d in parts["train"].x.shape[1:])
    task = Task(name, shape, num_classes, parts["train"], parts["valid"], parts["test"], metadata)
    logger.debug("generated %s (seed %s) in %.2f s", name, metadata.get("seed"), time.perf_counter() - started)
    return task


@functools.lru_cache(maxsize=1)
def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits as read-only arrays: images (1797×8×8 float32 in [0, 1]) and labels."""
    try:
        from sklearn.datasets import load_digits  # deferred: scikit-learn, only the digit tasks need it
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the digit-based tasks need scikit-learn (sklearn.datasets.load_digits)") from exc
    bunch = load_digits()
    images = (np.asarray(bunch.images, dtype=np.float32) / 16.0).astype(np.float32)
    labels = np.asarray(bunch.target, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def class_pools(
    labels: np.ndarray, num_classes: int, rng: np.random.Generator, fractions: Sequence[float] = POOL_FRACTIONS
) -> dict[str, list[np.ndarray]]:
    """Disjoint pools of base-image indices per split and class (every pool non-empty)."""
    pools: dict[str, list[np.ndarray]] = {"train": [], "valid": [], "test": []}
    for c in range(num_classes):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) < 3:
            raise ValueError(f"class {c} has {len(idx)} base images; need at least 3 to fill three pools")
        n_tr = max(1, int(round(fractions[0] * len(idx))))
        n_va = max(1, int(round(fractions[1] * len(idx))))
        n_tr = min(n_tr, len(idx) - 2)
        pools["train"].append(idx[:n_tr])
        pools["valid"].append(idx[n_tr : n_tr + n_va])
        pools["test"].append(idx[n_tr + n_va :])
    return pools


def draw_images(pool: list[np.ndarray], classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One base-image index per entry of ``classes``, uniformly from that class's pool."""
    out = np.empty(len(classes), dtype=np.int64)
    for c in np.unique(classes):
        where = np.flatnonzero(classes == c)
        out[where] = rng.choice(pool[c], size=len(where))
    return out


def upsample_images(images: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upsampling of the last two axes."""
    if factor == 1:
        return images
    return np.repeat(np.repeat(images, factor, axis=-2), factor, axis=-1)


def shift_images(images: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Translate each ``H×W`` image by up to ``max_shift`` pixels in each direction, filling with zeros."""
    if max_shift == 0:
        return images
    n, h, w = images.shape
    padded = np.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift)))
    dy = rng.integers(0, 2 * max_shift + 1, size=n)
    dx = rng.integers(0, 2 * max_shift + 1, size=n)
    rows = dy[:, None] + np.arange(h)[None, :]
    cols = dx[:, None] + np.arange(w)[None, :]
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]

