"""The task registry: built-in names, registering and unregistering a task, and folders."""

import pytest

from data import tasks
from data.task import Task
from tests.data.conftest import make_blobs_task


@pytest.fixture
def registered():
    """Register throw-away tasks for one test and remove them afterwards."""
    names: list[str] = []

    def register(name: str) -> None:
        tasks.register_task(name, lambda seed=0: make_blobs_task(seed=seed, name=name), "throw-away test task")
        names.append(name)

    yield register
    for name in names:
        tasks.unregister_task(name)


def test_builtin_tasks_are_listed():
    described = tasks.task_descriptions()
    assert {"addnist-mini", "language-mini", "nb201-cifar10"} <= set(described)
    assert all(isinstance(d, str) and d for d in described.values())


def test_register_and_unregister(registered):
    registered("registry-unit")
    task = tasks.get_task("registry-unit", seed=2)
    assert isinstance(task, Task) and task.fingerprint() == make_blobs_task(seed=2, name="registry-unit").fingerprint()
    assert "registry-unit" in tasks.task_descriptions()
    tasks.unregister_task("registry-unit")
    with pytest.raises(KeyError, match="unknown task 'registry-unit'"):
        tasks.get_task("registry-unit")
    tasks.unregister_task("registry-unit")  # unknown names are ignored


def test_the_task_value_is_re_exported():
    assert tasks.Task is Task and tasks.SPLITS == ("train", "valid", "test")
