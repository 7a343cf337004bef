import math

import numpy as np
import pytest

from surrogates.metrics import all_metrics, kendall_tau, mae, precision_at_k, spearman_rho, top_k_count


def test_kendall_tau_by_hand():
    # pairs of (1,2,3,4) vs (1,3,2,4): 6 pairs, 5 concordant, 1 discordant -> (5 - 1) / 6
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_spearman_by_hand():
    # ranks differ by d = (0, 1, -1, 0): rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman_rho([1, 2, 3, 4], [10, 30, 20, 40]) == pytest.approx(0.8)


def test_mae_by_hand():
    assert mae([1.0, 2.0, 3.0], [1.5, 2.0, 1.0]) == pytest.approx((0.5 + 0 + 2) / 3)


def test_precision_at_k_by_hand():
    y = np.arange(20, dtype=float)  # true top 10 % = rows 18, 19
    pred = y.copy()
    pred[19] = -1.0  # the best network predicted worst: half of the top two found
    assert top_k_count(20, 0.1) == 2
    assert precision_at_k(y, pred) == pytest.approx(0.5)
    assert precision_at_k(y, y) == 1.0
    assert precision_at_k(y, -y) == 0.0
    assert precision_at_k(y, pred, frac=0.25) == pytest.approx(4 / 5)  # top 5: rows 15..19 vs 14..18
    assert top_k_count(15, 0.1) == 2 and top_k_count(3, 0.1) == 1 and top_k_count(0, 0.1) == 0
    with pytest.raises(ValueError, match="frac"):
        precision_at_k(y, y, frac=0.0)


def test_non_finite_pairs_are_dropped():
    t = [1, 2, np.nan, 3, 4, 5]
    p = [1, 3, 7, 2, np.inf, 4]
    # left: (1,2,3,5) vs (1,3,2,4): one discordant pair out of six
    assert kendall_tau(t, p) == pytest.approx(4 / 6)
    m = all_metrics(t, p)
    assert m["n"] == 4
    assert m["mae"] == pytest.approx((0 + 1 + 1 + 1) / 4)
    assert set(m) == {"kendall_tau", "spearman_rho", "mae", "precision_at_k", "n"}


def test_undefined_is_nan_not_error():
    assert math.isnan(kendall_tau([1.0], [2.0]))
    assert math.isnan(spearman_rho([1, 1, 1], [1, 2, 3]))  # constant truth
    assert math.isnan(kendall_tau([1, 2, 3], [5, 5, 5]))  # constant prediction
    assert math.isnan(mae([np.nan], [1.0]))
    assert math.isnan(precision_at_k([], []))
    with pytest.raises(ValueError, match="3 values but y_pred has 2"):
        kendall_tau([1, 2, 3], [1, 2])
