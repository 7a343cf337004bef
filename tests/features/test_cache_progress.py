"""``CachedFeaturiser(progress=True)`` reports the vectors it computes: log lines without a terminal."""

from __future__ import annotations

import io
import logging

from features.cache import CachedFeaturiser, MemoryStore
from features.graf import GRAF
from nas import progress
from nas.sampler import Sampler


def test_computing_features_logs_progress_without_a_terminal(caplog, monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())  # not a terminal
    monkeypatch.setattr(progress, "INTERVAL", 0.0)
    caplog.set_level(logging.INFO, logger=progress.LOGGER_NAME)
    s = Sampler("einspace", (3, 8, 8))
    xs = [s.sample(i) for i in range(5)]
    store = MemoryStore()
    CachedFeaturiser(GRAF(), store, "t", chunk=2, progress=True).transform(xs)
    got = [r.getMessage() for r in caplog.records if r.name == progress.LOGGER_NAME]
    assert [line.split(",")[0] for line in got] == ["features graf: 2/5 archs (40%)", "features graf: 4/5 archs (80%)",
                                                    "features graf: 5/5 archs (100%)",
                                                    "features graf: finished 5/5 archs"]
    assert all("elapsed" in line for line in got)
    caplog.clear()
    CachedFeaturiser(GRAF(), store, "t", progress=True).transform(xs)  # all cached: nothing to report
    CachedFeaturiser(GRAF(), MemoryStore(), "t").transform(xs)  # progress off (the default)
    assert not [r for r in caplog.records if r.name == progress.LOGGER_NAME]
