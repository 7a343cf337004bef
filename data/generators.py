"""Offline generators of small Unseen-NAS-like tasks (AddNIST, MultNIST, CIFARTile, Language, Gutenberg,
Chesseract) and a Fashion-MNIST subset when its idx files are on disk.

Every generator is deterministic in its ``seed`` (same seed, same bytes), needs no network, runs in about a
second, and keeps the inductive bias of the published dataset it imitates while staying small enough that a
random architecture trains on it in seconds on a CPU.  Digit images come from scikit-learn's bundled
``load_digits`` (1,797 images of 8×8 pixels); the base images of each class are split into disjoint pools for
train, valid and test, so no test image is ever seen in training.  ``register_all`` puts every task in the
registry of ``data.tasks``.
"""

from __future__ import annotations

import functools
import gzip
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from data.tasks import Split, Task

logger = logging.getLogger(__name__)

#: bumped whenever a generator's output for a given seed changes
GENERATOR_VERSION = 1

#: default sizes of the generated splits
N_TRAIN, N_VALID, N_TEST = 4000, 1000, 1000

#: where Debian's ``dataset-fashion-mnist`` puts the idx files; ``NAS_FASHION_MNIST_DIR`` takes precedence
FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
FASHION_MNIST_ENV = "NAS_FASHION_MNIST_DIR"

_POOL_FRACTIONS = (0.6, 0.2, 0.2)  # train / valid / test share of the base digit images of every class


# --------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------


def _rng(name: str, seed: int) -> np.random.Generator:
    """A generator seeded by the task name and the seed, so tasks with the same seed draw independent streams."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"task {name!r}: seed must be a non-negative integer, got {seed!r}")
    salt = int.from_bytes(name.encode(), "little") % (2**63)
    return np.random.default_rng([int(seed), salt])


def _check_sizes(name: str, **sizes: int) -> None:
    for key, value in sizes.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"task {name!r}: {key} must be a positive integer, got {value!r}")


def _check_range(name: str, key: str, value: Any, low: float, high: float = float("inf")) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not (
        low <= value <= high
    ):
        raise ValueError(f"task {name!r}: {key} must be a number in [{low}, {high}], got {value!r}")


def _metadata(name: str, seed: int, recipe: str, source: str, **extra: Any) -> dict[str, Any]:
    return {
        "source": source,
        "recipe": recipe,
        "seed": int(seed),
        "generator_version": GENERATOR_VERSION,
        "generator": f"data.generators:{name}",
        **extra,
    }


def _balanced_labels(n: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` labels with every class as equally often as possible, in random order."""
    return rng.permutation(np.resize(np.arange(num_classes, dtype=np.int64), n))


def _task(
    name: str,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    num_classes: int,
    metadata: dict[str, Any],
    started: float,
) -> Task:
    parts = {
        k: Split(np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y, dtype=np.int64))
        for k, (x, y) in splits.items()
    }
    shape = tuple(int(d) for d in parts["train"].x.shape[1:])
    task = Task(name, shape, num_classes, parts["train"], parts["valid"], parts["test"], metadata)
    logger.debug("generated %s (seed %s) in %.2f s", name, metadata.get("seed"), time.perf_counter() - started)
    return task


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits as read-only arrays: images (1797×8×8 float32 in [0, 1]) and labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the digit-based tasks need scikit-learn (sklearn.datasets.load_digits)") from exc
    bunch = load_digits()
    images = (np.asarray(bunch.images, dtype=np.float32) / 16.0).astype(np.float32)
    labels = np.asarray(bunch.target, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _class_pools(
    labels: np.ndarray, num_classes: int, rng: np.random.Generator, fractions: Sequence[float] = _POOL_FRACTIONS
) -> dict[str, list[np.ndarray]]:
    """Disjoint pools of base-image indices per split and class (every pool non-empty)."""
    pools: dict[str, list[np.ndarray]] = {"train": [], "valid": [], "test": []}
    for c in range(num_classes):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) < 3:
            raise ValueError(f"class {c} has {len(idx)} base images; need at least 3 to fill three pools")
        n_tr = max(1, int(round(fractions[0] * len(idx))))
        n_va = max(1, int(round(fractions[1] * len(idx))))
        n_tr = min(n_tr, len(idx) - 2)
        pools["train"].append(idx[:n_tr])
        pools["valid"].append(idx[n_tr : n_tr + n_va])
        pools["test"].append(idx[n_tr + n_va :])
    return pools


