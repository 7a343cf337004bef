"""The task registry: built-in names, registering and unregistering a task, and folders."""

import numpy as np
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


# -- task identity: name + fingerprint -------------------------------------------------------------------


def test_generated_tasks_are_fingerprinted_by_their_recipe():
    """Archives built here ship to other machines, so a generated task's fingerprint is a hash of its recipe
    (generator, version, every parameter), never of float data another CPU could round differently: the value
    is pinned."""
    from data.generators import make_chesseract_mini
    from data.task import recipe_fingerprint

    task = tasks.get_task("chesseract-mini")
    assert task.recipe == ('{"generator":"data.generators:chesseract-mini","parameters":{"blunder":0.1,"min_ply":6,'
                           '"n_test":1000,"n_train":4000,"n_valid":1000,"plies_before_end":[1,10],"seed":0},'
                           '"version":1}')
    assert task.fingerprint() == recipe_fingerprint(task.recipe) == (
        "a7c6327a13f3082566b7e38098bcd728632c3e6fb7ce9ee41c09ada412f0ddc1")
    assert make_chesseract_mini(seed=0, n_train=4000).fingerprint() == task.fingerprint()  # defaults are explicit
    assert make_chesseract_mini(seed=0, n_train=100).fingerprint() != task.fingerprint()
    assert tasks.task_fingerprint("chesseract-mini") == task.fingerprint()


def test_nb201_is_fingerprinted_by_its_table_bytes():
    task = tasks.get_task("nb201-cifar10")
    assert task.name == "nb201-cifar10" and len(task.fingerprint()) == 64
    assert tasks.task_fingerprint("nb201-cifar10") == task.fingerprint()


def zero_folder(folder, name: str, shape=(3, 6, 7), classes=3, n=30):
    """An Unseen-NAS folder of all-zero inputs whose metadata names the task ``name``."""
    from data.task import Split
    from data.unseen import export_unseen

    split = Split(np.zeros((n, *shape), np.float32), np.arange(n, dtype=np.int64) % classes)
    return export_unseen(Task(name, shape, classes, split, split, split), folder)


def test_a_folder_named_like_a_builtin_task_is_another_task(tmp_path):
    folder = zero_folder(tmp_path / "zeros", "chesseract-mini")
    task = tasks.get_task(str(folder))
    assert task.fingerprint() != tasks.get_task("chesseract-mini").fingerprint()
    assert task.name == "chesseract-mini@" + task.fingerprint()[:8]
    assert tasks.task_fingerprint(task.name) == task.fingerprint()
    assert tasks.get_task(str(folder)).name == task.name  # the same folder, the same name


def test_an_exported_builtin_task_does_not_collide_with_it(tmp_path):
    from data.unseen import export_unseen

    builtin = tasks.get_task("gutenberg-mini")
    folder = export_unseen(builtin, tmp_path / "gutenberg")
    exported = tasks.get_task(str(folder))
    assert exported.name.startswith("gutenberg-mini@") and exported.fingerprint() != builtin.fingerprint()
    assert tasks.get_task("gutenberg-mini").name == "gutenberg-mini"


def test_another_generator_seed_is_another_task():
    other = tasks.get_task("language-mini", seed=1)
    assert other.name == "language-mini@" + other.fingerprint()[:8]
    assert tasks.get_task("language-mini").name == "language-mini"


def test_a_second_folder_of_one_name_in_a_process_is_renamed(tmp_path):
    first = tasks.get_task(str(zero_folder(tmp_path / "a", "same-name-task")))
    second = tasks.get_task(str(zero_folder(tmp_path / "b", "same-name-task", n=33)))
    assert first.name == "same-name-task" and second.name == "same-name-task@" + second.fingerprint()[:8]


def test_names_with_the_fingerprint_mark_cannot_be_registered():
    with pytest.raises(ValueError, match="reserved"):
        tasks.register_task("x@1234", lambda seed=0: None)
