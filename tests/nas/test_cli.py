"""The ``nas`` command line: sample and show, option names shared by every command."""

import io
import json
import subprocess
import sys

import pytest

from nas.architecture import Architecture
from nas.cli import build_parser, main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_sample_prints_one_canonical_string_per_line_deterministically(capsys):
    code, out, _ = run(capsys, "sample", "-n", "5", "--seed", "3")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 5
    for line in lines:
        assert Architecture.from_string(line, (3, 32, 32)).to_string() == line
    assert run(capsys, "sample", "-n", "5", "--seed", "3")[1] == out


def test_sample_json_and_budgets(capsys):
    code, out, _ = run(capsys, "sample", "-n", "20", "--json", "--input-shape", "64x32", "--max-nodes", "12",
                       "--max-params", "5000", "--classes", "4")
    assert code == 0
    for line in out.splitlines():
        rec = json.loads(line)
        assert rec["nodes"] <= 12 and rec["params"] <= 5000 and rec["input_shape"] == [64, 32]
        assert Architecture.from_json(rec).to_string() == rec["string"]
        assert rec["params_with_head"] > rec["params"]


def test_sample_impossible_budget_is_a_clear_error(capsys):
    code, _, err = run(capsys, "sample", "--max-nodes", "2")
    assert code == 2 and "max_nodes=2 is below the smallest network" in err


def test_show_a_seed_a_string_a_file_and_stdin(capsys, tmp_path, monkeypatch):
    code, out, _ = run(capsys, "show", "resnet18", "--classes", "10")
    assert code == 0 and "im2col(3,1,1)" in out and "with a 10-class head: 11," in out
    text = "routing[im2col(4,4,0), computation<linear(32)>, identity]"
    code, out, _ = run(capsys, "show", text, "--input-shape", "1x24x24")
    assert code == 0 and "1×24×24 -> 36×32" in out
    path = tmp_path / "arch.txt"
    path.write_text(text + "\n")
    assert run(capsys, "show", str(path))[1].startswith(text)
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    assert run(capsys, "show", "-")[1].startswith(text)
    code, out, _ = run(capsys, "show", text, "--json")
    assert json.loads(out)["long_string"].startswith("routing[im2col(4,4,0){'out_feature_shape': [64, 48]}")


def test_show_accepts_a_json_line_from_sample(capsys, tmp_path):
    _, out, _ = run(capsys, "sample", "--json", "--input-shape", "12x8x8", "--seed", "9")
    path = tmp_path / "a.jsonl"
    path.write_text(out)
    code, shown, _ = run(capsys, "show", str(path))
    assert code == 0 and shown.splitlines()[0] == json.loads(out)["string"]


def test_show_reports_bad_text_with_position(capsys):
    code, _, err = run(capsys, "show", "sequential(computation<relu>, computation<nope>)")
    assert code == 2 and "position 42" in err and "'nope'" in err
    code, _, err = run(capsys, "show", "routing[identity, computation<identity>, col2im]")
    assert code == 2 and "node /2 (col2im)" in err


