"""Transfer studies on two independent runs of each task (``surrogates.task_runs``, ``nas transfer --runs``,
``--test-archive``): toy archives of NB201 cells whose accuracies are planted, no training."""

import csv
import itertools

import numpy as np
import pytest

from data.archive import Archive
from data.training import Evaluation
from nas.architecture import Architecture
from nas.cli import main
from nas.cli.surrogate import TRANSFER_RUNS
from surrogates import task_runs
from surrogates.tabular import TabularSurrogate
from surrogates.transfer import leave_one_out, one_to_one
from surrogates.workflows import task_datasets

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
SHAPE = (3, 32, 32)
PROTOCOL = "toy-protocol"
ALL_CELLS = list(itertools.product(OPS, repeat=6))


def cells(seed, n):
    """``n`` distinct NB201 cells; different seeds give (almost surely) disjoint sets."""
    picks = np.random.default_rng(seed).choice(len(ALL_CELLS), size=n, replace=False)
    return [Architecture.from_string(f"cell({', '.join(ALL_CELLS[i])})", SHAPE, "nb201") for i in picks]


def quality(arch):
    """A planted accuracy a forest on GRAF features learns: convolutions help, ``none`` edges hurt."""
    s = arch.to_string()
    return 0.3 + 0.05 * s.count("nor_conv_3x3") + 0.03 * s.count("nor_conv_1x1") - 0.02 * s.count("none") \
        + 1e-4 * (int(arch.hash[:4], 16) % 97)  # a deterministic jitter against ties


def add_build(archive, task, seed, n, sign=1.0, failures=0, sampler="random", train_seed=0, protocol=PROTOCOL):
    """A build run as ``nas.search.build.build_archive`` records it; returns its planted targets in order."""
    name = f"build:{task}:{protocol}:{sampler}:seed{seed}"
    archive.start_run(name, "build", {"task": task, "seed": seed, "sampler": sampler, "train_seed": train_seed})
    targets = []
    for i, arch in enumerate(cells(1000 * seed + len(task) + ord(task[-1]), n)):
        acc = 0.5 + sign * (quality(arch) - 0.5)
        ok = i >= failures
        ev = Evaluation(arch.hash, task, protocol, train_seed, "ok" if ok else "failed",
                        {"val_acc": acc} if ok else {}, "" if ok else "non-finite loss")
        archive.add_evaluation(ev, arch, run=name)
        targets.append(acc if ok else 0.0)
    return np.array(targets)


def factory():
    return TabularSurrogate("rf", model_params={"n_estimators": 40}, random_state=0, features=None)


def tau(rows, source, target):
    return next(r["kendall_tau"] for r in rows if r["source"] == source and r["target"] == target)


@pytest.fixture
def two_builds(tmp_path):
    """Tasks a and b with builds seed 0 (20 networks, 2 failed) and seed 1 (30 networks, 3 failed); b's seed-0
    accuracies are planted reversed, so a diagonal that tests on b's seed-0 build scores τ < 0."""
    path = tmp_path / "two.sqlite"
    planted = {}
    with Archive(path) as archive:
        for task in ("toy-a", "toy-b"):
            planted[task, 0] = add_build(archive, task, 0, 20, sign=-1.0 if task == "toy-b" else 1.0, failures=2)
            planted[task, 1] = add_build(archive, task, 1, 30, failures=3)
    return path, planted


def test_two_builds_train_on_the_higher_seed_and_test_on_the_lower(two_builds):
    path, planted = two_builds
    with Archive(path, readonly=True) as archive:
        assert [b.seed for b in task_runs.build_runs(archive, "toy-a")] == [0, 1]
        data, described = task_runs.transfer_datasets(archive, features="graf")
    by_name = {d.name: d for d in data}
    for task in ("toy-a", "toy-b"):
        np.testing.assert_array_equal(by_name[task].y, planted[task, 1])  # seed 1 trains
        np.testing.assert_array_equal(by_name[task].y_test, planted[task, 0])  # seed 0 tests
        assert by_name[task].X.shape[0] == 30 and by_name[task].X_test.shape[0] == 20
    assert {(r.task, r.kind, r.n_train, r.n_test) for r in described} == {("toy-a", "independent", 30, 20),
                                                                          ("toy-b", "independent", 30, 20)}
    rows = one_to_one(data, factory)
    diagonal = {r["target"]: r for r in rows if r["source"] == r["target"]}
    assert diagonal["toy-a"]["n_train"] == 27 and diagonal["toy-a"]["n_test"] == 20  # failures dropped / kept
    # b's test run is planted reversed: only a diagonal that really tests on b's seed-0 build goes negative
    # (about ±0.5 over forest seeds; halves of the pooled runs give b's diagonal +0.19)
    assert tau(rows, "toy-a", "toy-a") > 0.3 and tau(rows, "toy-b", "toy-b") < -0.3
    assert tau(rows, "toy-b", "toy-a") > 0.25  # b's training build carries the same signal as a's


