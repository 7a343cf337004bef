"""``nas report``: one self-contained HTML page over search runs, to open in any browser without a network.

The page holds the grouped comparison table (mean ± sd over seeds), best-so-far curves per task with ± sd
bands against trained candidates and against wall-clock, the surrogate's predicted against true accuracy
for the candidates it let through (and for rejected ones where the run recorded them and their accuracy is
known), the top architectures with their sizes and a drawing of the best, failures by reason, each run's
stored configuration and the software versions.  Figures are PNGs embedded as base64 ``data:`` URIs, the
style sheet is inline, and the one script only writes how many figures decoded into the page footer.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import tempfile
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Sequence

from nas.graph import draw_graph
from nas.search.history import TRAINED, run_history
from nas.search.report import ArchiveSet, Groups, group_stats, group_table_rows, plot_group_curves
from nas.search.rundirs import RunDir, group_runs
from nas.versions import software_versions
from surrogates.metrics import kendall_tau

__all__ = ["build_report", "failure_reasons", "figure_uri", "html_table", "plot_predictions", "surrogate_points",
           "top_architectures", "write_report"]

#: Most architectures listed per task; longest architecture string shown before it is folded away.
TOP_ARCHITECTURES = 10
STRING_CHARS = 240
#: Longest side, in pixels, of the drawing of the best architecture.
DRAWING_PIXELS = 6000

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1200px;
padding:1em 2em;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
h3{margin-bottom:.3em}table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right;vertical-align:top}
th{background:#f3f3f3}td.text,th.text{text-align:left}code{font-size:.85em;word-break:break-all}
img.plot{max-width:100%;height:auto;border:1px solid #eee}pre{background:#f7f7f7;padding:.6em;overflow-x:auto;
font-size:.8em}.scroll{overflow-x:auto}img.drawing{max-width:none}.note{color:#666;font-size:.9em}
footer{margin-top:2em;color:#888;font-size:.8em}
"""

# Counts the figures that decoded (naturalWidth > 0) into the footer: a reader sees a broken page at once,
# and a headless browser's DOM dump can check it.
_SCRIPT = """
window.addEventListener("load", function () {
  var imgs = document.querySelectorAll("img.plot"), ok = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) { ok++; } }
  var el = document.getElementById("figures-decoded");
  el.setAttribute("data-decoded", String(ok));
  el.textContent = ok + " of " + imgs.length + " figures decoded";
});
"""


