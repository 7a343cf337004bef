"""Search strategies on the NAS-Bench-201 CIFAR-10 look-up task (``nb201-cifar10``), paired over seeds.

For every seed and population size the benchmark runs, each through ``nas.search.run_search`` with its own
temporary SQLite archive (evaluations are instant table look-ups):

* ``random``: random search;
* ``re``: regularised evolution (population P, tournament 10);
* ``filtered``: surrogate-filtered RE, top-5 of 20 mutants, surrogate RF on ``graf,zcp`` (for NB201:
  NB201 GRAF + the table's 13 proxies), ``start_after = P``, refitted every 20 tells;
* ``objective``: surrogate as the objective.  A random-search run of P steps (the same P cells as RE's
  initial population: both draw ask ``i`` from ``default_rng([seed, i])``) is looked up, an RF on
  ``graf,zcp`` is fitted on those P true accuracies, then ``SurrogateObjective`` runs aging evolution for
  ``--objective-steps`` mutations on predictions alone (inner population P, seeded from the same P cells,
  scored by prediction) and its top ``--objective-top-k`` predictions are trained (looked up) in the same
  archive, in rank order.  Its cost is P + the top-k's new trained candidates.

Same seed → same initial population: RE, filtered RE and random search all take their first P asks from
``default_rng([seed, step])``; the benchmark checks that the first P history rows of RE and filtered RE are
the same architectures.  "Trained candidates" are history rows with ``source == "trained"``: a repeat of an
architecture already told in the run is a look-up (``duplicate``) and costs nothing; look-ups of a cell
whose *table entry* was already seen under another string (dead edges) are trained candidates for the
runner and are reported separately (``canonical repeats``).

* ``bo``: Bayesian optimisation (``nas.search.bo``): a GP with the hierarchical WL graph kernel on the
  architecture's level graphs, ``n_init = 10`` random cells (the same first cells as random search), then per
  ask the candidate of largest expected improvement among a pool of 200 mutants/crossovers of the top 50 cells
  plus 10 random ones.

One ``name: value unit`` line per figure, then a Markdown table.

``--nb201`` is the strategy comparison: random search, RE, filtered RE and BO (population = the
first ``--population`` value for RE and filtered RE), best validation accuracy after 100 and ``--budget``
evaluations in %, mean with standard deviation and interquartile range over the paired seeds, as lines
``nb201 bo best@100: 91.23 % (sd 0.41, IQR 90.95-91.53)``, paired win counts of BO against each other
strategy, and a Markdown table.  Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/search.py [--seeds 20] [--budget 300] [--population 100,50]
        [--tournament 10] [--objective-steps 1000] [--objective-top-k 5,20] [--workers 2]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/search.py --nb201 [--seeds 20] [--budget 300] [--workers 2]

``--objective`` compares the two surrogate-as-objective protocols on the NB201 table (``published``: a trained
first generation of P, the RF fitted on it, 200 predicted steps, the running-best trajectory trained; ``topk``:
as above), with plain RE read at the same number of trained candidates::

    .venv/bin/python benchmarks/search.py --objective --seeds 10 --population 100 --budget 150 --objective-top-k 5

``--einspace`` trains for real on offline einspace tasks (``--tasks``, default language-mini, gutenberg-mini,
addnist-mini), ``--seeds`` paired seeds (default 5), ``--budget`` evaluations (default 100), ``--protocol``
(default reduced), ``--workers`` evaluations in parallel per run (default 2): plain RE (``re``), filtered RE
with a surrogate fitted during the run from the end of the initial population on (``filtered``; the default
filter of ``nas search --strategy filtered``, or ``--features`` / ``--shortlist``), and filtered RE with a
transfer surrogate fitted on every task of ``--source-archive`` (default the shipped one) but the target,
filtering from the first ask and refitted on the target's results (``transfer``, every 25 evaluations: each
refit refits on all source rows too); with ``--variants``, also ``sized`` (the same with each source's targets
normalised within 5 bands of parameter count), ``pooled`` (``sized`` whose initial population is the
best-predicted 20 of 200 random samples) and ``twostage``.  Population 20, tournament 5, top-5 of 20, refit
every 10.  Each (task, variant, seed) is one run in its own archive
``--out/archives/TASK-VARIANT-sSEED.sqlite``: re-running the command skips finished runs and resumes an
interrupted one; ``--report-only`` reports the seeds whose runs have all finished and trains nothing.  Per
task and overall: best validation accuracy at 25/50/100 trained (mean ± sd), median trained candidates and
wall-clock seconds to reach plain RE's final best (paired by seed; ``inf``: never), their medians of per-seed
ratios to RE's own (with a 95 % bootstrap interval over the pairs), and the surrogate's share of the wall-clock
(featurising, fitting, predicting; median over runs); ``name: value unit`` lines, then
``--out/search_einspace.md``::

    nice -n 5 .venv/bin/python benchmarks/search.py --einspace --workers 2 --source-archive A.sqlite
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")

# Run as ``python benchmarks/<name>.py``, Python puts benchmarks/ first on sys.path, where benchmark scripts named
# like the project's packages (surrogates.py, features.py) would shadow them: drop it.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import numpy as np  # noqa: E402  (after OMP_NUM_THREADS is set)

from nas.search.best import running_best  # noqa: E402  (after benchmarks/ left sys.path)

TASK = "nb201-cifar10"
STRATEGIES = ("random", "re", "filtered", "objective")
#: The ``--nb201`` comparison.
NB201_STRATEGIES = ("random", "re", "filtered", "bo")


@dataclass(frozen=True)
class Config:
    """One benchmark setting (everything a worker needs; picklable)."""

    budget: int = 300
    population: int = 100
    tournament: int = 10
    n_candidates: int = 20
    k: int = 5
    refit_every: int = 20
    surrogate: str = "rf"
    features: str = "graf,zcp"
    objective_steps: int = 1000
    objective_top_k: tuple[int, ...] = (5, 20)
    bo_n_init: int = 10
    bo_pool_size: int = 200


@dataclass
class Record:
    """One run as sequences over its history rows (steps): validation accuracy (NaN for a failure),
    whether the row was a trained candidate, whether that trained candidate's table entry had been seen
    before in the run, and the architecture hash."""

    vals: list[float]
    trained: list[bool]
    canonical_repeat: list[bool]
    hashes: list[str]
    wall: float = 0.0
    strategy_seconds: float = 0.0
    info: dict = field(default_factory=dict)
    #: The run's wall-clock (cumulative, over sessions) at each history row; the surrogate's seconds in all.
    walls: list[float] = field(default_factory=list)
    surrogate_seconds: float = 0.0

    # -- curves --------------------------------------------------------------------------------

    def best_after_steps(self, n: int) -> float:
        """Best validation accuracy among the first ``n`` history rows (NaN if none succeeded)."""
        curve = running_best(self.vals[:n])
        return float(curve[-1]) if len(curve) else math.nan

    def trained_at_steps(self, n: int) -> int:
        return sum(self.trained[:n])

    def best_after_trained(self, t: int) -> float:
        """Best validation accuracy once ``t`` candidates were trained (rows up to, and excluding, the
        ``t+1``-th trained one: look-ups in between repeat known values).  NaN when the run trained fewer."""
        positions = [i for i, tr in enumerate(self.trained) if tr]
        if len(positions) < t:
            return math.nan
        return self.best_after_steps(positions[t] if t < len(positions) else len(self.vals))

    def trained_to_reach(self, target: float) -> float:
        """Trained candidates (1-based count) when the best-so-far first reaches ``target``; ``inf`` if never."""
        reached = np.flatnonzero(running_best(self.vals) >= target)  # NaN (nothing yet) never reaches
        return float(max(int(np.cumsum(self.trained)[reached[0]]), 1)) if len(reached) else math.inf

    def wall_to_reach(self, target: float) -> float:
        """The run's wall-clock seconds when the best-so-far first reaches ``target``; ``inf`` if never."""
        reached = np.flatnonzero(running_best(self.vals) >= target)
        return float(self.walls[reached[0]]) if len(reached) else math.inf

    @property
    def final_best(self) -> float:
        return self.best_after_steps(len(self.vals))