def test_the_study_writes_which_runs_it_used_under_the_table(two_builds, tmp_path):
    path, _ = two_builds
    out = tmp_path / "o2o"
    with Archive(path, readonly=True) as archive:
        text = task_runs.run_transfer_study(archive, "one-to-one", "rf", "graf", out=str(out))
    md = (out / "tau.md").read_text()
    note = md.strip().splitlines()[-1]
    assert note == ("Runs (networks training/test): independent runs, trained on build seed 1 (training seed 0) and "
                    "tested on build seed 0 (training seed 0), for toy-a (30/20), toy-b (30/20); the diagonal is "
                    "within-task across the two runs.")
    assert md.splitlines()[0].startswith("| source \\ target |") and text.endswith(note + "\n")
    assert {p.name for p in out.iterdir()} == {"tau.md", "tau.csv", "tau.png"}


def test_one_build_falls_back_to_halves_as_before(tmp_path):
    path = tmp_path / "one.sqlite"
    with Archive(path) as archive:
        add_build(archive, "toy-a", 0, 24)
        add_build(archive, "toy-a", 1, 16, sampler="mutants")  # not independent of the archive: not a run
        add_build(archive, "toy-b", 0, 24)
        add_build(archive, "toy-b", 3, 22)
    with Archive(path, readonly=True) as archive:
        data, described = task_runs.transfer_datasets(archive, features="graf", seed=5)
        before = task_datasets(archive, ["toy-a"], "graf")
        note = task_runs.runs_note(described, "leave-one-out")
    a = next(d for d in data if d.name == "toy-a")
    assert a.X_test is None and np.array_equal(a.X, before[0].X) and np.array_equal(a.y, before[0].y)
    assert [(r.task, r.kind) for r in described] == [("toy-a", "halves"), ("toy-b", "independent")]
    assert note.startswith("Runs (networks training/test): two seeded halves of one run (seed 5) for toy-a (20/20); "
                           "independent runs, trained on build seed 3 (training seed 0) and tested on build seed 0 "
                           "(training seed 0), for toy-b (22/24); each held-out task is tested on both its runs")


def test_leave_one_out_tests_on_both_runs_and_trains_on_every_run_of_the_others(two_builds):
    path, _ = two_builds
    with Archive(path, readonly=True) as archive:
        data, _ = task_runs.transfer_datasets(archive, features="graf")
    rows = {r["target"]: r for r in leave_one_out(data, factory)}
    assert rows["toy-a"]["n_test"] == 50 and rows["toy-a"]["n_train"] == 45  # 27 + 18 of toy-b, failures dropped


def test_halves_forced_and_independent_required(two_builds, tmp_path):
    path, _ = two_builds
    with Archive(path, readonly=True) as archive:
        data, described = task_runs.transfer_datasets(archive, features="graf", runs="halves")
        assert all(d.X_test is None and len(d.y) == 50 for d in data) and {r.kind for r in described} == {"halves"}
        with pytest.raises(ValueError, match="takes no test archive"):
            task_runs.transfer_datasets(archive, features="graf", runs="halves", test_archive=archive)
    single = tmp_path / "single.sqlite"
    with Archive(single) as archive:
        add_build(archive, "toy-a", 0, 12)
        add_build(archive, "toy-b", 0, 12)
        add_build(archive, "toy-b", 1, 12)
    with Archive(single, readonly=True) as archive, pytest.raises(ValueError, match="'toy-a' has no second"):
        task_runs.transfer_datasets(archive, features="graf", runs="independent")


def test_cli_test_archive_trains_on_archive_and_tests_on_the_other(capsys, tmp_path):
    train, test = tmp_path / "seed1.sqlite", tmp_path / "seed0.sqlite"
    with Archive(train) as archive:
        for task in ("toy-a", "toy-b", "toy-c"):
            add_build(archive, task, 1, 26, failures=1)
    with Archive(test) as archive:
        for task in ("toy-a", "toy-b"):  # toy-c has no second run: halves for it
            add_build(archive, task, 0, 18, failures=2)
    out = tmp_path / "cli"
    code = main(["transfer", "--archive", str(train), "--test-archive", str(test), "--features", "graf",
                 "-o", str(out)])
    stdout = capsys.readouterr().out
    note = (out / "tau.md").read_text().strip().splitlines()[-1]
    assert code == 0 and note in stdout
    assert f"independent runs, trained on {train} and tested on {test}, for toy-a (26/18), toy-b (26/18)" in note
    assert "two seeded halves of one run (seed 0) for toy-c (13/13)" in note
    loo = tmp_path / "loo"
    assert main(["transfer", "--archive", str(train), "--test-archive", str(test), "--features", "graf",
                 "--scheme", "leave-one-out", "-o", str(loo)]) == 0
    with open(loo / "tau.csv", newline="") as fh:
        rows = {r["target"]: r for r in csv.DictReader(fh)}
    assert rows["toy-a"]["n_test"] == "44" and rows["toy-a"]["n_train"] == str(25 + 16 + 25)  # b's runs, c's halves
    capsys.readouterr()
    code = main(["transfer", "--archive", str(train), "--test-archive", str(test), "--features", "graf",
                 "--runs", "independent", "-o", str(tmp_path / "bad")])
    assert code == 2 and "'toy-c' has no second independent run in" in capsys.readouterr().err


def test_cli_run_choices_are_the_library_s():
    assert TRANSFER_RUNS == task_runs.RUN_CHOICES  # spelled out so that building the parser imports no surrogate
