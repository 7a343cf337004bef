import numpy as np
import pytest

from data.archive import Archive
from features.cache import CachedFeaturiser, featuriser_key
from features.graf import GRAF
from nas.sampler import Sampler


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


def test_recaching_a_cached_featuriser_keeps_columns_apart():
    from data.tasks import get_task
    from features.cache import MemoryStore
    from features.pipeline import cached, make_featuriser
    from nas.cells import from_cell_string

    try:
        task = get_task("nb201-cifar10")
        cell = from_cell_string("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|")
        task.lookup(cell)
    except (FileNotFoundError, KeyError, OSError):
        pytest.skip("NB201 data not found")
    plain = make_featuriser("graf,zcp", task)
    twice = cached(cached(plain, MemoryStore(), "t"), MemoryStore(), "t")
    assert featuriser_key(twice.parts[0]) == featuriser_key(plain.parts[0]) != featuriser_key(twice.parts[1])
    np.testing.assert_array_equal(twice.fit([cell]).transform([cell]), plain.fit([cell]).transform([cell]))


class Refusing(GRAF):
    """Refuses (all-NaN row) the first architecture it sees, as a featuriser guard does."""

    calls = 0

    def transform(self, X):
        out = super().transform(list(X))
        Refusing.calls += len(out)
        out[0] = np.nan
        return out


def test_refused_rows_are_not_cached(tmp_path):
    xs = archs(3)
    with Archive(tmp_path / "a.sqlite") as archive:
        f = CachedFeaturiser(Refusing(), archive, "t")
        assert np.isnan(f.transform(xs[:1])).all()
        assert Refusing.calls == 1
        f.transform(xs[:1])  # not cached: asked again (a guard may admit it next time)
        assert Refusing.calls == 2


def test_guards_are_left_out_of_the_cache_key():
    from features.zcp import ZeroCostProxies  # deferred: torch

    loose, strict = ZeroCostProxies(max_params=None), ZeroCostProxies(max_params=10)
    assert featuriser_key(loose) == featuriser_key(strict)
    assert featuriser_key(ZeroCostProxies(batch_size=32)) != featuriser_key(loose)  # values do change