def _record(archive: Any, runs: Sequence[str], task: Any) -> Record:
    """The concatenated history of ``runs`` in ``archive`` (in order) as a ``Record``."""
    from nas.search.history import TRAINED, run_history, summarize

    vals, trained, repeat, hashes = [], [], [], []
    seen_cells: set[str] = set()
    wall = strat = 0.0
    for run in runs:
        for e in run_history(archive, run):
            ev = e.evaluation
            vals.append(ev.val_acc if ev.ok and math.isfinite(ev.val_acc) else math.nan)
            is_trained = e.source == TRAINED
            trained.append(is_trained)
            cell = task.entry(archive.architecture(e.arch_hash)).cell
            repeat.append(is_trained and cell in seen_cells)
            seen_cells.add(cell)
            hashes.append(e.arch_hash)
        s = summarize(archive, run)["seconds"]
        wall += s["wall_clock"]
        strat += s["strategy"]
    return Record(vals, trained, repeat, hashes, wall, strat)


def make_strategy(name: str, seed: int, cfg: Config, task: Any, surrogate: Any = None):
    """A fresh strategy of ``STRATEGIES`` for ``seed`` (``objective`` needs a fitted ``surrogate``)."""
    from nas.search.factory import make_strategy as factory, make_surrogate

    common = {"population_size": cfg.population, "tournament_size": cfg.tournament}
    if name in ("random", "re"):
        return factory(name, task, seed, **common)
    if name == "filtered":
        sur, _ = make_surrogate(cfg.surrogate, task, cfg.features, seed=seed)
        return factory("filtered", task, seed, surrogate=sur, mode="topk", n_candidates=cfg.n_candidates, k=cfg.k,
                       start_after=cfg.population, refit_every=cfg.refit_every, **common)
    if name == "objective":
        return factory("objective", task, seed, surrogate=surrogate, prefit=True, protocol="topk",
                       steps=cfg.objective_steps, top_k=max(cfg.objective_top_k), **common)
    if name == "bo":
        return factory("bo", task, seed, n_init=cfg.bo_n_init, pool_size=cfg.bo_pool_size)
    raise ValueError(f"unknown strategy {name!r}")


def run_seed(seed: int, cfg: Config, strategies: Sequence[str] = STRATEGIES) -> dict[str, Record]:
    """Every strategy of ``strategies`` for one seed, each in its own temporary archive."""
    from data.archive import Archive
    from data.tasks import get_task
    from nas.search import run_history, run_search
    from nas.search.factory import make_surrogate

    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    task = get_task(TASK)
    len(task)  # load the table before timing anything
    out: dict[str, Record] = {}
    for name in strategies:
        with tempfile.TemporaryDirectory(prefix=f"bench-search-{name}-") as tmp, \
                Archive(os.path.join(tmp, "archive.sqlite")) as archive:
            t0 = time.perf_counter()
            if name != "objective":
                strategy = make_strategy(name, seed, cfg, task)
                summary = run_search(strategy, TASK, archive, name, budget_evals=cfg.budget, progress=False)
                rec = _record(archive, [name], task)
                rec.info = {"stats": summary["session"]["strategy"]}
                if name in ("filtered", "bo"):
                    rec.info |= {"fits": strategy.num_fits, "surrogate_seconds": strategy.surrogate_seconds}
            else:
                init = make_strategy("random", seed, cfg, task)
                run_search(init, TASK, archive, "init", budget_evals=cfg.population, progress=False)
                entries = [e for e in run_history(archive, "init") if e.evaluation.ok]
                archs = [archive.architecture(e.arch_hash) for e in entries]
                uniq = {a.hash: (a, e.evaluation.val_acc) for a, e in zip(archs, entries)}
                surrogate, _ = make_surrogate(cfg.surrogate, task, cfg.features, seed=seed)
                surrogate.fit([a for a, _ in uniq.values()], np.array([v for _, v in uniq.values()]))
                strategy = make_strategy("objective", seed, cfg, task, surrogate=surrogate)
                run_search(strategy, TASK, archive, "objective", budget_evals=max(cfg.objective_top_k),
                           progress=False)
                rec = _record(archive, ["init", "objective"], task)
                rec.info = {"init_steps": cfg.population, "fit_rows": len(uniq),
                            "scored": len(strategy.scored), "predicted": [r["predicted"] for r in strategy.records]}
            rec.info["seconds"] = time.perf_counter() - t0
            out[name] = rec
    return out


def _run_seed_dicts(seed: int, cfg: Config, strategies: Sequence[str]) -> dict[str, dict]:
    return {k: asdict(v) for k, v in run_seed(seed, cfg, strategies).items()}


def run_all(seeds: Sequence[int], cfg: Config, workers: int = 1,
            strategies: Sequence[str] = STRATEGIES) -> list[dict[str, Record]]:
    """``run_seed`` for every seed, serially or in a spawned process pool of ``workers``."""
    if workers <= 1:
        return [run_seed(s, cfg, strategies) for s in seeds]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_run_seed_dicts, s, cfg, tuple(strategies)) for s in seeds]
        return [{k: Record(**v) for k, v in f.result().items()} for f in futures]


# -- figures -------------------------------------------------------------------------------------


def _mean_std(xs: Sequence[float]) -> tuple[float, float]:
    xs = [x for x in xs if math.isfinite(x)]
    if not xs:
        return math.nan, math.nan
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def _paired(a: Sequence[float], b: Sequence[float]) -> tuple[int, int, int]:
    """Seeds on which ``a`` is better than, equal to and worse than ``b`` (paired by position)."""
    better = sum(x > y for x, y in zip(a, b))
    equal = sum(x == y for x, y in zip(a, b))
    return better, equal, len(a) - better - equal


def _wins_text(wins: tuple[int, int, int]) -> str:
    return "{} better, {} equal, {} worse".format(*wins)


