"""``experiments.task_surrogates`` end to end on two toy tasks (smoke protocol, no LM)."""

import math

import pytest

from data.tasks import register_task
from experiments.task_surrogates import main
from nas.cli import main as nas_main
from tests.data.conftest import make_blobs_task


@pytest.mark.e2e
def test_within_task_and_transfer_tables_with_the_producing_command(tmp_path, capsys):
    names = [f"blobs-ts{i}" for i in range(2)]
    for i, name in enumerate(names):
        register_task(name, lambda seed=0, i=i, name=name: make_blobs_task(seed=i, name=name))
    archive = str(tmp_path / "ts.sqlite")
    for name in names:
        assert nas_main(["archive", "build", "--archive", archive, "--task", name, "--n", "16",
                         "--protocol", "smoke", "--seed", "2"]) == 0
    out = tmp_path / "results"
    argv = ["--archive", archive, "--tasks", ",".join(names), "--out", str(out), "--splits", "2",
            "--lm-splits", "0", "--threads", "1"]
    main(argv)
    printed = capsys.readouterr().out
    text = (out / "tasks_surrogates.md").read_text(encoding="utf-8")
    assert "Produced by `python -m experiments.task_surrogates " + " ".join(argv) + "`." in text
    # one row per task plus the mean; no search window fits 16 architectures, so those cells are "—"
    within = text.split("## Transfer")[0]
    rows = [line for line in within.splitlines() if line.startswith("| blobs-ts")]
    assert [r.split(" | ")[1].split(" ")[0] for r in rows] == ["16", "16"]
    mean_row = next(line for line in within.splitlines() if line.startswith("| **mean over tasks**"))
    cells = [c.strip().strip("*") for c in mean_row.split("|")[3:-1]]
    assert len(cells) == 4 and cells[1] == cells[3] == "—"
    assert all(-1.0 <= float(c) <= 1.0 for c in (cells[0], cells[2]) if not math.isnan(float(c)))
    for protocol in ("one_to_one", "leave_one_out"):
        for model in ("rf", "xgb_tuned"):
            folder = out / f"transfer_{protocol}_{model}"
            assert {p.name for p in folder.iterdir()} == {"tau.md", "tau.csv", "tau.png"}
    assert "### leave-one-out, xgb_tuned" in text and "blobs-ts1" in printed
