"""AddNIST, MultNIST and CIFARTile-like tasks built from scikit-learn's bundled 8x8 digits."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from data.generators.common import (
    N_TEST, N_TRAIN, N_VALID, balanced_labels, build_task, check_range, check_sizes, class_pools, digit_images, draw_images,
    recipe_metadata, with_recipe, shift_images, task_rng, upsample_images,
)
from data.task import Task


def _split_triples(
    labels: np.ndarray, num_classes: int, test_fraction: float, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Split the indices of all 1,000 digit triples into seen (train/valid) and unseen (test) sets, stratified
    by label so that every class has triples on both sides."""
    seen: list[np.ndarray] = []
    unseen: list[np.ndarray] = []
    for c in range(num_classes):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) < 2:
            raise ValueError(f"label {c} has {len(idx)} digit triples; need at least 2 to split train/test")
        n_test = min(len(idx) - 1, max(1, int(round(test_fraction * len(idx)))))
        unseen.append(idx[:n_test])
        seen.append(idx[n_test:])
    return seen, unseen


def make_triple_task(
    name: str,
    seed: int,
    label_fn: Callable[[np.ndarray], np.ndarray],
    num_classes: int,
    recipe: str,
    n_train: int,
    n_valid: int,
    n_test: int,
    noise: float,
    max_shift: int,
    test_fraction: float,
    images: np.ndarray | None = None,
    image_labels: np.ndarray | None = None,
    source: str = "sklearn.datasets.load_digits (8x8, upsampled 2x)",
    upsample: int = 2,
) -> Task:
    started = time.perf_counter()
    check_sizes(name, n_train=n_train, n_valid=n_valid, n_test=n_test)
    check_range(name, "noise", noise, 0.0)
    if not isinstance(max_shift, (int, np.integer)) or max_shift < 0:
        raise ValueError(f"task {name!r}: max_shift must be a non-negative integer, got {max_shift!r}")
    rng = task_rng(name, seed)
    if images is None or image_labels is None:
        images, image_labels = digit_images()
    grid = np.stack(np.meshgrid(np.arange(10), np.arange(10), np.arange(10), indexing="ij"), -1).reshape(-1, 3)
    triple_labels = np.asarray(label_fn(grid), dtype=np.int64)  # a label of -1 would leave a triple out
    seen, unseen = _split_triples(triple_labels, num_classes, test_fraction, rng)
    pools = class_pools(image_labels, 10, rng)
    splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split, n, triple_sets in (("train", n_train, seen), ("valid", n_valid, seen), ("test", n_test, unseen)):
        y = balanced_labels(n, num_classes, rng)
        triples = np.empty((n, 3), dtype=np.int64)
        for c in range(num_classes):
            where = np.flatnonzero(y == c)
            triples[where] = grid[rng.choice(triple_sets[c], size=len(where))]
        channels = []
        for ch in range(3):
            base = images[draw_images(pools[split], triples[:, ch], rng)]
            channels.append(shift_images(upsample_images(base, upsample), max_shift, rng))
        x = np.stack(channels, axis=1)
        if noise:
            x = x + rng.normal(0.0, noise, size=x.shape).astype(np.float32)
        splits[split] = (x, y)
    meta = recipe_metadata(
        name,
        seed,
        recipe,
        source,
        test_combinations="digit triples of the test split never occur in train or valid",
        noise=noise,
        max_shift=max_shift,
        test_fraction=test_fraction,
    )
    return build_task(name, splits, num_classes, meta, started)


@with_recipe("addnist-mini")
def make_addnist_mini(
    seed: int = 0,
    n_train: int = N_TRAIN,
    n_valid: int = N_VALID,
    n_test: int = N_TEST,
    noise: float = 0.1,
    max_shift: int = 0,
) -> Task:
    """AddNIST-like: three digit images as the channels of a 3×16×16 image; the label is the sum of the three
    digits in bins of three (27 joins 24–26): the 28-class sum barely learns in seconds.  Digit triples are split
    75/25 so the test split holds only unseen triples."""
    return make_triple_task(
        "addnist-mini",
        seed,
        addnist_bins,
        9,
        "3 digits as channels; label = min(i+j+k, 26) // 3 (9 classes), balanced; test triples unseen",
        n_train,
        n_valid,
        n_test,
        noise,
        max_shift,
        0.25,
    )