def test_console_script_entry_point():
    proc = subprocess.run([sys.executable, "-m", "nas.cli", "sample", "-n", "2"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 2


# (old spelling, new spelling, the value's attribute) of every renamed option; the old one works for one release
RENAMED = [
    (["tasks", "show", "language-mini", "--seed", "3"], ["tasks", "show", "language-mini", "--task-seed", "3"],
     "task_seed", 3),
    (["evaluate", "resnet18", "--task", "t", "--seed", "4"], ["evaluate", "resnet18", "--task", "t", "--train-seed", "4"],
     "train_seed", 4),
    (["archive", "build", "--archive", "a", "--budget", "default"],
     ["archive", "build", "--archive", "a", "--sampling-budget", "default"], "sampling_budget", "default"),
    (["transfer", "--archive", "a", "--protocol", "leave-one-out"], ["transfer", "--archive", "a", "--scheme", "leave-one-out"],
     "scheme", "leave-one-out"),
    (["transfer", "--archive", "a", "--out", "d"], ["transfer", "--archive", "a", "-o", "d"], "output", "d"),
    (["quickstart", "--out", "d"], ["quickstart", "--output", "d"], "output", "d"),
]


@pytest.mark.parametrize("old, new, dest, value", RENAMED)
def test_renamed_options_keep_the_old_spelling_with_a_warning(capsys, old, new, dest, value):
    parser = build_parser()
    assert getattr(parser.parse_args(new), dest) == value
    assert capsys.readouterr().err == ""
    assert getattr(parser.parse_args(old), dest) == value
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{old[-2]} is deprecated here, use " in err


def test_defaults_of_renamed_options_are_unchanged():
    parser = build_parser()
    assert parser.parse_args(["tasks", "list"]).task_seed == 0
    assert parser.parse_args(["evaluate", "x", "--task", "t"]).train_seed == 0
    assert parser.parse_args(["archive", "info", "--archive", "a"]).sampling_budget == "cpu"
    assert parser.parse_args(["transfer", "--archive", "a"]).scheme == "one-to-one"
    search = parser.parse_args(["search", "--task", "t", "--run-dir", "r"])
    assert (search.budget, search.sampling_budget, search.seed, search.train_seed) == (100, "cpu", 0, 0)


def test_help_does_not_import_the_heavy_layers():
    code = ("import sys, nas.cli; nas.cli.build_parser().format_help(); "
            "print(sorted(m for m in ('torch', 'sklearn', 'xgboost', 'transformers', 'matplotlib', 'nas.search', "
            "'surrogates', 'features') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr


def test_sample_records_a_non_default_input_shape_and_show_uses_it(capsys, tmp_path):
    code, out, _ = run(capsys, "sample", "-n", "1", "--input-shape", "1x24x24", "--seed", "2")
    header, line = out.splitlines()
    assert code == 0 and header == "# input_shape: 1x24x24"
    path = tmp_path / "a.txt"
    path.write_text(out)
    code, shown, _ = run(capsys, "show", str(path))
    assert code == 0 and shown.splitlines()[0] == line and "1×24×24 -> " in shown  # not the default 3×32×32
    assert "3×32×32" in run(capsys, "show", str(path), "--input-shape", "3x32x32")[1]  # the option wins
    plain = tmp_path / "plain.txt"
    plain.write_text(line + "\n")  # a string alone: the shape of --task
    code, shown, _ = run(capsys, "show", str(plain), "--task", "language-mini")
    assert code == 0 and "1×24×24 -> " in shown
    assert run(capsys, "sample", "-n", "1")[1].count("#") == 0  # the default shape writes no header


def test_evaluate_reads_a_sample_file_with_its_header(capsys, tmp_path):
    path = tmp_path / "a.txt"
    path.write_text(run(capsys, "sample", "-n", "1", "--input-shape", "3x16x16", "--seed", "3")[1])
    code, out, err = run(capsys, "evaluate", str(path), "--task", "addnist-mini", "--protocol", "smoke")
    assert code == 0 and '"status"' in out, err


def test_evaluate_defaults_to_the_reduced_protocol_like_build_and_search():
    parser = build_parser()
    assert parser.parse_args(["evaluate", "x", "--task", "t"]).protocol == "reduced"
    assert parser.parse_args(["archive", "build", "--archive", "a"]).protocol == "reduced"
    assert parser.parse_args(["search", "--task", "t", "--run-dir", "r"]).protocol == "reduced"


@pytest.mark.parametrize("argv", [["archive", "build", "--task", "nb201-cifar10", "-n", "1"],
                                  ["evaluate", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "--task",
                                   "nb201-cifar10"]])
def test_a_mistyped_archive_path_of_a_write_verb_is_refused_in_one_line(capsys, tmp_path, argv):
    missing = tmp_path / "no-such-folder" / "a.sqlite"
    code, _, err = run(capsys, *argv, "--archive", str(missing))
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "no-such-folder").exists()


def test_options_of_the_archive_space_surrogate_and_quickstart_commands_have_help():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for command in ("sample", "show", "evaluate", "final", "archive", "surrogate", "transfer", "quickstart"):
        bare = [a.option_strings[0] for a in sub.choices[command]._actions
                if a.option_strings and a.dest != "help" and not a.help]
        assert bare == [], command
