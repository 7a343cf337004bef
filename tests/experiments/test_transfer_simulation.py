"""``experiments.transfer_simulation``: the published simulated-search grid on planted-signal data and on a
tiny made-up archive."""

import csv
import hashlib
import json

import numpy as np
import pytest

from experiments import transfer_simulation as sim
from surrogates.metrics import kendall_tau
from surrogates.registry import make_surrogate
from surrogates.transfer import TaskData

N, LIMITS, WINDOW = 120, [40, 80], 40


def planted(name: str, seed: int) -> TaskData:
    """``N`` rows whose accuracy rises with feature 0 (plus noise), every tenth row a failed training (0)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, 4))
    y = 0.5 + 0.1 * X[:, 0] + 0.01 * rng.normal(size=N)
    y[::10] = 0.0
    return TaskData(name, X, y)


DATA = [planted(f"task{i}", i) for i in range(3)]


class Recorder:
    """A small forest that records what it was fitted on and asked to predict."""

    log: list = []

    def __init__(self, setting):
        self.setting = setting
        self.model = make_surrogate("rf", None, None, 0, model_params={"n_estimators": 10})

    def fit(self, X, y):
        Recorder.log.append(("fit", self.setting, np.array(X), np.array(y)))
        self.model.fit(X, y)
        return self

    def predict(self, X):
        pred = self.model.predict(X)
        Recorder.log.append(("predict", self.setting, np.array(X), np.array(pred)))
        return pred


@pytest.fixture
def recorder():
    Recorder.log = []
    return Recorder


def by_key(rows):
    return {(r["task"], r["limit"]): r for r in rows}


def test_the_grid_has_a_row_per_setting_task_and_limit(recorder):
    grid = sim.settings(["rf"], ["none", "other"], [True, False], ["kept", "dropped"], ["none", "percentile"])
    # transfer none has no F rows (nothing to train on): 2 x 2 with none, 2 x 2 x 2 with other
    assert len(grid) == 12 and not any(s.transfer == "none" and not s.train_current for s in grid)
    rows = sim.run_grid(DATA, grid, LIMITS, WINDOW, recorder)
    assert len(rows) == 12 * 3 * 2
    assert len({(*sim._key(r), r["limit"]) for r in rows}) == len(rows)
    # an F setting is fitted once per task, a T setting once per task and limit
    fits = [e for e in recorder.log if e[0] == "fit"]
    assert len(fits) == 3 * (4 * 2 + 4 * 2 + 4 * 1)
    with pytest.raises(ValueError, match="aggregation"):
        sim.settings(["rf"], ["none"], [True], ["kept"], ["zscore"])
    with pytest.raises(ValueError, match="empty"):
        sim.settings(["rf"], ["none"], [False], ["kept"], ["none"])


def test_test_windows_are_the_rows_from_the_limit_on(recorder):
    assert np.array_equal(sim.window_rows(120, 80, 40), np.arange(80, 120))
    assert np.array_equal(sim.window_rows(100, 80, 40), np.arange(80, 100))  # cut at the run's end
    assert sim.window_rows(99, 80, 40).size == 0  # fewer than half a window: the limit is skipped
    setting = sim.Setting("rf", "none", True, "dropped", "none")
    rows = sim.simulate(DATA[0], DATA[1:], setting, [40, 80, 101], WINDOW, recorder)
    assert [(r["limit"], r["n_test"], r["n_test_failed"]) for r in rows] == [(40, 40, 4), (80, 40, 4)]
    predicted = [e[2] for e in recorder.log if e[0] == "predict"]
    assert np.array_equal(predicted[0], DATA[0].X[40:80]) and np.array_equal(predicted[1], DATA[0].X[80:120])
    # current-only training uses exactly the rows before the limit, failures dropped
    fitted = [e[3] for e in recorder.log if e[0] == "fit"]
    assert [f.size for f in fitted] == [36, 72] and all((f > 0).all() for f in fitted)
    assert [r["n_train_current"] for r in rows] == [36, 72]


def test_train_current_false_uses_no_current_rows(recorder):
    """Changing the current run's training rows (those before every limit, never tested) changes every T result
    and no F result."""
    grid = sim.settings(["rf"], ["other"], [True, False], ["dropped"], ["minmax"])
    rows = sim.run_grid(DATA, grid, LIMITS, WINDOW, recorder)
    garbled = DATA[0].y.copy()
    garbled[:40] = np.random.default_rng(9).permutation(garbled[:40])[::-1] + 5.0
    changed = [TaskData("task0", DATA[0].X, garbled), *DATA[1:]]
    again = sim.run_grid(changed, grid, LIMITS, WINDOW, recorder)
    for setting in grid:
        old = by_key([r for r in rows if r["train_current"] == setting.train_current])
        new = by_key([r for r in again if r["train_current"] == setting.train_current])
        taus = [(old[("task0", L)]["kendall_tau"], new[("task0", L)]["kendall_tau"]) for L in LIMITS]
        if setting.train_current:
            assert taus[0][0] != taus[0][1]
        else:
            assert all(a == b for a, b in taus)
            assert all(old[("task0", L)]["n_train_current"] == 0 for L in LIMITS)
            assert old[("task0", 40)]["n_train"] == 2 * (N - N // 10)  # both other runs, their failures dropped


def test_the_current_runs_networks_are_left_out_of_the_transfer_data(recorder):
    """task1 evaluated the same networks as task0 (same features, other accuracies); task2 other networks."""
    twin = TaskData("task1", DATA[0].X.copy(), DATA[1].y)
    data = [DATA[0], twin, DATA[2]]
    hashes = {"task0": [f"a{i}" for i in range(N)], "task1": [f"a{i}" for i in range(N)],
              "task2": [f"b{i}" for i in range(N)]}
    setting = sim.Setting("rf", "other", False, "dropped", "none")
    dropped = sim.simulate(DATA[0], data[1:], setting, LIMITS, WINDOW, recorder, hashes)
    X_fit = next(e[2] for e in recorder.log if e[0] == "fit")
    assert dropped[0]["n_train"] == N - N // 10 and np.array_equal(X_fit, DATA[2].X[DATA[2].y > 0])
    kept = sim.simulate(DATA[0], data[1:], setting, LIMITS, WINDOW, recorder)
    assert kept[0]["n_train"] == 2 * (N - N // 10)


def test_dropping_zeros_changes_training_only(recorder):
    grid = sim.settings(["rf"], ["other"], [True], ["kept", "dropped"], ["none"])
    rows = sim.run_grid(DATA[:2], grid, [80], WINDOW, recorder)
    kept, dropped = (by_key([r for r in rows if r["zeros"] == z]) for z in ("kept", "dropped"))
    for key in kept:
        assert kept[key]["n_test"] == dropped[key]["n_test"] == 40
        assert kept[key]["n_test_failed"] == dropped[key]["n_test_failed"] == 4
        assert kept[key]["n_train"] - dropped[key]["n_train"] == N // 10 + 8  # other run's 12 + current's 8
    fits = {e[1].zeros: e[3] for e in recorder.log if e[0] == "fit"}
    assert (fits["kept"] == 0).sum() == 20 and (fits["dropped"] > 0).all()
    # the τ reported is the one on the raw test window, zeros included
    preds = [e for e in recorder.log if e[0] == "predict"]
    for (_, setting, X, pred), row in zip(preds, rows):
        assert np.array_equal(X, DATA[0 if row["task"] == "task0" else 1].X[80:120])
        y_test = (DATA[0] if row["task"] == "task0" else DATA[1]).y[80:120]
        assert row["kendall_tau"] == pytest.approx(kendall_tau(y_test, pred))


def test_a_planted_signal_is_found_and_tabled(recorder):
    grid = sim.settings(["rf"], ["none", "other"], [True, False], ["dropped"], ["percentile"])
    rows = sim.run_grid(DATA, grid, LIMITS, WINDOW, recorder)
    assert all(r["kendall_tau"] > 0.3 for r in rows)  # accuracy is a function of feature 0 on every task
    table = sim.table_by_task(rows, ["task0", "task1", "task2"], no_signal=["task2"])
    lines = table.strip().splitlines()
    assert len(lines) == 2 + 3 and "task2 †" in lines[0] and lines[0].count("|") == 3 + 8 + 1
    assert lines[2].split(" | ")[-1] == "0.457 |"  # rf, none, T, dropped, percentile: the published average
    by_limit = sim.table_by_limit(rows, ["task2"]).strip().splitlines()
    assert len(by_limit) == 5 and by_limit[0].endswith("| 40 | 80 |")
    assert sim.headline(rows, ["task0", "task1", "task2"], ["task2"])[0].startswith(
        "tau_rf_transfer-none_current-T_zeros-dropped_percentile: 0.")


def _toy_archive(path) -> str:
    """Made-up evaluations of three tasks, 24 einspace networks each (two tasks share 16 of them), accuracy
    rising with the node count; every sixth network a failed training."""
    from data.archive import Archive
    from data.training import Evaluation
    from nas.sampler import Sampler
    from nas.search.budgets import CPU_BUDGET

    archs = [Sampler("einspace", (3, 8, 8), CPU_BUDGET).sample(900 + i) for i in range(40)]
    with Archive(path) as archive:
        for t, task in enumerate(("sim-a", "sim-b", "sim-c")):
            for i, arch in enumerate(archs[t * 8:t * 8 + 24]):
                if i % 6 == 5:
                    ev = Evaluation(arch.hash, task, "p", 0, "failed", {}, "non-finite loss (nan) at epoch 1")
                else:
                    ev = Evaluation(arch.hash, task, "p", 0, "ok", {"val_acc": 0.2 + 0.01 * (arch.num_nodes % 40)})
                archive.add_evaluation(ev, arch)
    return str(path)


@pytest.mark.e2e  # whole commands, xgb_tuned's 10,000 rounds included
def test_command_writes_its_tables_resumes_and_only_reads_the_archive(tmp_path, capsys):
    archive = _toy_archive(tmp_path / "toy.sqlite")
    digest = hashlib.sha256(open(archive, "rb").read()).hexdigest()
    out = tmp_path / "res"
    argv = ["--archive", archive, "--limits", "8,16", "--window", "8", "--aggregations", "percentile",
            "--zeros", "dropped", "--no-signal", "sim-c", "--out", str(out)]
    assert sim.main(argv) == 0
    with open(out / sim.CSV_FILE, newline="") as fh:
        first = list(csv.DictReader(fh))
    assert len(first) == 3 * 3 * 2  # (none T, other T, other F) x 3 tasks x 2 limits
    assert sim.main(argv + ["--models", "xgb_tuned", "--transfer", "none"]) == 0
    assert sim.main(argv) == 0  # everything is there: nothing is added
    rows = sim.read_rows(str(out / sim.CSV_FILE))
    assert len(rows) == 18 + 3 * 2
    text = (out / sim.REPORT_FILE).read_text(encoding="utf-8")
    commands = json.loads((out / sim.COMMANDS_FILE).read_text())["commands"]
    assert len(commands) == 2 and f"    python -m experiments.transfer_simulation {' '.join(argv)}" in text
    assert "sim-c †" in text and "| xgb_tuned | none | T | dropped | percentile |" in text
    assert "tau_rf_transfer-other_current-F_zeros-dropped_percentile: " in capsys.readouterr().out
    assert hashlib.sha256(open(archive, "rb").read()).hexdigest() == digest
    # the transfer data of sim-a are the other tasks' networks that sim-a did not evaluate
    from data.archive import Archive
    from surrogates.workflows import surrogate_dataset

    with Archive(archive, readonly=True) as opened:
        runs = {t: surrogate_dataset(opened, t) for t in ("sim-a", "sim-b", "sim-c")}
    own = {a.hash for a in runs["sim-a"][0]}
    expected = sum(int(y > 0) for t in ("sim-b", "sim-c") for a, y in zip(*runs[t]) if a.hash not in own)
    f_rows = [r for r in rows if r["task"] == "sim-a" and r["train_current"] == "False"]
    assert 0 < expected < 40 and {r["n_train"] for r in f_rows} == {expected}
    with pytest.raises(ValueError, match="another --out"):
        sim.main([*argv[:4], "--window", "4", *argv[6:]])
