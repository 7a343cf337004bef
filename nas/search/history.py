"""A search run's history, as the archive holds it, and the summary read back from it.

The run's history is an ordered table ``search_history`` in the archive's SQLite file: one row per told
result (trained by this run or looked up), with the cumulative wall-clock and strategy time and what the
strategy said about the ask.  The archive's ``evaluations`` table keeps one row per (architecture, task,
protocol, seed), so a look-up cannot be a second evaluation row; the history table links the run to it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from data.archive import Archive
from data.training import Evaluation
from nas.jsonsafe import jsonable
from nas.search.best import best_index

log = logging.getLogger(__name__)

TRAINED = "trained"
DUPLICATE = "duplicate"


@dataclass(frozen=True)
class HistoryEntry:
    """One told result of a search run: ``source`` is ``trained`` (evaluated by this run) or ``duplicate``
    (looked up); ``wall`` and ``strategy_seconds`` are the run's cumulative clocks when it was recorded."""

    seq: int
    arch_hash: str
    evaluation: Evaluation
    source: str
    wall: float
    strategy_seconds: float
    info: dict = field(default_factory=dict)


class RunHistory:
    """The ordered history of one archive's search runs (``Archive.history`` / ``Archive.append_history``),
    as ``HistoryEntry`` values, with recovery of evaluations stored but not yet linked."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive

    def entries(self, run: str) -> list[HistoryEntry]:
        return [HistoryEntry(seq, ev.arch_hash, ev, source, wall, strat, info)
                for seq, ev, source, wall, strat, info in self.archive.history(run)]

    def append(self, run: str, seq: int, ev: Evaluation, source: str, wall: float, strategy_seconds: float,
               info: dict) -> None:
        self.archive.append_history(run, seq, ev, source, wall, strategy_seconds, jsonable(info, "ask info"))

    def reconcile(self, run: str, task: str, protocol: str, seed: int) -> int:
        """Append evaluations the run stored but did not link (killed between the two writes); returns
        how many."""
        entries = self.entries(run)
        linked = {e.arch_hash for e in entries if e.source == TRAINED}
        seq = len(entries)
        wall = entries[-1].wall if entries else 0.0
        strat = entries[-1].strategy_seconds if entries else 0.0
        added = 0
        for ev in self.archive.evaluations(task=task, protocol=protocol, run=run):
            if ev.seed == seed and ev.arch_hash not in linked:
                log.info("run %s: recovering evaluation of %s stored before the run was interrupted", run,
                         ev.arch_hash[:12])
                self.append(run, seq, ev, TRAINED, wall, strat, {"kind": "recovered"})
                linked.add(ev.arch_hash)
                seq += 1
                added += 1
        return added


def run_history(archive: Archive, run: str) -> list[HistoryEntry]:
    """The told results of search run ``run``, in order."""
    return RunHistory(archive).entries(run)


def summarize(archive: Archive, run: str) -> dict[str, Any]:
    """A search run's summary from the archive alone: the best architecture, counts (``proposed``: candidates
    the strategy generated, scored ones included; ``filtered``: proposed but never told; ``trained``;
    ``duplicates``: looked up; ``failed``) and seconds (``training``: the trained evaluations' own time;
    ``strategy``: time inside ``ask``/``tell``, surrogate fits and predictions included; ``surrogate``: the
    part of it spent featurising, fitting and predicting, as the strategy recorded per ask; ``wall_clock``)."""
    stored = {r["name"]: r for r in archive.runs()}
    if run not in stored:
        raise KeyError(f"{archive.path}: no run named {run!r}")
    entries = run_history(archive, run)
    config = stored[run]["config"]
    i = best_index(e.evaluation.val_acc for e in entries)
    best_out = None
    if i is not None:
        best = entries[i]
        arch = archive.architecture(best.arch_hash)
        best_out = {"arch": arch.to_string(), "hash": arch.hash, "val_acc": best.evaluation.val_acc,
                    "metrics": dict(best.evaluation.metrics), "step": best.seq,
                    "trained_before": sum(1 for e in entries[: best.seq + 1] if e.source == TRAINED)}
    trained = [e for e in entries if e.source == TRAINED]
    proposed = sum(int(e.info.get("proposed", 1)) for e in entries)
    return {
        "run": run,
        "task": entries[0].evaluation.task if entries else config.get("task"),
        "protocol": entries[0].evaluation.protocol if entries else None,
        "train_seed": config.get("train_seed"),
        "strategy": config.get("strategy", {}).get("class"),
        "evaluations": len(entries),
        "best": best_out,
        "counts": {
            "proposed": proposed,
            "filtered": max(0, proposed - len(entries)),
            "trained": len(trained),
            "duplicates": len(entries) - len(trained),
            "failed": sum(1 for e in entries if not e.evaluation.ok),
        },
        "seconds": {
            "training": round(sum(e.evaluation.seconds for e in trained), 4),
            "strategy": round(entries[-1].strategy_seconds, 4) if entries else 0.0,
            "surrogate": round(sum(float(e.info.get("surrogate_seconds", 0.0)) for e in entries), 4),
            "wall_clock": round(entries[-1].wall, 4) if entries else 0.0,
        },
    }
