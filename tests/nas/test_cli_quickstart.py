"""``nas quickstart``: the whole loop end to end at toy sizes, and how the command maps its options."""

import json

import pytest

from nas.cli import main
from nas.cli import quickstart
from nas.cli.quickstart import QuickstartConfig, run_quickstart


@pytest.mark.e2e
def test_quickstart_runs_the_whole_loop_and_resumes(tmp_path):
    cfg = QuickstartConfig(task="gutenberg-mini", out=str(tmp_path / "qs"), archive_size=12, search_budget=8,
                           population=4, tournament=2, n_candidates=6, k=2, refit_every=2, protocol="smoke",
                           features="graf", workers=1)
    out = run_quickstart(cfg, progress=False)
    assert -1.0 <= out["tau"] <= 1.0 or out["tau"] != out["tau"]  # a number (NaN if the held-out part is constant)
    assert set(out["best"]) == {"re", "filtered"} and "| RE |" in out["table"] and "| filtered RE |" in out["table"]
    assert (tmp_path / "qs" / "best_so_far.png").exists()
    assert json.loads((tmp_path / "qs" / "quickstart.json").read_text())["task"] == "gutenberg-mini"
    again = run_quickstart(cfg, progress=False)  # everything is in the archives: nothing is trained again
    assert again["best"] == out["best"] and again["seconds"] < out["seconds"]


def test_quickstart_options_reach_the_config(monkeypatch, tmp_path, capsys):
    seen = []
    monkeypatch.setattr(quickstart, "run_quickstart", lambda cfg: seen.append(cfg))
    assert main(["quickstart", "--task", "gutenberg-mini", "-o", str(tmp_path), "--archive-size", "7",
                 "--budget", "5", "--workers", "1", "--seed", "3"]) == 0
    assert seen == [QuickstartConfig(task="gutenberg-mini", out=str(tmp_path), archive_size=7, search_budget=5,
                                     workers=1, seed=3)]
    assert main(["quickstart", "--out", str(tmp_path / "old")]) == 0  # the old spelling, for one release
    assert seen[-1].out == str(tmp_path / "old") and "--out is deprecated" in capsys.readouterr().err
