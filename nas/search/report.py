"""Reports over search runs: best-so-far curves (PNG) and Markdown comparison tables, per run or per group.

A run is named by ``(archive, run_name)`` or ``(archive, run_name, label)``, where ``archive`` is an open
``Archive`` or the path of one; runs from several archives can share a figure or a table.  Groups are runs
that differ only in their search seed (``nas.search.rundirs.group_runs``): their table rows give the mean ±
sd over seeds and their curves a mean line with a ± sd band.
"""

from __future__ import annotations

import os
import textwrap
from contextlib import ExitStack
from typing import Any, Sequence, Union

import numpy as np

from data.archive import Archive
from nas.search.best import running_best
from nas.search.history import TRAINED, run_history, summarize
from nas.search.rundirs import RunDir

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


def integer_ticks(axis: Any) -> None:
    """Whole-number ticks on a count axis (``ax.xaxis``): never "2.5 trained candidates"."""
    from matplotlib.ticker import MaxNLocator  # deferred: matplotlib

    axis.set_major_locator(MaxNLocator(integer=True))


def _task_and_strategy(archive: Archive, name: str) -> tuple[str, str]:
    stored = {r["name"]: r["config"] for r in archive.runs()}.get(name, {})
    entries = run_history(archive, name)
    task = entries[0].evaluation.task if entries else str(stored.get("task", ""))
    return task, str(stored.get("strategy", {}).get("class", ""))


def plot_best_so_far(runs: Sequence[RunRef], path: "str | os.PathLike[str] | None" = None, title: str | None = None):
    """One figure, two panels: best-so-far validation accuracy against trained candidates and against
    wall-clock seconds, one line per run.  The title (default: the runs' task(s) and strategies) names what is
    compared.  Saved as PNG when ``path`` is given; returns the ``Figure``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # deferred: matplotlib
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.4))
    FigureCanvasAgg(fig)
    ax_n, ax_t = fig.subplots(1, 2, sharey=True)
    tasks: list[str] = []
    names: list[str] = []
    with ExitStack() as stack:
        for archive, name, label in _open(stack, runs):
            task, strategy = _task_and_strategy(archive, name)
            tasks += [task] if task and task not in tasks else []
            names.append(f"{label} ({strategy})" if strategy and strategy != label else label)
            curve = best_so_far(archive, name)
            if not len(curve["best"]):
                continue
            ax_n.plot(curve["trained"], curve["best"], drawstyle="steps-post", label=label)
            ax_t.plot(curve["wall"], curve["best"], drawstyle="steps-post", label=label)
    _label_curve_axes(ax_n, ax_t)
    if title is None:
        title = f"{', '.join(tasks) or 'search'}: best validation accuracy so far — {', '.join(names)}"
    fig.suptitle(_wrap(title, 110), fontsize=10)
    fig.tight_layout()
    if path is not None:
        fig.savefig(os.fspath(path), dpi=120)
    return fig


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


def _label_curve_axes(ax_n: Any, ax_t: Any) -> None:
    ax_n.set_xlabel("trained candidates")
    ax_n.set_ylabel("best validation accuracy so far")
    ax_t.set_xlabel("wall-clock (s)")
    integer_ticks(ax_n.xaxis)
    for ax in (ax_n, ax_t):
        ax.grid(True, alpha=0.3)
    if ax_n.lines:
        ax_n.legend(loc="lower right", fontsize="small")


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


# -- groups of runs: mean ± sd over seeds --------------------------------------------------------------------

Groups = dict[tuple[str, str], list[RunDir]]


class ArchiveSet:
    """Archives opened read-only on first use and closed together (a context manager)."""

    def __init__(self) -> None:
        self._open: dict[str, Archive] = {}

    def __call__(self, path: str) -> Archive:
        key = os.path.realpath(path)
        if key not in self._open:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"no archive at {path}")
            self._open[key] = Archive(path, readonly=True)
        return self._open[key]

    def __enter__(self) -> "ArchiveSet":
        return self

    def __exit__(self, *exc: Any) -> None:
        for a in self._open.values():
            a.close()
        self._open.clear()


def curve_on_trained(curve: dict[str, np.ndarray], upto: int) -> np.ndarray:
    """Best-so-far after 1..``upto`` trained candidates (NaN before the first success; a run that stopped
    earlier keeps its final best)."""
    out = np.full(upto, np.nan)
    for n, b in zip(curve["trained"], curve["best"]):
        if 1 <= n <= upto:
            out[n - 1] = b  # the last step with n trained wins: duplicates after it count too
    last = int(curve["trained"][-1]) if len(curve["trained"]) else 0
    if 0 < last < upto:
        out[last:] = out[last - 1]
    return out


def curve_on_wall(curve: dict[str, np.ndarray], grid: np.ndarray) -> np.ndarray:
    """Best-so-far at each wall-clock second of ``grid`` (NaN before the first success; after the run ended,
    its final best)."""
    wall, best = curve["wall"], curve["best"]
    if not len(wall):
        return np.full(len(grid), np.nan)
    idx = np.searchsorted(wall, grid, side="right") - 1
    return np.where(idx >= 0, best[np.clip(idx, 0, None)], np.nan)


def mean_sd(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column-wise ``(mean, sd, n)`` of a runs × points array over its finite entries (sd with ddof 1; 0 for a
    single run; NaN mean where no run has a value)."""
    v = np.asarray(values, dtype=float)
    n = np.isfinite(v).sum(axis=0)
    total = np.where(np.isfinite(v), v, 0.0).sum(axis=0)
    mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    dev = np.where(np.isfinite(v), (v - mean) ** 2, 0.0).sum(axis=0)
    sd = np.where(n > 1, np.sqrt(dev / np.maximum(n - 1, 1)), 0.0)
    return mean, sd, n


