"""Surrogate quality metrics: Kendall τ, Spearman ρ, MAE and precision@k of predictions against truth.

Every metric is NaN-safe: pairs where either value is NaN or ±inf are dropped first, and a metric that is
undefined on what remains (fewer than two pairs, or a constant side for the rank correlations) is NaN
rather than an error.  τ is scipy's tau-b and ρ scipy's Spearman (both average tied ranks), as in the
published evaluation scripts.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import numpy as np
from scipy import stats

log = logging.getLogger(__name__)

def _pairs(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """The finite pairs of two equally long 1-D sequences, as float arrays."""
    t = np.asarray(y_true, dtype=float).reshape(-1)
    p = np.asarray(y_pred, dtype=float).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values but y_pred has {p.size}")
    keep = np.isfinite(t) & np.isfinite(p)
    return t[keep], p[keep]


def _constant(a: np.ndarray) -> bool:
    return a.size == 0 or bool(np.all(a == a[0]))


def kendall_tau(y_true: Any, y_pred: Any) -> float:
    """Kendall's tau-b between truth and predictions over their finite pairs (NaN when undefined)."""
    t, p = _pairs(y_true, y_pred)
    if t.size < 2 or _constant(t) or _constant(p):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.kendalltau(t, p).statistic)


def spearman_rho(y_true: Any, y_pred: Any) -> float:
    """Spearman's rank correlation between truth and predictions over their finite pairs (NaN when undefined)."""
    t, p = _pairs(y_true, y_pred)
    if t.size < 2 or _constant(t) or _constant(p):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.spearmanr(t, p).statistic)


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error over the finite pairs (NaN when there are none)."""
    t, p = _pairs(y_true, y_pred)
    return float(np.mean(np.abs(t - p))) if t.size else math.nan


def top_k_count(n: int, frac: float) -> int:
    """How many items "the top ``frac``" of ``n`` means: ``ceil(frac · n)``, at least 1 (0 when ``n`` is 0)."""
    if not 0.0 < frac <= 1.0:
        raise ValueError(f"frac must be in (0, 1], got {frac!r}")
    return 0 if n == 0 else max(1, math.ceil(frac * n - 1e-9))


def precision_at_k(y_true: Any, y_pred: Any, frac: float = 0.1) -> float:
    """Fraction of the true top-``frac`` (``k = top_k_count(n, frac)`` items) that is also in the predicted
    top-``frac``.  Ties are broken by position (earlier rows rank higher) on both sides, deterministically."""
    t, p = _pairs(y_true, y_pred)
    k = top_k_count(t.size, frac)
    if k == 0:
        return math.nan
    top_true = np.argsort(-t, kind="stable")[:k]
    top_pred = np.argsort(-p, kind="stable")[:k]
    return float(np.intersect1d(top_true, top_pred).size / k)


def all_metrics(y_true: Any, y_pred: Any, frac: float = 0.1) -> dict[str, float]:
    """``{"kendall_tau", "spearman_rho", "mae", "precision_at_k", "n"}`` (``n``: finite pairs used)."""
    t, p = _pairs(y_true, y_pred)
    dropped = np.asarray(y_true).size - t.size
    if dropped:
        log.debug("metrics: %d non-finite pair(s) dropped", dropped)
    return {
        "kendall_tau": kendall_tau(t, p),
        "spearman_rho": spearman_rho(t, p),
        "mae": mae(t, p),
        "precision_at_k": precision_at_k(t, p, frac),
        "n": int(t.size),
    }