def addnist_bins(triples: np.ndarray) -> np.ndarray:
    return np.minimum(triples.sum(axis=1), 26) // 3


def _multnist_label(triples: np.ndarray) -> np.ndarray:
    return np.prod(triples, axis=1) % 10


@with_recipe("multnist-mini")
def make_multnist_mini(
    seed: int = 0,
    n_train: int = N_TRAIN,
    n_valid: int = N_VALID,
    n_test: int = N_TEST,
    noise: float = 0.1,
    max_shift: int = 0,
) -> Task:
    """MultNIST-like: three digit images as channels (3×16×16); label = (i·j·k) mod 10, balanced over the ten
    classes.  Digit triples are split 75/25 so the test split holds only unseen triples."""
    return make_triple_task(
        "multnist-mini",
        seed,
        _multnist_label,
        10,
        "3 digits as channels; label = (i*j*k) mod 10, balanced; test triples unseen",
        n_train,
        n_valid,
        n_test,
        noise,
        max_shift,
        0.25,
    )


# --------------------------------------------------------------------------------------------------
# CIFARTile: a 2x2 grid of images; label = number of distinct classes - 1
# --------------------------------------------------------------------------------------------------

#: multiplicity of the classes in the four tiles for 1, 2, 3 and 4 distinct classes (as in CIFARTile)
_TILE_PATTERNS = ((4,), (2, 2), (2, 1, 1), (1, 1, 1, 1))


@with_recipe("cifartile-mini")
def make_cifartile_mini(
    seed: int = 0,
    n_train: int = N_TRAIN,
    n_valid: int = N_VALID,
    n_test: int = N_TEST,
    noise: float = 0.05,
    tint: tuple[float, float] = (0.3, 1.0),
) -> Task:
    """CIFARTile-like: a 2×2 grid of 8×8 digit images (3×16×16), each tile tinted with its own random colour;
    the label is the number of distinct digit classes − 1, with CIFARTile's multiplicity patterns."""
    name = "cifartile-mini"
    started = time.perf_counter()
    check_sizes(name, n_train=n_train, n_valid=n_valid, n_test=n_test)
    check_range(name, "noise", noise, 0.0)
    if len(tint) != 2 or not 0.0 <= tint[0] <= tint[1]:
        raise ValueError(f"task {name!r}: tint must be a range (low, high) with 0 <= low <= high, got {tint}")
    rng = task_rng(name, seed)
    images, labels = digit_images()
    pools = class_pools(labels, 10, rng)
    splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split, n in (("train", n_train), ("valid", n_valid), ("test", n_test)):
        y = balanced_labels(n, 4, rng)
        tile_classes = np.empty((n, 4), dtype=np.int64)
        for i, label in enumerate(y):
            chosen = rng.choice(10, size=label + 1, replace=False)
            tile_classes[i] = rng.permutation(np.repeat(chosen, _TILE_PATTERNS[label]))
        tiles = images[draw_images(pools[split], tile_classes.ravel(), rng)].reshape(n, 4, 8, 8)
        colours = rng.uniform(tint[0], tint[1], size=(n, 4, 3)).astype(np.float32)
        coloured = tiles[:, :, None, :, :] * colours[:, :, :, None, None]  # n, tile, rgb, 8, 8
        x = np.empty((n, 3, 16, 16), dtype=np.float32)
        for t, (r, c) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
            x[:, :, 8 * r : 8 * r + 8, 8 * c : 8 * c + 8] = coloured[:, t]
        if noise:
            x += rng.normal(0.0, noise, size=x.shape).astype(np.float32)
        splits[split] = (x, y)
    meta = recipe_metadata(
        name,
        seed,
        "2x2 tiles of digits, each tinted a random colour; label = #distinct digits - 1 "
        "(patterns 4 / 2+2 / 2+1+1 / 1+1+1+1), balanced",
        "sklearn.datasets.load_digits (8x8 tiles)",
        noise=noise,
        tint=list(tint),
    )
    return build_task(name, splits, 4, meta, started)
