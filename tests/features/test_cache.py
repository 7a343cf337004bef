import numpy as np
import pytest

from data.archive import Archive
from features.cache import CachedFeaturiser, featuriser_key
from features.graf import GRAF
from nas.grammar.sampler import Sampler


class Counting(GRAF):
    calls = 0

    def transform(self, X):
        X = list(X)
        Counting.calls += len(X)
        return super().transform(X)


def archs(n):
    s = Sampler("einspace", (3, 8, 8))
    return [s.sample(i) for i in range(n)]


def test_cache_computes_each_vector_once(tmp_path):
    xs = archs(6)
    with Archive(tmp_path / "a.sqlite") as archive:
        f = CachedFeaturiser(Counting(), archive, "t", chunk=4)
        first = f.fit(xs[:4]).transform(xs[:4])
        assert Counting.calls == 4
        both = f.transform(xs)
        assert Counting.calls == 6  # only the two new ones
        np.testing.assert_array_equal(both[:4], first)
        np.testing.assert_array_equal(both, GRAF().fit(xs).transform(xs))
        assert CachedFeaturiser(Counting(), archive, "other-task").transform(xs[:1]).shape == (1, 413)
        assert Counting.calls == 7  # another task is another key
    with Archive(tmp_path / "a.sqlite") as archive:  # reused across runs
        CachedFeaturiser(Counting(), archive, "t").transform(xs)
        assert Counting.calls == 7


def test_key_depends_on_parameters():
    assert featuriser_key(GRAF()) != featuriser_key(GRAF(extras=False))
    assert featuriser_key(GRAF()) == featuriser_key(GRAF())
    assert featuriser_key(GRAF())[0] == "graf"
