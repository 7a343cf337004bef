"""``nas run EXPERIMENT.toml``: the keys are ``nas search``'s options, a file makes the same runs as the command
lines it stands for, ``--dump-config`` writes the file of a command line, and a bad file is one line naming the
file, the line and the key."""

import json
import os
import shutil
import textwrap
from pathlib import Path

import pytest

from data.archive import Archive
from nas.cli import main
from nas.cli.run import key_lines, load_experiment
from nas.cli.search import search_options
from nas.search import run_history

ROOT = Path(__file__).resolve().parents[2]
TOY = ROOT / "examples" / "toy.toml"
QUICKSTART = ROOT / "examples" / "quickstart.toml"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def history(run_dir):
    """A run's steps (architecture, source, val_acc) and its run.json, from its folder."""
    ref = json.loads((Path(run_dir) / "run.json").read_text())
    with Archive(str(Path(run_dir) / ref["archive"]), readonly=True) as archive:
        steps = [(e.arch_hash, e.source, e.evaluation.val_acc) for e in run_history(archive, ref["run"])]
        config = next(r["config"] for r in archive.runs() if r["name"] == ref["run"])
    return ref, steps, config


def test_every_option_of_nas_search_is_a_key_of_the_same_name(capsys):
    options = search_options()
    for key, action in options.items():
        flags = [s for s in action.option_strings if s.startswith("--")]
        assert flags and flags[0][2:].replace("-", "_") == key
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    for key, action in options.items():  # the help's mapping lists every option
        assert f"  {action.option_strings[-1]:<20} {key}" in out


def test_toy_file_makes_the_runs_of_the_equivalent_command_lines(capsys, tmp_path, monkeypatch):
    """examples/toy.toml (2 strategies × 2 seeds on the NB201 table) against the four nas search calls it
    stands for: the same run.json, the same stored configuration and the same history, step by step."""
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "run", TOY)
    assert code == 0, out
    assert "nb201-cifar10 re: best val_acc" in out and "± " in out and "nas compare" in out
    common = ["--task", "nb201-cifar10", "--budget", "20", "--population", "10", "--tournament", "3"]
    per_strategy = {"re": ["--strategy", "re"],
                    "filtered": ["--strategy", "filtered", "--surrogate", "rf", "--start-after", "10",
                                 "--refit-every", "5", "--n-candidates", "10", "--k", "2"]}
    for label, flags in per_strategy.items():
        for seed in (0, 1):
            cli_dir = tmp_path / "cli" / label / f"seed-{seed}"
            assert run(capsys, "search", *common, *flags, "--seed", seed, "--label", label, "--run-dir", cli_dir)[0] == 0
            file_ref, file_steps, file_config = history(tmp_path / "runs" / "toy" / "nb201-cifar10" / label / f"seed-{seed}")
            cli_ref, cli_steps, cli_config = history(cli_dir)
            assert file_ref == cli_ref and file_ref["label"] == label
            assert len(file_steps) == 20 and file_steps == cli_steps
            assert file_config == cli_config
    # re-running resumes: nothing new, same histories
    before = history(tmp_path / "runs" / "toy" / "nb201-cifar10" / "filtered" / "seed-1")[1]
    assert run(capsys, "run", TOY)[0] == 0
    assert history(tmp_path / "runs" / "toy" / "nb201-cifar10" / "filtered" / "seed-1")[1] == before


def test_dump_config_then_nas_run_is_the_command_line(capsys, tmp_path):
    argv = ["search", "--task", "nb201-cifar10", "--strategy", "filtered", "--surrogate", "rf", "--budget", "12",
            "--population", "6", "--tournament", "2", "--start-after", "4", "--refit-every", "4", "--k", "3",
            "--seed", "3", "--time-budget", "600"]
    assert run(capsys, *argv, "--run-dir", tmp_path / "cli")[0] == 0
    code, text, _ = run(capsys, *argv, "--run-dir", tmp_path / "file", "--dump-config")
    assert code == 0 and not (tmp_path / "file").exists()  # --dump-config runs nothing
    assert "k = 3" in text and "time_budget = 600.0" in text and "[strategies.filtered-seed3]" in text
    (tmp_path / "x.toml").write_text(text)
    assert run(capsys, "run", tmp_path / "x.toml")[0] == 0
    cli, dumped = history(tmp_path / "cli"), history(tmp_path / "file")
    assert cli == dumped and len(cli[1]) == 12 and cli[0]["label"] == "filtered-seed3"


def test_dump_config_with_seeds_writes_their_runs(capsys, tmp_path):
    code, text, _ = run(capsys, "search", "--task", "nb201-cifar10", "--run-dir", tmp_path / "r", "--seeds", "0-2",
                        "--dump-config")
    assert code == 0
    (tmp_path / "s.toml").write_text(text)
    runs = load_experiment(str(tmp_path / "s.toml"))
    assert [(r.seed, r.label, r.run_dir) for r in runs] == [
        (s, "re", os.path.join(str(tmp_path / "r"), f"seed-{s}")) for s in (0, 1, 2)]


