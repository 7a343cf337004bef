"""The ``nas`` command line: sample and show."""

import io
import json
import subprocess
import sys

from nas.architecture import Architecture
from nas.cli import main


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
