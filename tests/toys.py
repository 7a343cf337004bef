"""Small in-memory tasks shared by the tests that search or fit surrogates on toy data."""

from __future__ import annotations

import numpy as np

from data.tasks import Split, Task


def toy_task(name: str, seed: int, shape: tuple[int, ...] = (3, 8, 8)) -> Task:
    """A 3-class task whose inputs are Gaussian noise shifted by the label: learnable in a few steps."""
    rng = np.random.default_rng(seed)

    def split(n: int) -> Split:
        y = rng.integers(0, 3, size=n)
        x = (rng.normal(size=(n, *shape)) + y[:, None, None, None]).astype(np.float32)
        return Split(x, y.astype(np.int64))

    return Task(name, shape, 3, split(64), split(32), split(32), {"source": "test"})
