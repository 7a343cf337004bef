"""The best-so-far curve: the one place that decides which result is the best."""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np


def running_best(values: Iterable[float]) -> np.ndarray:
    """The best (largest) of ``values[:i+1]`` for every ``i``, ignoring failures (NaN, ``-inf``); NaN until
    the first finite value."""
    out, current = [], -math.inf
    for v in values:
        v = float(v)
        if math.isfinite(v) and v > current:
            current = v
        out.append(current if math.isfinite(current) else math.nan)
    return np.array(out, dtype=float)


def best_index(values: Iterable[float]) -> int | None:
    """The index of the best finite value (the earliest on ties), i.e. the step where ``running_best``
    last rose; ``None`` when no value is finite."""
    curve = running_best(values)
    if not len(curve) or math.isnan(curve[-1]):
        return None
    return int(np.argmax(curve == curve[-1]))