def _draw(pool: list[np.ndarray], classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One base-image index per entry of ``classes``, uniformly from that class's pool."""
    out = np.empty(len(classes), dtype=np.int64)
    for c in np.unique(classes):
        where = np.flatnonzero(classes == c)
        out[where] = rng.choice(pool[c], size=len(where))
    return out


def _upsample(images: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upsampling of the last two axes."""
    if factor == 1:
        return images
    return np.repeat(np.repeat(images, factor, axis=-2), factor, axis=-1)


def _shift(images: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Translate each ``H×W`` image by up to ``max_shift`` pixels in each direction, filling with zeros."""
    if max_shift == 0:
        return images
    n, h, w = images.shape
    padded = np.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift)))
    dy = rng.integers(0, 2 * max_shift + 1, size=n)
    dx = rng.integers(0, 2 * max_shift + 1, size=n)
    rows = dy[:, None] + np.arange(h)[None, :]
    cols = dx[:, None] + np.arange(w)[None, :]
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


# --------------------------------------------------------------------------------------------------
# AddNIST / MultNIST: three digits as channels, label a function of the digit triple
# --------------------------------------------------------------------------------------------------


def _split_triples(
    labels: np.ndarray, num_classes: int, test_fraction: float, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Split the indices of all 1,000 digit triples into seen (train/valid) and unseen (test) sets, stratified
    by label so that every class has triples on both sides."""
    seen: list[np.ndarray] = []
    unseen: list[np.ndarray] = []
    for c in range(num_classes):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) < 2:
            raise ValueError(f"label {c} has {len(idx)} digit triples; need at least 2 to split train/test")
        n_test = min(len(idx) - 1, max(1, int(round(test_fraction * len(idx)))))
        unseen.append(idx[:n_test])
        seen.append(idx[n_test:])
    return seen, unseen


def _make_triple_task(
    name: str,
    seed: int,
    label_fn: Callable[[np.ndarray], np.ndarray],
    num_classes: int,
    recipe: str,
    n_train: int,
    n_valid: int,
    n_test: int,
    noise: float,
    max_shift: int,
    test_fraction: float,
    images: np.ndarray | None = None,
    image_labels: np.ndarray | None = None,
    source: str = "sklearn.datasets.load_digits (8x8, upsampled 2x)",
    upsample: int = 2,
) -> Task:
    started = time.perf_counter()
    _check_sizes(name, n_train=n_train, n_valid=n_valid, n_test=n_test)
    _check_range(name, "noise", noise, 0.0)
    if not isinstance(max_shift, (int, np.integer)) or max_shift < 0:
        raise ValueError(f"task {name!r}: max_shift must be a non-negative integer, got {max_shift!r}")
    rng = _rng(name, seed)
    if images is None or image_labels is None:
        images, image_labels = _digits()
    grid = np.stack(np.meshgrid(np.arange(10), np.arange(10), np.arange(10), indexing="ij"), -1).reshape(-1, 3)
    triple_labels = np.asarray(label_fn(grid), dtype=np.int64)  # a label of -1 would leave a triple out
    seen, unseen = _split_triples(triple_labels, num_classes, test_fraction, rng)
    pools = _class_pools(image_labels, 10, rng)
    splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split, n, triple_sets in (("train", n_train, seen), ("valid", n_valid, seen), ("test", n_test, unseen)):
        y = _balanced_labels(n, num_classes, rng)
        triples = np.empty((n, 3), dtype=np.int64)
        for c in range(num_classes):
            where = np.flatnonzero(y == c)
            triples[where] = grid[rng.choice(triple_sets[c], size=len(where))]
        channels = []
        for ch in range(3):
            base = images[_draw(pools[split], triples[:, ch], rng)]
            channels.append(_shift(_upsample(base, upsample), max_shift, rng))
        x = np.stack(channels, axis=1)
        if noise:
            x = x + rng.normal(0.0, noise, size=x.shape).astype(np.float32)
        splits[split] = (x, y)
    meta = _metadata(
        name,
        seed,
        recipe,
        source,
        test_combinations="digit triples of the test split never occur in train or valid",
        noise=noise,
        max_shift=max_shift,
        test_fraction=test_fraction,
    )
    return _task(name, splits, num_classes, meta, started)


def make_addnist_mini(
    seed: int = 0,
    n_train: int = N_TRAIN,
    n_valid: int = N_VALID,
    n_test: int = N_TEST,
    noise: float = 0.1,
    max_shift: int = 0,
) -> Task:
    """AddNIST-like: three digit images as the channels of a 3×16×16 image; the label is the sum of the three
    digits in bins of three (27 joins 24–26): the 28-class sum barely learns in seconds.  Digit triples are split
    75/25 so the test split holds only unseen triples."""
    return _make_triple_task(
        "addnist-mini",
        seed,
        _addnist_bins,
        9,
        "3 digits as channels; label = min(i+j+k, 26) // 3 (9 classes), balanced; test triples unseen",
        n_train,
        n_valid,
        n_test,
        noise,
        max_shift,
        0.25,
    )


def _addnist_bins(triples: np.ndarray) -> np.ndarray:
    return np.minimum(triples.sum(axis=1), 26) // 3


def _multnist_label(triples: np.ndarray) -> np.ndarray:
    return np.prod(triples, axis=1) % 10


def make_multnist_mini(
    seed: int = 0,
    n_train: int = N_TRAIN,
    n_valid: int = N_VALID,
    n_test: int = N_TEST,
    noise: float = 0.1,
    max_shift: int = 0,
) -> Task:
    """MultNIST-like: three digit images as channels (3×16×16); label = (i·j·k) mod 10, balanced over the ten
    classes.  Digit triples are split 75/25 so the test split holds only unseen triples."""
    return _make_triple_task(
        "multnist-mini",
        seed,
        _multnist_label,
        10,
        "3 digits as channels; label = (i*j*k) mod 10, balanced; test triples unseen",
        n_train,
        n_valid,
        n_test,
        noise,
        max_shift,
        0.25,
    )


# --------------------------------------------------------------------------------------------------
# CIFARTile: a 2x2 grid of images; label = number of distinct classes - 1
# --------------------------------------------------------------------------------------------------

#: multiplicity of the classes in the four tiles for 1, 2, 3 and 4 distinct classes (as in CIFARTile)
_TILE_PATTERNS = ((4,), (2, 2), (2, 1, 1), (1, 1, 1, 1))


def make_cifartile_mini(
    seed: int = 0,
    n_train: int = N_TRAIN,
    n_valid: int = N_VALID,
    n_test: int = N_TEST,
    noise: float = 0.05,
    tint: tuple[float, float] = (0.3, 1.0),
) -> Task:
    """CIFARTile-like: a 2×2 grid of 8×8 digit images (3×16×16), each tile tinted with its own random colour;
    the label is the number of distinct digit classes − 1, with CIFARTile's multiplicity patterns."""
    name = "cifartile-mini"
    started = time.perf_counter()
    _check_sizes(name, n_train=n_train, n_valid=n_valid, n_test=n_test)
    _check_range(name, "noise", noise, 0.0)
    if len(tint) != 2 or not 0.0 <= tint[0] <= tint[1]:
        raise ValueError(f"task {name!r}: tint must be a range (low, high) with 0 <= low <= high, got {tint}")
    rng = _rng(name, seed)
    images, labels = _digits()
    pools = _class_pools(labels, 10, rng)
    splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split, n in (("train", n_train), ("valid", n_valid), ("test", n_test)):
        y = _balanced_labels(n, 4, rng)
        tile_classes = np.empty((n, 4), dtype=np.int64)
        for i, label in enumerate(y):
            chosen = rng.choice(10, size=label + 1, replace=False)
            tile_classes[i] = rng.permutation(np.repeat(chosen, _TILE_PATTERNS[label]))
        tiles = images[_draw(pools[split], tile_classes.ravel(), rng)].reshape(n, 4, 8, 8)
        colours = rng.uniform(tint[0], tint[1], size=(n, 4, 3)).astype(np.float32)
        coloured = tiles[:, :, None, :, :] * colours[:, :, :, None, None]  # n, tile, rgb, 8, 8
        x = np.empty((n, 3, 16, 16), dtype=np.float32)
        for t, (r, c) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
            x[:, :, 8 * r : 8 * r + 8, 8 * c : 8 * c + 8] = coloured[:, t]
        if noise:
            x += rng.normal(0.0, noise, size=x.shape).astype(np.float32)
        splits[split] = (x, y)
    meta = _metadata(
        name,
        seed,
        "2x2 tiles of digits, each tinted a random colour; label = #distinct digits - 1 "
        "(patterns 4 / 2+2 / 2+1+1 / 1+1+1+1), balanced",
        "sklearn.datasets.load_digits (8x8 tiles)",
        noise=noise,
        tint=list(tint),
    )
    return _task(name, splits, 4, meta, started)


# --------------------------------------------------------------------------------------------------
# Language: synthetic languages as letter-bigram Markov chains
# --------------------------------------------------------------------------------------------------

_LANG_LETTERS = 24  # a..x
_WORD_LEN = 6


def _encode_words(words: np.ndarray, base: int) -> np.ndarray:
    """Integer keys of letter-index rows (for uniqueness and set tests)."""
    keys = np.zeros(len(words), dtype=np.int64)
    for pos in range(words.shape[1]):
        keys = keys * base + words[:, pos]
    return keys


def _sample_chain(
    start: np.ndarray, trans: np.ndarray, n: int, length: int, rng: np.random.Generator
) -> np.ndarray:
    """``n`` sequences of ``length`` states from a Markov chain (start distribution, transition matrix)."""
    out = np.empty((n, length), dtype=np.int64)
    out[:, 0] = np.minimum(np.searchsorted(np.cumsum(start), rng.random(n), side="right"), len(start) - 1)
    cum = np.cumsum(trans, axis=1)
    for pos in range(1, length):
        rows = cum[out[:, pos - 1]]
        out[:, pos] = np.minimum((rows <= rng.random(n)[:, None]).sum(axis=1), trans.shape[1] - 1)
    return out


def make_language_mini(
    seed: int = 0,
    n_train: int = N_TRAIN,
    n_valid: int = N_VALID,
    n_test: int = N_TEST,
    num_languages: int = 10,
    concentration: float = 0.3,
    shared_weight: float = 0.35,
    unigram_weight: float = 0.5,
    words_per_language: int = 1500,
) -> Task:
    """Language-like: ten synthetic languages as letter-bigram Markov chains over a–x (each transition row
    mixes the language's letter frequencies with bigram preferences, both part shared between languages and
    part language-specific Dirichlet draws); four 6-letter words make a 24-character string,
    one-hot encoded as a 1×24×24 image (row = position, column = letter).  Words shared between languages are
    dropped, and test words never occur in train or valid."""
    name = "language-mini"
    started = time.perf_counter()
    _check_sizes(
        name, n_train=n_train, n_valid=n_valid, n_test=n_test, num_languages=num_languages,
        words_per_language=words_per_language,
    )
    _check_range(name, "concentration", concentration, 1e-6)
    _check_range(name, "shared_weight", shared_weight, 0.0, 1.0)
    _check_range(name, "unigram_weight", unigram_weight, 0.0, 1.0)
    rng = _rng(name, seed)
    k = _LANG_LETTERS
    shared_freq = rng.dirichlet(np.full(k, 1.0))
    shared_trans = rng.dirichlet(np.full(k, concentration), size=k)
    words: list[np.ndarray] = []
    for _ in range(num_languages):
        # letter frequencies and bigram preferences, each part shared and part language-specific
        freq = shared_weight * shared_freq + (1 - shared_weight) * rng.dirichlet(np.full(k, 1.0))
        bigram = shared_weight * shared_trans + (1 - shared_weight) * rng.dirichlet(
            np.full(k, concentration), size=k
        )
        start = freq
        trans = unigram_weight * freq[None, :] + (1 - unigram_weight) * bigram
        sample = _sample_chain(start, trans, 4 * words_per_language, _WORD_LEN, rng)
        _, first = np.unique(_encode_words(sample, k), return_index=True)  # distinct words, random order
        words.append(sample[first[rng.permutation(len(first))][: 2 * words_per_language]])
    keys_per_lang = [np.unique(_encode_words(w, k)) for w in words]
    all_keys, counts = np.unique(np.concatenate(keys_per_lang), return_counts=True)
    shared = all_keys[counts > 1]
    splits_words: list[tuple[np.ndarray, np.ndarray]] = []
    for lang, w in enumerate(words):
        w = w[~np.isin(_encode_words(w, k), shared)][:words_per_language]
        n_test_words = len(w) // 3
        if n_test_words < 10:
            raise ValueError(
                f"task {name!r}: language {lang} kept only {len(w)} distinct words not shared with another "
                "language; raise concentration or lower shared_weight"
            )
        splits_words.append((w[n_test_words:], w[:n_test_words]))
    splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    eye = np.eye(k, dtype=np.float32)
    for split, n in (("train", n_train), ("valid", n_valid), ("test", n_test)):
        y = _balanced_labels(n, num_languages, rng)
        chars = np.empty((n, 4 * _WORD_LEN), dtype=np.int64)
        for lang in range(num_languages):
            where = np.flatnonzero(y == lang)
            pool = splits_words[lang][1 if split == "test" else 0]
            chosen = pool[rng.integers(0, len(pool), size=(len(where), 4))]  # m, 4, 6
            chars[where] = chosen.reshape(len(where), -1)
        splits[split] = (eye[chars][:, None, :, :], y)
    meta = _metadata(
        name,
        seed,
        "10 Markov languages over a-x (letter frequencies + bigram preferences); 4 six-letter words -> 24x24 one-hot "
        "(row = position, column = letter); shared words dropped; test words unseen",
        "synthetic",
        concentration=concentration,
        shared_weight=shared_weight,
        unigram_weight=unigram_weight,
        test_combinations="test words never occur in train or valid",
    )
    return _task(name, splits, num_languages, meta, started)


# --------------------------------------------------------------------------------------------------
# Gutenberg: synthetic authors as word-level generators over a shared vocabulary
# --------------------------------------------------------------------------------------------------

_GUT_SYMBOLS = 27  # a..z and "_"
_GUT_WORD = 6


def _vocabulary(size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` distinct words of 3–6 letters as rows of symbol indices padded with ``_`` (26)."""
    letter_p = 1.0 / np.arange(1, 27) ** 0.8
    letter_p = rng.permutation(letter_p / letter_p.sum())
    seen: set[bytes] = set()
    out = []
    while len(out) < size:
        length = int(rng.integers(3, _GUT_WORD + 1))
        word = np.full(_GUT_WORD, 26, dtype=np.int64)
        word[:length] = rng.choice(26, size=length, p=letter_p)
        key = word.tobytes()
        if key not in seen:
            seen.add(key)
            out.append(word)
    return np.stack(out)


def make_gutenberg_mini(
    seed: int = 0,
    n_train: int = N_TRAIN,
    n_valid: int = N_VALID,
    n_test: int = N_TEST,
    num_authors: int = 6,
    vocabulary_size: int = 300,
    rank_noise: float = 1.0,
    follow_probability: tuple[float, float] = (0.3, 0.6),
) -> Task:
    """Gutenberg-like: six synthetic authors over a shared vocabulary of 3–6 letter words, each with its own
    Zipf exponent, word ranking and preferred successors; 3-word phrases padded with ``_`` to 6 letters each,
    one-hot as 1×27×18 (row = symbol, column = position).  Phrases used by more than one author are dropped
    and test phrases never occur in train or valid."""
    name = "gutenberg-mini"
    started = time.perf_counter()
    _check_sizes(
        name, n_train=n_train, n_valid=n_valid, n_test=n_test, num_authors=num_authors,
        vocabulary_size=vocabulary_size,
    )
    _check_range(name, "rank_noise", rank_noise, 0.0)
    if len(follow_probability) != 2 or not 0.0 <= follow_probability[0] <= follow_probability[1] <= 1.0:
        raise ValueError(f"task {name!r}: follow_probability must be a range within [0, 1], got {follow_probability}")
    rng = _rng(name, seed)
    v = vocabulary_size
    vocab = _vocabulary(v, rng)
    base_score = np.log(np.arange(1, v + 1, dtype=np.float64))
    per_author_train = -(-(n_train + n_valid) // num_authors)
    per_author_test = -(-n_test // num_authors)
    phrases: list[np.ndarray] = []
    for _ in range(num_authors):
        exponent = rng.uniform(0.9, 1.3)
        ranks = np.argsort(np.argsort(base_score + rng.normal(0.0, rank_noise, size=v)))
        unigram = 1.0 / (ranks + 1.0) ** exponent
        unigram /= unigram.sum()
        successors = rng.choice(v, size=(v, 4), p=unigram)
        follow = rng.uniform(*follow_probability)
        n_raw = 6 * (per_author_train + per_author_test)
        words = np.empty((n_raw, 3), dtype=np.int64)
        words[:, 0] = rng.choice(v, size=n_raw, p=unigram)
        for pos in (1, 2):
            fresh = rng.choice(v, size=n_raw, p=unigram)
            preferred = successors[words[:, pos - 1], rng.integers(0, 4, size=n_raw)]
            words[:, pos] = np.where(rng.random(n_raw) < follow, preferred, fresh)
        phrases.append(words)
    keys = [_encode_words(p, v) for p in phrases]
    all_keys, counts = np.unique(np.concatenate([np.unique(k) for k in keys]), return_counts=True)
    shared = all_keys[counts > 1]
    pools: list[tuple[np.ndarray, np.ndarray]] = []
    for author, (p, k) in enumerate(zip(phrases, keys)):
        keep = ~np.isin(k, shared)
        p, k = p[keep], k[keep]
        distinct = rng.permutation(np.unique(k))
        test_keys = distinct[: len(distinct) // 5]
        in_test = np.isin(k, test_keys)
        train_pool, test_pool = p[~in_test], p[in_test]
        if len(train_pool) < per_author_train or len(test_pool) < per_author_test:
            raise ValueError(
                f"task {name!r}: author {author} has {len(train_pool)}/{len(test_pool)} train/test phrases "
                f"after deduplication; need {per_author_train}/{per_author_test}"
            )
        pools.append((rng.permutation(train_pool), rng.permutation(test_pool)))
    eye = np.eye(_GUT_SYMBOLS, dtype=np.float32)
    splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    used = [0] * num_authors
    for split, n in (("train", n_train), ("valid", n_valid), ("test", n_test)):
        y = _balanced_labels(n, num_authors, rng)
        symbols = np.empty((n, 3 * _GUT_WORD), dtype=np.int64)
        for author in range(num_authors):
            where = np.flatnonzero(y == author)
            if split == "test":
                chosen = pools[author][1][: len(where)]
            else:  # train and valid draw different phrase occurrences from the same (seen) pool
                chosen = pools[author][0][used[author] : used[author] + len(where)]
                used[author] += len(where)
            symbols[where] = vocab[chosen].reshape(len(where), -1)
        # one-hot with symbols along the rows and positions along the columns
        splits[split] = (np.transpose(eye[symbols], (0, 2, 1))[:, None, :, :], y)
    meta = _metadata(
        name,
        seed,
        "6 synthetic authors (Zipf unigrams + preferred successors) over a shared 3-6 letter vocabulary; "
        "3-word phrases padded with _ -> 27x18 one-hot; cross-author phrases dropped; test phrases unseen",
        "synthetic",
        vocabulary_size=vocabulary_size,
        rank_noise=rank_noise,
        follow_probability=list(follow_probability),
        test_combinations="test phrases never occur in train or valid",
    )
    return _task(name, splits, num_authors, meta, started)


# --------------------------------------------------------------------------------------------------
# Chesseract: mid-game Connect-Four positions labelled by the outcome of the game
# --------------------------------------------------------------------------------------------------

_C4_ROWS, _C4_COLS = 6, 7
_C4_STRIDE = _C4_ROWS + 1  # one sentinel bit per column, the usual bitboard layout
_C4_CENTRE = np.array([1.0, 1.5, 2.0, 2.5, 2.0, 1.5, 1.0])  # random move scores favour the centre columns
_C4_SHIFTS = tuple(np.uint64(s) for s in (1, _C4_STRIDE, _C4_STRIDE - 1, _C4_STRIDE + 1))


def _c4_won(bits: np.ndarray) -> np.ndarray:
    """Whether each bitboard holds four in a row (vertical, horizontal or either diagonal)."""
    won = np.zeros(bits.shape, dtype=bool)
    for s in _C4_SHIFTS:
        pair = bits & (bits >> s)
        won |= (pair & (pair >> (s + s))) != 0
    return won


def _c4_play(n_games: int, blunder: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Play ``n_games`` Connect-Four games between ε-greedy players (win if possible, else block, else avoid
    giving the opponent a win, else random with a lean to the centre; any legal move with probability
    ``blunder``).  Returns the bitboards of both players before every ply (G×43×2), the number of plies
    played and the outcome (0 first player wins, 1 second wins, 2 draw)."""
    total = _C4_ROWS * _C4_COLS
    boards = np.zeros((2, n_games), dtype=np.uint64)
    history = np.zeros((n_games, total + 1, 2), dtype=np.uint64)
    heights = np.zeros((n_games, _C4_COLS), dtype=np.int64)
    result = np.full(n_games, -1, dtype=np.int64)
    length = np.full(n_games, total, dtype=np.int64)
    col_base = (np.arange(_C4_COLS, dtype=np.int64) * _C4_STRIDE)[None, :]
    for ply in range(total):
        active = result < 0
        if not active.any():
            break
        me = ply % 2
        legal = heights < _C4_ROWS
        move_bits = np.left_shift(np.uint64(1), (col_base + np.minimum(heights, _C4_ROWS)).astype(np.uint64))
        wins = legal & _c4_won(boards[me][:, None] | move_bits)
        blocks = legal & _c4_won(boards[1 - me][:, None] | move_bits)
        # a move is unsafe when it lets the opponent win in the cell just above it
        above = (heights + 1 < _C4_ROWS) & _c4_won(boards[1 - me][:, None] | (move_bits << np.uint64(1)))
        safe = legal & ~above
        prefer = np.where(safe.any(1, keepdims=True), safe, legal)
        prefer = np.where(blocks.any(1, keepdims=True), blocks, prefer)
        prefer = np.where(wins.any(1, keepdims=True), wins, prefer)
        prefer = np.where((rng.random(n_games) < blunder)[:, None], legal, prefer)
        score = rng.random((n_games, _C4_COLS)) * _C4_CENTRE
        col = np.argmax(np.where(prefer, score, -1.0), axis=1)
        rows = np.flatnonzero(active)
        boards[me, rows] |= move_bits[rows, col[rows]]
        heights[rows, col[rows]] += 1
        history[:, ply + 1] = boards.T
        won = active & _c4_won(boards[me])
        result[won] = me
        length[won] = ply + 1
    result[result < 0] = 2
    return history, length, result


def _c4_planes(snaps: np.ndarray, plies: np.ndarray) -> np.ndarray:
    """Bitboards → 3×6×7 planes: first player's stones, second player's stones, side to move (1 = first)."""
    idx = (np.arange(_C4_COLS)[None, :] * _C4_STRIDE + np.arange(_C4_ROWS)[::-1, None]).astype(np.uint64)
    out = np.empty((len(snaps), 3, _C4_ROWS, _C4_COLS), dtype=np.float32)
    for p in range(2):
        out[:, p] = (snaps[:, p][:, None, None] >> idx[None]) & np.uint64(1)
    out[:, 2] = (plies % 2 == 0).astype(np.float32)[:, None, None]
    return out


def make_chesseract_mini(
    seed: int = 0,
    n_train: int = N_TRAIN,
    n_valid: int = N_VALID,
    n_test: int = N_TEST,
    plies_before_end: tuple[int, int] = (1, 10),
    min_ply: int = 6,
    blunder: float = 0.1,
) -> Task:
    """Chesseract-like: Connect-Four positions a few plies before the end of games between ε-greedy players
    (3×6×7 planes: each player's stones and the side to move), labelled by the game's outcome (first wins /
    second wins / draw).  Test positions never occur in train or valid."""
    name = "chesseract-mini"
    started = time.perf_counter()
    _check_sizes(name, n_train=n_train, n_valid=n_valid, n_test=n_test)
    lo, hi = plies_before_end
    if not 1 <= lo <= hi or not 0 <= min_ply < _C4_ROWS * _C4_COLS:
        raise ValueError(
            f"task {name!r}: need 1 <= plies_before_end[0] <= plies_before_end[1] and 0 <= min_ply < 42, "
            f"got {plies_before_end}, {min_ply}"
        )
    _check_range(name, "blunder", blunder, 0.0, 1.0)
    rng = _rng(name, seed)
    need = n_train + n_valid + n_test
    snaps_all, plies_all, labels_all = [], [], []
    have, target = 0, int(1.1 * need) + 16  # spare positions replace train/valid duplicates of test ones
    for _ in range(20):
        n_games = int(1.3 * (target - have)) + 64
        history, length, result = _c4_play(n_games, blunder, rng)
        plies = length - rng.integers(lo, hi + 1, size=n_games)
        ok = plies >= min_ply
        snaps_all.append(history[np.flatnonzero(ok), plies[ok]])
        plies_all.append(plies[ok])
        labels_all.append(result[ok])
        have += int(ok.sum())
        if have >= target:
            break
    snaps, plies, labels = (np.concatenate(a) for a in (snaps_all, plies_all, labels_all))
    # The first positions go to test; later duplicates of any test position are dropped from train/valid.
    keys = [(int(a), int(b)) for a, b in snaps]
    test_keys = set(keys[:n_test])
    rest = [i for i in range(n_test, len(keys)) if keys[i] not in test_keys][: n_train + n_valid]
    if len(rest) < n_train + n_valid:
        raise ValueError(f"task {name!r}: not enough distinct positions; lower the sizes or raise min_ply")
    order = {
        "train": np.asarray(rest[:n_train]),
        "valid": np.asarray(rest[n_train:]),
        "test": np.arange(n_test),
    }
    splits = {k: (_c4_planes(snaps[i], plies[i]), labels[i]) for k, i in order.items()}
    meta = _metadata(
        name,
        seed,
        f"Connect-Four positions {lo}-{hi} plies before the end of e-greedy games (win > block > safe > "
        f"random, blunder {blunder}); 3x6x7 planes (each player's stones, side to move); label = outcome; "
        "test positions unseen",
        "synthetic",
        plies_before_end=[lo, hi],
        min_ply=min_ply,
        blunder=blunder,
        classes=["first player wins", "second player wins", "draw"],
        test_combinations="test positions never occur in train or valid",
    )
    return _task(name, splits, 3, meta, started)


# --------------------------------------------------------------------------------------------------
# Fashion-MNIST (only where the idx files are on disk)
# --------------------------------------------------------------------------------------------------

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_FASHION_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an idx file (the MNIST container format; gzip-compressed when the name ends in ``.gz``)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an idx file (bad magic number)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown idx element type 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated idx header")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[code])
    count = int(np.prod(dims)) if dims else 1
    if len(raw) - header != count * dtype.itemsize:
        raise ValueError(f"{path}: idx header says {dims} but the file holds {len(raw) - header} data bytes")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)


def fashion_mnist_dir() -> Path | None:
    """The first folder holding the four Fashion-MNIST idx files (``$NAS_FASHION_MNIST_DIR``, then Debian's
    location), or None."""
    candidates = [os.environ.get(FASHION_MNIST_ENV, "")] + list(FASHION_MNIST_DIRS)
    for folder in candidates:
        if folder and all(_find_idx(Path(folder), stem) for stem in _FASHION_FILES.values()):
            return Path(folder)
    return None


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


@functools.lru_cache(maxsize=2)
def _fashion_arrays(folder: str) -> dict[str, np.ndarray]:
    out = {}
    for key, stem in _FASHION_FILES.items():
        path = _find_idx(Path(folder), stem)
        if path is None:
            raise FileNotFoundError(f"Fashion-MNIST folder {folder}: missing {stem}(.gz)")
        out[key] = read_idx(path)
    for split in ("train", "test"):
        x, y = out[f"{split}_x"], out[f"{split}_y"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"Fashion-MNIST folder {folder}: {split} images {x.shape} and labels {y.shape} differ")
    return out


def make_fashion_mnist(
    seed: int = 0,
    n_train: int = N_TRAIN,
    n_valid: int = N_VALID,
    n_test: int = N_TEST,
    downsample: int = 2,
    folder: str | os.PathLike | None = None,
) -> Task:
    """A random subset of Fashion-MNIST (train and valid from its training set, test from its test set),
    2×2-average-pooled to 1×14×14 by default, pixels in [0, 1].  Needs the idx files on disk."""
    name = "fashion-mnist"
    started = time.perf_counter()
    _check_sizes(name, n_train=n_train, n_valid=n_valid, n_test=n_test, downsample=downsample)
    found = _fashion_folder(folder)
    arrays = _fashion_arrays(str(found))
    rng = _rng(name, seed)
    if n_train + n_valid > len(arrays["train_y"]) or n_test > len(arrays["test_y"]):
        raise ValueError(f"task {name!r}: sizes exceed the {len(arrays['train_y'])}/{len(arrays['test_y'])} images")
    pick = rng.permutation(len(arrays["train_y"]))[: n_train + n_valid]
    pick_test = rng.permutation(len(arrays["test_y"]))[:n_test]

    def prep(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float32) / 255.0
        n, h, w = x.shape
        h2, w2 = h // downsample, w // downsample
        x = x[:, : h2 * downsample, : w2 * downsample].reshape(n, h2, downsample, w2, downsample).mean((2, 4))
        return x[:, None]

    splits = {
        "train": (prep(arrays["train_x"][pick[:n_train]]), arrays["train_y"][pick[:n_train]]),
        "valid": (prep(arrays["train_x"][pick[n_train:]]), arrays["train_y"][pick[n_train:]]),
        "test": (prep(arrays["test_x"][pick_test]), arrays["test_y"][pick_test]),
    }
    meta = _metadata(
        name,
        seed,
        f"random subset of Fashion-MNIST, {downsample}x{downsample} average-pooled, pixels / 255",
        f"Fashion-MNIST idx files in {found}",
        downsample=downsample,
    )
    return _task(name, splits, 10, meta, started)


def make_addnist_fashion(
    seed: int = 0,
    n_train: int = N_TRAIN,
    n_valid: int = N_VALID,
    n_test: int = N_TEST,
    noise: float = 0.05,
    base_images: int = 6000,
    folder: str | os.PathLike | None = None,
) -> Task:
    """AddNIST built from real images: three Fashion-MNIST images (2×2-average-pooled to 14×14) as channels,
    label = binned sum of their classes as in ``addnist-mini``; test triples and test images unseen."""
    name = "addnist-fashion"
    _check_sizes(name, base_images=base_images)
    arrays = _fashion_arrays(str(_fashion_folder(folder)))
    pick = _rng(name + "/base", seed).permutation(len(arrays["train_y"]))[:base_images]
    images = arrays["train_x"][pick].astype(np.float32) / 255.0
    images = images.reshape(len(pick), 14, 2, 14, 2).mean((2, 4))
    return _make_triple_task(
        name,
        seed,
        _addnist_bins,
        9,
        "3 Fashion-MNIST images (14x14) as channels; label = min(i+j+k, 26) // 3 of their classes (9 classes), "
        "balanced; test triples unseen",
        n_train,
        n_valid,
        n_test,
        noise,
        0,
        0.25,
        images=images,
        image_labels=arrays["train_y"][pick].astype(np.int64),
        source=f"Fashion-MNIST idx files in {_fashion_folder(folder)}",
        upsample=1,
    )


def _fashion_folder(folder: str | os.PathLike | None) -> Path:
    found = Path(folder) if folder is not None else fashion_mnist_dir()
    if found is None:
        raise FileNotFoundError(
            f"Fashion-MNIST idx files not found: set ${FASHION_MNIST_ENV} or install Debian's "
            f"dataset-fashion-mnist (looked in {', '.join(FASHION_MNIST_DIRS)})"
        )
    return found


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------

GENERATORS: dict[str, tuple[Callable[..., Task], str]] = {
    "addnist-mini": (make_addnist_mini, "AddNIST-like: 3 digits as channels, label = binned sum (3x16x16, 9 classes)"),
    "multnist-mini": (make_multnist_mini, "MultNIST-like: 3 digits as channels, label = product mod 10 (3x16x16)"),
    "cifartile-mini": (make_cifartile_mini, "CIFARTile-like: 2x2 tinted digit tiles, label = #distinct - 1 (3x16x16)"),
    "language-mini": (make_language_mini, "Language-like: 10 Markov languages, 4 words one-hot (1x24x24)"),
    "gutenberg-mini": (make_gutenberg_mini, "Gutenberg-like: 6 synthetic authors, 3-word phrases one-hot (1x27x18)"),
    "chesseract-mini": (make_chesseract_mini, "Chesseract-like: mid-game Connect-Four, label = outcome (3x6x7)"),
}


def register_all(register: Callable[[str, Callable[..., Task], str], None]) -> None:
    """Register every generated task, plus ``fashion-mnist`` where its idx files are on disk."""
    for name, (factory, description) in GENERATORS.items():
        register(name, factory, description)
    if fashion_mnist_dir() is not None:
        register("fashion-mnist", make_fashion_mnist, "Fashion-MNIST subset from local idx files (1x14x14)")
        register(
            "addnist-fashion", make_addnist_fashion, "AddNIST from Fashion-MNIST images, binned class sum (3x14x14)"
        )
