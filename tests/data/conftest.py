import numpy as np
import pytest

from data.tasks import Split, Task


def make_blobs_task(shape=(3, 8, 8), classes=4, n=(256, 128, 128), seed=0, name="blobs") -> Task:
    """A tiny learnable task: each class has its own per-channel offset plus Gaussian noise, so even a
    mean-pooling head can tell the classes apart."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2, size=(classes, shape[0]) + (1,) * (len(shape) - 1)).astype(np.float32)

    def split(m):
        y = rng.integers(0, classes, size=m)
        x = centres[y] + rng.normal(0, 1.0, size=(m, *shape)).astype(np.float32)
        return Split(x.astype(np.float32), y.astype(np.int64))

    return Task(name, tuple(shape), classes, split(n[0]), split(n[1]), split(n[2]), {"source": "test"})


@pytest.fixture(scope="session")
def blobs_task() -> Task:
    return make_blobs_task()
