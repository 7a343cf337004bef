"""An ensemble surrogate: the plain mean of several regressors, with their spread as an uncertainty estimate.

Architectures are featurised once by the ensemble (``features`` on ``task``) and every member is fitted on
the same feature matrix.  The default members are a random forest and an XGBoost regressor for each of
``n_seeds`` seeds (``random_state``, ``random_state + 1``, ...), all with the published defaults.  Unlike the
published ``BaggingEnsemble`` (spec §8.1 point 7) nothing claims to bag: members differ only by model and seed.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted, validate_data

from surrogates.tabular import CHECK_ROWS, FeaturesMixin, TabularSurrogate, clean_features, describe_training

log = logging.getLogger(__name__)


class EnsembleSurrogate(FeaturesMixin, RegressorMixin, BaseEstimator):
    """Mean of ``members`` (unfitted regressors; default: RF and XGB × ``n_seeds`` seeds).  ``predict_std``
    gives the standard deviation across members.  Members that are surrogates of this package get the
    feature names, so each can be saved and reloaded on its own as well.

    Fitted attributes: ``members_``, ``n_features_in_``, ``feature_names_``, ``featuriser_``, ``training_``,
    ``check_X_`` (as for ``TabularSurrogate``).
    """

    def __init__(self, members: Sequence[Any] | None = None, features: str = "graf,zcp", task: Any = None,
                 random_state: int = 0, n_seeds: int = 3, n_jobs: int | None = 1) -> None:
        self.members = members
        self.features = features
        self.task = task
        self.random_state = random_state
        self.n_seeds = n_seeds
        self.n_jobs = n_jobs

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def default_members(self) -> list[TabularSurrogate]:
        """RF and XGB (published defaults) for seeds ``random_state … random_state + n_seeds - 1``."""
        if not (isinstance(self.n_seeds, (int, np.integer)) and self.n_seeds >= 1):
            raise ValueError(f"EnsembleSurrogate: n_seeds must be a positive integer, got {self.n_seeds!r}")
        return [TabularSurrogate(model, self.features, self.task, random_state=self.random_state + i, n_jobs=self.n_jobs)
                for model in ("rf", "xgb") for i in range(int(self.n_seeds))]

    def fit(self, X: Any, y: Any, *, feature_names: Sequence[str] | None = None) -> "EnsembleSurrogate":
        """Fit every member on architectures or a feature matrix ``X`` and targets ``y``."""
        matrix, names, info, items = self._prepare_fit(X)
        source = "matrix" if items is None else "architectures"
        return self._fit_features(matrix, y, feature_names if names is None else names, info, source, items)

    def _fit_features(self, X: Any, y: Any, feature_names: Sequence[str] | None, info: list[dict[str, str]] | None,
                      source: str, items: Sequence[Any] | None = None) -> "EnsembleSurrogate":
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_all_finite=False, y_numeric=True)
        X = clean_features(X)
        y = np.asarray(y, dtype=np.float64)
        names = [f"x{i}" for i in range(X.shape[1])] if feature_names is None else [str(n) for n in feature_names]
        if len(names) != X.shape[1]:
            raise ValueError(f"EnsembleSurrogate.fit: {len(names)} feature names for {X.shape[1]} columns")
        specs = self.default_members() if self.members is None else list(self.members)
        if not specs:
            raise ValueError("EnsembleSurrogate: members is empty; pass at least one regressor or None for the defaults")
        members = []
        for i, spec in enumerate(specs):
            member = clone(spec)
            if isinstance(member, (TabularSurrogate, EnsembleSurrogate)):
                member._fit_features(X, y, names, info, source, items)
            else:
                member.fit(X, y)
            members.append(member)
            log.debug("EnsembleSurrogate: member %d (%s) fitted", i, type(member).__name__)
        self.members_ = members
        self.feature_names_ = np.asarray(names, dtype=object)
        self.featuriser_ = info
        self.training_ = describe_training(X, y, source, items)
        self.check_X_ = X[:CHECK_ROWS].copy()
        return self

    def _matrix(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "members_")
        X = validate_data(self, self._prepare_predict(X), reset=False, dtype=np.float64, ensure_all_finite=False)
        return clean_features(X)

    def predict_members(self, X: Any) -> np.ndarray:
        """Every member's predictions: an ``(n_members, n)`` float64 array."""
        X = self._matrix(X)
        return np.vstack([np.asarray(m.predict(X), dtype=np.float64).reshape(-1) for m in self.members_])

    def predict(self, X: Any) -> np.ndarray:
        """The members' mean prediction (1-D float64)."""
        return self.predict_members(X).mean(axis=0)

    def predict_std(self, X: Any) -> np.ndarray:
        """The standard deviation (ddof 0) of the members' predictions: their disagreement, as uncertainty."""
        return self.predict_members(X).std(axis=0)

