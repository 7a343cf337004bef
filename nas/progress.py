"""Progress of long loops: a tqdm bar on a terminal, a log line every ``interval`` seconds elsewhere.

A bar written to a log file or a pipe is either off (tqdm's default without a terminal) or a stream of
carriage returns, so a nine-minute archive build printed nothing in its log.  ``Progress`` draws the bar
when stderr is a terminal and otherwise logs, through the ``nas.progress`` logger at INFO, at most one line
every ``interval`` seconds (done / total, best so far, elapsed, ETA) and a last line when it closes.  The CLI
sets that one logger to INFO, so these lines show under its default WARNING level while other INFO lines
stay hidden.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from typing import IO, Any, Callable

from tqdm import tqdm

#: The logger of the lines written without a terminal; the CLI sets it to INFO.
LOGGER_NAME = "nas.progress"
#: Default seconds between two log lines (read when a ``Progress`` is made, so tests may set it to 0).
INTERVAL = 30.0

log = logging.getLogger(LOGGER_NAME)


def on_terminal(stream: IO[str] | None = None) -> bool:
    """Whether ``stream`` (default: the current ``sys.stderr``, where tqdm draws) is a terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no stream (pythonw), or a closed one
        return False


def duration(seconds: float) -> str:
    """``seconds`` as ``42s``, ``3m07s`` or ``2h05m``."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """Progress of ``total`` steps (``None``: unknown) named ``desc``, counted in ``unit``s from ``initial``.

    ``update(n, score=...)`` counts ``n`` more steps; the highest finite ``score`` seen (or ``best`` at the start,
    e.g. a resumed run's) is reported as the best ``best_name`` so far.  ``note`` is the bar's postfix on a
    terminal.  Disabled (``enabled=False``) it does nothing; usable as a context manager."""

    def __init__(self, total: int | None, desc: str, unit: str = "it", *, initial: int = 0, enabled: bool = True,
                 interval: float | None = None, best: float | None = None, best_name: str = "",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.done = self.initial = initial
        self.best, self.best_name = best, best_name
        self.interval = INTERVAL if interval is None else interval
        self.clock = clock
        self.start = self.last_line = clock()
        self.mode = "off" if not enabled else "bar" if on_terminal() else "log"
        self.bar: Any = None
        if self.mode == "bar":
            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit)
        self.closed = False

    def update(self, n: int = 1, *, score: float | None = None, note: str | None = None) -> None:
        """Count ``n`` more steps; ``score`` may raise the best so far; ``note`` goes on the bar."""
        self.done += n
        if score is not None and math.isfinite(score) and (self.best is None or score > self.best):
            self.best = score
        if self.mode == "bar":
            self.bar.update(n)
            if note is not None:
                self.bar.set_postfix_str(note)
        elif self.mode == "log":
            now = self.clock()
            if now - self.last_line >= self.interval:
                self.last_line = now
                log.info("%s", self.line(now))

    def line(self, now: float | None = None, final: bool = False) -> str:
        """The log line: ``DESC: 12/60 evals (20%), best val_acc 0.6123, elapsed 1m05s, ETA 4m20s``; the last
        one says ``finished`` (or ``stopped at`` short of the total) and has no ETA."""
        elapsed = (self.clock() if now is None else now) - self.start
        count = f"{self.done}/{self.total}" if self.total is not None else f"{self.done}"
        if self.total and not final:
            count += f" {self.unit}s ({100 * self.done / self.total:.0f}%)"
        else:
            count += f" {self.unit}s"
        if final:
            short = self.total is not None and self.done < self.total
            count = ("stopped at " if short else "finished ") + count
        parts = [count]
        if self.best is not None:
            parts.append(f"best {self.best_name + ' ' if self.best_name else ''}{self.best:.4f}")
        parts.append(f"elapsed {duration(elapsed)}")
        steps = self.done - self.initial
        if not final and self.total is not None and steps > 0 and self.total > self.done:
            parts.append(f"ETA {duration(elapsed / steps * (self.total - self.done))}")
        return f"{self.desc}: " + ", ".join(parts)

    def close(self) -> None:
        """Close the bar, or log the last line."""
        if self.closed:
            return
        self.closed = True
        if self.mode == "bar":
            self.bar.close()
        elif self.mode == "log":
            log.info("%s", self.line(final=True))

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