_NAV = " · ".join(f'<a href="#{anchor}">{name}</a>' for anchor, name in (
    ("comparison", "Comparison"), ("curves", "Best so far"), ("surrogate", "Surrogate"),
    ("architectures", "Top architectures"), ("failures", "Failures"), ("configuration", "Configuration"),
    ("versions", "Software")))


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def figure_uri(fig: Any, dpi: int = 100) -> str:
    """A matplotlib ``Figure`` as a ``data:image/png;base64,`` URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(uri: str, alt: str) -> str:
    return f'<p><img class="plot" src="{uri}" alt="{_esc(alt)}"></p>'


def html_table(header: Sequence[str], rows: Sequence[Sequence[Any]], text: Sequence[int] = (0,),
               raw: Sequence[int] = ()) -> str:
    """An HTML table; columns in ``text`` left-aligned (numbers are right-aligned), columns in ``raw`` not
    escaped (already HTML)."""
    def cell(tag: str, i: int, v: Any) -> str:
        cls = ' class="text"' if i in text else ""
        return f"<{tag}{cls}>{v if i in raw else _esc(v)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# -- sections ---------------------------------------------------------------------------------------------------


def _comparison(stats: Sequence[dict[str, Any]]) -> str:
    header, rows = group_table_rows(stats)
    return ('<h2 id="comparison">Comparison</h2><p class="note">One row per group of runs that differ only in their '
            "search seed: mean ± sd over the seeds (sd with ddof 1).  <i>filtered</i>: candidates the surrogate "
            "scored but never let through; <i>strategy s</i>: time in the strategy, surrogate fits and predictions "
            "included.</p>" + html_table(header, rows, text=(0, 1, 2)))


def _curves(archives: ArchiveSet, groups: Groups, tasks: Sequence[str]) -> str:
    out = ['<h2 id="curves">Best so far</h2><p class="note">Mean line and ± sd band over seeds; a run that stopped '
           "keeps its final best, and the mean starts once every run has a success.</p>"]
    for task in tasks:
        fig = plot_group_curves(archives, groups, task)
        out.append(f"<h3>{_esc(task)}</h3>" + _img(figure_uri(fig), f"best-so-far curves on {task}"))
    return "".join(out)


def surrogate_points(archives: ArchiveSet, runs: Sequence[RunDir]) -> dict[str, list[tuple[float, float]]]:
    """The surrogate's predictions against the truth over ``runs``: ``passed`` (told candidates it let
    through, ``(true val_acc, predicted)``), ``failed`` (let through but failed: ``(nan, predicted)``) and
    ``rejected`` (candidates a run recorded as rejected, in ``info["rejected"]`` as ``{"hash", "predicted"}``,
    whose accuracy the archive knows under the run's task, protocol and seed)."""
    out: dict[str, list[tuple[float, float]]] = {"passed": [], "failed": [], "rejected": []}
    for r in runs:
        archive = archives(r.archive)
        seen: set[str] = set()
        for e in run_history(archive, r.run):
            predicted = e.info.get("predicted")
            if isinstance(predicted, (int, float)) and math.isfinite(predicted) and e.arch_hash not in seen:
                seen.add(e.arch_hash)
                out["passed" if e.evaluation.ok else "failed"].append((e.evaluation.val_acc, float(predicted)))
            for rej in e.info.get("rejected", []) if isinstance(e.info.get("rejected"), list) else []:
                if not isinstance(rej, dict) or not isinstance(rej.get("predicted"), (int, float)):
                    continue
                ev = archive.get_evaluation(str(rej.get("hash", "")), e.evaluation.task, e.evaluation.protocol,
                                            e.evaluation.seed)
                if ev is not None and ev.ok:
                    out["rejected"].append((ev.val_acc, float(rej["predicted"])))
    return out


def plot_predictions(points: dict[str, list[tuple[float, float]]], title: str):
    """Predicted score against true validation accuracy; failed networks as red crosses on a strip left of
    the axis (they have no accuracy).  Returns the ``Figure``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # deferred: matplotlib
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.6, 4.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = [p[0] for k in ("passed", "rejected") for p in points[k]]
    lo, hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    strip = lo - 0.08 * max(hi - lo, 1e-3)
    if points["passed"]:
        ax.scatter(*zip(*points["passed"]), s=14, alpha=0.7, label=f"let through ({len(points['passed'])})")
    if points["rejected"]:
        ax.scatter(*zip(*points["rejected"]), s=14, alpha=0.6, facecolors="none", edgecolors="grey",
                   label=f"rejected, accuracy known ({len(points['rejected'])})")
    if points["failed"]:
        ax.scatter([strip] * len(points["failed"]), [p[1] for p in points["failed"]], marker="x", color="red",
                   s=30, label=f"failed ({len(points['failed'])})")
        ax.axvline(strip + 0.04 * max(hi - lo, 1e-3), color="red", lw=0.5, ls=":")
    ax.set_xlabel("true validation accuracy (failed: red ×, left strip)")
    ax.set_ylabel("surrogate prediction")
    ax.set_title(title, fontsize=9, wrap=True)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    fig.tight_layout()
    return fig


def _surrogate(archives: ArchiveSet, groups: Groups) -> str:
    out = ['<h2 id="surrogate">Surrogate: predicted vs true</h2>']
    for (task, group), runs in groups.items():
        points = surrogate_points(archives, runs)
        if not points["passed"] and not points["failed"]:
            continue
        tau = kendall_tau([p[0] for p in points["passed"]], [p[1] for p in points["passed"]])
        title = (f"{task} — {group}: surrogate prediction vs true accuracy, Kendall τ = {tau:.3f} "
                 f"(n = {len(points['passed'])}, {len(runs)} seed{'s' if len(runs) != 1 else ''})")
        figure = figure_uri(plot_predictions(points, title))
        out.append(f"<h3>{_esc(task)} — {_esc(group)}</h3>" + _img(figure, title))
        if not points["rejected"]:
            out.append('<p class="note">Rejected candidates: none recorded with a known accuracy (runs record '
                       "the predictions of the candidates they train).</p>")
    if len(out) == 1:
        out.append('<p class="note">No run used a surrogate to choose its candidates.</p>')
    return "".join(out)


def top_architectures(archives: ArchiveSet, runs: Sequence[RunDir], top: int = TOP_ARCHITECTURES) -> list[dict]:
    """The ``top`` distinct architectures by validation accuracy over ``runs``: ``val_acc``, ``arch``,
    ``group``, ``seed``, ``run_dir``, ``step``."""
    best: dict[str, dict] = {}
    for r in runs:
        archive = archives(r.archive)
        for e in run_history(archive, r.run):
            acc = e.evaluation.val_acc
            if math.isfinite(acc) and (e.arch_hash not in best or acc > best[e.arch_hash]["val_acc"]):
                best[e.arch_hash] = {"val_acc": acc, "arch": archive.architecture(e.arch_hash), "group": r.group,
                                     "seed": r.seed, "run_dir": r.path, "step": e.seq}
    return sorted(best.values(), key=lambda d: -d["val_acc"])[:top]


def _png_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` of a PNG, from its header."""
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _drawing(arch: Any, title: str, max_pixels: int = DRAWING_PIXELS) -> str:
    """The drawing of ``arch`` (``nas.graph.draw_graph``), redrawn at a lower resolution when its longer
    side would exceed ``max_pixels``; it scrolls sideways rather than shrinking into illegibility."""
    dpi, data = 100, b""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "best.png")
        for _ in range(2):
            try:
                draw_graph(arch, path, title=title, dpi=dpi)
            except (ValueError, MemoryError) as exc:  # e.g. an image over Agg's size limit: the page goes on
                return f'<p class="note">No drawing of the best architecture: {_esc(exc)}</p>'
            with open(path, "rb") as fh:
                data = fh.read()
            longest = max(_png_size(data))
            if longest <= max_pixels:
                break
            dpi = max(10, int(dpi * max_pixels / longest))
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return f'<div class="scroll"><img class="plot drawing" src="{uri}" alt="{_esc(title)}"></div>'


