"""Surrogates from the registry and from a saved folder, used by a surrogate-filtered search on a toy task."""

from __future__ import annotations

import numpy as np
import pytest

from data.archive import Archive
from data.tasks import register_task, unregister_task
from data.training import Evaluation
from nas.sampler import Sampler
from nas.search import SurrogateFilteredEvolution, run_search
from nas.search.budgets import CPU_BUDGET
from nas.search.factory import SURROGATES, make_strategy, make_surrogate
from surrogates.base import TaskRef
from surrogates.persistence import save_surrogate
from surrogates.registry import KINDS
from surrogates.transfer import TransferSurrogate
from tests.toys import toy_task

SHAPE = (3, 8, 8)
TASKS = ("surrogates-toy-a", "surrogates-toy-b", "surrogates-toy-c")




@pytest.fixture(scope="module")
def tasks():
    made = {name: toy_task(name, i, SHAPE) for i, name in enumerate(TASKS)}
    for name, task in made.items():
        register_task(name, lambda seed=0, task=task: task, "toy task of the surrogate search tests")
    yield made
    for name in TASKS:
        unregister_task(name)


@pytest.fixture(scope="module")
def sampler():
    return Sampler("einspace", SHAPE, CPU_BUDGET)


def fill_archive(archive: Archive, task: str, archs, scale: float) -> None:
    """Made-up evaluations: accuracy grows with the size of the network, on a task-specific scale."""
    for arch in archs:
        acc = scale * (0.2 + 0.01 * (arch.num_nodes % 40))
        archive.add_evaluation(Evaluation(arch.hash, task, "p", 0, "ok", {"val_acc": acc}), arch)


def filtered(sampler, surrogate, prefit: bool):
    return SurrogateFilteredEvolution(sampler, 0, surrogate, prefit=prefit, population_size=4, tournament_size=2,
                                      start_after=2, n_candidates=4, k=2, refit_every=2)


def search(strategy, task: str, tmp_path, budget: int = 6) -> dict:
    with Archive(tmp_path / "search.sqlite") as archive:
        return run_search(strategy, task, archive, "filtered", budget_evals=budget, protocol="smoke", progress=False)


@pytest.mark.e2e
def test_saved_transfer_surrogate_refits_inside_a_filtered_search(tasks, sampler, tmp_path):
    archs = [sampler.sample(i) for i in range(24)]
    with Archive(tmp_path / "sources.sqlite") as archive:
        fill_archive(archive, TASKS[0], archs[:12], 1.0)
        fill_archive(archive, TASKS[1], archs[12:], 0.5)
        blocks = [(*archive.dataset(name), name) for name in TASKS[:2]]
    model = TransferSurrogate(features="graf,zcp", model_params={"n_estimators": 10}).fit_sources(blocks)
    save_surrogate(model, tmp_path / "transfer")

    surrogate, prefit = make_surrogate(str(tmp_path / "transfer"), TASKS[2])
    assert prefit and isinstance(surrogate, TransferSurrogate) and surrogate.task == TaskRef(TASKS[2])
    assert len(surrogate.source_y_) == 24  # the source rows came back with it, to refit on
    strategy = filtered(sampler, surrogate, prefit=True)
    summary = search(strategy, TASKS[2], tmp_path)
    assert summary["evaluations"] == 6
    assert strategy.num_fits >= 1 and any(b.fit_point > 0 for b in strategy.batches)  # refitted, no crash
    assert surrogate.blocks_[-1]["name"] == f"{TASKS[2]} (current)" and len(surrogate.blocks_) == 3


def test_registry_names_are_the_search_names():
    assert set(SURROGATES) == {"rf", "xgb", "xgb_tuned", "ensemble", "lm", "transfer"}
    assert set(KINDS) == {"tabular", "ensemble", "transfer", "lm"}
    with pytest.raises(ValueError, match="unknown surrogate 'svm'"):
        make_surrogate("svm", TASKS[2])


@pytest.mark.parametrize("name", ["xgb_tuned", "transfer"])
def test_tabular_registry_surrogates_drive_a_filtered_search(name, tasks, sampler, tmp_path):
    surrogate, prefit = make_surrogate(name, TASKS[2], features="graf", model_params={"n_estimators": 20})
    assert not prefit
    strategy = make_strategy("filtered", tasks[TASKS[2]], 0, CPU_BUDGET, surrogate=surrogate, population_size=4,
                             tournament_size=2, start_after=2, n_candidates=4, k=2, refit_every=2)
    summary = search(strategy, TASKS[2], tmp_path)
    assert summary["evaluations"] == 6 and strategy.num_fits >= 1
    assert np.isfinite(surrogate.predict([sampler.sample(99)])).all()


def test_lm_from_the_registry_drives_a_filtered_search(tasks, sampler, tmp_path):
    pytest.importorskip("transformers")
    try:
        from surrogates.lm import default_model_path

        default_model_path()
    except ImportError as exc:
        pytest.skip(str(exc))
    surrogate, prefit = make_surrogate("lm", TASKS[2], epochs=1, num_layers=1, max_length=64, batch_size=8,
                                       encoding="compact", progress=False)
    assert not prefit
    strategy = filtered(sampler, surrogate, prefit=False)
    summary = search(strategy, TASKS[2], tmp_path, budget=5)
    assert summary["evaluations"] == 5 and strategy.num_fits >= 1
