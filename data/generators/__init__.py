"""Offline generators of small Unseen-NAS-like tasks, one module per task family.

``digits`` (AddNIST, MultNIST, CIFARTile), ``text`` (Language, Gutenberg), ``chesseract`` (Connect-Four) and
``fashion`` (Fashion-MNIST subsets, when its idx files are on disk); ``common`` holds the shared helpers.
Every generator is deterministic in its ``seed`` (same seed, same bytes), needs no network, runs in about a
second, and keeps the inductive bias of the published dataset it imitates while staying small enough that a
random architecture trains on it in seconds on a CPU.  Digit images come from scikit-learn's bundled
``load_digits`` (1,797 images of 8×8 pixels); the base images of each class are split into disjoint pools for
train, valid and test, so no test image is ever seen in training.  ``register_all`` puts every task in the
registry of ``data.tasks``.
"""

from __future__ import annotations

from typing import Callable

from data.generators.chesseract import make_chesseract_mini
from data.generators.common import GENERATOR_VERSION, N_TEST, N_TRAIN, N_VALID
from data.generators.digits import make_addnist_mini, make_cifartile_mini, make_multnist_mini
from data.generators.fashion import (
    FASHION_MNIST_DIRS, FASHION_MNIST_ENV, fashion_mnist_dir, make_addnist_fashion, make_fashion_mnist, read_idx,
)
from data.generators.text import make_gutenberg_mini, make_language_mini
from data.task import Task

__all__ = [
    "FASHION_MNIST_DIRS", "FASHION_MNIST_ENV", "GENERATORS", "GENERATOR_VERSION", "N_TEST", "N_TRAIN", "N_VALID",
    "fashion_mnist_dir", "make_addnist_fashion", "make_addnist_mini", "make_chesseract_mini", "make_cifartile_mini",
    "make_fashion_mnist", "make_gutenberg_mini", "make_language_mini", "make_multnist_mini", "read_idx", "register_all",
]

GENERATORS: dict[str, tuple[Callable[..., Task], str]] = {
    "addnist-mini": (make_addnist_mini, "AddNIST-like: 3 digits as channels, label = binned sum (3x16x16, 9 classes)"),
    "multnist-mini": (make_multnist_mini, "MultNIST-like: 3 digits as channels, label = product mod 10 (3x16x16)"),
    "cifartile-mini": (make_cifartile_mini, "CIFARTile-like: 2x2 tinted digit tiles, label = #distinct - 1 (3x16x16)"),
    "language-mini": (make_language_mini, "Language-like: 10 Markov languages, 4 words one-hot (1x24x24)"),
    "gutenberg-mini": (make_gutenberg_mini, "Gutenberg-like: 6 synthetic authors, 3-word phrases one-hot (1x27x18)"),
    "chesseract-mini": (make_chesseract_mini, "Chesseract-like: mid-game Connect-Four, label = outcome (3x6x7)"),
}


def register_all(register: Callable[[str, Callable[..., Task], str], None]) -> None:
    """Register every generated task, plus ``fashion-mnist`` where its idx files are on disk."""
    for name, (factory, description) in GENERATORS.items():
        register(name, factory, description)
    if fashion_mnist_dir() is not None:
        register("fashion-mnist", make_fashion_mnist, "Fashion-MNIST subset from local idx files (1x14x14)")
        register(
            "addnist-fashion", make_addnist_fashion, "AddNIST from Fashion-MNIST images, binned class sum (3x14x14)"
        )
