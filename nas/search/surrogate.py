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

Two-stage filtering (``prefilter``, ``shortlist``; top-k mode): a cheap surrogate (e.g. a forest on GRAF
features, about a millisecond per candidate) scores all ``n_candidates`` and keeps the ``shortlist`` best
(fresh architectures first); only those are scored by ``surrogate`` (e.g. one that also needs the zero-cost
proxies, about a second per candidate), which picks the ``k``.  Both are fitted on the same evaluations.
Every second spent in the surrogates (featurising, fitting, predicting) is recorded per ask as
``surrogate_seconds`` in the ask's info, so a run's summary splits the surrogate's time from training.

Before ``start_after`` tells-worth of asks it is plain RE (``prefit=True``: the surrogate is already fitted,
e.g. a transfer surrogate, and filters from the first ask, the random initial population included; seeds
are always asked unfiltered).  ``initial_candidates = n`` (pre-fitted surrogates only) makes the initial
population one batch: the best-predicted fresh ``population_size - len(seeds)`` of ``n`` random samples (top-k in
either mode), so a transfer surrogate picks the whole first generation from a wide pool instead of ``k`` of
``n_candidates`` at a time.  With ``ground_truth_every = g`` every ``g``-th ask after the start (after the
initial batch, if any) is a plain RE child.  Which asks start a batch is a function of the ask number only, and a
batch is generated from the population and surrogate as they were after the tells that preceded its first ask, so
replaying a history that ends inside a batch regenerates that batch exactly (given a deterministic ``fit``).

Refits are lazy: the model used for a batch is the one fitted on the told ``ok`` evaluations up to the
latest multiple of ``refit_every`` (and at least up to ``start_after``), deduplicated by architecture; it is
refitted only when that point moves.  ``fit_on="population"`` fits on the population's members instead
(the published BERT recipe).  Predictions are cached by architecture between refits.

``SurrogateObjective`` (surrogate as the objective) trains nothing during its inner search, aging evolution
with the surrogate's prediction as the fitness of every child, and then asks for the few architectures it
chose to be trained, then ``None`` (the run stops).  Two protocols: ``topk`` (the default) starts from a
population scored by the surrogate, runs 1,000 steps and trains the ``top_k`` predictions; ``published`` (the
surrogate-as-objective branch of the transferable-surrogates code) trains a real first generation, runs 200
predicted steps from it and trains every architecture on the running-best trajectory of the predictions.
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


def _check_shortlist(prefilter: Any, shortlist: int | None, mode: str, k: int, n_candidates: int,
                     prefit: bool) -> None:
    if prefilter is None and shortlist is None:
        return
    if prefilter is None or shortlist is None:
        raise ValueError("two-stage filtering needs both a prefilter and a shortlist size")
    _check_surrogate(prefilter)
    if mode != "topk":
        raise ValueError(f"two-stage filtering works in mode 'topk', not {mode!r}")
    if not k <= shortlist <= n_candidates:
        raise ValueError(f"need k <= shortlist <= n_candidates, got k={k}, shortlist={shortlist}, "
                         f"n_candidates={n_candidates}")
    if prefit:
        raise ValueError("two-stage filtering fits its prefilter during the run; it cannot be combined with a "
                         "pre-fitted surrogate")


def _check_initial(initial_candidates: int | None, prefit: bool, to_fill: int) -> None:
    """An initial pool (``initial_candidates``, ``nas search --initial-pool``) needs a surrogate that can rank the
    first samples, and enough samples to fill the population.  Not used by default: on the einspace benchmark a
    pool of 10 x the population reached plain RE's best no sooner (``experiments/results/search_einspace``)."""
    if initial_candidates is None:
        return
    if not prefit:
        raise ValueError("an initial pool is chosen by prediction before anything is trained, so it needs a "
                         "pre-fitted surrogate (transfer or a saved folder)")
    if initial_candidates < max(to_fill, 1):
        raise ValueError(f"an initial pool of {initial_candidates} cannot fill the {to_fill} initial members")


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


