import os

# Tests never touch the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Tiny test networks run faster on one thread than on an oversubscribed pool (set before torch is imported).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from data.tasks import task_descriptions, unregister_task  # noqa: E402

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("default")


def _forget_new_tasks(before: set[str]) -> None:
    for name in set(task_descriptions()) - before:
        unregister_task(name)


@pytest.fixture(autouse=True, scope="module")
def _forget_tasks_registered_by_the_module():
    """Tasks a test module registers (e.g. in a module-scoped fixture) are removed after the module."""
    before = set(task_descriptions())
    yield
    _forget_new_tasks(before)


@pytest.fixture(autouse=True)
def _forget_tasks_registered_by_the_test():
    """Tasks a test registers are removed after it."""
    before = set(task_descriptions())
    yield
    _forget_new_tasks(before)
