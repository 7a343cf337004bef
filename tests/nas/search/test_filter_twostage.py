"""Cheap filtering in surrogate-filtered evolution: the two-stage shortlist, the feature cache and the split
of a run's seconds between the surrogate and training."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pytest

from data.archive import Archive
from nas.grammar.nb201 import cell_ops
from nas.sampler import Sampler
from nas.search import SurrogateFilteredEvolution
from nas.search.engine import SearchRun
from nas.search.history import summarize
from tests.nas.search.test_strategies import drive, fake_eval

SHAPE = (3, 32, 32)


@pytest.fixture(scope="module")
def sampler() -> Sampler:
    return Sampler("nb201", SHAPE)


class Scorer:
    """Stub surrogate scoring ``weights · op counts``; records every architecture it was asked to predict."""

    def __init__(self, weights: dict[str, float], delay: float = 0.0) -> None:
        self.weights, self.delay = weights, delay
        self.asked: list[list[str]] = []
        self.fits = 0

    def fit(self, archs, y) -> "Scorer":
        self.fits += 1
        return self

    def predict(self, archs) -> np.ndarray:
        time.sleep(self.delay)
        self.asked.append([a.hash for a in archs])
        return np.array([sum(w * cell_ops(a).count(op) for op, w in self.weights.items()) for a in archs], float)


def two_stage(sampler, prefilter, surrogate, shortlist=4, **kw):
    args = dict(population_size=10, tournament_size=3, start_after=10, n_candidates=12, k=2, refit_every=6,
                prefilter=prefilter, shortlist=shortlist)
    return SurrogateFilteredEvolution(sampler, 0, surrogate, **(args | kw))


def test_only_the_shortlist_is_scored_by_the_surrogate(sampler):
    cheap = Scorer({"nor_conv_3x3": 1.0})
    costly = Scorer({"nor_conv_1x1": 1.0, "nor_conv_3x3": 0.1})
    sfe = two_stage(sampler, cheap, costly)
    drive(sfe, 40)
    assert len(sfe.batches) >= 5 and cheap.fits == costly.fits >= 2
    scored_by_costly = {h for call in costly.asked for h in call}
    for b in sfe.batches:
        assert len(b.shortlist) == 4 and b.prescores.shape == (12,)
        # The shortlist is the prefilter's best 4 (fresh first): nothing outside it is rated higher by it,
        # except candidates the filter passes over because they are known or repeated.
        worst_in = min(b.prescores[i] for i in b.shortlist)
        known = {m.arch.hash for m in sfe.history[: b.upto]}
        for i, arch in enumerate(b.candidates):
            if i not in b.shortlist and b.prescores[i] > worst_in:
                assert arch.hash in known or any(b.candidates[j].hash == arch.hash for j in b.shortlist)
        # Only shortlisted candidates got the costly surrogate's score; the chosen k come from the shortlist,
        # the best by that score.
        outside = [i for i in range(12) if i not in b.shortlist]
        assert all(b.predictions[i] == -np.inf for i in outside)
        assert set(b.chosen) <= set(b.shortlist)
        assert min(b.predictions[i] for i in b.chosen) >= max(
            (b.predictions[i] for i in b.shortlist if i not in b.chosen), default=-np.inf)
    # The costly surrogate saw shortlisted architectures only, at most `shortlist` per batch.
    assert scored_by_costly <= {b.candidates[i].hash for b in sfe.batches for i in b.shortlist}
    assert sum(len(c) for c in costly.asked) <= 4 * len(sfe.batches)


def test_two_stage_arguments(sampler):
    s = Scorer({})
    with pytest.raises(ValueError, match="both"):
        two_stage(sampler, s, s, shortlist=None)
    with pytest.raises(ValueError, match="topk"):
        two_stage(sampler, s, s, mode="reject")
    with pytest.raises(ValueError, match="shortlist"):
        two_stage(sampler, s, s, shortlist=1)
    with pytest.raises(ValueError, match="shortlist"):
        two_stage(sampler, s, s, shortlist=13)
    with pytest.raises(ValueError, match="pre-fitted"):
        two_stage(sampler, s, s, prefit=True)
    plain = two_stage(sampler, None, s, shortlist=None)
    assert "prefilter" not in plain.config()
    assert two_stage(sampler, s, s).config()["shortlist"] == 4


def test_a_repeated_architecture_is_featurised_once(sampler, monkeypatch):
    """Real featurisers (GRAF prefilter, GRAF + proxies surrogate): every architecture's proxies are computed
    once in a run, however often it is a candidate, shortlisted or refitted on."""
    from data.tasks import get_task
    from features.pipeline import TableProxies
    from surrogates.tabular import TabularSurrogate

    try:
        task = get_task("nb201-cifar10")
    except FileNotFoundError as exc:
        pytest.skip(f"NB201 data not available: {exc}")
    computed: Counter[str] = Counter()
    original = TableProxies.transform

    def counting(self, X):
        X = list(X)
        computed.update(a.hash for a in X)
        return original(self, X)

    monkeypatch.setattr(TableProxies, "transform", counting)
    cheap = TabularSurrogate("rf", "graf", task, model_params={"n_estimators": 10})
    costly = TabularSurrogate("rf", "graf,zcp", task, model_params={"n_estimators": 10})
    sfe = two_stage(sampler, cheap, costly, population_size=8, start_after=8, n_candidates=10, k=2, shortlist=3,
                    refit_every=4)
    drive(sfe, 40, evaluate=lambda a: fake_eval(a, fail_pool_first=False))
    assert sfe.num_fits >= 5
    assert computed and max(computed.values()) == 1
    # The candidates repeat (mutants of a small population) and every refit reuses the trained ones' rows.
    candidates = Counter(a.hash for b in sfe.batches for a in b.candidates)
    assert max(candidates.values()) > 1
    trained = {m.arch.hash for m in sfe.history}
    assert set(computed) <= trained | {b.candidates[i].hash for b in sfe.batches for i in b.shortlist}


def test_the_summary_splits_surrogate_seconds_from_training(sampler, tmp_path):
    costly = Scorer({"nor_conv_3x3": 1.0}, delay=0.05)
    sfe = two_stage(sampler, None, costly, shortlist=None)

    def evaluate(arch):
        time.sleep(0.01)
        return fake_eval(arch, fail_pool_first=False).val_acc

    with Archive(tmp_path / "a.sqlite") as archive:
        SearchRun(archive, "f", evaluate, progress=False).run(sfe, budget_evals=30)
        seconds = summarize(archive, "f")["seconds"]
        infos = [e[-1] for e in archive.history("f")]
    batches = len(sfe.batches)
    assert batches >= 5
    recorded = [i["surrogate_seconds"] for i in infos if "surrogate_seconds" in i]
    # One entry per batch start (its predictions; the fit happens there too).
    assert len(recorded) == batches and all(s >= 0.05 for s in recorded)
    assert seconds["surrogate"] == pytest.approx(sum(recorded), abs=1e-3)
    assert 0.05 * batches <= seconds["surrogate"] <= seconds["strategy"] <= seconds["wall_clock"]
