"""Offline generators of Unseen-NAS-like tasks: shapes, sizes, determinism, label recipes, unseen test
combinations, the idx reader and the Fashion-MNIST path; the learnability check is marked slow."""

from __future__ import annotations

import gzip
import os
import time

import numpy as np
import pytest

from data import generators as G
from data.generators import chesseract, common, fashion
from data.tasks import SPLITS, Task

EXPECTED = {  # name: (input shape, classes)
    "addnist-mini": ((3, 16, 16), 9),
    "multnist-mini": ((3, 16, 16), 10),
    "cifartile-mini": ((3, 16, 16), 4),
    "language-mini": ((1, 24, 24), 10),
    "gutenberg-mini": ((1, 27, 18), 6),
    "chesseract-mini": ((3, 6, 7), 3),
}
SMALL = dict(n_train=600, n_valid=200, n_test=200)
HAVE_FASHION = G.fashion_mnist_dir() is not None


@pytest.fixture(scope="module")
def tasks() -> dict[str, Task]:
    return {name: factory(seed=0) for name, (factory, _) in G.GENERATORS.items()}


def test_register_all_names() -> None:
    seen: dict[str, str] = {}
    G.register_all(lambda name, factory, description: seen.setdefault(name, description))
    assert set(EXPECTED) <= set(seen)
    assert all(seen.values())
    assert ("fashion-mnist" in seen) == HAVE_FASHION


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shape_classes_sizes_dtypes(tasks: dict[str, Task], name: str) -> None:
    task = tasks[name]
    shape, classes = EXPECTED[name]
    assert task.name == name
    assert task.input_shape == shape and task.num_classes == classes
    assert [len(task.split(s)) for s in SPLITS] == [G.N_TRAIN, G.N_VALID, G.N_TEST]
    for s in SPLITS:
        split = task.split(s)
        assert split.x.dtype == np.float32 and split.y.dtype == np.int64
        assert split.x.shape[1:] == shape
        assert np.isfinite(split.x).all() and -2.0 < split.x.min() and split.x.max() < 3.0
    assert set(np.unique(task.train.y)) == set(range(classes)), "every class must occur in train"
    for key in ("source", "recipe", "seed", "generator_version"):
        assert key in task.metadata
    assert task.metadata["seed"] == 0 and task.metadata["generator_version"] == G.GENERATOR_VERSION


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_deterministic_in_seed(tasks: dict[str, Task], name: str) -> None:
    factory = G.GENERATORS[name][0]
    assert factory(seed=0).fingerprint() == tasks[name].fingerprint()
    assert factory(seed=1).fingerprint() != tasks[name].fingerprint()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_custom_sizes_and_bad_arguments(name: str) -> None:
    factory = G.GENERATORS[name][0]
    task = factory(seed=0, n_train=60, n_valid=30, n_test=30)
    assert [len(task.split(s)) for s in SPLITS] == [60, 30, 30]
    with pytest.raises(ValueError, match="n_train"):
        factory(seed=0, n_train=0)
    with pytest.raises(ValueError, match="seed"):
        factory(seed=-1)