def group_curves(archives: ArchiveSet, runs: Sequence[RunDir], points: int = 200) -> dict[str, np.ndarray]:
    """Mean ± sd best-so-far curves of a group: ``trained`` (1..most trained), ``best_trained``,
    ``sd_trained``, and the same on a ``wall`` grid of ``points`` seconds; the mean is NaN until every run has a
    success (a mean over a changing subset of runs would jump)."""
    curves = [best_so_far(archives(r.archive), r.run) for r in runs]
    most = max((int(c["trained"][-1]) for c in curves if len(c["trained"])), default=0)
    longest = max((float(c["wall"][-1]) for c in curves if len(c["wall"])), default=0.0)
    grid = np.linspace(0.0, longest, points) if longest > 0 else np.zeros(0)
    m_n, s_n, n_n = mean_sd(np.array([curve_on_trained(c, most) for c in curves]).reshape(len(curves), most))
    m_t, s_t, n_t = mean_sd(np.array([curve_on_wall(c, grid) for c in curves]).reshape(len(curves), len(grid)))
    for m, sd, n in ((m_n, s_n, n_n), (m_t, s_t, n_t)):
        m[n < len(curves)] = sd[n < len(curves)] = np.nan
    return {"trained": np.arange(1, most + 1), "best_trained": m_n, "sd_trained": s_n, "wall": grid,
            "best_wall": m_t, "sd_wall": s_t}


def _band(ax: Any, x: np.ndarray, mean: np.ndarray, sd: np.ndarray, label: str, colour: Any) -> None:
    ax.plot(x, mean, drawstyle="steps-post", label=label, color=colour)
    ax.fill_between(x, mean - sd, mean + sd, step="post", alpha=0.2, color=colour, linewidth=0)