BASE = """\
[study]
task = "nb201-cifar10"
budget = 10
out = "runs/x"

[strategies.re]
strategy = "re"

[strategies.filtered]
strategy = "filtered"
k = 5
"""


@pytest.mark.parametrize("old, new, line, message", [
    ("k = 5", "k = -1", 11, "strategies.filtered.k: must be a positive integer, got -1"),
    ("budget = 10", 'budget = "ten"', 3, 'study.budget: must be an integer, got "ten" (a string)'),
    ('strategy = "re"', "stratgy = \"re\"", 7, "strategies.re.stratgy: unknown key; did you mean 'strategy'?"),
    ("[study]", "[stduy]", 1, "stduy: unknown table; did you mean 'study'?"),
    ("budget = 10", "budget = 10 10", 3, "invalid TOML"),
    ('strategy = "re"', 'strategy = "evo"', 7, "strategies.re.strategy: must be one of random, re, filtered"),
    ("budget = 10", "budget = 10\nseeds = [0, 1]\nseed = 2", 4, "study.seeds: give seed (one run) or seeds"),
    ("budget = 10", 'budget = 10\nseeds = "2-0"', 4, "study.seeds: must be an increasing range"),
    ("budget = 10", "budget = 10\nfinal = 1", 4, "study.final: must be true or false, got 1 (an integer)"),
    ('task = "nb201-cifar10"\n', "", 5, "strategies.re: no task"),
    ('out = "runs/x"', 'run_dir = "runs/x"', 9, "its run folder runs/x is also that of strategies.re"),
])
def test_a_bad_file_is_one_line_naming_file_line_and_key(capsys, tmp_path, old, new, line, message):
    assert old in BASE
    path = tmp_path / "bad.toml"
    path.write_text(BASE.replace(old, new, 1))
    code, out, err = run(capsys, "run", path)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"nas run: error: {path} line {line}: "), err
    assert message in err, err


def test_strategies_are_required_and_keys_are_found_in_quoted_and_dotted_forms(capsys, tmp_path):
    path = tmp_path / "none.toml"
    path.write_text('[study]\ntask = "nb201-cifar10"\nout = "o"\n')
    code, _, err = run(capsys, "run", path)
    assert code == 2 and "strategies: needs one [strategies.LABEL] table" in err
    lines = key_lines('[study]\n"budget" = 3\n[strategies."my run"]\nk = 2\n[strategies]\nre.strategy = "re"\n')
    assert lines[("study", "budget")] == 2 and lines[("strategies", "my run", "k")] == 4
    assert lines[("strategies", "re", "strategy")] == 6


def test_example_files_are_valid_experiments():
    runs = load_experiment(str(QUICKSTART))  # the quickstart's three searches over five paired seeds
    assert len(runs) == 15
    assert sorted({(r.label, r.strategy, r.surrogate, r.budget) for r in runs}) == [
        ("filtered", "filtered", "rf", 30), ("re", "re", "rf", 30), ("transfer", "filtered", "transfer", 30)]
    assert {r.task for r in runs} == {"language-mini"} and {r.seed for r in runs} == {0, 1, 2, 3, 4}
    one_seed = QUICKSTART.read_text().replace('seeds = "0-4"', "seed = 0")
    assert one_seed != QUICKSTART.read_text()
    assert len(load_experiment_text(one_seed)) == 3
    assert len(load_experiment(str(TOY))) == 4


def load_experiment_text(text):
    import tempfile

    folder = tempfile.mkdtemp()
    try:
        path = os.path.join(folder, "e.toml")
        with open(path, "w") as fh:
            fh.write(textwrap.dedent(text))
        return load_experiment(path)
    finally:
        shutil.rmtree(folder)


def test_tasks_as_an_array_make_one_run_per_task():
    runs = load_experiment_text('[study]\ntask = ["nb201-cifar10", "language-mini"]\nseeds = [1, 2]\nout = "o"\n'
                                '[strategies.re]\n[strategies.bo]\nstrategy = "bo"\n')
    assert sorted((r.task, r.label, r.seed, r.run_dir) for r in runs) == sorted(
        (t, label, s, os.path.join("o", t, label, f"seed-{s}"))
        for t in ("nb201-cifar10", "language-mini") for label in ("re", "bo") for s in (1, 2))
    assert {r.strategy for r in runs if r.label == "re"} == {"re"}


def test_a_strategy_s_seed_replaces_the_study_s_seeds():
    runs = load_experiment_text('[study]\ntask = "nb201-cifar10"\nseeds = "0-2"\nout = "o"\n'
                                '[strategies.re]\n[strategies.once]\nseed = 7\n')
    assert [(r.label, r.seed) for r in runs] == [("re", 0), ("re", 1), ("re", 2), ("once", 7)]
