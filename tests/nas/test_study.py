"""``from nas import Study``: searches on in-memory data with the experiment file's options, through the same
runs as ``nas search``."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data.task import Task
from nas import Study
from nas.cli.run import ExperimentError, load_experiment
from nas.study import RunResult, as_split

TOY = Path(__file__).resolve().parents[2] / "examples" / "toy.toml"


def arrays(n=120, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 1, 6, 6)).astype(np.float32)
    y = (x[:, 0, :3].sum(axis=(1, 2)) > 0).astype(np.int64)
    return x, y


CALLS = []


def parameter_score(model, task, protocol):
    """A cheap stand-in for training: a deterministic score of the network's size."""
    import torch

    CALLS.append((type(model), isinstance(model, torch.nn.Module), task.name, len(task.train), len(task.valid),
                  protocol.name))
    return (sum(p.numel() for p in model.parameters()) % 101) / 101


def test_a_study_searches_numpy_arrays_with_a_training_function(tmp_path):
    x, y = arrays()
    CALLS.clear()
    study = Study(train=(x[:80], y[:80]), valid=(x[80:], y[80:]), name="toy", train_fn=parameter_score,
                  strategies={"re": {"strategy": "re"}, "random": {"strategy": "random"}},
                  out=str(tmp_path / "out"), budget=5, seeds=[0, 1], population=3, tournament=2, protocol="smoke")
    results = study.run()
    assert [(r.label, r.seed) for r in results] == [("re", 0), ("re", 1), ("random", 0), ("random", 1)]
    assert all(isinstance(r, RunResult) and r.summary["evaluations"] == 5 for r in results)
    assert all(0 <= r.best_val_acc <= 1 and r.best_arch for r in results)
    assert {c[1:] for c in CALLS} == {(True, "toy", 80, 40, "smoke")}  # a torch module, the task, the protocol
    assert len(CALLS) == len({(r.label, r.seed) for r in results}) * 5 - sum(
        r.summary["counts"]["duplicates"] for r in results)
    for r in results:  # ordinary run folders, found by nas status / compare / report
        ref = json.loads((Path(r.run_dir) / "run.json").read_text())
        assert Path(r.run_dir) == tmp_path / "out" / "toy" / r.label / f"seed-{r.seed}"
        assert ref["label"] == r.label and ref["run"] == f"{r.label}-seed{r.seed}"
    assert (tmp_path / "out" / "data" / "toy" / "metadata").exists()
    # running again resumes: nothing is evaluated again, the same results come back
    CALLS.clear()
    again = Study(train=(x[:80], y[:80]), valid=(x[80:], y[80:]), name="toy", train_fn=parameter_score,
                  strategies={"re": {"strategy": "re"}, "random": {"strategy": "random"}},
                  out=str(tmp_path / "out"), budget=5, seeds=[0, 1], population=3, tournament=2,
                  protocol="smoke").run()
    assert CALLS == [] and [(r.best_arch, r.best_val_acc) for r in again] == [(r.best_arch, r.best_val_acc)
                                                                               for r in results]


def test_other_data_under_the_same_name_is_refused(tmp_path):
    x, y = arrays()
    Study(train=(x[:80], y[:80]), valid=(x[80:], y[80:]), name="toy", out=str(tmp_path))
    with pytest.raises(ValueError, match="holds other data named 'toy'"):
        Study(train=(x[:70], y[:70]), valid=(x[70:], y[70:]), name="toy", out=str(tmp_path))


def test_torch_datasets_are_read_as_arrays():
    torch = pytest.importorskip("torch")
    x, y = arrays(20)
    split = as_split(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), "train")
    assert np.array_equal(split.x, x) and np.array_equal(split.y, y) and split.y.dtype == np.int64
    with pytest.raises(ValueError, match="labels must be a 1-D array of integers"):
        as_split((x, y.astype(float)), "valid")


def test_study_options_are_checked_as_in_a_file(tmp_path):
    with pytest.raises(ExperimentError, match=r"^Study: study\.budgt: unknown key; did you mean 'budget'\?$"):
        Study("nb201-cifar10", out=str(tmp_path), budgt=3)
    with pytest.raises(ExperimentError, match=r"^Study: strategies\.f\.k: must be a positive integer, got 0$"):
        Study("nb201-cifar10", out=str(tmp_path), strategies={"f": {"strategy": "filtered", "k": 0}})
    with pytest.raises(ValueError, match="give the data as task="):
        Study("nb201-cifar10", train=arrays())


def test_from_toml_is_the_file_and_a_task_runs_like_nas_run(tmp_path):
    study = Study.from_toml(str(TOY))
    assert [vars(r) for r in study.runs] == [vars(r) for r in load_experiment(str(TOY))]
    results = Study("nb201-cifar10", out=str(tmp_path), budget=8, population=4, tournament=2).run()
    assert len(results) == 1 and results[0].summary["evaluations"] == 8 and results[0].best_val_acc > 0.5


def test_a_task_object_is_searched_through_its_folder(tmp_path):
    x, y = arrays(60)
    task = Task("mine", (1, 6, 6), 2, *(as_split((x[i:i + 20], y[i:i + 20]), s) for i, s in
                                       ((0, "train"), (20, "valid"), (40, "test"))))
    study = Study(task, out=str(tmp_path), train_fn=parameter_score, budget=2, population=2, tournament=1)
    assert study.runs[0].task == str(tmp_path / "data" / "mine") and study.run()[0].summary["evaluations"] == 2


def test_nas_exports_study_lazily():
    code = ("import sys, nas, nas.grammar; assert 'torch' not in sys.modules and 'nas.study' not in sys.modules; "
            "from nas import Study; assert Study.__module__ == 'nas.study'; "
            "import nas.cli.app; nas.cli.app.build_parser()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    probe = subprocess.run([sys.executable, "-c", "import sys, nas.cli.app; nas.cli.app.build_parser(); "
                            "print('torch' in sys.modules)"], capture_output=True, text=True, timeout=120)
    assert probe.stdout.strip() == "False", probe.stderr  # nas --help stays light


@pytest.mark.e2e
def test_a_study_trains_on_numpy_arrays_with_the_smoke_protocol(tmp_path):
    x, y = arrays(200)
    results = Study(train=(x[:150], y[:150]), valid=(x[150:], y[150:]), name="toy", out=str(tmp_path), budget=2,
                    population=2, tournament=1, protocol="smoke").run()
    assert results[0].summary["evaluations"] == 2 and results[0].summary["counts"]["trained"] == 2
    assert 0.0 <= results[0].best_val_acc <= 1.0