@pytest.mark.parametrize(
    "factory, kwargs, needle",
    [
        (G.make_addnist_mini, {"noise": -0.1}, "noise"),
        (G.make_multnist_mini, {"max_shift": -1}, "max_shift"),
        (G.make_cifartile_mini, {"tint": (1.0, 0.5)}, "tint"),
        (G.make_language_mini, {"concentration": 0.0}, "concentration"),
        (G.make_language_mini, {"shared_weight": 1.5}, "shared_weight"),
        (G.make_gutenberg_mini, {"follow_probability": (0.6, 0.3)}, "follow_probability"),
        (G.make_chesseract_mini, {"blunder": 2.0}, "blunder"),
        (G.make_chesseract_mini, {"plies_before_end": (5, 2)}, "plies_before_end"),
    ],
)
def test_bad_recipe_parameters(factory, kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        factory(seed=0, **kwargs)


# --------------------------------------------------------------------------------------------------
# Recipes: labels follow the rule and test combinations are unseen
# --------------------------------------------------------------------------------------------------


def _base_index() -> dict[bytes, int]:
    images, _ = common.digit_images()
    return {img.tobytes(): i for i, img in enumerate(images)}


@pytest.mark.parametrize(
    "factory, rule",
    [
        (G.make_addnist_mini, lambda t: np.minimum(t.sum(1), 26) // 3),
        (G.make_multnist_mini, lambda t: np.prod(t, axis=1) % 10),
    ],
)
def test_digit_triples(factory, rule) -> None:
    task = factory(seed=0, noise=0.0, **SMALL)
    images, labels = common.digit_images()
    index = _base_index()
    triples, used = {}, {}
    for s in SPLITS:
        x = task.split(s).x
        base = np.array([[index[x[n, c, ::2, ::2].tobytes()] for c in range(3)] for n in range(len(x))])
        np.testing.assert_array_equal(common.upsample_images(images[base], 2), x)  # nothing but the upsampled digits
        digits = labels[base]
        np.testing.assert_array_equal(rule(digits), task.split(s).y)
        triples[s] = {tuple(t) for t in digits}
        used[s] = set(base.ravel())
    assert not triples["test"] & (triples["train"] | triples["valid"]), "test triples must be unseen"
    assert len(triples["test"]) > 20
    for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
        assert not used[a] & used[b], f"{a} and {b} share base images"


def test_cifartile_labels_count_distinct_digits() -> None:
    task = G.make_cifartile_mini(seed=0, noise=0.0, **SMALL)
    images, labels = common.digit_images()
    bases = images.reshape(len(images), -1)
    bases = bases / np.linalg.norm(bases, axis=1, keepdims=True)
    used = {}
    patterns = {(4,), (2, 2), (1, 1, 2), (1, 1, 1, 1)}
    for s in SPLITS:
        x = task.split(s).x
        tiles = np.stack([x[:, 0, r : r + 8, c : c + 8] for r in (0, 8) for c in (0, 8)], 1).reshape(-1, 64)
        tiles = tiles / np.linalg.norm(tiles, axis=1, keepdims=True)
        match = np.argmax(tiles @ bases.T, axis=1).reshape(len(x), 4)
        classes = labels[match]
        distinct = np.array([len(set(row)) for row in classes])
        np.testing.assert_array_equal(distinct - 1, task.split(s).y)
        assert {tuple(sorted(np.unique(row, return_counts=True)[1])) for row in classes} <= patterns
        used[s] = set(match.ravel())
        assert np.ptp(x[:, :, :8, :8].reshape(len(x), 3, -1).max(2), axis=1).max() > 0.1, "tiles are tinted"
    assert not used["train"] & used["test"] and not used["valid"] & used["test"]


def test_language_words() -> None:
    task = G.make_language_mini(seed=0, **SMALL)
    words: dict[str, set] = {}
    by_language: dict[int, set] = {}
    for s in SPLITS:
        x = task.split(s).x[:, 0]
        assert np.array_equal(x.sum(axis=2), np.ones(x.shape[:2])), "one letter per position"
        chars = x.argmax(axis=2).reshape(len(x), 4, 6)
        words[s] = {tuple(w) for row in chars for w in row}
        for row, lang in zip(chars, task.split(s).y):
            by_language.setdefault(int(lang), set()).update(tuple(w) for w in row)
    assert not words["test"] & (words["train"] | words["valid"]), "test words must be unseen"
    langs = list(by_language.values())
    assert all(not (a & b) for i, a in enumerate(langs) for b in langs[i + 1 :]), "a word in two languages"


def test_gutenberg_phrases() -> None:
    task = G.make_gutenberg_mini(seed=0, **SMALL)
    phrases: dict[str, set] = {}
    by_author: dict[int, set] = {}
    for s in SPLITS:
        x = task.split(s).x[:, 0]  # symbols along the rows, positions along the columns
        assert np.array_equal(x.sum(axis=1), np.ones((len(x), 18))), "one symbol per position"
        symbols = x.argmax(axis=1)
        for word in symbols.reshape(-1, 6):
            letters = int((word < 26).sum())
            assert 3 <= letters <= 6 and (word[:letters] < 26).all(), "words are 3-6 letters then _ padding"
        phrases[s] = {tuple(p) for p in symbols}
        for p, author in zip(symbols, task.split(s).y):
            by_author.setdefault(int(author), set()).add(tuple(p))
    assert not phrases["test"] & (phrases["train"] | phrases["valid"]), "test phrases must be unseen"
    authors = list(by_author.values())
    assert all(not (a & b) for i, a in enumerate(authors) for b in authors[i + 1 :]), "a phrase of two authors"


def test_chesseract_positions() -> None:
    task = G.make_chesseract_mini(seed=0, **SMALL)
    boards = {}
    for s in SPLITS:
        x = task.split(s).x
        first, second, to_move = x[:, 0], x[:, 1], x[:, 2]
        assert not (first * second).any(), "two stones in one cell"
        stones = first + second
        # gravity: below every stone (higher row index = lower on the board) there is a stone
        assert (stones[:, 1:, :] >= stones[:, :-1, :]).all()
        n1, n2 = first.sum((1, 2)), second.sum((1, 2))
        assert set(np.unique(n1 - n2)) <= {0.0, 1.0}
        np.testing.assert_array_equal(to_move[:, 0, 0], (n1 == n2).astype(np.float32))
        assert (n1 + n2).min() >= 6
        boards[s] = {b.tobytes() for b in x[:, :2]}
    assert not boards["test"] & (boards["train"] | boards["valid"]), "test positions must be unseen"


def test_connect_four_win_detection() -> None:
    stride = chesseract._C4_STRIDE

    def bits(cells):
        return np.array([sum(1 << (c * stride + r) for r, c in cells)], dtype=np.uint64)

    assert chesseract._c4_won(bits([(0, 0), (1, 0), (2, 0), (3, 0)]))[0]  # vertical
    assert chesseract._c4_won(bits([(0, 1), (0, 2), (0, 3), (0, 4)]))[0]  # horizontal
    assert chesseract._c4_won(bits([(0, 0), (1, 1), (2, 2), (3, 3)]))[0]  # diagonal
    assert chesseract._c4_won(bits([(3, 0), (2, 1), (1, 2), (0, 3)]))[0]  # anti-diagonal
    assert not chesseract._c4_won(bits([(3, 0), (4, 0), (5, 0), (0, 1)]))[0]  # no wrap across columns
    assert not chesseract._c4_won(bits([(0, 0), (1, 0), (2, 0), (0, 1), (0, 2)]))[0]


def test_class_pools_are_disjoint() -> None:
    _, labels = common.digit_images()
    pools = common.class_pools(labels, 10, np.random.default_rng(0))
    for c in range(10):
        sets = [set(pools[s][c]) for s in SPLITS]
        assert all(sets) and not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
        assert set().union(*sets) == set(np.flatnonzero(labels == c))


# --------------------------------------------------------------------------------------------------
# idx files and Fashion-MNIST
# --------------------------------------------------------------------------------------------------


def _write_idx(path, array: np.ndarray, compress: bool = True) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    with (gzip.open if compress else open)(path, "wb") as fh:
        fh.write(data)


def _fake_fashion(folder, n_train: int = 300, n_test: int = 120) -> None:
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = np.arange(n) % 10
        x = (rng.random((n, 28, 28)) * 60 + y[:, None, None] * 19).astype(np.uint8)
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", x)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte", y, compress=False)  # plain files are read too


def test_read_idx_round_trip_and_errors(tmp_path) -> None:
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a.gz", a)
    _write_idx(tmp_path / "a", a, compress=False)
    np.testing.assert_array_equal(G.read_idx(tmp_path / "a.gz"), a)
    np.testing.assert_array_equal(G.read_idx(tmp_path / "a"), a)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x00")
    with pytest.raises(ValueError, match="bad magic"):
        G.read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))
    with pytest.raises(ValueError, match="short|data bytes"):
        G.read_idx(tmp_path / "short")


