"""``nas.progress.Progress``: a tqdm bar on a terminal, throttled log lines (done / total, best, elapsed, ETA)
elsewhere, nothing when disabled."""

from __future__ import annotations

import io
import logging

import pytest
from tqdm import tqdm

from nas import progress as progress_mod
from nas.progress import LOGGER_NAME, Progress, duration, on_terminal


class Clock:
    """A settable clock, so elapsed times and the throttle are exact."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER_NAME]


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    return caplog


def test_without_a_terminal_every_update_logs_at_interval_zero(logs, monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())  # not a terminal
    clock = Clock()
    p = Progress(4, "search r", "eval", interval=0, best_name="val_acc", clock=clock)
    assert p.mode == "log" and p.bar is None
    clock.now += 10
    p.update(1, score=0.5, note="trained ok 0.500")
    clock.now += 10
    p.update(1, score=0.25)  # lower: the best stays
    clock.now += 65
    p.update(1)
    p.close()
    p.close()  # closing twice logs the last line once
    assert lines(logs) == [
        "search r: 1/4 evals (25%), best val_acc 0.5000, elapsed 10s, ETA 30s",
        "search r: 2/4 evals (50%), best val_acc 0.5000, elapsed 20s, ETA 20s",
        "search r: 3/4 evals (75%), best val_acc 0.5000, elapsed 1m25s, ETA 28s",
        "search r: stopped at 3/4 evals, best val_acc 0.5000, elapsed 1m25s",
    ]
    assert all(r.levelno == logging.INFO for r in logs.records)


def test_lines_are_throttled_to_the_interval(logs, monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())
    clock = Clock()
    with Progress(100, "features graf", "arch", interval=30, clock=clock) as p:
        for _ in range(10):
            clock.now += 7  # a line at 35 s and one at 70 s, none in between
            p.update(10)
    assert lines(logs) == [
        "features graf: 50/100 archs (50%), elapsed 35s, ETA 35s",
        "features graf: 100/100 archs (100%), elapsed 1m10s",
        "features graf: finished 100/100 archs, elapsed 1m10s",
    ]


def test_the_default_interval_is_read_when_made(monkeypatch):
    monkeypatch.setattr(progress_mod, "INTERVAL", 0.0)
    assert Progress(1, "x", enabled=False).interval == 0.0
    monkeypatch.setattr(progress_mod, "INTERVAL", 30.0)
    assert Progress(1, "x", enabled=False).interval == 30.0


def test_a_resumed_run_counts_its_rate_from_where_it_resumed(logs, monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())
    clock = Clock()
    p = Progress(10, "archive toy", "eval", initial=6, best=0.7, best_name="val_acc", interval=0, clock=clock)
    clock.now += 4
    p.update(2, score=float("nan"))  # a non-finite score is not a best
    p.close()
    assert lines(logs) == ["archive toy: 8/10 evals (80%), best val_acc 0.7000, elapsed 4s, ETA 4s",
                           "archive toy: stopped at 8/10 evals, best val_acc 0.7000, elapsed 4s"]


def test_an_unknown_total_has_no_eta(logs, monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())
    clock = Clock()
    with Progress(None, "search t", "eval", interval=0, clock=clock) as p:
        clock.now += 3661
        p.update(1, score=0.125)
    assert lines(logs) == ["search t: 1 evals, best 0.1250, elapsed 1h01m",
                           "search t: finished 1 evals, best 0.1250, elapsed 1h01m"]


def test_on_a_terminal_it_is_the_tqdm_bar(logs, monkeypatch):
    term = Terminal()
    monkeypatch.setattr("sys.stderr", term)
    assert on_terminal()
    with Progress(3, "search r", "eval", interval=0) as p:
        assert p.mode == "bar" and isinstance(p.bar, tqdm)
        for _ in range(3):
            p.update(1, score=0.5, note="trained ok 0.500")
    drawn = term.getvalue()
    assert "search r" in drawn and "3/3" in drawn and "trained ok 0.500" in drawn
    assert lines(logs) == []  # the bar, not log lines


def test_disabled_it_draws_and_logs_nothing(logs, monkeypatch):
    for stream in (Terminal(), io.StringIO()):
        monkeypatch.setattr("sys.stderr", stream)
        with Progress(3, "x", interval=0, enabled=False) as p:
            p.update(3)
        assert p.mode == "off" and stream.getvalue() == ""
    assert lines(logs) == []


def test_no_or_closed_stderr_is_not_a_terminal():
    closed = io.StringIO()
    closed.close()
    assert not on_terminal(closed) and not on_terminal(object()) and not on_terminal(io.StringIO())


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (59.4, "59s"), (60, "1m00s"), (3599, "59m59s"),
                                           (7500, "2h05m"), (-1, "0s")])
def test_duration(seconds, text):
    assert duration(seconds) == text
