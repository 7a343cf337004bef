"""Search runs on disk: run folders found recursively and grouped by (task, group) across seeds.

A run folder is any folder holding a ``run.json`` (written by ``nas search``, ``nas run`` and the quickstart):
``{"archive": path relative to the folder, "run": run name, "label": ..., "task": ..., "strategy": ...}``,
optionally ``"group"`` and ``"seed"``.  Runs that differ only in their search seed form one group: the
group is ``run.json``'s ``group`` when given, else its label with a trailing seed mark (``-seed3``,
``seed-3``, ``_s3``) removed, else the folder's name (the parent's, for a ``seed-3`` folder).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from nas.jsonsafe import read_json_object

RUN_FILE = "run.json"

_SEED_MARK = re.compile(r"(?:^|[-_ .])(?:seed|s)[-_ ]?(\d+)$", re.IGNORECASE)


@dataclass(frozen=True)
class RunDir:
    """One run folder: where its archive is, the run's name in it, and how comparisons name and group it."""

    path: str
    archive: str
    run: str
    label: str
    group: str
    task: str
    strategy: str
    seed: int | None
    info: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def ref(self) -> tuple[str, str, str]:
        """``(archive, run, label)``, a ``nas.search.report.RunRef``."""
        return self.archive, self.run, self.label

    @property
    def name(self) -> str:
        """The run's name in a comparison: its group and seed (its label when the seed is unknown)."""
        return self.label if self.seed is None else f"{self.group} seed {self.seed}"


def seed_of(name: str) -> int | None:
    """The seed a name ends with (``re-seed3``, ``seed-3``, ``run_s3`` → 3), else ``None``."""
    m = _SEED_MARK.search(name)
    return int(m.group(1)) if m else None


def strip_seed(name: str) -> str:
    """``name`` without a trailing seed mark (``re-seed3`` → ``re``); ``name`` itself when it is only one."""
    stripped = _SEED_MARK.sub("", name)
    return stripped or name


def read_run_dir(path: "str | os.PathLike[str]") -> RunDir:
    """The run of folder ``path`` (its ``run.json``); a malformed ``run.json`` is a ``ValueError`` naming it."""
    path = os.path.normpath(os.fspath(path))
    ref = os.path.join(path, RUN_FILE)
    info = read_json_object(ref, ref)
    for key in ("archive", "run"):
        if not isinstance(info.get(key), str) or not info[key]:
            raise ValueError(f"{ref}: {key!r} must be a non-empty string, got {info.get(key)!r}")
    for key in ("label", "group", "task", "strategy"):
        if not isinstance(info.get(key, ""), str):
            raise ValueError(f"{ref}: {key!r} must be a string, got {info[key]!r}")
    if "seed" in info and (isinstance(info["seed"], bool) or not isinstance(info["seed"], int)):
        raise ValueError(f"{ref}: 'seed' must be an integer, got {info['seed']!r}")
    base = os.path.basename(path)
    label = info.get("label") or base
    group = info.get("group") or strip_seed(label)
    if not _SEED_MARK.sub("", group):  # only a seed mark: the folder names the group
        group = os.path.basename(os.path.dirname(path)) if not _SEED_MARK.sub("", base) else base
    seed = info.get("seed")
    if seed is None:
        seed = seed_of(info["run"]) if seed_of(info["run"]) is not None else seed_of(label)
    if seed is None:
        seed = seed_of(base)
    return RunDir(path, os.path.join(path, info["archive"]), info["run"], label, group, info.get("task", ""),
                  info.get("strategy", ""), seed, info)


def find_run_dirs(paths: Iterable["str | os.PathLike[str]"]) -> list[RunDir]:
    """Every run folder at or under ``paths`` (each a run folder or any folder above run folders), in path
    order, each run once (two folders naming the same run of the same archive count once).  A path that is
    missing, or holds no run folder, is a ``ValueError`` naming it."""
    out: list[RunDir] = []
    seen: set[tuple[str, str]] = set()
    for p in paths:
        p = os.fspath(p)
        if not os.path.isdir(p):
            what = "a file, not a folder" if os.path.exists(p) else "no such folder"
            raise ValueError(f"{p}: {what} (expected a run folder with {RUN_FILE}, or a folder above run folders)")
        found = []
        for root, dirs, files in os.walk(p):
            dirs.sort()
            if RUN_FILE in files:
                found.append(read_run_dir(root))
        if not found:
            raise ValueError(f"{p}: no {RUN_FILE} in it or in any folder below it")
        for r in found:
            key = (os.path.realpath(r.archive), r.run)
            if key not in seen:
                seen.add(key)
                out.append(r)
    return out


def group_runs(runs: Sequence[RunDir]) -> dict[tuple[str, str], list[RunDir]]:
    """``{(task, group): runs}`` in first-seen order, each group's runs sorted by seed."""
    groups: dict[tuple[str, str], list[RunDir]] = {}
    for r in runs:
        groups.setdefault((r.task, r.group), []).append(r)
    return {k: sorted(v, key=lambda r: (r.seed is None, r.seed or 0, r.path)) for k, v in groups.items()}