def test_fashion_from_a_folder(tmp_path, monkeypatch) -> None:
    _fake_fashion(tmp_path)
    monkeypatch.setenv(G.FASHION_MNIST_ENV, str(tmp_path))
    assert G.fashion_mnist_dir() == tmp_path
    seen: list[str] = []
    G.register_all(lambda name, factory, description: seen.append(name))
    assert "fashion-mnist" in seen and "addnist-fashion" in seen
    task = G.make_fashion_mnist(seed=0, n_train=150, n_valid=50, n_test=100)
    assert task.input_shape == (1, 14, 14) and task.num_classes == 10
    assert [len(task.split(s)) for s in SPLITS] == [150, 50, 100]
    assert 0.0 <= task.train.x.min() and task.train.x.max() <= 1.0
    assert task.fingerprint() == G.make_fashion_mnist(seed=0, n_train=150, n_valid=50, n_test=100).fingerprint()
    add = G.make_addnist_fashion(seed=0, base_images=300, **SMALL)
    assert add.input_shape == (3, 14, 14) and add.num_classes == 9
    with pytest.raises(FileNotFoundError, match="missing"):
        G.make_fashion_mnist(folder=tmp_path / "nowhere")


def test_fashion_missing(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(G.FASHION_MNIST_ENV, str(tmp_path))
    monkeypatch.setattr(fashion, "FASHION_MNIST_DIRS", ())
    assert G.fashion_mnist_dir() is None
    with pytest.raises(FileNotFoundError, match=G.FASHION_MNIST_ENV):
        G.make_fashion_mnist()


@pytest.mark.skipif(not HAVE_FASHION, reason="Fashion-MNIST idx files not installed")
def test_real_fashion_mnist() -> None:
    task = G.make_fashion_mnist(seed=0)
    assert task.input_shape == (1, 14, 14)
    assert [len(task.split(s)) for s in SPLITS] == [G.N_TRAIN, G.N_VALID, G.N_TEST]
    assert set(np.unique(task.train.y)) == set(range(10))
    assert task.fingerprint() == G.make_fashion_mnist(seed=0).fingerprint()
    add = G.make_addnist_fashion(seed=0)
    assert add.input_shape == (3, 14, 14) and set(np.unique(add.train.y)) == set(range(9))


# --------------------------------------------------------------------------------------------------
# Learnability: a small CNN is clearly above chance and clearly below perfect (slow)
# --------------------------------------------------------------------------------------------------


def small_cnn(input_shape: tuple[int, ...], num_classes: int, seed: int = 0):
    """Two conv-BN-ReLU-maxpool blocks (32, 64 channels), a 128-unit hidden layer (BN-ReLU: without the BN its
    units can all die on the counting task and leave the net at chance) and a linear head."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    c = input_shape[0]
    net = nn.Sequential(
        nn.Conv2d(c, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
        nn.Flatten(), nn.LazyLinear(128), nn.BatchNorm1d(128), nn.ReLU(), nn.Linear(128, num_classes),
    )
    net.eval()
    net(torch.zeros(1, *input_shape))  # materialise the lazy layer without touching the BN statistics
    return net


def train_small_cnn(task: Task, epochs: int = 10, seed: int = 0, batch_size: int = 64) -> dict[str, float]:
    """Train ``small_cnn`` with Adam (lr 2e-3) on the train split; accuracies per split and seconds taken."""
    import torch
    from torch import nn

    net = small_cnn(task.input_shape, task.num_classes, seed)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    x, y = torch.from_numpy(task.train.x), torch.from_numpy(task.train.y)
    gen = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), batch_size):
            b = order[i : i + batch_size]
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[b]), y[b]).backward()
            opt.step()
    seconds = time.perf_counter() - started
    net.eval()
    out = {"seconds": seconds}
    with torch.no_grad():
        for s in SPLITS:
            split = task.split(s)
            pred = net(torch.from_numpy(split.x)).argmax(1).numpy()
            out[s] = float(np.mean(pred == split.y))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED) + (["fashion-mnist", "addnist-fashion"] if HAVE_FASHION else []))
def test_small_cnn_learns_but_not_perfectly(name: str) -> None:
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads(), os.cpu_count() or 1))
    factory = G.GENERATORS[name][0] if name in G.GENERATORS else getattr(G, "make_" + name.replace("-", "_"))
    task = factory(seed=0)
    result = train_small_cnn(task, epochs=6)
    chance = task.chance_level()
    assert result["valid"] > chance + 0.08, f"{name}: valid {result['valid']:.3f} vs chance {chance:.3f}"
    assert result["valid"] < 0.97, f"{name}: valid {result['valid']:.3f} is too easy"
