"""Bayesian optimisation over architectures: a GP with a (hierarchical) WL graph kernel, expected improvement
maximised over an evolutionary pool (BANAT / NAS-BOWL style).

``BayesianOptimisation`` is an ask/tell strategy like the others; it never trains anything.

* **Initial design.** Asks ``0..n_init-1`` are random samples, ask ``k`` drawn from ``default_rng([seed, k])``
  (the same cells random search and unseeded RE start with), redrawn from the same generator while the sample
  was already told or is in flight.
* **Model.** A Gaussian process on the told ``ok`` results (deduplicated by architecture, the first result
  kept), targets standardised (``target="raw"``: validation accuracy; ``"log_error"``: ``-log(1 - acc)``,
  which spreads the good end and squashes the few catastrophic cells).  The covariance is
  ``signal * K_WL + noise * I`` where ``K_WL`` is the normalised hierarchical WL kernel
  (``nas.search.wl``) on the graphs of ``nas.graph.graph_levels`` (``hierarchical=True``; a flat grammar has
  one level) or the WL kernel on the whole network's graph (``hierarchical=False``).  ``signal`` and
  ``noise`` maximise the log marginal likelihood over a log-spaced grid, evaluated in closed form from one
  eigendecomposition of ``K_WL`` (robust, no optimiser to diverge); the posterior then comes from a Cholesky
  factor, with jitter raised tenfold until it succeeds.  WL feature maps are cached per architecture hash.
* **Acquisition.** Each later ask builds a pool from its own generator: ``pool_size`` children of the top
  ``n_parents`` told architectures (uniform parent; with probability ``p_crossover`` a crossover with another
  top parent, else one subtree-resampling mutation, as ``nas.mutation``), plus ``n_random`` random samples
  (``n_parents = 50`` rather than 10: in a pilot on the NB201 table, seeds 0-7, 300 evaluations, the top-10
  pool left one seed in eight stuck at a local optimum whose neighbourhood it had exhausted, the top-50
  pool none);
  architectures already told or in flight are dropped, duplicates merged, and the candidate of largest
  expected improvement over the best told value is asked (pool order breaks ties).  If nothing fresh is
  left (an exhausted small space), fresh random samples are tried, and failing those a random sample is
  asked even though it repeats a known one (the run engine looks it up).
* **Failures.** ``failures="ignore"`` (default) leaves failed evaluations out of the GP: a failure says
  nothing about accuracy (it can be a budget or a crash), and a fake value would distort the standardised
  targets.  They still count as known, so they are never asked again.  ``failures="worst"`` gives them the
  worst ``ok`` value told so far instead, which steers the search away from their neighbourhood.
* **Batches.** With several evaluations in flight (asks before the matching tells) the *kriging believer*
  heuristic is used: the architectures asked by this instance and not yet told join the GP with their
  posterior mean as a fantasy observation (hyperparameters kept), which shrinks the variance around them, so
  the next ask goes elsewhere; they are also out of the pool, so no architecture is asked twice.

Resume contract (``nas.search.base``): ask ``k`` is a function of the seed, ``k`` and the results told before
it (plus the in-flight asks of this instance, which a single evaluation in flight never has), so replaying a
history and asking continues an uninterrupted one-in-flight run exactly.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import networkx as nx
import numpy as np
from scipy.linalg import solve_triangular
from scipy.stats import norm

from data.training import Evaluation
from nas.architecture import Architecture
from nas.errors import MutationError
from nas.grammar.core import Budget
from nas.mutation import crossover
from nas.search.base import Member, Strategy, describe
from nas.search.evolution import mutate_or_sample
from nas.search.wl import HierarchicalWLKernel, architecture_graph, architecture_levels

log = logging.getLogger(__name__)

TARGETS = ("raw", "log_error")
FAILURES = ("ignore", "worst")

#: Default hyperparameter grids (standardised targets; ``signal`` relative to the kernel's mean diagonal).
SIGNAL_GRID = tuple(float(x) for x in np.logspace(-2, 1.5, 15))
NOISE_GRID = tuple(float(x) for x in np.logspace(-6, 0, 19))


# -- acquisition -----------------------------------------------------------------------------------


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float, xi: float = 0.0) -> np.ndarray:
    """``E[max(f - best - xi, 0)]`` for ``f ~ N(mean, std^2)`` (maximisation):
    ``(mean - best - xi) * Phi(z) + std * phi(z)`` with ``z = (mean - best - xi) / std``; where ``std`` is 0 it
    is ``max(mean - best - xi, 0)``."""
    mean = np.asarray(mean, dtype=float)
    std = np.asarray(std, dtype=float)
    gain = mean - best - xi
    out = np.maximum(gain, 0.0)
    pos = std > 0
    if np.any(pos):
        z = gain[pos] / std[pos]
        out[pos] = gain[pos] * norm.cdf(z) + std[pos] * norm.pdf(z)
    return np.maximum(out, 0.0)


# -- Gaussian process on a precomputed kernel ------------------------------------------------------


class KernelGP:
    """GP regression with covariance ``signal * K + noise * I`` on a precomputed kernel matrix ``K``.

    ``fit(K, y)`` standardises ``y`` (mean 0, std 1; std 1 when fewer than two distinct values), picks
    ``(signal, noise)`` from the grids by the largest log marginal likelihood (``signal`` is scaled by
    ``1 / mean(diag K)``, so the grid means the same for summed multi-level kernels) and factorises.
    ``predict(K_cross, k_diag)`` gives the posterior mean and standard deviation of the latent function in
    the units of ``y``.  ``with_data`` refits on more points with the same hyperparameters and scaling
    (kriging believer fantasies)."""

    def __init__(self, signal_grid: Sequence[float] = SIGNAL_GRID, noise_grid: Sequence[float] = NOISE_GRID,
                 jitter: float = 1e-8) -> None:
        self.signal_grid = np.asarray(signal_grid, dtype=float)
        self.noise_grid = np.asarray(noise_grid, dtype=float)
        if self.signal_grid.size == 0 or self.noise_grid.size == 0 or np.any(self.signal_grid <= 0) \
                or np.any(self.noise_grid < 0):
            raise ValueError("the hyperparameter grids must be non-empty, signal > 0 and noise >= 0")
        self.jitter = float(jitter)
        self.signal = math.nan
        self.noise = math.nan
        self.y_mean = 0.0
        self.y_std = 1.0
        self.lml = math.nan
        self._chol: np.ndarray | None = None
        self._alpha: np.ndarray | None = None

    # -- fitting -------------------------------------------------------------------------------------

    def fit(self, K: np.ndarray, y: np.ndarray) -> "KernelGP":
        K, y = self._check(K, y)
        self.y_mean = float(np.mean(y))
        std = float(np.std(y))
        self.y_std = std if std > 1e-12 else 1.0
        z = (y - self.y_mean) / self.y_std
        scale = float(np.mean(np.diag(K))) or 1.0
        lml = log_marginal_likelihood_grid(K, z, self.signal_grid / scale, self.noise_grid)
        i, j = np.unravel_index(int(np.argmax(lml)), lml.shape)
        self.signal = float(self.signal_grid[i] / scale)
        self.noise = float(self.noise_grid[j])
        self.lml = float(lml[i, j])
        self._factorise(K, z)
        return self

    def with_data(self, K: np.ndarray, y: np.ndarray) -> "KernelGP":
        """A copy conditioned on ``(K, y)`` with this fit's hyperparameters and target scaling."""
        if self._chol is None:
            raise RuntimeError("fit the GP first")
        K, y = self._check(K, y)
        other = KernelGP(self.signal_grid, self.noise_grid, self.jitter)
        other.signal, other.noise, other.lml = self.signal, self.noise, self.lml
        other.y_mean, other.y_std = self.y_mean, self.y_std
        other._factorise(K, (y - self.y_mean) / self.y_std)
        return other

    def _check(self, K: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        K = np.asarray(K, dtype=float)
        y = np.asarray(y, dtype=float).ravel()
        if K.ndim != 2 or K.shape != (len(y), len(y)) or len(y) == 0:
            raise ValueError(f"need a square kernel matrix matching y; got K {K.shape} and {len(y)} targets")
        if not np.all(np.isfinite(K)) or not np.all(np.isfinite(y)):
            raise ValueError("the kernel matrix and targets must be finite")
        return K, y

    def _factorise(self, K: np.ndarray, z: np.ndarray) -> None:
        n = len(z)
        cov = self.signal * K
        jitter = self.jitter
        for _ in range(12):
            try:
                chol = np.linalg.cholesky(cov + (self.noise + jitter) * np.eye(n))
                break
            except np.linalg.LinAlgError:
                jitter *= 10.0
        else:
            raise np.linalg.LinAlgError("the GP covariance is not positive definite even with large jitter")
        if jitter > self.jitter * 10:
            log.debug("GP Cholesky needed jitter %.1e", jitter)
        self._chol = chol
        self._alpha = _cho_solve(chol, z)

    # -- prediction ----------------------------------------------------------------------------------

    def predict(self, K_cross: np.ndarray, k_diag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation (latent function, units of ``y``) at test points whose kernel
        values with the training points are ``K_cross`` (``n_train × m``) and with themselves ``k_diag``."""
        if self._chol is None or self._alpha is None:
            raise RuntimeError("fit the GP first")
        K_cross = np.asarray(K_cross, dtype=float)
        if K_cross.ndim != 2 or K_cross.shape[0] != len(self._alpha):
            raise ValueError(f"K_cross must be n_train × m with n_train = {len(self._alpha)}, got {K_cross.shape}")
        ks = self.signal * K_cross
        mean = ks.T @ self._alpha

        v = solve_triangular(self._chol, ks, lower=True)
        var = self.signal * np.asarray(k_diag, dtype=float) - np.sum(v * v, axis=0)
        std = np.sqrt(np.maximum(var, 0.0))
        return self.y_mean + self.y_std * mean, self.y_std * std


def _cho_solve(chol: np.ndarray, b: np.ndarray) -> np.ndarray:
    return solve_triangular(chol.T, solve_triangular(chol, b, lower=True), lower=False)


def log_marginal_likelihood_grid(K: np.ndarray, z: np.ndarray, signals: np.ndarray, noises: np.ndarray) -> np.ndarray:
    """``log p(z | signal, noise)`` of a zero-mean GP with covariance ``signal * K + noise * I`` for every pair
    of the grids (``len(signals) × len(noises)``), from one eigendecomposition ``K = U diag(lam) U^T``:
    ``-1/2 sum (U^T z)_i^2 / d_i - 1/2 sum log d_i - n/2 log 2 pi`` with ``d = signal * lam + noise``.
    Eigenvalues are clipped at 0; pairs with a zero ``d`` (no noise on a singular ``K``) get ``-inf``."""
    lam, U = np.linalg.eigh((K + K.T) / 2.0)
    lam = np.maximum(lam, 0.0)
    proj = (U.T @ z) ** 2
    d = np.asarray(signals, dtype=float)[:, None, None] * lam[None, None, :] + \
        np.asarray(noises, dtype=float)[None, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = -0.5 * np.sum(proj / d, axis=-1) - 0.5 * np.sum(np.log(d), axis=-1) - 0.5 * len(z) * math.log(2 * math.pi)
    return np.where(np.isfinite(out), out, -np.inf)


def log_error(acc: np.ndarray) -> np.ndarray:
    """``-log(1 - acc)`` with ``acc`` clipped to ``[0, 1 - 1e-6]``: a monotone target that spreads the good end."""
    return -np.log1p(-np.clip(np.asarray(acc, dtype=float), 0.0, 1.0 - 1e-6))


# -- the strategy ----------------------------------------------------------------------------------


@dataclass
class _Fit:
    """The GP of one history length: training architectures, their targets, the kernel matrix."""

    upto: int
    archs: list[Architecture]
    y: np.ndarray
    gp: KernelGP
    K: np.ndarray
    best: float


class BayesianOptimisation(Strategy):
    """GP-based BO with a WL graph kernel and EI over an evolutionary pool (see the module docstring).

    ``graphs`` replaces the graph extraction (a function from an architecture to its list of level graphs);
    ``h`` is the WL depth, one for every level or one per level; ``direction`` is the WL neighbour direction
    (``nas.search.wl``).  WL feature maps are cached by architecture hash; past ``max_cached`` entries the
    cache keeps only told and in-flight architectures (the kernel's vocabulary is kept, so recomputed maps
    are identical)."""

    def __init__(
        self,
        sampler,
        seed: int,
        n_init: int = 10,
        pool_size: int = 200,
        n_random: int = 10,
        n_parents: int = 50,
        p_crossover: float = 0.5,
        hierarchical: bool = True,
        h: int | Sequence[int] = 2,
        direction: str = "both",
        target: str = "raw",
        failures: str = "ignore",
        xi: float = 0.0,
        graphs: Callable[[Architecture], Sequence[nx.DiGraph]] | None = None,
        budget: Budget | None = None,
        max_mutation_tries: int = 100,
        max_sample_tries: int = 100,
        max_cached: int = 100_000,
    ) -> None:
        super().__init__(sampler, seed)
        if n_init < 1 or pool_size < 0 or n_random < 0 or pool_size + n_random < 1 or n_parents < 1:
            raise ValueError("need n_init >= 1, n_parents >= 1, pool_size, n_random >= 0 and a non-empty pool")
        if not 0.0 <= p_crossover <= 1.0:
            raise ValueError(f"p_crossover must lie in [0, 1], got {p_crossover}")
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        if failures not in FAILURES:
            raise ValueError(f"failures must be one of {FAILURES}, got {failures!r}")
        self.n_init = int(n_init)
        self.pool_size = int(pool_size)
        self.n_random = int(n_random)
        self.n_parents = int(n_parents)
        self.p_crossover = float(p_crossover)
        self.hierarchical = bool(hierarchical)
        self.target = target
        self.failures = failures
        self.xi = float(xi)
        self.budget = budget if budget is not None else sampler.budget
        self.max_mutation_tries = int(max_mutation_tries)
        self.max_sample_tries = int(max_sample_tries)
        self.max_cached = int(max_cached)
        self.custom_graphs = graphs is not None
        if graphs is None:
            graphs = architecture_levels if self.hierarchical else (lambda a: [architecture_graph(a)])
        self.graphs = graphs
        self.kernel = HierarchicalWLKernel(h=h, normalize=True, direction=direction)
        self._features: dict[str, list] = {}
        self._pending: dict[str, Architecture] = {}  # asked by this instance, not told yet
        self._fit: _Fit | None = None
        self.num_fits = 0
        self.surrogate_seconds = 0.0

    # -- state -----------------------------------------------------------------------------------

    def tell(self, arch: Architecture, evaluation: Evaluation) -> None:
        super().tell(arch, evaluation)
        self._pending.pop(arch.hash, None)

    def features(self, archs: Sequence[Architecture]) -> list[list]:
        """Per-level WL feature maps of ``archs`` (computed once per architecture hash)."""
        out = []
        for a in archs:
            f = self._features.get(a.hash)
            if f is None:
                f = self._features[a.hash] = self.kernel.features(list(self.graphs(a)))
            out.append(f)
        return out

    def gram(self, xs: Sequence[Architecture], ys: Sequence[Architecture] | None = None) -> np.ndarray:
        """The WL kernel matrix between architectures (``ys`` defaults to ``xs``)."""
        fx = self.features(xs)
        return self.kernel.gram_from_features(fx, None if ys is None else self.features(ys))

    def training_set(self, upto: int | None = None) -> tuple[list[Architecture], np.ndarray]:
        """The GP's training architectures and targets from the first ``upto`` tells (default all): ``ok``
        results deduplicated by hash (first kept), failures per ``failures``."""
        members = self.history if upto is None else self.history[:upto]
        seen: set[str] = set()
        archs: list[Architecture] = []
        ys: list[float] = []
        failed: list[Member] = []
        for m in members:
            if m.arch.hash in seen:
                continue
            if math.isfinite(m.fitness):
                seen.add(m.arch.hash)
                archs.append(m.arch)
                ys.append(m.fitness)
            elif self.failures == "worst":
                seen.add(m.arch.hash)
                failed.append(m)
        y = np.asarray(ys, dtype=float)
        if self.target == "log_error":
            y = log_error(y)
        if failed and len(y):
            worst = float(np.min(y))
            archs += [m.arch for m in failed]
            y = np.concatenate([y, np.full(len(failed), worst)])
        return archs, y

    def model(self) -> _Fit | None:
        """The GP fitted on every told result (refitted when the history grew); ``None`` with no usable result."""
        upto = len(self.history)
        if self._fit is not None and self._fit.upto == upto:
            return self._fit
        archs, y = self.training_set(upto)
        if not archs:
            return None
        t0 = time.perf_counter()
        K = self.gram(archs)
        gp = KernelGP().fit(K, y)
        self.surrogate_seconds += time.perf_counter() - t0
        self.num_fits += 1
        top = self.best().fitness  # a training set exists, so some result succeeded
        best = float(log_error(np.array([top]))[0]) if self.target == "log_error" else float(top)
        self._fit = _Fit(upto, archs, y, gp, K, best)
        log.debug("GP on %d architectures: signal %.3g, noise %.3g, lml %.2f", len(archs), gp.signal, gp.noise, gp.lml)
        return self._fit

    # -- asking ----------------------------------------------------------------------------------

    def _known(self) -> set[str]:
        return {m.arch.hash for m in self.history} | set(self._pending)

    def _ask(self, step: int) -> tuple[Architecture | None, dict[str, Any]]:
        rng = self.rng(step)
        fit = self.model() if step >= self.n_init else None
        if fit is None:
            arch = self._fresh_sample(rng, self._known())
            self._pending[arch.hash] = arch
            return arch, {"kind": "random", "proposed": 1}
        arch, info = self._acquire(step, rng, fit)
        self._pending[arch.hash] = arch
        if len(self._features) > self.max_cached:  # pool candidates never asked: recomputable, drop them
            keep = self._known()
            self._features = {h: f for h, f in self._features.items() if h in keep}
        return arch, info

    def _fresh_sample(self, rng: np.random.Generator, known: set[str]) -> Architecture:
        """A random sample not in ``known`` (the last draw if none is found in ``max_sample_tries``)."""
        arch = self.sampler.sample(rng)
        for _ in range(self.max_sample_tries - 1):
            if arch.hash not in known:
                break
            arch = self.sampler.sample(rng)
        return arch

    def parents(self) -> list[Architecture]:
        """The top ``n_parents`` distinct told architectures by fitness (earliest first on ties)."""
        best: dict[str, Member] = {}
        for m in self.history:
            if math.isfinite(m.fitness) and m.arch.hash not in best:
                best[m.arch.hash] = m
        order = sorted(best.values(), key=lambda m: (-m.fitness, m.index))
        return [m.arch for m in order[: self.n_parents]]

    def pool(self, rng: np.random.Generator, known: set[str]) -> list[Architecture]:
        """The candidates of one ask: children of the top parents and random samples, fresh and distinct, in
        generation order."""
        parents = self.parents()
        raw: list[Architecture] = []
        if parents:
            for _ in range(self.pool_size):
                i = int(rng.integers(len(parents)))
                if len(parents) > 1 and rng.random() < self.p_crossover:
                    j = int(rng.integers(len(parents) - 1))
                    j += j >= i
                    try:
                        raw.append(crossover(parents[i], parents[j], rng, self.budget, self.max_mutation_tries))
                        continue
                    except MutationError:
                        pass
                raw.append(mutate_or_sample(parents[i], rng, self.sampler, self.budget, self.max_mutation_tries))
        raw += [self.sampler.sample(rng) for _ in range(self.n_random if parents else self.n_random + self.pool_size)]
        out: list[Architecture] = []
        seen = set(known)
        for a in raw:
            if a.hash not in seen:
                seen.add(a.hash)
                out.append(a)
        return out

    def _acquire(self, step: int, rng: np.random.Generator, fit: _Fit) -> tuple[Architecture, dict[str, Any]]:
        known = self._known()
        pool = self.pool(rng, known)
        if not pool:
            arch = self._fresh_sample(rng, known)
            log.info("BO ask %d: no fresh candidate in the pool; asking a random sample%s", step,
                     "" if arch.hash not in known else " (already known: the space looks exhausted)")
            return arch, {"kind": "random", "proposed": 1, "reason": "empty pool"}
        t0 = time.perf_counter()
        gp, train = fit.gp, fit.archs
        trained = {a.hash for a in fit.archs}
        pending = [a for h, a in self._pending.items() if h not in trained]
        if pending:  # kriging believer: condition on the posterior mean at the in-flight asks
            kp = self.gram(train, pending)
            kpp = self.gram(pending)
            mu_p, _ = gp.predict(kp, np.diag(kpp))
            train = train + pending
            K = np.block([[fit.K, kp], [kp.T, kpp]])
            gp = gp.with_data(K, np.concatenate([fit.y, mu_p]))
        kc = self.gram(train, pool)
        mean, std = gp.predict(kc, self.kernel.diag_from_features(self.features(pool)))
        ei = expected_improvement(mean, std, fit.best, self.xi)
        i = int(np.argmax(ei))
        self.surrogate_seconds += time.perf_counter() - t0
        info = {"kind": "bo", "proposed": len(pool), "predicted": float(mean[i]), "std": float(std[i]),
                "ei": float(ei[i]), "signal": gp.signal, "noise": gp.noise, "train": len(fit.archs),
                "pending": len(pending)}
        return pool[i], info

    def config(self) -> dict[str, Any]:
        return super().config() | {
            "n_init": self.n_init, "pool_size": self.pool_size, "n_random": self.n_random, "n_parents": self.n_parents,
            "p_crossover": self.p_crossover, "hierarchical": self.hierarchical, "target": self.target,
            "failures": self.failures, "xi": self.xi, "kernel": describe(self.kernel),
            "graphs": "custom" if self.custom_graphs else ("levels" if self.hierarchical else "network"),
            "budget": describe(self.budget), "max_mutation_tries": self.max_mutation_tries,
        }