def _short(text: str) -> str:
    if len(text) <= STRING_CHARS:
        return f"<code>{_esc(text)}</code>"
    return f"<details><summary><code>{_esc(text[:STRING_CHARS])}…</code></summary><code>{_esc(text)}</code></details>"


def _architectures(archives: ArchiveSet, groups: Groups, tasks: Sequence[str]) -> str:
    out = ['<h2 id="architectures">Top architectures</h2>']
    for task in tasks:
        runs = [r for (t, _), rs in groups.items() if t == task for r in rs]
        tops = top_architectures(archives, runs)
        if not tops:
            out.append(f'<h3>{_esc(task)}</h3><p class="note">No successful evaluation.</p>')
            continue
        rows = [[i + 1, f"{d['val_acc']:.4f}", d["group"], "" if d["seed"] is None else d["seed"],
                 f"{d['arch'].num_params:,}", f"{d['arch'].flops / 1e6:,.1f}", d["arch"].num_nodes,
                 _short(d["arch"].to_string())] for i, d in enumerate(tops)]
        header = ["#", "val acc", "group", "seed", "params", "MFLOPs", "nodes", "architecture"]
        best = tops[0]
        title = f"{task}: best architecture, val acc {best['val_acc']:.4f} ({best['group']}, seed {best['seed']})"
        out.append(f"<h3>{_esc(task)}</h3>" + html_table(header, rows, text=(2, 7), raw=(7,))
                   + _drawing(best["arch"], title))
    return "".join(out)


def failure_reasons(archives: ArchiveSet, runs: Sequence[RunDir]) -> list[tuple[str, int, list[str]]]:
    """``(reason, count, groups)`` of the failed evaluations of ``runs`` (each architecture once per run),
    most frequent first; a reason is the first line of the stored one."""
    counts: Counter[str] = Counter()
    where: dict[str, dict[str, None]] = {}
    for r in runs:
        seen: set[str] = set()
        for e in run_history(archives(r.archive), r.run):
            if e.evaluation.ok or e.arch_hash in seen:
                continue
            seen.add(e.arch_hash)
            reason = (e.evaluation.reason or "no reason recorded").splitlines()[0][:200]
            counts[reason] += 1
            where.setdefault(reason, {})[r.group] = None
    return [(reason, n, list(where[reason])) for reason, n in counts.most_common()]


