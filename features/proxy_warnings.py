"""Why zero-cost proxies came out NaN, summarised per step instead of one warning line per network.

Outside a summary, every NaN proxy is logged as it happens (one line naming the network, the proxy and the
reason).  Inside ``summarised()`` (``ZeroCostProxies.transform`` opens one, and so does a cached featurisation
over a whole step) those lines go to DEBUG and the step ends with one WARNING line counting the networks that
gave NaN by reason, with the first one as an example::

    zero-cost proxies: 23 of 130 networks gave NaN (17 over memory budget, 6 non-finite synflow);
    first: architecture 1a2b3c4d5e6f: over memory budget: estimated ...

A proxy that does not apply to a kind of network at all (``nwot`` without a ReLU) is logged at INFO and is
not counted.  Summaries nest: an inner ``summarised()`` adds to the outer one, which alone reports.
"""

from __future__ import annotations

import logging
from collections import Counter
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

log = logging.getLogger("features.zcp")

#: The longest reason category in a summary line (the full reason is in the example and at DEBUG).
MAX_CATEGORY = 60


def category(reason: str, proxy: str | None = None) -> str:
    """The short reason a NaN is counted under: a budget (``over memory budget``), ``timeout``,
    ``compiling failed``, ``non-finite <proxy>``, or ``<proxy>: <first clause of the reason>``."""
    text = reason.strip()
    head = text.split(":", 1)[0].strip()
    if proxy is None or head in ("timeout", "compiling failed") or head.startswith("over "):
        return head[:MAX_CATEGORY]
    lowered = text.lower()
    if "not finite" in lowered or "overflow" in lowered or "non-finite" in lowered:
        return f"non-finite {proxy}"
    clause = head.split(" (", 1)[0].strip()
    return f"{proxy}: {clause}"[:MAX_CATEGORY]


class Summary:
    """The NaN reasons of the networks of one step: ``network()`` opens one network's record, ``note``
    adds a reason to it, ``line()`` is the summary (None when no network gave NaN)."""

    def __init__(self, what: str = "zero-cost proxies") -> None:
        self.what = what
        self.networks = 0
        self.failed = 0
        self.counts: Counter[str] = Counter()
        self.first: str | None = None
        self._current: set[str] | None = None
        self._current_detail: str | None = None

    @contextmanager
    def network(self) -> Iterator[None]:
        self._current, self._current_detail = set(), None
        try:
            yield
        finally:
            reasons, detail = self._current, self._current_detail
            self._current = self._current_detail = None
            self.networks += 1
            if reasons:
                self.failed += 1
                self.counts.update(reasons)
                if self.first is None:
                    self.first = detail

    def note(self, category_: str, detail: str) -> None:
        """A NaN of the current network (outside ``network()``, of a network of its own)."""
        if self._current is None:
            self.networks += 1
            self.failed += 1
            self.counts[category_] += 1
            self.first = self.first or detail
            return
        self._current.add(category_)
        self._current_detail = self._current_detail or detail

    def line(self) -> str | None:
        if not self.failed:
            return None
        reasons = ", ".join(f"{n} {c}" for c, n in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])))
        networks = "network" if self.networks == 1 else "networks"
        return f"{self.what}: {self.failed} of {self.networks} {networks} gave NaN ({reasons}); first: {self.first}"


_ACTIVE: ContextVar["Summary | None"] = ContextVar("zcp_summary", default=None)


def active() -> Summary | None:
    """The summary collecting NaN reasons in this context, or None (reasons are logged one by one)."""
    return _ACTIVE.get()


@contextmanager
def summarised(what: str = "zero-cost proxies") -> Iterator[Summary]:
    """Collect NaN reasons until the block ends, then log one WARNING line (nothing if every network
    gave its proxies).  Inside another ``summarised()`` block, yields that one."""
    outer = _ACTIVE.get()
    if outer is not None:
        yield outer
        return
    summary = Summary(what)
    token = _ACTIVE.set(summary)
    try:
        yield summary
    finally:
        _ACTIVE.reset(token)
        line = summary.line()
        if line is not None:
            log.warning("%s", line)


@contextmanager
def network() -> Iterator[None]:
    """One network's record in the active summary (nothing without one)."""
    summary = _ACTIVE.get()
    if summary is None:
        yield
        return
    with summary.network():
        yield


def nan(logger: logging.Logger, level: int, category_: str, message: str, *args: object) -> None:
    """Report a NaN: logged at ``level`` outside a summary; inside one, counted under ``category_`` (unless
    ``level`` is below WARNING) and logged at DEBUG."""
    summary = _ACTIVE.get()
    if summary is None:
        logger.log(level, message, *args)
        return
    if level >= logging.WARNING:
        summary.note(category_, (message % args) if args else message)
    logger.debug(message, *args)
