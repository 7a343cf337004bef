"""Chesseract-like task: mid-game Connect-Four positions labelled by the outcome of the game."""

from __future__ import annotations

import time

import numpy as np

from data.generators.common import N_TEST, N_TRAIN, N_VALID, build_task, check_range, check_sizes, recipe_metadata, with_recipe, task_rng
from data.task import Task

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


@with_recipe("chesseract-mini")
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
    check_sizes(name, n_train=n_train, n_valid=n_valid, n_test=n_test)
    lo, hi = plies_before_end
    if not 1 <= lo <= hi or not 0 <= min_ply < _C4_ROWS * _C4_COLS:
        raise ValueError(
            f"task {name!r}: need 1 <= plies_before_end[0] <= plies_before_end[1] and 0 <= min_ply < 42, "
            f"got {plies_before_end}, {min_ply}"
        )
    check_range(name, "blunder", blunder, 0.0, 1.0)
    rng = task_rng(name, seed)
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
    meta = recipe_metadata(
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
    return build_task(name, splits, 3, meta, started)