def plot_group_curves(archives: ArchiveSet, groups: Groups, task: str, path: "str | os.PathLike[str] | None" = None):
    """Best-so-far validation accuracy of every group of ``task``: mean line and ± sd band over its seeds,
    against trained candidates and against wall-clock seconds.  Returns the ``Figure`` (PNG at ``path``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # deferred: matplotlib
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.4))
    FigureCanvasAgg(fig)
    ax_n, ax_t = fig.subplots(1, 2, sharey=True)
    names = []
    for i, ((t, group), runs) in enumerate((k, v) for k, v in groups.items() if k[0] == task):
        c = group_curves(archives, runs)
        label = f"{group} (n={len(runs)})"
        names.append(label)
        colour = f"C{i % 10}"
        _band(ax_n, c["trained"], c["best_trained"], c["sd_trained"], label, colour)
        _band(ax_t, c["wall"], c["best_wall"], c["sd_wall"], label, colour)
    _label_curve_axes(ax_n, ax_t)
    fig.suptitle(_wrap(f"{task}: best validation accuracy so far, mean ± sd over seeds — {', '.join(names)}", 110),
                 fontsize=10)
    fig.tight_layout()
    if path is not None:
        fig.savefig(os.fspath(path), dpi=120)
    return fig


def group_stats(archives: ArchiveSet, groups: Groups) -> list[dict[str, Any]]:
    """One dict per group: ``task``, ``group``, ``strategy``, ``seeds`` and, per quantity (``best``,
    ``trained``, ``failed``, ``duplicates``, ``filtered``, ``training_s``, ``strategy_s``, ``wall_s``), the
    list of its runs' values (``best`` NaN for a run without a success)."""
    out = []
    for (task, group), runs in groups.items():
        row: dict[str, Any] = {"task": task, "group": group, "seeds": [r.seed for r in runs], "runs": runs}
        values: dict[str, list[float]] = {k: [] for k in ("best", "trained", "failed", "duplicates", "filtered",
                                                          "training_s", "strategy_s", "wall_s")}
        strategies = []
        for r in runs:
            s = summarize(archives(r.archive), r.run)
            strategies.append(r.strategy or s["strategy"] or "")
            c, t = s["counts"], s["seconds"]
            values["best"].append(s["best"]["val_acc"] if s["best"] else np.nan)
            for k in ("trained", "failed", "duplicates", "filtered"):
                values[k].append(float(c[k]))
            values["training_s"].append(t["training"])
            values["strategy_s"].append(t["strategy"])
            values["wall_s"].append(t["wall_clock"])
        row["strategy"] = ", ".join(dict.fromkeys(strategies))
        row.update(values)
        out.append(row)
    return out


def plus_minus(values: Sequence[float], digits: int) -> str:
    """``mean ± sd`` of the finite ``values`` (sd with ddof 1; the mean alone for one value, ``–`` for none)."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if not v.size:
        return "–"
    if v.size == 1 or np.all(v == v[0]):
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


#: ``(header, key, digits)`` of the grouped comparison table after task, group, strategy and seeds.
GROUP_COLUMNS = (("best val acc", "best", 4), ("trained", "trained", 1), ("failed", "failed", 1),
                 ("duplicates", "duplicates", 1), ("filtered", "filtered", 1), ("training s", "training_s", 2),
                 ("strategy s", "strategy_s", 2), ("wall-clock s", "wall_s", 2))


def group_table_rows(stats: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of the grouped comparison table (cells as text, mean ± sd over seeds)."""
    header = ["task", "group", "strategy", "seeds"] + [h for h, _, _ in GROUP_COLUMNS]
    rows = []
    for g in stats:
        seeds = [s for s in g["seeds"] if s is not None]
        seeds_text = f"{len(g['seeds'])}" + (f" ({', '.join(map(str, seeds))})" if seeds else "")
        rows.append([g["task"], g["group"], g["strategy"], seeds_text]
                    + [plus_minus(g[k], d if k == "best" or not _all_whole(g[k]) else 0) for _, k, d in GROUP_COLUMNS])
    return header, rows


def _all_whole(values: Sequence[float]) -> bool:
    return all(np.isfinite(v) and float(v).is_integer() for v in values) and len(set(values)) == 1


def compare_groups(groups: Groups) -> str:
    """One Markdown table per task (its first column), one row per group: mean ± sd over the group's seeds
    of the best validation accuracy, counts and seconds."""
    with ArchiveSet() as archives:
        header, rows = group_table_rows(group_stats(archives, groups))
    rule = "|".join("---" if i < 3 else "---:" for i in range(len(header)))
    blocks = []
    for task in dict.fromkeys(r[0] for r in rows):
        lines = ["| " + " | ".join(header) + " |", f"|{rule}|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows if r[0] == task]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)