def _failures(archives: ArchiveSet, groups: Groups, tasks: Sequence[str]) -> str:
    out = ['<h2 id="failures">Failures by reason</h2>']
    for task in tasks:
        runs = [r for (t, _), rs in groups.items() if t == task for r in rs]
        rows = [[reason, n, ", ".join(gs)] for reason, n, gs in failure_reasons(archives, runs)]
        body = (html_table(["reason", "count", "groups"], rows, text=(0, 2)) if rows
                else '<p class="note">No failed network.</p>')
        out.append(f"<h3>{_esc(task)}</h3>{body}")
    return "".join(out)


def _configuration(archives: ArchiveSet, groups: Groups) -> str:
    out = ['<h2 id="configuration">Configuration</h2><p class="note">Each run folder\'s <code>run.json</code> '
           "(with the command line where the run recorded it) and the configuration stored with the run in its "
           "archive, which a resumed run must match.</p>"]
    for (task, group), runs in groups.items():
        out.append(f"<h3>{_esc(task)} — {_esc(group)}</h3>")
        for r in runs:
            stored = {x["name"]: x["config"] for x in archives(r.archive).runs()}.get(r.run, {})
            command = r.info.get("command")
            line = f"<pre>{_esc(command if isinstance(command, str) else json.dumps(command))}</pre>" if command else ""
            out.append(f"<details><summary>{_esc(r.path)} (run {_esc(r.run)}, seed {_esc(r.seed)})</summary>{line}"
                       f"<pre>{_esc(json.dumps(r.info, indent=2, sort_keys=True))}</pre>"
                       f"<pre>{_esc(json.dumps(stored, indent=2, sort_keys=True))}</pre></details>")
    return "".join(out)


def _versions(archives: ArchiveSet, runs: Sequence[RunDir]) -> str:
    recorded: Counter[str] = Counter()
    for r in runs:
        for e in run_history(archives(r.archive), r.run):
            if e.source == TRAINED:
                recorded[e.evaluation.version or "unknown"] += 1
    rows = [[k, v] for k, v in software_versions().items()]
    used = ", ".join(f"{v} ({n} evaluations)" for v, n in recorded.most_common()) or "none"
    return ('<h2 id="versions">Software</h2>' + html_table(["package (this report)", "version"], rows)
            + f"<p>surrogate-nas versions that made the runs' evaluations: {_esc(used)}</p>")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def build_report(runs: Sequence[RunDir], title: str | None = None) -> str:
    """The HTML text of the report over ``runs`` (from ``nas.search.rundirs.find_run_dirs``)."""
    if not runs:
        raise ValueError("a report needs at least one run")
    groups = group_runs(runs)
    tasks = list(dict.fromkeys(t for t, _ in groups))
    title = title or f"Search report: {', '.join(tasks)}"
    with ArchiveSet() as archives:
        stats = group_stats(archives, groups)
        body = [_comparison(stats), _curves(archives, groups, tasks), _surrogate(archives, groups),
                _architectures(archives, groups, tasks), _failures(archives, groups, tasks),
                _configuration(archives, groups), _versions(archives, runs)]
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    summary = (f"{_count(len(runs), 'run')} in {_count(len(groups), 'group')} on {_count(len(tasks), 'task')}; "
               f"generated {when}")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_esc(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{_esc(title)}</h1><p class=\"note\">{_esc(summary)}</p>"
            f"<nav>{_NAV}</nav>"
            + "".join(body)
            + f'<footer><span id="figures-decoded" data-decoded="">figures not checked (scripts off)</span></footer>'
            f"<script>{_SCRIPT}</script></body></html>\n")


def write_report(runs: Sequence[RunDir], path: "str | os.PathLike[str]", title: str | None = None) -> str:
    """Write ``build_report(runs)`` to ``path`` atomically (via a temporary file); returns the path."""
    path = os.fspath(path)
    text = build_report(runs, title)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(path + ".tmp", path)
    return path