def best_fresh(scores: np.ndarray, cands: Sequence[Architecture], fresh: Any, n: int) -> list[int]:
    """Indices of the ``n`` best-scored candidates (generation order on ties), distinct fresh architectures
    first (``fresh(arch, taken)``), then the best of the rest."""
    order = [int(i) for i in np.argsort(-scores, kind="stable")]
    chosen: list[int] = []
    taken: set[str] = set()
    for i in order:
        if len(chosen) < n and fresh(cands[i], taken):
            chosen.append(i)
            taken.add(cands[i].hash)
    return chosen + [i for i in order if i not in chosen][: n - len(chosen)]


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
    #: Two-stage filtering: the prefilter's scores of every candidate and the indices it shortlisted (the only
    #: candidates ``surrogate`` scored; the others have prediction ``-inf``).
    prescores: np.ndarray | None = None
    shortlist: list[int] | None = None

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
        prefilter: Any = None,
        shortlist: int | None = None,
        initial_candidates: int | None = None,
    ) -> None:
        super().__init__(sampler, seed, population_size, tournament_size, seeds, budget, max_mutation_tries)
        _check_surrogate(surrogate)
        _check_shortlist(prefilter, shortlist, mode, k, n_candidates, prefit)
        _check_initial(initial_candidates, prefit, population_size - len(self.seeds))
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
        self.prefilter = prefilter
        self.shortlist = None if shortlist is None else int(shortlist)
        self.start = len(self.seeds) if self.prefit else max(self.start_after, len(self.seeds))
        self.initial_candidates = None if initial_candidates is None else int(initial_candidates)
        #: First ask after the initial batch (``initial_candidates``): the one batch that fills the population.
        self.initial_end = population_size if self.initial_candidates and self.start < population_size else self.start
        #: Batches generated by this instance, in order (for inspection and tests).
        self.batches: list[Batch] = []
        self.num_fits = 0
        self.surrogate_seconds = 0.0
        self._batch: Batch | None = None
        self._fitted_at: int | None = None
        self._cache: dict[str, float] = {}
        self._pre_cache: dict[str, float] = {}
        self._warned_unfit = False

    # -- schedule --------------------------------------------------------------------------------

    def slot(self, step: int) -> tuple[int, int] | None:
        """``(first ask of the batch, position in it)`` for a filtered ask, ``None`` for a plain one."""
        if step < self.start:
            return None
        if step < self.initial_end:
            return self.start, step - self.start
        j = step - self.initial_end
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
        return self.initial_end + j0, pos

    def _ask(self, step: int) -> tuple[Architecture | None, dict[str, Any]]:
        before = self.surrogate_seconds
        arch, info = self._ask_filtered(step)
        if self.surrogate_seconds > before:
            info["surrogate_seconds"] = round(self.surrogate_seconds - before, 6)
        return arch, info

    def _ask_filtered(self, step: int) -> tuple[Architecture | None, dict[str, Any]]:
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
        if step == start:  # the batch's rejected candidates, once, so reports can show what was turned down
            chosen = set(batch.chosen)
            info["rejected"] = [{"hash": c.hash, "predicted": float(batch.predictions[j])}
                                for j, c in enumerate(batch.candidates)
                                if j not in chosen and np.isfinite(batch.predictions[j])]
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
        if self.prefilter is not None:
            self.prefilter.fit(archs, np.asarray(y, dtype=float))
        self.surrogate_seconds += time.perf_counter() - t0
        log.debug("surrogate fitted on %d architectures (first %d tells)", len(archs), point)
        self._fitted_at = point
        self._cache.clear()
        self._pre_cache.clear()
        self.num_fits += 1
        return True

    def predict(self, archs: Sequence[Architecture]) -> np.ndarray:
        """Surrogate scores of ``archs`` (cached by architecture until the next refit)."""
        return self._scores(self.surrogate, self._cache, archs)

    def prescore(self, archs: Sequence[Architecture]) -> np.ndarray:
        """The prefilter's scores of ``archs`` (cached by architecture until the next refit)."""
        return self._scores(self.prefilter, self._pre_cache, archs)

    def _scores(self, model: Any, cache: dict[str, float], archs: Sequence[Architecture]) -> np.ndarray:
        missing: dict[str, Architecture] = {}
        for a in archs:
            if a.hash not in cache:
                missing.setdefault(a.hash, a)
        if missing:
            t0 = time.perf_counter()
            scores = predict_scores(model, list(missing.values()))
            self.surrogate_seconds += time.perf_counter() - t0
            cache.update(zip(missing, map(float, scores)))
        return np.array([cache[a.hash] for a in archs], dtype=float)

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
        initial = start < self.initial_end
        n, k = (self.initial_candidates, self.initial_end - start) if initial else (self.n_candidates, self.k)

        def candidates() -> list[Architecture]:
            return [self.propose(start, rng, population)[0] for _ in range(n)]

        # Architectures already told (or twice in one batch) would only be looked up, spending a step on a
        # known result: the filter passes them over while new candidates remain.
        known = {m.arch.hash for m in self.history[:upto]}

        def fresh(arch: Architecture, taken: set[str]) -> bool:
            return arch.hash not in known and arch.hash not in taken

        if self.mode == "topk" or initial:
            cands = candidates()
            prescores, short = None, None
            if self.prefilter is None:
                preds = self.predict(cands)
            else:
                prescores = self.prescore(cands)
                short = best_fresh(prescores, cands, fresh, self.shortlist)
                preds = np.full(len(cands), -np.inf)
                preds[short] = self.predict([cands[i] for i in short])
            chosen = best_fresh(preds, cands, fresh, k)
            batch = Batch(start, upto, self._fitted_at or 0, cands, preds, chosen, prescores=prescores,
                          shortlist=short)
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
        } | ({} if self.prefilter is None else {"prefilter": describe(self.prefilter), "shortlist": self.shortlist}) \
          | ({} if self.initial_candidates is None else {"initial_candidates": self.initial_candidates})


