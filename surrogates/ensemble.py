"""An ensemble surrogate: the plain mean of several regressors, with their spread as an uncertainty estimate.

Architectures are featurised once by the ensemble (``features`` on ``task``) and every member is fitted on
the same feature matrix.  The default members are a random forest and an XGBoost regressor for each of
``n_seeds`` seeds (``random_state``, ``random_state + 1``, ...), all with the published defaults.  Members differ
only by model and seed: nothing is bagged.  Saved with every member in a folder of its own (``members/000``, ...).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from surrogates import folder
from surrogates.base import FeatureSurrogate, Loader, task_ref
from surrogates.folder import MANIFEST, PersistenceError
from surrogates.tabular import TabularSurrogate

log = logging.getLogger(__name__)


class EnsembleSurrogate(FeatureSurrogate):
    """Mean of ``members`` (unfitted regressors; default: RF and XGB × ``n_seeds`` seeds).  ``predict_std``
    gives the standard deviation across members.  Members that are surrogates of this package get the
    feature names, so each can be saved and reloaded on its own as well.

    Fitted attributes: ``members_`` and those of ``FeatureSurrogate``.
    """

    kind = "ensemble"
    _unsaved_params = ("members",)

    def __init__(self, members: Sequence[Any] | None = None, features: str | None = "graf,zcp", task: Any = None,
                 random_state: int = 0, n_seeds: int = 3, n_jobs: int | None = 1) -> None:
        self.members = members
        self.features = features
        self.task = task_ref(task, strict=False)
        self.random_state = random_state
        self.n_seeds = n_seeds
        self.n_jobs = n_jobs

    def default_members(self) -> list[TabularSurrogate]:
        """RF and XGB (published defaults) for seeds ``random_state … random_state + n_seeds - 1``."""
        if not (isinstance(self.n_seeds, (int, np.integer)) and self.n_seeds >= 1):
            raise ValueError(f"EnsembleSurrogate: n_seeds must be a positive integer, got {self.n_seeds!r}")
        return [TabularSurrogate(model, self.features, self.task, random_state=self.random_state + i, n_jobs=self.n_jobs)
                for model in ("rf", "xgb") for i in range(int(self.n_seeds))]

    def fit_matrix(self, X: Any, y: Any, feature_names: Sequence[str] | None = None, *,
                   featuriser_info: list[dict[str, str]] | None = None, source: str = "matrix",
                   archs: Sequence[Any] | None = None) -> "EnsembleSurrogate":
        """Fit every member on the feature matrix ``X`` (members that are feature surrogates get the names too)."""
        X, y, names = self._fit_input(X, y, feature_names)
        specs = self.default_members() if self.members is None else list(self.members)
        if not specs:
            raise ValueError("EnsembleSurrogate: members is empty; pass at least one regressor or None for the defaults")
        members = []
        for i, spec in enumerate(specs):
            member = clone(spec)
            if isinstance(member, FeatureSurrogate):
                member.fit_matrix(X, y, names, featuriser_info=featuriser_info, source=source, archs=archs)
            else:
                member.fit(X, y)
            members.append(member)
            log.debug("EnsembleSurrogate: member %d (%s) fitted", i, type(member).__name__)
        self.members_ = members
        self._set_fitted(X, y, names, featuriser_info, source, archs)
        return self

    def _matrix(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "members_")
        return self._predict_input(X)

    def _member_predictions(self, X: np.ndarray) -> np.ndarray:
        return np.vstack([np.asarray(m.predict_matrix(X) if isinstance(m, FeatureSurrogate) else m.predict(X),
                                     dtype=np.float64).reshape(-1) for m in self.members_])

    def predict_matrix(self, X: Any) -> np.ndarray:
        """The members' mean prediction (1-D float64) for a feature matrix."""
        return self._member_predictions(self._matrix(X)).mean(axis=0)

    def predict_members(self, archs: Any) -> np.ndarray:
        """Every member's predictions for architectures (a matrix with ``features=None``): ``(n_members, n)``."""
        check_is_fitted(self, "members_")
        X = archs if self.features is None else self._checked_features(list(archs))
        return self._member_predictions(self._matrix(X))

    def predict_std(self, archs: Any) -> np.ndarray:
        """The standard deviation (ddof 0) of the members' predictions: their disagreement, as uncertainty."""
        return self.predict_members(archs).std(axis=0)

    def _save_model(self, directory: Path) -> dict[str, Any]:
        members = []
        for i, member in enumerate(self.members_):
            sub = f"members/{i:03d}"
            if not callable(getattr(member, "save", None)):
                raise PersistenceError(f"ensemble member {i} ({type(member).__name__}) cannot be saved: not a surrogate")
            try:
                member.save(directory / sub)
            except PersistenceError as exc:
                raise PersistenceError(f"ensemble member {i} ({type(member).__name__}): {exc}") from None
            members.append({"path": sub, "class": folder.class_path(type(member))})
        return {"members": members}

    def _load_model(self, directory: Path, manifest: Mapping[str, Any], load: Loader | None) -> None:
        path = directory / MANIFEST
        entries = folder.field(manifest, "members", list, path)
        if not entries:
            raise PersistenceError(f"{path}: an ensemble with no members")
        if load is None:
            raise PersistenceError(f"{path}: loading an ensemble needs a loader for its members")
        members = []
        for i, entry in enumerate(entries):
            sub = entry.get("path") if isinstance(entry, dict) else entry
            members.append(load(folder.subfolder(directory, sub, path, f"member {i}"), task=self.task))
        self.members = [clone(m) for m in members]
        self.members_ = members
