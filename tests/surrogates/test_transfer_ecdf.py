"""``ecdf`` target normalisation (the published percentile: fraction of the block's values ≤ y), with ties."""

import numpy as np
import pytest

from nas.cli import main
from surrogates.transfer import NORMALISATIONS, TransferSurrogate, normalise_targets


def test_ecdf_by_hand_with_ties():
    y = [0.2, 0.4, 0.4, 0.8, np.nan, 0.4]
    # sorted finite values 0.2, 0.4, 0.4, 0.4, 0.8: ≤ 0.2 → 1/5, ≤ 0.4 → 4/5, ≤ 0.8 → 5/5
    got = normalise_targets(y, "ecdf")
    np.testing.assert_allclose(got[[0, 1, 2, 3, 5]], [0.2, 0.8, 0.8, 1.0, 0.8])
    assert np.isnan(got[4])
    # percentile averages the tied ranks 2, 3, 4 instead: 3/5
    np.testing.assert_allclose(normalise_targets(y, "percentile")[[1, 2, 5]], [0.6, 0.6, 0.6])
    np.testing.assert_allclose(normalise_targets([0.5, 0.5, 0.5], "ecdf"), [1.0, 1.0, 1.0])
    assert normalise_targets([], "ecdf").shape == (0,)
    assert "ecdf" in NORMALISATIONS


def test_ecdf_without_ties_equals_percentile():
    y = np.random.default_rng(0).random(50)
    np.testing.assert_allclose(normalise_targets(y, "ecdf"), normalise_targets(y, "percentile"))


def test_transfer_surrogate_fits_on_ecdf_targets():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = np.round(X[:, 0], 1)  # ties
    model = TransferSurrogate(base="rf", normalisation="ecdf", features=None, random_state=0).fit_matrix(X, y)
    pred = model.predict_matrix(X)
    assert pred.shape == (40,) and 0 < pred.min() and pred.max() <= 1


def test_cli_accepts_normalise_ecdf(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["surrogate", "fit", "--help"])
    assert exc.value.code == 0
    assert "ecdf" in capsys.readouterr().out
