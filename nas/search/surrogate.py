"""Surrogate-assisted evolution: a cheap model decides which children are worth training.

A surrogate is any object with scikit-learn style ``fit(archs, y)`` and ``predict(archs) -> 1-D float
array`` over lists of ``Architecture`` (higher = better).  Only its *ranks* are used, never its scale, so
a surrogate trained on another task or with another target normalisation works unchanged.

``SurrogateFilteredEvolution`` is aging evolution whose children pass a filter:

* ``mode="topk"`` (choose-from-sampled): at the start of a batch, ``n_candidates`` children of tournament
  winners are generated from the current population and scored; the best ``k`` by prediction (generation
  order on ties) are the next ``k`` asks, one per ask.
* ``mode="reject"``: the population's members are scored too; candidates are walked in generation order and
  one is kept only if it is predicted in the top ``quantile`` fraction of the population, i.e. at least the
  ``1 - quantile`` quantile of the population's predictions: ``quantile=0.3`` keeps candidates as good as the
  population's best 30 %, ``1`` keeps every candidate, and towards ``0`` only those matching its best (the
  published rule compared raw accuracies with predictions; this one compares predictions with predictions).
  The first ``k`` kept are the batch.  When fewer than ``k`` pass after ``max_rounds`` rounds of
  ``n_candidates``, the best-predicted rejected ones fill the batch (logged, flagged ``shortfall``).

Before ``start_after`` tells-worth of asks it is plain RE (``prefit=True``: the surrogate is already fitted,
e.g. a transfer surrogate, and filters from the first ask, the random initial population included; seeds
are always asked unfiltered).  With ``ground_truth_every = g`` every ``g``-th ask after the start is a plain
RE child.  Which asks start a batch is a function of the ask number only, and a batch is generated from the
population and surrogate as they were after the tells that preceded its first ask, so replaying a history
that ends inside a batch regenerates that batch exactly (given a deterministic ``fit``).

Refits are lazy: the model used for a batch is the one fitted on the told ``ok`` evaluations up to the
latest multiple of ``refit_every`` (and at least up to ``start_after``), deduplicated by architecture; it is
refitted only when that point moves.  ``fit_on="population"`` fits on the population's members instead
(the published BERT recipe).  Predictions are cached by architecture between refits.

``SurrogateObjective`` (surrogate as the objective) trains nothing during its search: it runs aging
evolution for ``steps`` mutations with the fitted surrogate's prediction as fitness, then its asks return
the ``top_k`` distinct architectures by prediction for real training, and then ``None`` (the run stops).
Predicted and true fitness are kept apart (``records``).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from nas.architecture import Architecture
from nas.grammar.core import Budget
from nas.search.base import Strategy, describe
from nas.search.evolution import RegularizedEvolution, mutate_or_sample, tournament_index

log = logging.getLogger(__name__)


def _check_surrogate(surrogate: Any) -> None:
    for name in ("fit", "predict"):
        if not callable(getattr(surrogate, name, None)):
            raise TypeError(f"the surrogate must have fit(archs, y) and predict(archs); {type(surrogate).__name__} "
                            f"has no {name}()")


def predict_scores(surrogate: Any, archs: Sequence[Architecture]) -> np.ndarray:
    """``surrogate.predict(archs)`` as a 1-D float array (``(n, 1)`` outputs are accepted); NaN and
    infinities become ``-inf`` so they rank last."""
    if not archs:
        return np.zeros(0)
    out = np.asarray(surrogate.predict(list(archs)), dtype=float)
    if out.ndim == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.shape != (len(archs),):
        raise ValueError(f"{type(surrogate).__name__}.predict returned shape {out.shape} for {len(archs)} "
                         "architectures; expected a 1-D array with one score each")
    return np.where(np.isfinite(out), out, -np.inf)


@dataclass
class Batch:
    """One filtered batch: the scored candidates and, in ask order, the indices of those asked."""

    start: int
    upto: int
    fit_point: int
    candidates: list[Architecture]
    predictions: np.ndarray
    chosen: list[int]
    threshold: float | None = None
    population_predictions: np.ndarray | None = None
    shortfall: int = 0
    seconds: float = 0.0

    @property
    def proposed(self) -> int:
        return len(self.candidates)


class SurrogateFilteredEvolution(RegularizedEvolution):
    """Regularised evolution whose children are chosen by a surrogate (see the module docstring)."""

    def __init__(
        self,
        sampler,
        seed: int,
        surrogate: Any,
        mode: str = "topk",
        n_candidates: int = 20,
        k: int = 5,
        quantile: float = 0.5,
        start_after: int = 100,
        refit_every: int = 20,
        ground_truth_every: int | None = None,
        prefit: bool = False,
        refit: bool = True,
        fit_on: str = "history",
        max_rounds: int = 5,
        population_size: int = 100,
        tournament_size: int = 10,
        seeds: Any = None,
        budget: Budget | None = None,
        max_mutation_tries: int = 100,
    ) -> None:
        super().__init__(sampler, seed, population_size, tournament_size, seeds, budget, max_mutation_tries)
        _check_surrogate(surrogate)
        if mode not in ("topk", "reject"):
            raise ValueError(f"mode must be 'topk' or 'reject', got {mode!r}")
        if not 1 <= k <= n_candidates:
            raise ValueError(f"need 1 <= k <= n_candidates, got k={k}, n_candidates={n_candidates}")
        if not 0.0 <= quantile <= 1.0:
            raise ValueError(f"quantile must lie in [0, 1], got {quantile}")
        if refit_every < 1 or start_after < 0 or max_rounds < 1:
            raise ValueError("refit_every and max_rounds must be positive and start_after non-negative")
        if ground_truth_every is not None and ground_truth_every < 2:
            raise ValueError(f"ground_truth_every must be None or at least 2, got {ground_truth_every}")
        if not prefit and not refit:
            raise ValueError(
                "a surrogate that is neither pre-fitted (prefit=True) nor refitted (refit=True) is never fitted"
            )
        if fit_on not in ("history", "population"):
            raise ValueError(f"fit_on must be 'history' or 'population', got {fit_on!r}")
        self.surrogate = surrogate
        self.mode = mode
        self.n_candidates = int(n_candidates)
        self.k = int(k)
        self.quantile = float(quantile)
        self.start_after = int(start_after)
        self.refit_every = int(refit_every)
        self.ground_truth_every = ground_truth_every
        self.prefit = bool(prefit)
        self.refit = bool(refit)
        self.fit_on = fit_on
        self.max_rounds = int(max_rounds)
        self.start = len(self.seeds) if self.prefit else max(self.start_after, len(self.seeds))
        #: Batches generated by this instance, in order (for inspection and tests).
        self.batches: list[Batch] = []
        self.num_fits = 0
        self.surrogate_seconds = 0.0
        self._batch: Batch | None = None
        self._fitted_at: int | None = None
        self._cache: dict[str, float] = {}
        self._warned_unfit = False

    # -- schedule --------------------------------------------------------------------------------

    def slot(self, step: int) -> tuple[int, int] | None:
        """``(first ask of the batch, position in it)`` for a filtered ask, ``None`` for a plain one."""
        if step < self.start:
            return None
        j = step - self.start
        g = self.ground_truth_every
        if g:
            if j % g == g - 1:
                return None
            m = j - j // g
        else:
            m = j
        batch, pos = divmod(m, self.k)
        m0 = batch * self.k
        j0 = m0 + (m0 // (g - 1) if g else 0)
        return self.start + j0, pos

    def _ask(self, step: int) -> tuple[Architecture | None, dict[str, Any]]:
        if step < len(self.seeds):
            return self.seeds[step], {"kind": "seed", "proposed": 1}
        slot = self.slot(step)
        batch = self._get_batch(slot[0]) if slot is not None else None
        if batch is None or slot[1] >= len(batch.chosen):
            arch, kind = self.propose(step, self.rng(step), self.population())
            return arch, {"kind": kind if step < self.start else "plain", "proposed": 1}
        start, pos = slot
        i = batch.chosen[pos]
        info: dict[str, Any] = {
            "kind": "filtered", "batch": start, "position": pos, "predicted": float(batch.predictions[i]),
            "proposed": batch.proposed if step == start else 0,
        }
        if batch.threshold is not None:
            info["threshold"] = batch.threshold
            info["shortfall"] = pos >= len(batch.chosen) - batch.shortfall
        return batch.candidates[i], info

    # -- surrogate -------------------------------------------------------------------------------

    def fit_point(self, upto: int) -> int:
        """How many tells the surrogate used for a batch generated after ``upto`` tells is fitted on
        (0: the pre-fitted model as given)."""
        if not self.refit:
            return 0
        point = (upto // self.refit_every) * self.refit_every
        if not self.prefit:
            point = max(point, min(upto, self.start_after))
        return point

    def _ensure_fit(self, upto: int) -> bool:
        point = self.fit_point(upto)
        if point == self._fitted_at or (point == 0 and self.prefit):
            return True
        if self.fit_on == "population":
            members = [m for m in self.population(point) if m.evaluation.ok]
        else:
            members = [m for m in self.history[:point] if m.evaluation.ok]
        archs, y, seen = [], [], set()
        for m in members:
            if m.arch.hash not in seen and math.isfinite(m.fitness):
                seen.add(m.arch.hash)
                archs.append(m.arch)
                y.append(m.fitness)
        if not archs:
            if not self._warned_unfit and not self.prefit:
                log.warning("no successful evaluation to fit the surrogate on yet; plain RE until there is one")
                self._warned_unfit = True
            return self.prefit or self._fitted_at is not None
        t0 = time.perf_counter()
        self.surrogate.fit(archs, np.asarray(y, dtype=float))
        self.surrogate_seconds += time.perf_counter() - t0
        log.debug("surrogate fitted on %d architectures (first %d tells)", len(archs), point)
        self._fitted_at = point
        self._cache.clear()
        self.num_fits += 1
        return True

    def predict(self, archs: Sequence[Architecture]) -> np.ndarray:
        """Surrogate scores of ``archs`` (cached by architecture until the next refit)."""
        missing: dict[str, Architecture] = {}
        for a in archs:
            if a.hash not in self._cache:
                missing.setdefault(a.hash, a)
        if missing:
            t0 = time.perf_counter()
            scores = predict_scores(self.surrogate, list(missing.values()))
            self.surrogate_seconds += time.perf_counter() - t0
            self._cache.update(zip(missing, map(float, scores)))
        return np.array([self._cache[a.hash] for a in archs], dtype=float)

    # -- batches ---------------------------------------------------------------------------------

    def reject_threshold(self, population_predictions: np.ndarray) -> float:
        """Reject mode's bar: the ``1 - quantile`` quantile of the population's predictions, so candidates at or
        above it are predicted in the population's top ``quantile`` fraction; ``-inf`` (keep all) when
        ``quantile`` is 1 or the population is empty."""
        if self.quantile >= 1.0 or not len(population_predictions):
            return -math.inf
        return float(np.quantile(population_predictions, 1.0 - self.quantile))

    def _get_batch(self, start: int) -> Batch | None:
        if self._batch is not None and self._batch.start == start:
            return self._batch
        upto = min(start, len(self.history))
        if not self._ensure_fit(upto):
            return None
        t0 = time.perf_counter()
        population = self.population(upto)
        rng = self.rng(start)

        def candidates() -> list[Architecture]:
            return [self.propose(start, rng, population)[0] for _ in range(self.n_candidates)]

        # Architectures already told (or twice in one batch) would only be looked up, spending a step on a
        # known result: the filter passes them over while new candidates remain.
        known = {m.arch.hash for m in self.history[:upto]}

        def fresh(arch: Architecture, taken: set[str]) -> bool:
            return arch.hash not in known and arch.hash not in taken

        if self.mode == "topk":
            cands = candidates()
            preds = self.predict(cands)
            order = [int(i) for i in np.argsort(-preds, kind="stable")]
            chosen, taken = [], set()
            for i in order:
                if len(chosen) < self.k and fresh(cands[i], taken):
                    chosen.append(i)
                    taken.add(cands[i].hash)
            chosen += [i for i in order if i not in chosen][: self.k - len(chosen)]
            batch = Batch(start, upto, self._fitted_at or 0, cands, preds, chosen)
        else:
            pop_preds = self.predict([m.arch for m in population])
            threshold = self.reject_threshold(pop_preds)
            cands, pred_list, chosen, taken = [], [], [], set()
            for _ in range(self.max_rounds):
                new = candidates()
                for arch, p in zip(new, self.predict(new)):
                    if p >= threshold and len(chosen) < self.k and fresh(arch, taken):
                        chosen.append(len(cands))
                        taken.add(arch.hash)
                    cands.append(arch)
                    pred_list.append(float(p))
                if len(chosen) >= self.k:
                    break
            preds = np.asarray(pred_list, dtype=float)
            shortfall = self.k - len(chosen)
            if shortfall:
                log.info("reject filter: only %d of %d candidates are predicted in the population's top %.2f "
                         "after %d rounds; training the best-predicted rejected ones",
                         len(chosen), len(cands), self.quantile, self.max_rounds)
                taken = set(chosen)
                rest = [int(i) for i in np.argsort(-preds, kind="stable") if int(i) not in taken]
                chosen += rest[:shortfall]
            batch = Batch(start, upto, self._fitted_at or 0, cands, preds, chosen, threshold, pop_preds, shortfall)
        batch.seconds = time.perf_counter() - t0
        self._batch = batch
        self.batches.append(batch)
        return batch

    def config(self) -> dict[str, Any]:
        return super().config() | {
            "mode": self.mode, "n_candidates": self.n_candidates, "k": self.k, "quantile": self.quantile,
            "start_after": self.start_after, "refit_every": self.refit_every,
            "ground_truth_every": self.ground_truth_every, "prefit": self.prefit, "refit": self.refit,
            "fit_on": self.fit_on, "max_rounds": self.max_rounds, "surrogate": describe(self.surrogate),
        }


@dataclass(frozen=True)
class Scored:
    """An architecture the objective search scored: its prediction and the inner step that first saw it."""

    arch: Architecture
    predicted: float
    first_step: int


class SurrogateObjective(Strategy):
    """Aging evolution with the surrogate's prediction as the fitness (no training), then the ``top_k``
    distinct architectures by prediction are asked for real training, then ``ask`` returns ``None``.

    The inner search runs on the first ask: ``population_size`` random samples (sample ``i`` from
    ``default_rng([seed, i])``), then ``steps`` tournament-and-mutate steps (step ``s`` from
    ``default_rng([seed, population_size + s])``).  The surrogate must already be fitted (e.g. on an
    archive of other tasks); it is never refitted."""

    def __init__(
        self,
        sampler,
        seed: int,
        surrogate: Any,
        population_size: int = 100,
        tournament_size: int = 10,
        steps: int = 1000,
        top_k: int = 5,
        budget: Budget | None = None,
        max_mutation_tries: int = 100,
        progress: bool = False,
    ) -> None:
        super().__init__(sampler, seed)
        _check_surrogate(surrogate)
        if population_size < 1 or tournament_size < 1 or steps < 0 or top_k < 1:
            raise ValueError("population_size, tournament_size and top_k must be positive and steps non-negative")
        self.surrogate = surrogate
        self.population_size = int(population_size)
        self.tournament_size = int(tournament_size)
        self.steps = int(steps)
        self.top_k = int(top_k)
        self.budget = budget if budget is not None else sampler.budget
        self.max_mutation_tries = int(max_mutation_tries)
        self.progress = progress
        #: Every architecture the inner search scored, by hash.
        self.scored: dict[str, Scored] = {}
        #: The architectures to train, best prediction first (after the first ask).
        self.ranked: list[Scored] | None = None
        self.surrogate_seconds = 0.0

    def _predict(self, archs: Sequence[Architecture]) -> np.ndarray:
        t0 = time.perf_counter()
        out = predict_scores(self.surrogate, archs)
        self.surrogate_seconds += time.perf_counter() - t0
        return out

    def _score(self, archs: Sequence[Architecture], step: int) -> list[float]:
        missing = {a.hash: a for a in archs if a.hash not in self.scored}
        if missing:
            for arch, p in zip(missing.values(), self._predict(list(missing.values()))):
                self.scored[arch.hash] = Scored(arch, float(p), step)
        return [self.scored[a.hash].predicted for a in archs]

    def search(self) -> list[Scored]:
        """Run the inner, prediction-only evolution (once) and return the architectures to train."""
        if self.ranked is not None:
            return self.ranked
        size = self.population_size
        init = [self.sampler.sample(self.rng(i)) for i in range(size)]
        population: deque[tuple[Architecture, float]] = deque(zip(init, self._score(init, 0)))
        for s in tqdm(range(self.steps), desc="surrogate objective", unit="step", disable=not self.progress or None):
            rng = self.rng(size + s)
            members = list(population)
            parent = members[tournament_index([p for _, p in members], self.tournament_size, rng)][0]
            child = mutate_or_sample(parent, rng, self.sampler, self.budget, self.max_mutation_tries)
            population.append((child, self._score([child], s + 1)[0]))
            if len(population) > size:
                population.popleft()
        order = sorted(self.scored.values(), key=lambda r: (-r.predicted, r.first_step))
        self.ranked = order[: self.top_k]
        log.info("surrogate objective: scored %d distinct architectures in %d steps; best prediction %.4g",
                 len(self.scored), self.steps, self.ranked[0].predicted if self.ranked else float("nan"))
        return self.ranked

    def _ask(self, step: int) -> tuple[Architecture | None, dict[str, Any]]:
        ranked = self.search()
        if step >= len(ranked):
            return None, {"kind": "stop", "proposed": 0}
        chosen = ranked[step]
        proposed = self.population_size + self.steps if step == 0 else 0
        return chosen.arch, {"kind": "objective", "rank": step, "predicted": chosen.predicted, "proposed": proposed}

    @property
    def records(self) -> list[dict[str, Any]]:
        """The chosen architectures with their predicted and (once told) true fitness, in rank order."""
        told = {m.arch.hash: m.evaluation for m in self.history}
        out = []
        for rank, r in enumerate(self.search()):
            ev = told.get(r.arch.hash)
            out.append({"rank": rank, "hash": r.arch.hash, "arch": r.arch.to_string(), "predicted": r.predicted,
                        "val_acc": None if ev is None or not ev.ok else ev.val_acc,
                        "status": None if ev is None else ev.status})
        return out

    def config(self) -> dict[str, Any]:
        return super().config() | {
            "population_size": self.population_size, "tournament_size": self.tournament_size, "steps": self.steps,
            "top_k": self.top_k, "budget": describe(self.budget), "max_mutation_tries": self.max_mutation_tries,
            "surrogate": describe(self.surrogate),
        }