@dataclass(frozen=True)
class Scored:
    """An architecture the objective search scored: its prediction and the inner step that first saw it."""

    arch: Architecture
    predicted: float
    first_step: int


#: ``SurrogateObjective`` protocols; the first is the default (on the NB201 table top-k found better
#: architectures than the published protocol on 5 of 10 paired seeds and worse on none:
#: experiments/results/objective_protocols.md).
OBJECTIVE_PROTOCOLS = ("topk", "published")
#: Inner steps per protocol when ``steps`` is not given.
OBJECTIVE_STEPS = {"published": 200, "topk": 1000}


def running_best_trajectory(scores: Sequence[float], threshold: float) -> list[int]:
    """Indices of the children to train under the published rule: walking ``scores`` in order with the best so
    far starting at -1, a score above the best by more than ``threshold`` is appended, one above it by less
    replaces the last appended; either way it becomes the best."""
    chosen: list[int] = []
    best = -1.0
    for i, p in enumerate(scores):
        if not p > best:
            continue
        if p > best + threshold or not chosen:
            chosen.append(i)
        else:
            chosen[-1] = i
        best = p
    return chosen


class SurrogateObjective(Strategy):
    """Aging evolution with the surrogate's prediction as the fitness, then real training of what it chose.

    ``protocol="published"``: the first ``population_size`` asks are random samples (ask ``i`` from
    ``default_rng([seed, i])``, the same as regularised evolution's), trained for real: the first generation.
    At the next ask the inner search starts from the first generation's told results with their true fitness
    (a surrogate that is not ``prefit`` is fitted on them first) and runs ``steps`` (default 200)
    tournament-and-mutate steps (step ``s`` from ``default_rng([seed, population_size, s])``), each child
    scored by prediction, so tournaments mix true and predicted fitness until aging has replaced the first
    generation.  The children on the running-best trajectory of their predictions (``threshold`` 0.005, in
    the surrogate's units: ``running_best_trajectory``) are then asked, distinct ones in order, and the run's
    best by validation accuracy is the result.  Asked while fewer than ``population_size`` results are told
    (several workers), the inner search starts from those told.

    ``protocol="topk"``: the inner search runs on the first ask: ``population_size`` random samples scored by
    prediction, then ``steps`` (default 1,000) steps (step ``s`` from ``default_rng([seed, population_size +
    s])``); the ``top_k`` distinct architectures by prediction are asked.  The surrogate must be ``prefit``.
    The surrogate is never refitted during the inner search."""

    def __init__(
        self,
        sampler,
        seed: int,
        surrogate: Any,
        population_size: int = 100,
        tournament_size: int = 10,
        steps: int | None = None,
        top_k: int = 5,
        budget: Budget | None = None,
        max_mutation_tries: int = 100,
        progress: bool = False,
        protocol: str = "topk",
        threshold: float = 0.005,
        prefit: bool = True,
    ) -> None:
        super().__init__(sampler, seed)
        _check_surrogate(surrogate)
        if protocol not in OBJECTIVE_PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(OBJECTIVE_PROTOCOLS)}, got {protocol!r}")
        steps = OBJECTIVE_STEPS[protocol] if steps is None else steps
        if population_size < 1 or tournament_size < 1 or steps < 0 or top_k < 1:
            raise ValueError("population_size, tournament_size and top_k must be positive and steps non-negative")
        if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold >= 0):
            raise ValueError(f"threshold must be a non-negative number, got {threshold!r}")
        if protocol == "topk" and not prefit:
            raise ValueError("the topk objective protocol needs a fitted surrogate (prefit=True)")
        self.surrogate = surrogate
        self.protocol = protocol
        self.population_size = int(population_size)
        self.tournament_size = int(tournament_size)
        self.steps = int(steps)
        self.top_k = int(top_k)
        self.threshold = float(threshold)
        self.prefit = bool(prefit)
        self.budget = budget if budget is not None else sampler.budget
        self.max_mutation_tries = int(max_mutation_tries)
        self.progress = progress
        #: Every architecture the inner search scored, by hash.
        self.scored: dict[str, Scored] = {}
        #: The architectures to train, in ask order (after the inner search).
        self.ranked: list[Scored] | None = None
        #: ``published``: the inner search's children and their predictions, in step order.
        self.children: list[Scored] = []
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

    def _evolve(self, population: deque, rng_of: Any) -> None:
        """``steps`` tournament-and-mutate steps on ``population`` (``(arch, fitness)`` pairs, aged FIFO), each
        child scored by prediction and kept in ``children``; step ``s`` draws from ``rng_of(s)``."""
        size = self.population_size
        for s in tqdm(range(self.steps), desc="surrogate objective", unit="step", disable=not self.progress or None):
            rng = rng_of(s)
            members = list(population)
            parent = members[tournament_index([p for _, p in members], self.tournament_size, rng)][0]
            child = mutate_or_sample(parent, rng, self.sampler, self.budget, self.max_mutation_tries)
            predicted = self._score([child], s + 1)[0]
            self.children.append(Scored(child, predicted, s + 1))
            population.append((child, predicted))
            if len(population) > size:
                population.popleft()

    def _fit_first_generation(self, members: Sequence[Any]) -> None:
        archs, y, seen = [], [], set()
        for m in members:
            if m.evaluation.ok and math.isfinite(m.fitness) and m.arch.hash not in seen:
                seen.add(m.arch.hash)
                archs.append(m.arch)
                y.append(m.fitness)
        if not archs:
            raise RuntimeError("surrogate as objective: no successful evaluation in the first generation to fit "
                               "the surrogate on")
        t0 = time.perf_counter()
        self.surrogate.fit(archs, np.asarray(y, dtype=float))
        self.surrogate_seconds += time.perf_counter() - t0

    def search(self) -> list[Scored]:
        """Run the inner, prediction-only evolution (once) and return the architectures to train, in order."""
        if self.ranked is not None:
            return self.ranked
        size = self.population_size
        if self.protocol == "published":
            members = self.history[: min(size, len(self.history))]
            if not self.prefit:
                self._fit_first_generation(members)
            population: deque = deque((m.arch, m.fitness) for m in members)
            if not population:
                raise RuntimeError("surrogate as objective: the inner search started before any first-generation "
                                   "result was told")
            self._evolve(population, lambda s: self.rng(size, s))
            picked = running_best_trajectory([c.predicted for c in self.children], self.threshold)
            ranked, seen = [], set()
            for i in picked:
                c = self.children[i]
                if c.arch.hash not in seen:
                    seen.add(c.arch.hash)
                    ranked.append(c)
            self.ranked = ranked
        else:
            init = [self.sampler.sample(self.rng(i)) for i in range(size)]
            self._evolve(deque(zip(init, self._score(init, 0))), lambda s: self.rng(size + s))
            order = sorted(self.scored.values(), key=lambda r: (-r.predicted, r.first_step))
            self.ranked = order[: self.top_k]
        log.info("surrogate objective (%s): scored %d distinct architectures in %d steps; %d to train, best "
                 "prediction %.4g", self.protocol, len(self.scored), self.steps, len(self.ranked),
                 max((r.predicted for r in self.ranked), default=float("nan")))
        return self.ranked

    def _ask(self, step: int) -> tuple[Architecture | None, dict[str, Any]]:
        before = self.surrogate_seconds
        arch, info = self._ask_objective(step)
        if self.surrogate_seconds > before:
            info["surrogate_seconds"] = round(self.surrogate_seconds - before, 6)
        return arch, info

    def _ask_objective(self, step: int) -> tuple[Architecture | None, dict[str, Any]]:
        first = 0
        if self.protocol == "published":
            first = self.population_size
            if step < first:
                return self.sampler.sample(self.rng(step)), {"kind": "random", "proposed": 1}
        ranked = self.search()
        rank = step - first
        if rank >= len(ranked):
            return None, {"kind": "stop", "proposed": 0}
        chosen = ranked[rank]
        proposed = (self.steps if first else self.population_size + self.steps) if rank == 0 else 0
        return chosen.arch, {"kind": "objective", "rank": rank, "predicted": chosen.predicted, "proposed": proposed}

    @property
    def records(self) -> list[dict[str, Any]]:
        """The chosen architectures with their predicted and (once told) true fitness, in ask order."""
        told = {m.arch.hash: m.evaluation for m in self.history}
        out = []
        started = self.ranked is not None or self.protocol == "topk"  # published: after the first generation
        for rank, r in enumerate(self.search() if started else []):
            ev = told.get(r.arch.hash)
            out.append({"rank": rank, "hash": r.arch.hash, "arch": r.arch.to_string(), "predicted": r.predicted,
                        "step": r.first_step, "val_acc": None if ev is None or not ev.ok else ev.val_acc,
                        "status": None if ev is None else ev.status})
        return out

    def config(self) -> dict[str, Any]:
        out = super().config() | {
            "population_size": self.population_size, "tournament_size": self.tournament_size, "steps": self.steps,
            "top_k": self.top_k, "budget": describe(self.budget), "max_mutation_tries": self.max_mutation_tries,
            "surrogate": describe(self.surrogate),
        }
        if self.protocol != "topk":  # a topk run recorded before the protocols existed keeps its configuration
            out |= {"protocol": self.protocol, "threshold": self.threshold, "prefit": self.prefit}
        return out
