"""``experiments.transfer_cli``: the commands it runs for each target (the CLI calls recorded, not run)."""

import pytest

from experiments import transfer_cli
from surrogates.sources import SHIPPED_ARCHIVE

ARCHIVE = str(SHIPPED_ARCHIVE)  # an existing archive (main opens it); the recorded commands never read it


@pytest.fixture
def recorded(monkeypatch):
    calls = []

    def fake_json(args):
        calls.append([str(a) for a in args])
        return {"kendall_tau": 0.5, "spearman_rho": 0.6, "n": 7}

    monkeypatch.setattr(transfer_cli, "nas_json", fake_json)
    monkeypatch.setattr(transfer_cli, "run_nas", lambda args: calls.append([str(a) for a in args]))
    return calls


def test_lm_options_go_to_the_lm_fit_and_the_within_model_decides_signal(recorded, tmp_path):
    ap_args = ["--model", "lm", "--within-model", "rf", "--max-per-source", "100", "--normalise", "ecdf",
               "--lm-layers", "2", "--lm-epochs", "3", "--lm-encoding", "tokens", "--tasks", "t1", "--archive", ARCHIVE,
               "--out", str(tmp_path / "out")]
    assert transfer_cli.main(ap_args) == 0
    within, fit, evaluate = recorded
    assert within[:2] == ["surrogate", "evaluate"] and within[within.index("--model") + 1] == "rf"
    assert not any(a.startswith("--lm-") for a in within)  # the within-task rf takes no LM options
    assert fit[:3] == ["surrogate", "fit", "--transfer"] and fit[fit.index("--model") + 1] == "lm"
    for flag, value in (("--max-per-source", "100"), ("--normalise", "ecdf"), ("--lm-layers", "2"),
                        ("--lm-epochs", "3"), ("--lm-encoding", "tokens")):
        assert fit[fit.index(flag) + 1] == value
    assert evaluate[:2] == ["surrogate", "evaluate"] and "--task" in evaluate
    text = (tmp_path / "out" / "tau.md").read_text(encoding="utf-8")
    assert "| target | within-task τ (rf) | signal |" in text and "| t1 | 0.500 | yes | 0.500 |" in text


def test_without_lm_options_nothing_is_added(recorded, tmp_path):
    assert transfer_cli.main(["--tasks", "t1", "--archive", ARCHIVE, "--out", str(tmp_path / "o")]) == 0
    within, fit, _ = recorded
    assert within[within.index("--model") + 1] == "rf" and fit[fit.index("--model") + 1] == "rf"
    assert "--max-per-source" not in fit and not any(a.startswith("--lm-") for a in fit)
