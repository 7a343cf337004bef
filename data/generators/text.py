"""Language and Gutenberg-like tasks: synthetic languages (letter Markov chains) and synthetic authors."""

from __future__ import annotations

import time

import numpy as np

from data.generators.common import (
    N_TEST, N_TRAIN, N_VALID, balanced_labels, build_task, check_range, check_sizes, recipe_metadata, with_recipe, task_rng,
)
from data.task import Task

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


@with_recipe("language-mini")
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
    check_sizes(
        name, n_train=n_train, n_valid=n_valid, n_test=n_test, num_languages=num_languages,
        words_per_language=words_per_language,
    )
    check_range(name, "concentration", concentration, 1e-6)
    check_range(name, "shared_weight", shared_weight, 0.0, 1.0)
    check_range(name, "unigram_weight", unigram_weight, 0.0, 1.0)
    rng = task_rng(name, seed)
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
        y = balanced_labels(n, num_languages, rng)
        chars = np.empty((n, 4 * _WORD_LEN), dtype=np.int64)
        for lang in range(num_languages):
            where = np.flatnonzero(y == lang)
            pool = splits_words[lang][1 if split == "test" else 0]
            chosen = pool[rng.integers(0, len(pool), size=(len(where), 4))]  # m, 4, 6
            chars[where] = chosen.reshape(len(where), -1)
        splits[split] = (eye[chars][:, None, :, :], y)
    meta = recipe_metadata(
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
    return build_task(name, splits, num_languages, meta, started)


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


def _author_phrases(v: int, n_raw: int, rank_noise: float, follow_probability: tuple[float, float],
                    rng: np.random.Generator) -> np.ndarray:
    """``n_raw`` 3-word phrases (rows of word indices) of one synthetic author: a Zipf unigram over its own
    noisy ranking of the vocabulary, and preferred successors followed with a drawn probability."""
    base_score = np.log(np.arange(1, v + 1, dtype=np.float64))
    exponent = rng.uniform(0.9, 1.3)
    ranks = np.argsort(np.argsort(base_score + rng.normal(0.0, rank_noise, size=v)))
    unigram = 1.0 / (ranks + 1.0) ** exponent
    unigram /= unigram.sum()
    successors = rng.choice(v, size=(v, 4), p=unigram)
    follow = rng.uniform(*follow_probability)
    words = np.empty((n_raw, 3), dtype=np.int64)
    words[:, 0] = rng.choice(v, size=n_raw, p=unigram)
    for pos in (1, 2):
        fresh = rng.choice(v, size=n_raw, p=unigram)
        preferred = successors[words[:, pos - 1], rng.integers(0, 4, size=n_raw)]
        words[:, pos] = np.where(rng.random(n_raw) < follow, preferred, fresh)
    return words


@with_recipe("gutenberg-mini")
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
    check_sizes(
        name, n_train=n_train, n_valid=n_valid, n_test=n_test, num_authors=num_authors,
        vocabulary_size=vocabulary_size,
    )
    check_range(name, "rank_noise", rank_noise, 0.0)
    if len(follow_probability) != 2 or not 0.0 <= follow_probability[0] <= follow_probability[1] <= 1.0:
        raise ValueError(f"task {name!r}: follow_probability must be a range within [0, 1], got {follow_probability}")
    rng = task_rng(name, seed)
    v = vocabulary_size
    vocab = _vocabulary(v, rng)
    per_author_train = -(-(n_train + n_valid) // num_authors)
    per_author_test = -(-n_test // num_authors)
    n_raw = 6 * (per_author_train + per_author_test)
    phrases = [_author_phrases(v, n_raw, rank_noise, follow_probability, rng) for _ in range(num_authors)]
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
        y = balanced_labels(n, num_authors, rng)
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
    meta = recipe_metadata(
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
    return build_task(name, splits, num_authors, meta, started)
