"""``nas search``, ``nas status`` and ``nas compare``, including resume after SIGKILL."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import statistics
import time

import pytest

from data.archive import Archive
from nas.cli import archive as cli_archive, main
from nas.cli import search as cli_search
from nas.cli.common import SAMPLING_BUDGETS
from nas.search import BUDGETS, run_history
from nas.search.build import SAMPLERS
from nas.search.factory import STRATEGIES


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_choices_are_the_library_names():
    # the parser spells them out so that building it imports no search code
    assert cli_search.STRATEGIES == STRATEGIES
    assert cli_archive.SAMPLERS == SAMPLERS
    assert set(SAMPLING_BUDGETS) == set(BUDGETS)


def test_search_status_compare_on_the_table(capsys, tmp_path):
    common = ["--task", "nb201-cifar10", "--budget", "60", "--population", "10", "--tournament", "3"]
    assert run(capsys, "search", *common, "--strategy", "re", "--run-dir", str(tmp_path / "re"))[0] == 0
    code, out, _ = run(capsys, "search", *common, "--strategy", "filtered", "--surrogate", "rf",
                       "--start-after", "10", "--refit-every", "10", "--run-dir", str(tmp_path / "f"))
    summary = json.loads(out)
    assert code == 0 and summary["evaluations"] == 60 and summary["counts"]["filtered"] > 0
    assert (tmp_path / "f" / "best_so_far.png").exists() and (tmp_path / "f" / "summary.json").exists()
    code, out, _ = run(capsys, "status", str(tmp_path / "f"))
    assert code == 0 and "60 steps" in out and "best val_acc" in out
    code, out, _ = run(capsys, "compare", str(tmp_path / "re"), str(tmp_path / "f"), "--plot", str(tmp_path / "c.png"))
    assert code == 0 and out.count("nb201-cifar10") == 2 and (tmp_path / "c.png").exists()


def _trained(path):
    if not os.path.exists(path):
        return 0
    try:
        with sqlite3.connect(path, timeout=10) as db:
            return db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.e2e
def test_search_resumes_after_sigkill(tmp_path):
    """Kill ``nas search`` mid-run and re-run it: the evaluations made so far are kept as they were, none is
    trained again, and the budget is reached."""
    run_dir = tmp_path / "run"
    archive = str(run_dir / "archive.sqlite")
    cmd = [sys.executable, "-m", "nas.cli", "search", "--task", "language-mini", "--strategy", "re",
           "--population", "4", "--tournament", "2", "--budget", "9", "--protocol", "smoke", "--seed", "3",
           "--run-dir", str(run_dir)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 120
    while _trained(archive) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Archive(archive) as a:
        before = [(e.arch_hash, e.metrics.get("val_acc"), e.created) for e in a.evaluations()]
    assert 3 <= len(before) < 9, "the search should have been killed mid-run"
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    with Archive(archive) as a:
        after = [(e.arch_hash, e.metrics.get("val_acc"), e.created) for e in a.evaluations()]
        history = run_history(a, "re-seed3")
    assert after[: len(before)] == before  # nothing lost or retrained
    assert len(history) == 9  # the budget is reached
    trained = [h.arch_hash for h in history if h.source == "trained"]
    assert len(trained) == len(set(trained)) == len(after)  # each architecture trained once


def test_seeds_make_one_run_dir_per_seed_and_print_mean_and_sd(capsys, tmp_path):
    """``--seeds 0-2``: three run dirs RUN_DIR/seed-S (each the run ``--seed S`` makes), one label for all,
    then the mean ± sd of their best validation accuracy and the nas compare command."""
    common = ["--task", "nb201-cifar10", "--budget", "15", "--population", "6", "--tournament", "2"]
    code, out, _ = run(capsys, "search", *common, "--seeds", "0-2", "--run-dir", str(tmp_path / "multi"))
    assert code == 0
    best = []
    for seed in (0, 1, 2):
        run_dir = tmp_path / "multi" / f"seed-{seed}"
        ref = json.loads((run_dir / "run.json").read_text())
        assert ref["label"] == "re" and ref["run"] == f"re-seed{seed}"
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["evaluations"] == 15
        best.append(summary["best"]["val_acc"])
        assert f"nb201-cifar10 re seed {seed}: best val_acc {best[-1]:.4f} after 15 steps" in out
    assert len(set(best)) > 1  # different seeds, different searches
    mean, sd = statistics.fmean(best), statistics.stdev(best)
    assert f"nb201-cifar10 re: best val_acc {mean:.4f} ± {sd:.4f} (mean ± sd over 3 seeds: 0, 1, 2)" in out
    assert f"nas compare {tmp_path / 'multi'}" in out
    # seed 1 of --seeds is the run --seed 1 makes
    assert run(capsys, "search", *common, "--seed", "1", "--run-dir", str(tmp_path / "one"))[0] == 0
    with Archive(str(tmp_path / "one" / "archive.sqlite")) as one, \
            Archive(str(tmp_path / "multi" / "seed-1" / "archive.sqlite")) as multi:
        assert [h.arch_hash for h in run_history(one, "re-seed1")] == [h.arch_hash for h in run_history(multi, "re-seed1")]


@pytest.mark.parametrize("text, seeds", [("0-4", [0, 1, 2, 3, 4]), ("0,2,5", [0, 2, 5]), ("0-2,7", [0, 1, 2, 7]),
                                         (" 3 ", [3])])
def test_seed_lists(text, seeds):
    assert cli_search.seed_list(text) == seeds


@pytest.mark.parametrize("argv, message", [
    (["--seed", "1", "--seeds", "0-2"], "argument --seeds: not allowed with argument --seed"),
    (["--seeds", "2-0"], "argument --seeds: must be an increasing range such as 0-4, got '2-0'"),
    (["--seeds", "0,1,1"], "argument --seeds: repeats a seed"),
    (["--seeds", "a-b"], "argument --seeds: must be seeds such as 0-4 or 0,2,5"),
])
def test_bad_seeds_are_one_line(capsys, tmp_path, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(["search", "--task", "nb201-cifar10", "--run-dir", str(tmp_path / "r"), *argv])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and message in err and not (tmp_path / "r").exists()
