"""``nas search --surrogate`` with every kind of surrogate: the command-line names are the registry's, and
``xgb_tuned``, ``lm`` and a saved transfer surrogate each drive a filtered search in which the surrogate is
fitted (or refitted) and used."""

from __future__ import annotations

import json
import logging
import math

import pytest

from data.archive import Archive
from data.tasks import register_task, unregister_task
from data.training import Evaluation
from nas.cli import build_parser, main
from nas.cli.common import SURROGATE_MODELS
from nas.cli.surrogate import TRANSFER_MODELS
from nas.sampler import Sampler
from nas.search import run_history
from nas.search.budgets import CPU_BUDGET
from surrogates.persistence import save_surrogate
from surrogates.registry import surrogate_names
from surrogates.transfer import TransferSurrogate
from tests.toys import toy_task

SHAPE = (3, 8, 8)
TASKS = ("cli-surrogates-toy-a", "cli-surrogates-toy-b", "cli-surrogates-toy-c")
#: A filtered search small enough for a test: plain RE for 4 steps, then batches of 2 chosen from 4 candidates.
FILTERED = ["--strategy", "filtered", "--budget", "8", "--population", "4", "--tournament", "2", "--start-after", "4",
            "--refit-every", "4", "--n-candidates", "4", "--k", "2"]


def _choices(command: str, dest: str) -> tuple[str, ...]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return tuple(next(a for a in sub.choices[command]._actions if a.dest == dest).choices)


def test_cli_surrogate_names_are_the_registry_names():
    assert set(SURROGATE_MODELS) == set(surrogate_names())
    assert set(_choices("surrogate", "model")) == set(surrogate_names())  # every one can be fitted on an archive
    # nas transfer trains tabular surrogates (no LM, no transfer surrogate of transfer surrogates)
    assert set(TRANSFER_MODELS) <= set(surrogate_names()) and not {"lm", "transfer"} & set(TRANSFER_MODELS)
    assert _choices("transfer", "model") == TRANSFER_MODELS


def test_old_lm_option_spellings_still_work(capsys):
    args = build_parser().parse_args(["surrogate", "fit", "--model", "lm", "--epochs", "2", "--num-layers", "1",
                                      "--encoding", "compact"])
    assert (args.lm_epochs, args.lm_layers, args.lm_encoding) == (2, 1, "compact")
    assert "--epochs is deprecated here, use --lm-epochs" in capsys.readouterr().err




@pytest.fixture(scope="module")
def toy_tasks():
    """Three small image tasks, registered in this process (the searches below run in it, one worker)."""
    for i, name in enumerate(TASKS):
        register_task(name, lambda seed=0, task=toy_task(name, i, SHAPE): task, "toy task of the CLI surrogate tests")
    yield TASKS
    for name in TASKS:
        unregister_task(name)


def search(capsys, caplog, run_dir, *argv) -> tuple[dict, int]:
    """``nas search`` in this process: its summary and how many times the surrogate was fitted."""
    caplog.set_level(logging.DEBUG, logger="nas.search.surrogate")
    code = main(["search", *argv, "--protocol", "smoke", "--run-dir", str(run_dir)])
    out, err = capsys.readouterr()
    assert code == 0, err
    fits = sum("surrogate fitted on" in r.getMessage() for r in caplog.records)
    return json.loads(out), fits


def filtered_asks(run_dir) -> list[dict]:
    """The ask info of the steps the surrogate chose."""
    with Archive(run_dir / "archive.sqlite") as archive:
        return [h.info for h in run_history(archive, "filtered-seed0") if h.info.get("kind") == "filtered"]


def run_config(run_dir) -> dict:
    with Archive(run_dir / "archive.sqlite") as archive:
        return archive.runs()[0]["config"]["strategy"]


def assert_filtered(summary: dict, run_dir) -> None:
    asks = filtered_asks(run_dir)
    assert summary["evaluations"] == 8 and summary["counts"]["filtered"] > 0
    assert len(asks) == 4 and all(math.isfinite(a["predicted"]) for a in asks)


def test_search_with_xgb_tuned(capsys, caplog, tmp_path):
    summary, fits = search(capsys, caplog, tmp_path, "--task", "nb201-cifar10", *FILTERED, "--surrogate", "xgb_tuned")
    assert fits == 1  # fitted at step 4 on the first 4 results; the refit point does not move before step 8
    assert_filtered(summary, tmp_path)
    assert run_config(tmp_path)["surrogate"]["params"]["model"] == "xgb_tuned"


def test_search_with_the_lm(capsys, caplog, tmp_path):
    pytest.importorskip("transformers")
    try:
        from surrogates.lm import default_model_path

        default_model_path()
    except ImportError as exc:
        pytest.skip(str(exc))
    summary, fits = search(capsys, caplog, tmp_path, "--task", "nb201-cifar10", *FILTERED, "--surrogate", "lm",
                           "--lm-epochs", "1", "--lm-layers", "1", "--lm-encoding", "tokens")
    assert fits == 1
    assert_filtered(summary, tmp_path)
    params = run_config(tmp_path)["surrogate"]["params"]
    # the options reach the model, and its grammar tokens are the task's (NB201), not einspace's
    assert (params["epochs"], params["num_layers"], params["encoding"], params["grammar"]) == (1, 1, "tokens", "nb201")


def fill_archive(archive: Archive, task: str, archs, scale: float) -> None:
    """Made-up evaluations: accuracy grows with the size of the network, on a task-specific scale."""
    for arch in archs:
        acc = scale * (0.2 + 0.01 * (arch.num_nodes % 40))
        archive.add_evaluation(Evaluation(arch.hash, task, "p", 0, "ok", {"val_acc": acc}), arch)


def test_saved_transfer_surrogate_refits_inside_nas_search(toy_tasks, capsys, caplog, tmp_path):
    sampler = Sampler("einspace", SHAPE, CPU_BUDGET)
    archs = [sampler.sample(i) for i in range(24)]
    with Archive(tmp_path / "sources.sqlite") as archive:
        fill_archive(archive, TASKS[0], archs[:12], 1.0)
        fill_archive(archive, TASKS[1], archs[12:], 0.5)
        blocks = [(*archive.dataset(name), name) for name in TASKS[:2]]
    model = TransferSurrogate(features="graf,zcp", model_params={"n_estimators": 10}).fit_sources(blocks)
    save_surrogate(model, tmp_path / "transfer")

    run_dir = tmp_path / "run"
    summary, fits = search(capsys, caplog, run_dir, "--task", TASKS[2], "--strategy", "filtered", "--surrogate",
                           str(tmp_path / "transfer"), "--budget", "6", "--population", "4", "--tournament", "2",
                           "--refit-every", "2", "--n-candidates", "4", "--k", "2")
    assert summary["evaluations"] == 6 and summary["counts"]["filtered"] > 0
    assert fits >= 1  # pre-fitted on the sources: every fit here is a refit on the current task's results
    asks = filtered_asks(run_dir)
    assert asks and all(math.isfinite(a["predicted"]) for a in asks)
    assert any(a["batch"] >= 2 for a in asks)  # a batch chosen by the refitted model
