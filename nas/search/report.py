"""Reports over search runs: best-so-far curves (PNG) and a Markdown comparison table.

A run is named by ``(archive, run_name)`` or ``(archive, run_name, label)``, where ``archive`` is an open
``Archive`` or the path of one; runs from several archives can share a figure or a table.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from typing import Any, Sequence, Union

import numpy as np

from data.archive import Archive
from nas.search.best import running_best
from nas.search.history import TRAINED, run_history, summarize

_Where = Union[Archive, str, "os.PathLike[str]"]
#: ``(archive, run_name)`` or ``(archive, run_name, label)``.
RunRef = Union[tuple[_Where, str], tuple[_Where, str, str]]


def _open(stack: ExitStack, runs: Sequence[RunRef]) -> list[tuple[Archive, str, str]]:
    out = []
    opened: dict[str, Archive] = {}
    for ref in runs:
        if not isinstance(ref, (tuple, list)) or len(ref) not in (2, 3):
            raise TypeError(f"a run is (archive, run_name) or (archive, run_name, label), got {ref!r}")
        archive, name = ref[0], ref[1]
        label = ref[2] if len(ref) == 3 else name
        if not isinstance(archive, Archive):
            path = os.fspath(archive)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"no archive at {path}")
            if path not in opened:
                opened[path] = stack.enter_context(Archive(path, readonly=True))
            archive = opened[path]
        out.append((archive, name, label))
    return out


def best_so_far(archive: Archive, run: str) -> dict[str, np.ndarray]:
    """Per step of a run: ``trained`` (trained candidates so far), ``wall`` (seconds), ``best`` (best
    validation accuracy so far; NaN until the first success)."""
    entries = run_history(archive, run)
    trained = np.cumsum([e.source == TRAINED for e in entries]).astype(int)
    wall = np.array([e.wall for e in entries], dtype=float)
    return {"trained": trained, "wall": wall, "best": running_best(e.evaluation.val_acc for e in entries)}


def plot_best_so_far(runs: Sequence[RunRef], path: "str | os.PathLike[str] | None" = None, title: str | None = None):
    """One figure, two panels: best-so-far validation accuracy against trained candidates and against
    wall-clock seconds, one line per run.  Saved as PNG when ``path`` is given; returns the ``Figure``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # deferred: matplotlib
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(fig)
    ax_n, ax_t = fig.subplots(1, 2, sharey=True)
    with ExitStack() as stack:
        for archive, name, label in _open(stack, runs):
            curve = best_so_far(archive, name)
            if not len(curve["best"]):
                continue
            ax_n.plot(curve["trained"], curve["best"], drawstyle="steps-post", label=label)
            ax_t.plot(curve["wall"], curve["best"], drawstyle="steps-post", label=label)
    ax_n.set_xlabel("trained candidates")
    ax_n.set_ylabel("best validation accuracy so far")
    ax_t.set_xlabel("wall-clock (s)")
    for ax in (ax_n, ax_t):
        ax.grid(True, alpha=0.3)
    if ax_n.lines:
        ax_n.legend(loc="lower right", fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(os.fspath(path), dpi=120)
    return fig


def compare(runs: Sequence[RunRef]) -> str:
    """A Markdown table of runs: best validation accuracy, trained / duplicate / failed counts, and seconds
    spent training, in the strategy, and on the wall clock."""
    header = ("run", "strategy", "task", "best val acc", "trained", "duplicates", "failed", "filtered",
              "training s", "strategy s", "wall-clock s")
    rows: list[list[Any]] = []
    with ExitStack() as stack:
        for archive, name, label in _open(stack, runs):
            s = summarize(archive, name)
            best = s["best"]["val_acc"] if s["best"] else None
            c, t = s["counts"], s["seconds"]
            rows.append([label, s["strategy"] or "", s["task"] or "", "–" if best is None else f"{best:.4f}",
                         c["trained"], c["duplicates"], c["failed"], c["filtered"], f"{t['training']:.1f}",
                         f"{t['strategy']:.1f}", f"{t['wall_clock']:.1f}"])
    rule = "|".join("---" if i < 3 else "---:" for i in range(len(header)))
    lines = ["| " + " | ".join(header) + " |", f"|{rule}|"]
    for row in rows:
        lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines) + "\n"