def _median_censored(xs: Sequence[float]) -> float:
    """Median where ``inf`` stands for "never" (ordered above every finite value)."""
    s = sorted(xs)
    n = len(s)
    if not n:
        return math.nan
    if n % 2:
        return s[n // 2]
    a, b = s[n // 2 - 1], s[n // 2]
    return math.inf if math.isinf(b) else (a + b) / 2


def _bootstrap_median(xs: Sequence[float], resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap interval of ``_median_censored(xs)`` (resampling ``xs`` with replacement; ``inf`` allowed):
    how far the median of a handful of paired seeds can be trusted."""
    import numpy as np

    if not xs:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    values = list(xs)
    medians = sorted(_median_censored([values[i] for i in rng.integers(0, len(values), len(values))])
                     for _ in range(resamples))
    return medians[int(0.025 * (resamples - 1))], medians[int(math.ceil(0.975 * (resamples - 1)))]


def _table_best() -> float | None:
    """The best validation accuracy in the NB201 table (None without the data)."""
    from data.tasks import get_task

    try:
        return max(e.val_acc for e in get_task(TASK).all_cells())
    except FileNotFoundError:
        return None


def figures(results: Sequence[dict[str, Record]], cfg: Config) -> tuple[list[tuple[str, str, str]], dict[str, Any]]:
    """``(lines, summary)``: the figures as ``(name, value, unit)`` and the numbers the table needs."""
    P, B = cfg.population, cfg.budget
    tag = f"p{P}"
    lines: list[tuple[str, str, str]] = []
    summary: dict[str, Any] = {"population": P, "seeds": len(results)}
    names = [n for n in STRATEGIES if all(n in r for r in results)]
    table_best = _table_best()

    def add(name: str, value: str, unit: str = "") -> None:
        lines.append((f"{tag}_{name}", value, unit))

    def pm(xs: Sequence[float]) -> str:
        m, s = _mean_std(xs)
        return f"{m:.4f} ± {s:.4f}"

    # Paired check: same seed, same initial population.
    if "re" in names and "filtered" in names:
        same = sum(r["re"].hashes[:P] == r["filtered"].hashes[:P] for r in results)
        add("initial_population_identical_re_filtered", f"{same}/{len(results)}", "seeds")
        summary["identical"] = same
    if "re" in names and "random" in names:
        same = sum(r["re"].hashes[:P] == r["random"].hashes[:P] for r in results)
        add("initial_population_identical_re_random", f"{same}/{len(results)}", "seeds")

    for n in names:
        if n == "objective":
            continue
        recs = [r[n] for r in results]
        for steps in (P, 100, B) if P != 100 else (100, B):
            if steps <= B:
                add(f"{n}_best_after_{steps}_evals", pm([x.best_after_steps(steps) for x in recs]), "val_acc (mean ± std)")
        trained = [x.trained_at_steps(B) for x in recs]
        add(f"{n}_trained_at_{B}_evals", f"{statistics.fmean(trained):.1f} (min {min(trained)}, max {max(trained)})",
            "trained candidates")
        add(f"{n}_canonical_repeats", f"{statistics.fmean(sum(x.canonical_repeat) for x in recs):.1f}",
            "trained candidates per run whose table entry was already looked up")
        if table_best is not None:
            found = sum(x.final_best >= table_best for x in recs)
            add(f"{n}_finds_table_best", f"{found}/{len(recs)}", f"seeds (val_acc {table_best:.4f}, the best of the table)")
        add(f"{n}_seconds_per_run", f"{statistics.fmean(x.info['seconds'] for x in recs):.2f}", "s")
        summary[n] = {"best_P": _mean_std([x.best_after_steps(P) for x in recs]),
                      "best_100": _mean_std([x.best_after_steps(100) for x in recs]),
                      "best_B": _mean_std([x.best_after_steps(B) for x in recs]), "trained_B": statistics.fmean(trained),
                      "seconds": statistics.fmean(x.info["seconds"] for x in recs)}
        if table_best is not None:
            summary[n]["found"] = found
    # Equal trained candidates: the fewest any of these runs trained within the budget.
    runs = [r[n] for r in results for n in names if n != "objective"]
    if runs:
        t_eq = min(x.trained_at_steps(B) for x in runs)
        for n in names:
            if n != "objective":
                xs = [r[n].best_after_trained(t_eq) for r in results]
                add(f"{n}_best_after_{t_eq}_trained", pm(xs), "val_acc (mean ± std)")
                summary[n]["best_teq"] = _mean_std(xs)
        summary["t_eq"] = t_eq

    # Trained candidates to reach plain RE's final best (per seed), paired.
    if "re" in names:
        targets = [r["re"].final_best for r in results]
        for n in [m for m in names if m in ("filtered", "random", "re")]:
            need = [r[n].trained_to_reach(t) for r, t in zip(results, targets)]
            med = _median_censored(need)
            never = sum(math.isinf(x) for x in need)
            cap = max(r[n].trained_at_steps(B) for r in results)
            med_s = f"> {cap}" if math.isinf(med) else f"{med:g}"
            what = "own_final_best" if n == "re" else "re_final_best"
            add(f"{n}_trained_to_reach_{what}_median", med_s,
                f"trained candidates (median over seeds; never within budget: {never}/{len(results)})")
            finite = sorted(int(x) for x in need if math.isfinite(x))
            add(f"{n}_trained_to_reach_{what}_per_seed",
                ", ".join(str(int(x)) if math.isfinite(x) else "never" for x in need), "trained candidates")
            summary.setdefault(n, {})["reach"] = (med_s, never, finite)
        if "filtered" in names:
            le = sum(r["filtered"].trained_to_reach(t) <= B // 2 for r, t in zip(results, targets))
            add("filtered_reaches_re_final_best_within_half_budget", f"{le}/{len(results)}", f"seeds (≤ {B // 2} trained)")
            add("filtered_vs_re_final_best", _wins_text(_paired([r["filtered"].final_best for r in results],
                                                                [r["re"].final_best for r in results])), "seeds")

    # Surrogate as objective at equal trained candidates.
    if "objective" in names:
        summary["objective"] = {}
        for k in cfg.objective_top_k:
            rows = []
            for r in results:
                o = r["objective"]
                steps = P + k
                t = o.trained_at_steps(steps)
                rows.append((t, o.best_after_steps(steps), r["re"].best_after_trained(t) if "re" in r else math.nan,
                             r["filtered"].best_after_trained(t) if "filtered" in r else math.nan,
                             r["random"].best_after_trained(t) if "random" in r else math.nan,
                             o.best_after_steps(P)))
            t_mean = statistics.fmean(x[0] for x in rows)
            add(f"objective_top{k}_trained", f"{t_mean:.1f} (min {min(x[0] for x in rows)}, max {max(x[0] for x in rows)})",
                f"trained candidates ({P} fit cells + top-{k} new)")
            add(f"objective_top{k}_best", pm([x[1] for x in rows]), "val_acc (mean ± std)")
            add(f"objective_top{k}_re_best_at_same_trained", pm([x[2] for x in rows]), "val_acc (mean ± std)")
            add(f"objective_top{k}_filtered_best_at_same_trained", pm([x[3] for x in rows]), "val_acc (mean ± std)")
            add(f"objective_top{k}_random_best_at_same_trained", pm([x[4] for x in rows]), "val_acc (mean ± std)")
            wins = _paired([x[1] for x in rows], [x[2] for x in rows])
            add(f"objective_top{k}_vs_re", _wins_text(wins), "seeds")
            imp = sum(x[1] > x[5] for x in rows)
            add(f"objective_top{k}_improves_on_fit_sample", f"{imp}/{len(rows)}", "seeds")
            summary["objective"][k] = {"trained": t_mean, "best": _mean_std([x[1] for x in rows]),
                                       "re": _mean_std([x[2] for x in rows]), "filtered": _mean_std([x[3] for x in rows]),
                                       "random": _mean_std([x[4] for x in rows]), "wins": wins}
        add("objective_seconds_per_run", f"{statistics.fmean(r['objective'].info['seconds'] for r in results):.2f}",
            f"s (look-ups, fit, {cfg.objective_steps} predicted steps)")
    return lines, summary


def markdown(summaries: Sequence[dict[str, Any]], cfg: Config) -> str:
    """The comparison tables (one pair per population size)."""
    B = cfg.budget

    def f(ms: tuple[float, float]) -> str:
        return f"{ms[0]:.4f} ± {ms[1]:.4f}" if math.isfinite(ms[0]) else "–"

    out = []
    for s in summaries:
        P, teq, n_seeds = s["population"], s.get("t_eq"), s["seeds"]
        out.append(f"\nPopulation {P}, {n_seeds} paired seeds, budget {B} evaluations (history rows); "
                   "best validation accuracy, mean ± std over seeds:\n")
        out.append(f"| strategy | best @ 100 evals | best @ {B} evals | best @ {teq} trained | trained @ {B} evals | "
                   f"finds the table's best | trained to reach RE's final best (median) | never reach | s/run |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for n in ("random", "re", "filtered"):
            if n not in s:
                continue
            d = s[n]
            med, never = d["reach"][:2] if "reach" in d else ("–", None)
            if n == "re":
                med, never_s = f"{med} (its own)", "–"
            else:
                never_s = f"{never}/{n_seeds}" if never is not None else "–"
            found = f"{d['found']}/{n_seeds}" if "found" in d else "–"
            out.append(f"| {n} | {f(d['best_100'])} | {f(d['best_B'])} | {f(d.get('best_teq', (math.nan, 0)))} | "
                       f"{d['trained_B']:.1f} | {found} | {med} | {never_s} | {d['seconds']:.2f} |")
        if s.get("objective"):
            out.append(f"\nSurrogate as objective (RF fitted on the {P} initial random cells, {cfg.objective_steps} "
                       "predicted steps), against the others at the same number of trained candidates:\n")
            out.append("| top-k trained | trained candidates | objective best | RE | filtered | random | "
                       "objective vs RE (better / equal / worse) |")
            out.append("|---|---|---|---|---|---|---|")
            for k, d in s["objective"].items():
                w = d["wins"]
                out.append(f"| {k} | {d['trained']:.1f} | {f(d['best'])} | {f(d['re'])} | {f(d['filtered'])} | "
                           f"{f(d['random'])} | {w[0]} / {w[1]} / {w[2]} |")
    return "\n".join(out)


# -- the --nb201 strategy comparison ---------------------------------------------------------------


def _spread(xs: Sequence[float]) -> dict[str, float]:
    """Mean, standard deviation (n - 1), median and quartiles of the finite values of ``xs``."""
    a = [x for x in xs if math.isfinite(x)]
    if not a:
        return {k: math.nan for k in ("mean", "sd", "median", "q1", "q3")} | {"n": 0}
    mean, sd = _mean_std(a)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {"mean": mean, "sd": sd, "median": float(med), "q1": float(q1), "q3": float(q3), "n": len(a)}


def nb201_figures(results: Sequence[dict[str, Record]], cfg: Config,
                  checkpoints: Sequence[int] = (100, 300)) -> tuple[list[str], dict[str, Any]]:
    """``(lines, summary)`` of the ``--nb201`` comparison: best validation accuracy (%) after each checkpoint
    (capped at the budget), its spread over seeds, paired wins of BO, table-best hits and seconds per run."""
    steps = sorted({min(c, cfg.budget) for c in checkpoints})
    names = [n for n in NB201_STRATEGIES if all(n in r for r in results)]
    table_best = _table_best()
    lines: list[str] = []
    summary: dict[str, Any] = {"steps": steps, "seeds": len(results), "names": names}
    for n in names:
        recs = [r[n] for r in results]
        d: dict[str, Any] = {}
        for c in steps:
            sp = _spread([100.0 * x.best_after_steps(c) for x in recs])
            d[c] = sp
            lines.append(f"nb201 {n} best@{c}: {sp['mean']:.2f} % (sd {sp['sd']:.2f}, "
                         f"IQR {sp['q1']:.2f}-{sp['q3']:.2f})")
        d["trained"] = statistics.fmean(x.trained_at_steps(cfg.budget) for x in recs)
        lines.append(f"nb201 {n} trained@{cfg.budget}: {d['trained']:.1f} trained candidates (history rows not "
                     "looked up)")
        if table_best is not None:
            d["found"] = sum(x.final_best >= table_best for x in recs)
            lines.append(f"nb201 {n} finds_table_best: {d['found']}/{len(recs)} seeds (val_acc "
                         f"{100 * table_best:.2f} %)")
        d["seconds"] = statistics.fmean(x.info["seconds"] for x in recs)
        lines.append(f"nb201 {n} seconds_per_run: {d['seconds']:.2f} s")
        if "surrogate_seconds" in recs[0].info:
            d["model_seconds"] = statistics.fmean(x.info["surrogate_seconds"] for x in recs)
            lines.append(f"nb201 {n} model_seconds_per_run: {d['model_seconds']:.2f} s (fits, predictions)")
        summary[n] = d
    if "bo" in names:
        for other in (n for n in names if n != "bo"):
            for c in steps:
                a = [r["bo"].best_after_steps(c) for r in results]
                b = [r[other].best_after_steps(c) for r in results]
                wins = summary.setdefault("wins", {})[(other, c)] = _paired(a, b)
                lines.append(f"nb201 bo_vs_{other}@{c}: {_wins_text(wins)} seeds")
    return lines, summary


def nb201_markdown(summary: dict[str, Any], cfg: Config) -> str:
    """The ``--nb201`` comparison as a Markdown table."""
    steps, n_seeds = summary["steps"], summary["seeds"]
    head = "| strategy | " + " | ".join(f"best @ {c} (mean ± sd) | IQR @ {c}" for c in steps) + \
        " | finds the table's best | trained @ " + str(cfg.budget) + " | s/run |"
    out = [f"\nNB201 CIFAR-10 (table look-ups), {n_seeds} paired seeds, budget {cfg.budget} evaluations; best "
           f"validation accuracy in %; RE and filtered RE with population {cfg.population}, tournament "
           f"{cfg.tournament}; BO with n_init {cfg.bo_n_init}, pool {cfg.bo_pool_size}:\n", head,
           "|---|" + "---|---|" * len(steps) + "---|---|---|"]
    for n in summary["names"]:
        d = summary[n]
        cells = " | ".join(f"{d[c]['mean']:.2f} ± {d[c]['sd']:.2f} | {d[c]['q1']:.2f}–{d[c]['q3']:.2f}"
                           for c in steps)
        found = f"{d['found']}/{n_seeds}" if "found" in d else "–"
        out.append(f"| {n} | {cells} | {found} | {d['trained']:.1f} | {d['seconds']:.1f} |")
    if summary.get("wins"):
        out.append("\nBO against each strategy, paired by seed (better / equal / worse):\n")
        out.append("| vs | " + " | ".join(f"@ {c}" for c in steps) + " |")
        out.append("|---|" + "---|" * len(steps))
        for other in (n for n in summary["names"] if n != "bo"):
            out.append(f"| {other} | " + " | ".join("{} / {} / {}".format(*summary["wins"][(other, c)])
                                                   for c in steps) + " |")
    return "\n".join(out)


def main_nb201(args: argparse.Namespace) -> None:
    """``--nb201``: random search, RE, filtered RE and BO on ``nb201-cifar10`` over paired seeds."""
    from data.training import machine

    start = time.perf_counter()
    P = int(args.population.split(",")[0])
    cfg = Config(budget=args.budget, population=P, tournament=args.tournament, bo_n_init=args.bo_n_init,
                 bo_pool_size=args.bo_pool_size)
    print(f"# machine: {machine()}, {os.cpu_count()} CPUs, {args.workers} worker processes, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"# task {TASK}; {args.seeds} paired seeds; budget {args.budget}; strategies {', '.join(NB201_STRATEGIES)}; "
          f"RE/filtered population {P}, tournament {args.tournament}; filtered: RF on graf,zcp, top-5 of 20, "
          f"start_after = population, refit_every 20; BO: n_init {cfg.bo_n_init}, pool {cfg.bo_pool_size}",
          flush=True)
    results = run_all(list(range(args.seeds)), cfg, args.workers, NB201_STRATEGIES)
    lines, summary = nb201_figures(results, cfg, (100, args.budget))
    for line in lines:
        print(line)
    print(nb201_markdown(summary, cfg))
    print(f"\nnb201 total_wall: {time.perf_counter() - start:.0f} s")
    if args.json:
        import json

        per_seed = {n: {str(c): [r[n].best_after_steps(c) for r in results] for c in summary["steps"]}
                    for n in summary["names"]}
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"seeds": list(range(args.seeds)), "budget": args.budget, "best_after": per_seed,
                       "seconds": {n: [r[n].info["seconds"] for r in results] for n in summary["names"]}}, fh,
                      indent=1)


# -- the --objective comparison: the published surrogate-as-objective protocol against top-k --------------


OBJECTIVE_VARIANTS = ("published", "topk")


def run_objective_seed(seed: int, cfg: Config) -> dict[str, Record]:
    """Both surrogate-as-objective protocols and plain RE for one seed on the NB201 table.  ``published``: one
    run (the real first generation of P, the RF fitted on it, 200 predicted steps, the running-best trajectory
    trained); ``topk``: the P random cells looked up, the RF fitted on them, ``cfg.objective_steps`` predicted
    steps from a predicted population, the top ``max(cfg.objective_top_k)`` trained; ``re``: plain RE for
    ``cfg.budget`` evaluations, read at the others' trained counts."""
    from data.archive import Archive
    from data.tasks import get_task
    from nas.search import run_search
    from nas.search.factory import make_strategy as factory, make_surrogate

    task = get_task(TASK)
    len(task)
    out = run_seed(seed, cfg, ("re", "objective"))
    out["topk"] = out.pop("objective")
    with tempfile.TemporaryDirectory(prefix="bench-objective-") as tmp, \
            Archive(os.path.join(tmp, "archive.sqlite")) as archive:
        t0 = time.perf_counter()
        surrogate, _ = make_surrogate(cfg.surrogate, task, cfg.features, seed=seed)
        strategy = factory("objective", task, seed, surrogate=surrogate, prefit=False, protocol="published",
                           population_size=cfg.population, tournament_size=cfg.tournament)
        run_search(strategy, TASK, archive, "published", budget_evals=cfg.population + strategy.steps, progress=False)
        rec = _record(archive, ["published"], task)
        rec.info = {"chosen": len(strategy.ranked), "predicted": [r["predicted"] for r in strategy.records],
                    "chosen_val": [r["val_acc"] for r in strategy.records], "seconds": time.perf_counter() - t0}
        out["published"] = rec
    return out


def _objective_seed_dicts(seed: int, cfg: Config) -> dict[str, dict]:
    return {k: asdict(v) for k, v in run_objective_seed(seed, cfg).items()}


def objective_figures(results: Sequence[dict[str, Record]], cfg: Config) -> tuple[list[str], str]:
    """Lines and a Markdown table comparing the two objective protocols with RE at equal trained candidates."""
    lines, rows = [], []
    for name in OBJECTIVE_VARIANTS:
        recs = [r[name] for r in results]
        trained = [sum(x.trained) for x in recs]
        best = [x.final_best for x in recs]
        re_same = [r["re"].best_after_trained(t) for r, t in zip(results, trained)]
        chosen_best = [max((v for v in x.info.get("chosen_val", []) if v is not None), default=math.nan)
                       for x in recs] if name == "published" else [math.nan]
        m, sd = _mean_std(best)
        rm, rsd = _mean_std(re_same)
        wins = _paired(best, re_same)
        lines += [f"objective {name} best_val_acc: {100 * m:.2f} % (sd {100 * sd:.2f}, {len(recs)} seeds)",
                  f"objective {name} trained: {statistics.fmean(trained):.1f} trained candidates (min {min(trained)}, "
                  f"max {max(trained)})",
                  f"objective {name} re_best_at_same_trained: {100 * rm:.2f} % (sd {100 * rsd:.2f})",
                  f"objective {name} vs_re: {_wins_text(wins)} seeds",
                  f"objective {name} seconds_per_run: {statistics.fmean(x.info['seconds'] for x in recs):.2f} s"]
        if name == "published":
            cm, csd = _mean_std(chosen_best)
            lines.append(f"objective published best_of_chosen: {100 * cm:.2f} % (sd {100 * csd:.2f}; the trajectory's "
                         "architectures only)")
        rows.append(f"| {name} | {100 * m:.2f} ± {100 * sd:.2f} | {statistics.fmean(trained):.1f} | "
                    f"{100 * rm:.2f} ± {100 * rsd:.2f} | {wins[0]} / {wins[1]} / {wins[2]} |")
    a = [r["published"].final_best for r in results]
    b = [r["topk"].final_best for r in results]
    lines.append(f"objective published_vs_topk: {_wins_text(_paired(a, b))} seeds")
    table = "\n".join([
        f"\nSurrogate as objective on NB201 CIFAR-10 (table look-ups), {len(results)} paired seeds, population "
        f"{cfg.population}, RF on {cfg.features}; best validation accuracy in % over every trained candidate "
        "(first generation included), mean ± sd:\n",
        "| protocol | best val acc | trained | RE at the same trained | vs RE (better / equal / worse) |",
        "|---|---|---|---|---|", *rows])
    return lines, table


def main_objective(args: argparse.Namespace) -> None:
    """``--objective``: the published surrogate-as-objective protocol against top-k, on paired seeds."""
    from data.training import machine

    start = time.perf_counter()
    P = int(args.population.split(",")[0])
    top_k = tuple(int(x) for x in args.objective_top_k.split(","))
    cfg = Config(budget=args.budget, population=P, tournament=args.tournament, objective_steps=args.objective_steps,
                 objective_top_k=top_k)
    print(f"# machine: {machine()}, {os.cpu_count()} CPUs, {args.workers} worker processes; task {TASK}; "
          f"{args.seeds} paired seeds; population {P}, tournament {args.tournament}; published: 200 predicted "
          f"steps from the trained first generation, running-best trajectory (0.005) trained; topk: "
          f"{args.objective_steps} steps, top-{max(top_k)} trained; RE budget {args.budget}", flush=True)
    seeds = list(range(args.seeds))
    if args.workers <= 1:
        results = [run_objective_seed(s, cfg) for s in seeds]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_objective_seed_dicts, s, cfg) for s in seeds]
            results = [{k: Record(**v) for k, v in f.result().items()} for f in futures]
    lines, table = objective_figures(results, cfg)
    for line in lines:
        print(line)
    print(table)
    print(f"\nobjective total_wall: {time.perf_counter() - start:.0f} s")


# -- the --einspace benchmark: plain RE against filtered RE on the offline tasks, trained for real ------------


EINSPACE_TASKS = ("language-mini", "gutenberg-mini", "addnist-mini")
#: ``re``: plain RE; ``filtered``: filtered RE with a surrogate fitted during the run; ``transfer``: filtered RE
#: with a transfer surrogate fitted on the source archive's other tasks (the target left out), refitted on the
#: target's results as they come.
EINSPACE_VARIANTS = ("re", "filtered", "transfer")
#: Also available with ``--variants``: ``twostage``, the within-task filter with the proxies (``graf,zcp``)
#: computed only for a GRAF forest's shortlist of ``TWO_STAGE_SHORTLIST``; ``sized``, the transfer filter with
#: each source's targets normalised within ``SIZE_BANDS`` bands of parameter count (``TransferSurrogate``'s
#: ``size_bands``), so that the sources do not teach it that larger networks are better; ``pooled``, ``sized``
#: whose initial population is the best-predicted of ``INITIAL_POOL`` × population random samples at once.
EXTRA_VARIANTS = ("twostage", "sized", "pooled")
TWO_STAGE_SHORTLIST = 10
SIZE_BANDS = 5
INITIAL_POOL = 10
#: The variants that filter with a transfer surrogate, and the size bands of its sources' targets.
TRANSFER_VARIANTS = {"transfer": 1, "sized": SIZE_BANDS, "pooled": SIZE_BANDS}
CHECKPOINTS = (25, 50, 100)


@dataclass(frozen=True)
class EinspaceConfig:
    """One ``--einspace`` setting (everything a run needs)."""

    budget: int = 100
    population: int = 20
    tournament: int = 5
    n_candidates: int = 20
    k: int = 5
    refit_every: int = 10
    #: A transfer refit fits the forest on every source row too (about 1,800 for the offline suite: tens of
    #: seconds per fit on this machine against a fraction of a second for 100 rows), so it refits less often.
    transfer_refit_every: int = 25
    protocol: str = "reduced"
    workers: int = 2
    surrogate: str = "rf"
    features: str | None = None
    shortlist: int | None = None
    source_archive: str | None = None


def einspace_strategy(variant: str, task: Any, seed: int, cfg: EinspaceConfig, transfer: Any = None):
    """A fresh strategy of ``EINSPACE_VARIANTS`` for ``task`` (a loaded task); ``transfer`` is the fitted
    transfer surrogate (copied, so that refits during one run never leak into another)."""
    import copy

    from nas.search.budgets import CPU_BUDGET
    from nas.search.factory import FILTER_FEATURES, make_strategy as factory, make_surrogate

    common = {"population_size": cfg.population, "tournament_size": cfg.tournament}
    if variant == "re":
        return factory("re", task, seed, CPU_BUDGET, **common)
    options = dict(mode="topk", n_candidates=cfg.n_candidates, k=cfg.k, refit_every=cfg.refit_every, **common)
    if variant == "filtered":
        surrogate, _ = make_surrogate(cfg.surrogate, task, cfg.features or FILTER_FEATURES, seed)
        return factory("filtered", task, seed, CPU_BUDGET, surrogate=surrogate, start_after=cfg.population,
                       shortlist=cfg.shortlist, **options)
    if variant == "twostage":
        surrogate, _ = make_surrogate(cfg.surrogate, task, "graf,zcp", seed)
        return factory("filtered", task, seed, CPU_BUDGET, surrogate=surrogate, start_after=cfg.population,
                       shortlist=cfg.shortlist or TWO_STAGE_SHORTLIST, **options)
    if variant in TRANSFER_VARIANTS:
        options["refit_every"] = cfg.transfer_refit_every
        if variant == "pooled":
            options["initial_candidates"] = INITIAL_POOL * cfg.population
        return factory("filtered", task, seed, CPU_BUDGET, surrogate=copy.deepcopy(transfer), prefit=True, **options)
    raise ValueError(f"unknown variant {variant!r}")


def fit_transfer_for(task_name: str, cfg: EinspaceConfig, seed: int = 0, size_bands: int = 1) -> Any:
    """A transfer surrogate (RF, minmax targets, within ``size_bands`` bands of parameter count, the filter's
    features) fitted on every task of the source archive except ``task_name``."""
    from data.tasks import get_task
    from nas.search.factory import FILTER_FEATURES
    from surrogates.sources import open_source_archive
    from surrogates.workflows import fit_transfer

    with open_source_archive(cfg.source_archive, "--source-archive") as archive:
        return fit_transfer(archive, "rf", cfg.features or FILTER_FEATURES, exclude=[task_name], seed=seed,
                            task=get_task(task_name, seed=0), size_bands=size_bands)


def einspace_record(archive: Any, run: str) -> Record:
    """One run of an ``--einspace`` archive as a ``Record`` (with per-row wall-clock and surrogate seconds)."""
    from nas.search.history import TRAINED, run_history, summarize

    entries = run_history(archive, run)
    seconds = summarize(archive, run)["seconds"]
    return Record([e.evaluation.val_acc if e.evaluation.ok and math.isfinite(e.evaluation.val_acc) else math.nan
                   for e in entries], [e.source == TRAINED for e in entries], [False] * len(entries),
                  [e.arch_hash for e in entries], seconds["wall_clock"], seconds["strategy"],
                  {"training_seconds": seconds["training"]}, [e.wall for e in entries], seconds["surrogate"])


def run_einspace(out: str, tasks: Sequence[str], seeds: Sequence[int], cfg: EinspaceConfig,
                 variants: Sequence[str] = EINSPACE_VARIANTS, progress: bool = False) -> dict[str, list[dict[str, Record]]]:
    """Run (or resume) every (task, seed, variant) in its own archive ``out/archives/TASK-VARIANT-sSEED.sqlite``
    (re-running skips finished runs and resumes an interrupted one); returns, per task, one dict of
    ``Record`` per seed."""
    from data.archive import Archive
    from data.tasks import get_task
    from nas.search import run_search

    os.makedirs(os.path.join(out, "archives"), exist_ok=True)
    results: dict[str, list[dict[str, Record]]] = {}
    for name in tasks:
        task = get_task(name, seed=0)
        # one fit per distinct size-band setting (``sized`` and ``pooled`` share theirs; each run gets a copy)
        fitted = {bands: fit_transfer_for(name, cfg, size_bands=bands)
                  for bands in {TRANSFER_VARIANTS[v] for v in variants if v in TRANSFER_VARIANTS}}
        transfers = {v: fitted[TRANSFER_VARIANTS[v]] for v in variants if v in TRANSFER_VARIANTS}
        results[name] = []
        for seed in seeds:
            recs: dict[str, Record] = {}
            for variant in variants:
                path = os.path.join(out, "archives", f"{name}-{variant}-s{seed}.sqlite")
                with Archive(path) as archive:
                    strategy = einspace_strategy(variant, task, seed, cfg, transfers.get(variant))
                    run_search(strategy, name, archive, variant,
                               budget_evals=cfg.budget, protocol=cfg.protocol, workers=cfg.workers, progress=progress)
                    recs[variant] = einspace_record(archive, variant)
                print(f"# done {name} seed {seed} {variant}: best {recs[variant].final_best:.4f}, "
                      f"{recs[variant].wall:.0f} s", flush=True)
            results[name].append(recs)
    return results


def collect_einspace(out: str, tasks: Sequence[str], seeds: Sequence[int], variants: Sequence[str],
                     budget: int) -> tuple[dict[str, list[dict[str, Record]]], dict[str, list[int]]]:
    """The finished runs of ``out`` without running anything (``--report-only``): per task, one dict of
    ``Record`` for every seed whose runs of all ``variants`` have their ``budget`` evaluations; and those seeds."""
    from data.archive import Archive

    results: dict[str, list[dict[str, Record]]] = {}
    finished: dict[str, list[int]] = {}
    for name in tasks:
        results[name], finished[name] = [], []
        for seed in seeds:
            paths = {v: os.path.join(out, "archives", f"{name}-{v}-s{seed}.sqlite") for v in variants}
            if not all(os.path.isfile(p) for p in paths.values()):
                continue
            recs = {}
            for v, path in paths.items():
                with Archive(path, readonly=True) as archive:
                    recs[v] = einspace_record(archive, v)
            if all(len(r.vals) >= budget for r in recs.values()):
                results[name].append(recs)
                finished[name].append(seed)
    return results, finished


def _ratio(a: float, b: float) -> float:
    return a / b if math.isfinite(a) and math.isfinite(b) and b > 0 else math.inf


def einspace_figures(results: dict[str, list[dict[str, Record]]],
                     cfg: EinspaceConfig) -> tuple[list[str], list[str]]:
    """``(lines, markdown rows)`` per task and overall: best at 25/50/100 trained, trained candidates and
    wall-clock seconds to reach plain RE's final best (medians over seeds; ``inf`` = never), their ratios to
    RE's own, and the surrogate's share of the wall-clock."""
    lines: list[str] = []
    rows: list[str] = []
    groups = {**{t: r for t, r in results.items()}, "overall": [r for rs in results.values() for r in rs]}
    checkpoints = [c for c in CHECKPOINTS if c <= cfg.budget] or [cfg.budget]
    for group, runs in groups.items():
        variants = [v for v in EINSPACE_VARIANTS + EXTRA_VARIANTS if runs and all(v in r for r in runs)]
        targets = [r["re"].final_best for r in runs] if "re" in variants else []
        for v in variants:
            recs = [r[v] for r in runs]
            cells = []
            for c in checkpoints:  # the budget counts evaluations, look-ups of repeats included: read its end
                m, sd = _mean_std([x.best_after_trained(c) if c < cfg.budget else x.final_best for x in recs])
                name = f"best@{c}_trained" if c < cfg.budget else f"best@end_of_{c}_evaluations"
                lines.append(f"einspace {group} {v} {name}: {100 * m:.2f} % (sd {100 * sd:.2f})")
                cells.append(f"{100 * m:.2f} ± {100 * sd:.2f}")
            share = [x.surrogate_seconds / x.wall for x in recs if x.wall > 0]
            med_share = statistics.median(share) if share else math.nan
            lines.append(f"einspace {group} {v} surrogate_share: {100 * med_share:.1f} % of wall-clock (median over "
                         f"{len(share)} runs)")
            reach = ["–", "–", "–", "–"]
            if targets:
                need = [x.trained_to_reach(t) for x, t in zip(recs, targets)]
                wall = [x.wall_to_reach(t) for x, t in zip(recs, targets)]
                re_need = [r["re"].trained_to_reach(t) for r, t in zip(runs, targets)]
                re_wall = [r["re"].wall_to_reach(t) for r, t in zip(runs, targets)]
                n_ratios = [_ratio(a, b) for a, b in zip(need, re_need)]
                w_ratios = [_ratio(a, b) for a, b in zip(wall, re_wall)]
                n_ratio, w_ratio = _median_censored(n_ratios), _median_censored(w_ratios)
                (n_lo, n_hi), (w_lo, w_hi) = _bootstrap_median(n_ratios), _bootstrap_median(w_ratios)
                never = sum(math.isinf(x) for x in need)
                lines += [f"einspace {group} {v} trained_to_reach_re_final_best: {_median_censored(need):g} trained "
                          f"candidates (median; never {never}/{len(need)})",
                          f"einspace {group} {v} wall_to_reach_re_final_best: {_median_censored(wall):.0f} s (median)",
                          f"einspace {group} {v} trained_ratio_to_re: {n_ratio:.2f} x (median of paired ratios)",
                          f"einspace {group} {v} wall_ratio_to_re: {w_ratio:.2f} x (median of paired ratios)",
                          f"einspace {group} {v} trained_ratio_to_re_ci95: {n_lo:.2f} to {n_hi:.2f} x (bootstrap "
                          f"over {len(n_ratios)} pairs)",
                          f"einspace {group} {v} wall_ratio_to_re_ci95: {w_lo:.2f} to {w_hi:.2f} x (bootstrap "
                          f"over {len(w_ratios)} pairs)"]
                reach = [f"{_median_censored(need):g} (never {never}/{len(need)})", f"{_median_censored(wall):.0f}",
                         f"{n_ratio:.2f}", f"{w_ratio:.2f}"]
            wall_mean = statistics.fmean(x.wall for x in recs)
            lines.append(f"einspace {group} {v} wall_clock_per_run: {wall_mean:.0f} s (mean)")
            rows.append(f"| {group} | {v} | " + " | ".join(cells) + f" | {' | '.join(reach)} | "
                        f"{100 * med_share:.1f} | {wall_mean:.0f} |")
    return lines, rows


def einspace_markdown(rows: Sequence[str], cfg: EinspaceConfig, seeds: "int | str", command: str) -> str:
    checkpoints = [c for c in CHECKPOINTS if c <= cfg.budget] or [cfg.budget]
    head = ("| task | variant | " + " | ".join(f"best @ {c} trained (%)" if c < cfg.budget else
                                             f"best at the end of {c} evaluations (%)" for c in checkpoints) +
            " | trained to reach RE's final best (median) | wall-clock to reach (s, median) | trained ratio to RE | "
            "wall ratio to RE | surrogate share (%, median) | wall-clock per run (s) |")
    return "\n".join([
        "# Filtered search on einspace: offline tasks, paired seeds\n",
        f"Command: `{command}`\n",
        f"{seeds} paired seeds per task; budget {cfg.budget} evaluations; protocol {cfg.protocol}; {cfg.workers} "
        f"workers; population {cfg.population}, tournament {cfg.tournament}; filtered: top-{cfg.k} of "
        f"{cfg.n_candidates}, refit every {cfg.refit_every} (transfer: {cfg.transfer_refit_every}), surrogate "
        f"{cfg.surrogate} on {cfg.features or 'the default filter features'} (shortlist {cfg.shortlist or 'none'}); the "
        "within-task filter starts after the initial population, the transfer filter from the first ask.  "
        "Best validation accuracy mean ± sd over seeds; ratios are medians of per-seed ratios to plain RE's own "
        "count (or seconds) to reach its final best (inf: never within the budget).\n",
        head, "|---|---|" + "---|" * (len(checkpoints) + 6), *rows, ""])


def einspace_plots(out: str, seeds: dict[str, Sequence[int]], variants: Sequence[str]) -> list[str]:
    """One PNG per task of ``seeds`` (task → its seeds), ``out/search_einspace-TASK.png``: best-so-far
    validation accuracy of every variant, mean line and ± sd band over the seeds, against trained candidates and
    wall-clock seconds (``nas compare``'s figure, read from the benchmark's archives)."""
    from nas.search.report import ArchiveSet, plot_group_curves
    from nas.search.rundirs import RunDir

    paths = []
    with ArchiveSet() as archives:
        for task, task_seeds in seeds.items():
            groups = {}
            for v in variants:
                runs = [RunDir(path=out, archive=a, run=v, label=f"{v} seed {s}", group=v, task=task, strategy=v,
                               seed=s) for s in task_seeds
                        for a in [os.path.join(out, "archives", f"{task}-{v}-s{s}.sqlite")] if os.path.isfile(a)]
                if runs:
                    groups[(task, v)] = runs
            path = os.path.join(out, f"search_einspace-{task}.png")
            plot_group_curves(archives, groups, task, path)
            paths.append(path)
    return paths


def main_einspace(args: argparse.Namespace) -> None:
    """``--einspace``: plain RE, within-task filtered RE and transfer-filtered RE on the offline tasks."""
    from data.training import machine

    start = time.perf_counter()
    cfg = EinspaceConfig(budget=args.budget, population=int(args.population.split(",")[0]),
                         tournament=args.tournament, protocol=args.protocol, workers=args.workers,
                         features=args.features, shortlist=args.shortlist, source_archive=args.source_archive)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in EINSPACE_VARIANTS + EXTRA_VARIANTS]
    if unknown:
        raise SystemExit(f"--variants: unknown {', '.join(unknown)}; choose from "
                         f"{', '.join(EINSPACE_VARIANTS + EXTRA_VARIANTS)}")
    if any(v in TRANSFER_VARIANTS for v in variants):
        from surrogates.sources import source_archive

        try:
            source_archive(cfg.source_archive, "--source-archive")
        except FileNotFoundError as exc:
            raise SystemExit(f"transfer variant: {exc}") from None
    print(f"# machine: {machine()}, {os.cpu_count()} CPUs; tasks {', '.join(tasks)}; {args.seeds} paired seeds; "
          f"{cfg}", flush=True)
    if args.report_only:
        results, finished = collect_einspace(args.out, tasks, range(args.seeds), variants, cfg.budget)
    else:
        results = run_einspace(args.out, tasks, range(args.seeds), cfg, variants)
        finished = {t: list(range(args.seeds)) for t in tasks}
    counts = {t: len(r) for t, r in results.items()}
    if not any(counts.values()):
        raise SystemExit(f"no finished runs of {', '.join(variants)} in {args.out}/archives")
    lines, rows = einspace_figures({t: r for t, r in results.items() if r}, cfg)
    for line in lines:
        print(line)
    command = "python benchmarks/search.py " + " ".join(sys.argv[1:])
    seeds = (str(args.seeds) if len(set(counts.values())) == 1 else
             "finished " + ", ".join(f"{t}: {n}" for t, n in counts.items()))
    text = einspace_markdown(rows, cfg, seeds, command)
    with open(os.path.join(args.out, "search_einspace.md"), "w", encoding="utf-8") as fh:
        fh.write(text)
    print(text)
    for path in einspace_plots(args.out, {t: s for t, s in finished.items() if s}, variants):
        print(f"# figure: {path}")
    print(f"einspace total_wall: {time.perf_counter() - start:.0f} s")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=None, help="paired seeds 0..N-1 (default 20; --einspace 5)")
    parser.add_argument("--budget", type=int, default=None,
                        help="evaluations (history rows) per run (default 300; --einspace 100)")
    parser.add_argument("--population", default=None,
                        help="population size(s), comma-separated (default 100,50; --einspace 20)")
    parser.add_argument("--tournament", type=int, default=None, help="tournament size (default 10; --einspace 5)")
    parser.add_argument("--objective-steps", type=int, default=1000, help="predicted mutations of the objective search")
    parser.add_argument("--objective-top-k", default="5,20", help="architectures the objective search trains")
    parser.add_argument("--workers", "--jobs", type=int, default=2, help="processes over seeds")
    parser.add_argument("--nb201", action="store_true",
                        help="compare random search, RE, filtered RE and BO (best after 100 and --budget evaluations)")
    parser.add_argument("--bo-n-init", type=int, default=10, help="--nb201: BO's random initial design")
    parser.add_argument("--bo-pool-size", type=int, default=200, help="--nb201: BO's candidates per ask")
    parser.add_argument("--json", default=None, help="--nb201: also write the per-seed figures to this JSON file")
    parser.add_argument("--objective", action="store_true",
                        help="compare the published surrogate-as-objective protocol with top-k (and RE)")
    parser.add_argument("--einspace", action="store_true",
                        help="plain RE vs within-task and transfer filtered RE on offline einspace tasks (trains)")
    parser.add_argument("--tasks", default=",".join(EINSPACE_TASKS), help="--einspace: offline tasks")
    parser.add_argument("--variants", default=",".join(EINSPACE_VARIANTS), help="--einspace: which runs")
    parser.add_argument("--protocol", default="reduced", help="--einspace: training protocol")
    parser.add_argument("--features", default=None, help="--einspace: filter features (default: the filter's)")
    parser.add_argument("--shortlist", type=int, default=None, help="--einspace: two-stage shortlist size")
    parser.add_argument("--source-archive", default=None,
                        help="--einspace: archive of source tasks for the transfer surrogate (default: the shipped one)")
    parser.add_argument("--out", default="runs/search_einspace", help="--einspace: archives and search_einspace.md")
    parser.add_argument("--report-only", action="store_true",
                        help="--einspace: report the finished seeds of --out (every variant at its budget); train "
                             "nothing")
    args = parser.parse_args(argv)
    einspace = {"seeds": 5, "budget": EinspaceConfig.budget, "population": str(EinspaceConfig.population),
                "tournament": EinspaceConfig.tournament}
    nb201 = {"seeds": 20, "budget": 300, "population": "100,50", "tournament": 10}
    for key, value in (einspace if args.einspace else nb201).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.einspace:
        main_einspace(args)
        return
    if args.nb201:
        main_nb201(args)
        return
    if args.objective:
        main_objective(args)
        return

    import torch

    from data.training import machine

    start = time.perf_counter()
    seeds = list(range(args.seeds))
    top_k = tuple(int(x) for x in args.objective_top_k.split(","))
    pops = [int(x) for x in args.population.split(",")]
    print(f"# machine: {machine()}, torch {torch.__version__}, {os.cpu_count()} CPUs, {args.workers} worker processes, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"# task {TASK}; {args.seeds} paired seeds; budget {args.budget}; populations {pops}; tournament "
          f"{args.tournament}; filtered: RF on graf,zcp, top-5 of 20, start_after = population, refit_every 20; "
          f"objective: RF fitted on the population's P random cells, {args.objective_steps} predicted steps, "
          f"top-{'/'.join(map(str, top_k))} trained", flush=True)
    summaries = []
    for P in pops:
        cfg = Config(budget=args.budget, population=P, tournament=args.tournament,
                     objective_steps=args.objective_steps, objective_top_k=top_k)
        t0 = time.perf_counter()
        results = run_all(seeds, cfg, args.workers)
        lines, summary = figures(results, cfg)
        for name, value, unit in lines:
            print(f"{name}: {value} {unit}".rstrip())
        print(f"p{P}_wall: {time.perf_counter() - t0:.0f} s", flush=True)
        summaries.append(summary)
    print(markdown(summaries, Config(budget=args.budget, objective_steps=args.objective_steps)))
    print(f"\ntotal_wall: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
