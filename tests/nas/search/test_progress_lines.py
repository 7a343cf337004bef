"""Without a terminal, searches and archive builds log progress lines (done / total, best val_acc so far,
elapsed, ETA) through ``nas.progress``, from the run engine and from the CLI."""

from __future__ import annotations

import io
import logging
import re

import pytest

from data.archive import Archive
from nas import progress
from nas.cli import main
from nas.sampler import Sampler
from nas.search import CPU_BUDGET, RandomSearch, SearchRun, run_history

SHAPE = (3, 8, 8)
BUDGET = CPU_BUDGET.__class__(max_nodes=40, max_depth=12, max_params=20_000, max_flops=2e6, batch_size=32)
LINE = re.compile(r"^(?P<desc>.+): (?P<done>\d+)/(?P<total>\d+) evals \(\d+%\)(, best val_acc (?P<best>[\d.]+))?, "
                  r"elapsed \d+(s|m\d\ds|h\d\dm)(, ETA \S+)?$")
FINAL = re.compile(r"^(?P<desc>.+): finished (?P<done>\d+)/(?P<total>\d+) evals(, best val_acc (?P<best>[\d.]+))?, "
                   r"elapsed \S+$")


def objective(arch) -> float:
    return 1.0 / (1.0 + arch.num_nodes)


@pytest.fixture
def logs(caplog, monkeypatch):
    """No terminal, a line per step, and the progress logger at INFO (as the CLI sets it)."""
    monkeypatch.setattr("sys.stderr", io.StringIO())
    monkeypatch.setattr(progress, "INTERVAL", 0.0)
    caplog.set_level(logging.INFO, logger=progress.LOGGER_NAME)
    return caplog


def lines(caplog) -> list[str]:
    out = [r.getMessage() for r in caplog.records if r.name == progress.LOGGER_NAME]
    caplog.clear()
    return out


def check(got: list[str], desc: str, first: int, total: int, best: float | None = None) -> None:
    """One line per step from ``first`` to ``total``, then the final line; ``best`` is the last line's."""
    *steps, last = got
    matches = [LINE.match(line) for line in steps]
    assert all(matches), steps
    assert [(m["desc"], int(m["done"]), int(m["total"])) for m in matches] == [
        (desc, k, total) for k in range(first, total + 1)]
    final = FINAL.match(last)
    assert final and (final["desc"], int(final["done"])) == (desc, total), last
    if best is not None:
        assert float(final["best"]) == pytest.approx(best, abs=5e-5)  # printed with 4 decimals


def test_a_search_logs_a_line_per_step_and_a_final_line(logs, tmp_path):
    sampler = Sampler("einspace", SHAPE, BUDGET)
    with Archive(tmp_path / "a.db") as a:
        SearchRun(a, "fn", objective).run(RandomSearch(sampler, 0), budget_evals=6)
        best = max(e.evaluation.val_acc for e in run_history(a, "fn"))
        check(lines(logs), "search fn", 1, 6, best)
        # resumed: the best of the replayed history is the run's best so far
        SearchRun(a, "fn", objective).run(RandomSearch(sampler, 0), budget_evals=8)
        got = lines(logs)
        check(got, "search fn", 7, 8, max(e.evaluation.val_acc for e in run_history(a, "fn")))
        assert float(LINE.match(got[0])["best"]) >= best
        SearchRun(a, "quiet", objective, progress=False).run(RandomSearch(sampler, 0), budget_evals=2)
        assert lines(logs) == []


def test_a_build_reports_the_best_of_its_stored_evaluations(logs, tmp_path):
    sampler = Sampler("einspace", SHAPE, BUDGET)
    with Archive(tmp_path / "a.db") as a:
        SearchRun(a, "b", objective, history=False, label="archive toy").run(RandomSearch(sampler, 0), budget_evals=3)
        first = lines(logs)
        check(first, "archive toy", 1, 3)
        SearchRun(a, "b", objective, history=False, label="archive toy").run(RandomSearch(sampler, 0), budget_evals=3)
        best = max(e.val_acc for e in a.evaluations(run="b"))
        again = lines(logs)  # nothing new: the final line only, the same but for the time
        assert [re.sub(r"elapsed \S+$", "", line) for line in again] == [re.sub(r"elapsed \S+$", "", first[-1])]
        assert float(FINAL.match(first[-1])["best"]) == pytest.approx(best, abs=5e-5)


def test_cli_search_and_archive_build_print_periodic_lines_without_a_terminal(logs, capsys, tmp_path):
    code = main(["search", "--task", "nb201-cifar10", "--budget", "12", "--population", "4", "--tournament", "2",
                 "--run-dir", str(tmp_path / "re")])
    assert code == 0
    check(lines(logs), "search re-seed0", 1, 12)
    code = main(["archive", "build", "--archive", str(tmp_path / "a.sqlite"), "--task", "nb201-cifar10", "--n", "5"])
    assert code == 0
    check(lines(logs), "archive nb201-cifar10", 1, 5)
    assert "\r" not in capsys.readouterr().err  # no bar drawn into the log


def test_the_cli_shows_progress_lines_at_its_default_log_level(caplog, monkeypatch, tmp_path):
    monkeypatch.setattr(progress, "INTERVAL", 0.0)
    logging.getLogger(progress.LOGGER_NAME).setLevel(logging.NOTSET)  # as in a fresh process
    assert main(["search", "--task", "nb201-cifar10", "--budget", "3", "--population", "2", "--tournament", "2",
                 "--run-dir", str(tmp_path / "re")]) == 0
    assert any(r.name == progress.LOGGER_NAME for r in caplog.records)  # no -v, no caplog.set_level
