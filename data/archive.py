"""The archive: one SQLite file (standard library, WAL mode) holding evaluated architectures.

Tables: ``architectures`` (canonical string, hash, grammar, input shape, JSON), ``evaluations`` (keyed by
architecture, task, protocol and seed; metrics as JSON, status, reason, seconds, time, software version),
``features`` (cached feature vectors keyed by architecture, task, featuriser name and version, stored as
little-endian float64 bytes with the column names kept once per featuriser), ``runs`` (what filled the
archive, with its configuration), ``search_history`` (each search run's told results in order, trained or
looked up: one evaluation can appear in the histories of several runs) and ``run_locks`` (the one process
writing each run, see ``data.runlock``; added to older archives when they are opened for writing) and
``tasks`` (the fingerprint of the data each task name stands for).  Every insert is idempotent, so re-running
a job never duplicates rows.

Task identity: evaluations and features are stored under the task's name, and the ``tasks`` table binds each
name to one fingerprint of data (``Task.fingerprint``), so the key is (name, fingerprint).  A write under a name
bound to other data is refused with a message naming both fingerprints; ``data.tasks.get_task`` names other
data that would take a registered name ``NAME@FINGERPRINT8``, so it lands beside it.  A name whose data this
process cannot know (an objective's, an import's of an unregistered task) is bound to no fingerprint until a
process that knows them writes.  Archives of schema 2 (before task identity) are upgraded in place when first
opened for writing: their registered task names are bound to the registered tasks' default data.
CSV export/import uses the columns of the published LM data (``arch``, ``arch_long``, ``acc``).  No pickle.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import pathlib
import sqlite3
import time
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import numpy as np

from nas.architecture import Architecture
from data.runlock import STALE_SECONDS, RunBusy, RunHolder, stale_reason
from data.tasks import canonical_fingerprint, get_task, task_fingerprint
from data.training import FAILED, OK, Evaluation, timestamp
from nas.jsonsafe import jsonable
from nas.versions import software_version

log = logging.getLogger(__name__)

#: Archives shipped inside the package (the source archive of transfer): always opened read-only, whatever the
#: caller asks, so that no verb can change them (a write-open would also switch their journal to WAL).
PACKAGED_ARCHIVES = pathlib.Path(__file__).resolve().parent / "archives"

SCHEMA_VERSION = 3  # 2: architecture hashes cover grammar and input shape; 3: task names bound to fingerprints

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS architectures (
    hash TEXT PRIMARY KEY,
    grammar TEXT NOT NULL,
    input_shape TEXT NOT NULL,
    string TEXT NOT NULL,
    json TEXT NOT NULL,
    nodes INTEGER, params INTEGER, flops INTEGER,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    arch_hash TEXT NOT NULL REFERENCES architectures(hash),
    task TEXT NOT NULL,
    protocol TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    val_acc REAL,
    metrics TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    seconds REAL,
    device TEXT,
    created TEXT NOT NULL,
    version TEXT,
    run TEXT,
    UNIQUE (arch_hash, task, protocol, seed)
);
CREATE INDEX IF NOT EXISTS evaluations_task ON evaluations (task, protocol, status);
CREATE TABLE IF NOT EXISTS feature_names (
    featuriser TEXT NOT NULL, version TEXT NOT NULL, names TEXT NOT NULL,
    PRIMARY KEY (featuriser, version)
);
CREATE TABLE IF NOT EXISTS features (
    arch_hash TEXT NOT NULL,
    task TEXT NOT NULL,
    featuriser TEXT NOT NULL,
    version TEXT NOT NULL,
    vector BLOB NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (arch_hash, task, featuriser, version)
) WITHOUT ROWID;  -- looked up by key only: the key is the table, with no second copy in an index
CREATE TABLE IF NOT EXISTS search_history (
    run TEXT NOT NULL,
    seq INTEGER NOT NULL,
    arch_hash TEXT NOT NULL,
    task TEXT NOT NULL,
    protocol TEXT NOT NULL,
    seed INTEGER NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('trained', 'duplicate')),
    wall REAL NOT NULL,
    strategy_seconds REAL NOT NULL,
    info TEXT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (run, seq)
);
CREATE TABLE IF NOT EXISTS run_locks (
    run TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    host TEXT NOT NULL,
    machine TEXT NOT NULL,
    pid INTEGER NOT NULL,
    pid_start TEXT NOT NULL,
    since REAL NOT NULL,
    heartbeat REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    name TEXT PRIMARY KEY,
    fingerprint TEXT,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    config TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
"""

#: Tables every surrogate-nas archive has (a database with other tables is another program's).
_OWN_TABLES = frozenset({"meta", "architectures", "evaluations"})

#: Columns written by ``export_csv``: the published LM data's three, then ours.
CSV_COLUMNS = ("arch", "arch_long", "acc", "hash", "grammar", "input_shape", "task", "protocol", "seed",
               "status", "reason", "seconds", "metrics")


class ArchiveError(ValueError):
    """The archive file or an imported file is not what it should be."""


def is_packaged(path: "str | os.PathLike[str]") -> bool:
    """Whether ``path`` is an archive shipped inside the package (``PACKAGED_ARCHIVES``), which is only read."""
    try:
        return pathlib.Path(path).resolve().parent == PACKAGED_ARCHIVES
    except OSError:
        return False


class Archive:
    """A SQLite archive of evaluated architectures.  Safe to open from several processes (WAL mode; each
    write is one short transaction).  Use as a context manager or call ``close``.

    ``readonly``: open an existing archive for reading only; nothing is created or written (a missing file, or
    a file that is not a surrogate-nas archive, is an ``ArchiveError`` naming it).  ``create=False``: the
    archive must exist, but may be written to (e.g. the feature cache of a verb that reads evaluations).
    A file holding another program's SQLite tables is refused in every mode, never added to."""

    def __init__(self, path: "str | os.PathLike[str]", readonly: bool = False, create: bool = True) -> None:
        self.path = os.fspath(path)
        self.readonly = bool(readonly) or is_packaged(self.path)
        if not self.path:
            raise ArchiveError("no archive named: the archive path is empty")
        if (self.readonly or not create) and not os.path.isfile(self.path):
            what = "not a file" if os.path.exists(self.path) else "no such file"
            raise ArchiveError(f"{self.path}: no archive there ({what})")
        if not self.readonly:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._arch_cache: dict[str, Architecture] = {}
        self._task_fps: dict[str, str | None] = {}  # task name -> the fingerprint of its data in this process
        self._bound: set[str] = set()  # task names checked against the tasks table on this connection
        for attempt in range(50):  # a concurrent opener may hold the lock that switching to WAL needs
            try:
                self._db = self._connect()
                try:
                    self._check_schema()
                except BaseException:
                    self._db.close()
                    raise
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 49:
                    raise ArchiveError(f"{self.path}: not a surrogate-nas archive ({exc})") from None
                time.sleep(0.1)
            except sqlite3.DatabaseError as exc:
                raise ArchiveError(f"{self.path}: not a surrogate-nas archive ({exc})") from None

    def _connect(self) -> sqlite3.Connection:
        """A connection; a read-only one is opened without creating the file and refuses every write
        (``query_only``).  It is opened ``mode=rw`` where the file and its folder are writable, because a
        ``mode=ro`` reader of a WAL archive leaves ``-wal``/``-shm`` files behind that it may not remove;
        ``mode=ro`` otherwise."""
        if not self.readonly:
            return sqlite3.connect(self.path, timeout=60, isolation_level=None)
        folder = os.path.dirname(os.path.abspath(self.path))
        mode = "rw" if os.access(self.path, os.W_OK) and os.access(folder, os.W_OK) else "ro"
        db = sqlite3.connect(f"{pathlib.Path(os.path.abspath(self.path)).as_uri()}?mode={mode}", timeout=60,
                             isolation_level=None, uri=True)
        db.execute("PRAGMA query_only=ON")
        return db

    def _check_schema(self) -> None:
        """Refuse another program's database and other schema versions; create the tables of a new archive."""
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if (tables or self.readonly) and not _OWN_TABLES <= tables:
            found = ", ".join(sorted(tables)[:6]) + (", ..." if len(tables) > 6 else "") if tables else "none"
            raise ArchiveError(f"{self.path}: not a surrogate-nas archive (an SQLite database whose tables are "
                               f"not this project's: {found})")
        if self.readonly:
            self._check_version(self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone())
            return
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        bindings = self._old_task_bindings() if tables else {}
        with self._transaction():
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    self._db.execute(stmt)
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None and not tables:
                self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif self._check_version(row) < SCHEMA_VERSION:
                self._bind_old_tasks(bindings)
                self._db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
                log.info("%s: upgraded to archive schema %d (task names bound to fingerprints: %s)", self.path,
                         SCHEMA_VERSION, ", ".join(f"{n} {(f or 'unknown')[:12]}" for n, f in bindings.items()))

    def _check_version(self, row: "tuple[str] | None") -> int:
        """The archive's schema version; one this software cannot read or write is an ``ArchiveError``.
        Schema 2 is read as it is and upgraded in place by a write-open (``_bind_old_tasks``)."""
        if row is None or not str(row[0]).isdigit():
            raise ArchiveError(f"{self.path}: not a surrogate-nas archive (no schema version in its 'meta' table)")
        if int(row[0]) > SCHEMA_VERSION:
            raise ArchiveError(f"{self.path}: archive schema {row[0]} is newer than this software's "
                               f"({SCHEMA_VERSION}); upgrade surrogate-nas")
        if int(row[0]) < 2:
            raise ArchiveError(f"{self.path}: archive schema {row[0]} keyed architectures by their string "
                               "alone, which merged networks of different input shapes; convert it with "
                               f"`nas archive upgrade --archive {self.path} -o NEW.sqlite`")
        return int(row[0])

    def _old_task_bindings(self) -> dict[str, str | None]:
        """For the upgrade of a schema-2 archive (read before the write transaction, as building a registered
        task to fingerprint it takes a moment): each task name in the archive without a binding -> the
        fingerprint of the registered task's default data, or ``None`` for a name that is not registered here
        or whose runs used another generator seed (which data they had is not known)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None or not str(row[0]).isdigit() or int(row[0]) != 2:
            return {}
        return _default_bindings(self._db)

    def _bind_old_tasks(self, bindings: dict[str, str | None]) -> None:
        for name, fingerprint in bindings.items():
            self._db.execute("INSERT OR IGNORE INTO tasks VALUES (?, ?, ?)", (name, fingerprint, timestamp()))

    # -- task identity -------------------------------------------------------------------------------

    def task_fingerprints(self) -> dict[str, str | None]:
        """Every task name in the archive -> the fingerprint of the data its evaluations were made on
        (``None``: not known, e.g. an objective's name, or a task written before fingerprints that is not
        registered here)."""
        try:
            bound = dict(self._db.execute("SELECT name, fingerprint FROM tasks").fetchall())
        except sqlite3.OperationalError:  # a read-only open of a schema-2 archive: nothing bound yet
            bound = {}
        names = {t for t, _, _ in self.tasks()} | set(bound)
        return {name: bound.get(name) for name in sorted(names)}

    def _expect_task(self, name: str) -> None:
        """Learn which data the task name ``name`` stands for in this process (``data.tasks.task_fingerprint``);
        called before a write transaction, as it may build a registered task to fingerprint it."""
        if name not in self._task_fps:
            self._task_fps[name] = task_fingerprint(name)

    def _bind_task(self, name: str) -> None:
        """Inside a write transaction: bind ``name`` to the fingerprint of this process's data for it, or
        refuse (``ArchiveError``) when the archive's evaluations under that name were made on other data."""
        if name in self._bound:
            return
        self._expect_task(name)
        mine = self._task_fps[name]
        row = self._db.execute("SELECT fingerprint FROM tasks WHERE name = ?", (name,)).fetchone()
        if row is None:
            self._db.execute("INSERT INTO tasks VALUES (?, ?, ?)", (name, mine, timestamp()))
        elif row[0] is None and mine is not None:
            log.info("%s: task %r bound to fingerprint %s", self.path, name, mine[:12])
            self._db.execute("UPDATE tasks SET fingerprint = ? WHERE name = ?", (mine, name))
        elif row[0] is not None and mine is not None and row[0] != mine:
            raise ArchiveError(
                f"{self.path}: task {name!r} here was evaluated on other data (fingerprint {row[0][:12]}) than "
                f"this {name!r} (fingerprint {mine[:12]}); the same name with other data is another task: give it "
                "another name (the 'name' in an Unseen-NAS folder's metadata) or use another archive")
        self._bound.add(name)

    # -- plumbing ----------------------------------------------------------------------------------

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Archive({self.path!r})"

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self.readonly:
            raise ArchiveError(f"{self.path}: opened read-only; this command does not write to archives")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            self._bound.clear()  # bindings made in the transaction are gone with it
            raise
        self._db.execute("COMMIT")

    # -- architectures -----------------------------------------------------------------------------

    def _insert_arch(self, arch: Architecture) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO architectures VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (arch.hash, arch.grammar.name, json.dumps(list(arch.input_shape)), arch.to_string(), arch.to_json(),
             arch.num_nodes, arch.num_params, arch.flops, timestamp()),
        )

    def add_architecture(self, arch: Architecture) -> str:
        """Store ``arch`` (idempotent); returns its hash."""
        with self._transaction():
            self._insert_arch(arch)
        return arch.hash

    def architecture(self, arch_hash: str) -> Architecture:
        """The stored architecture with this hash (``KeyError`` if absent)."""
        cached = self._arch_cache.get(arch_hash)
        if cached is not None:
            return cached
        row = self._db.execute("SELECT json, string, input_shape, grammar FROM architectures WHERE hash = ?",
                               (arch_hash,)).fetchone()
        if row is None:
            raise KeyError(f"{self.path}: no architecture with hash {arch_hash[:16]}…")
        # a compacted archive (the shipped one) keeps only the canonical string, which rebuilds the same tree
        arch = (Architecture.from_json(row[0]) if row[0] else
                Architecture.from_string(row[1], tuple(json.loads(row[2])), row[3]))
        if arch.hash != arch_hash:
            raise ArchiveError(f"{self.path}: architecture {arch_hash[:16]}… does not rebuild to its hash")
        self._arch_cache[arch_hash] = arch
        return arch

    def architectures(self) -> list[Architecture]:
        return [self.architecture(h) for (h,) in self._db.execute("SELECT hash FROM architectures ORDER BY rowid")]

    def num_architectures(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM architectures").fetchone()[0]

    # -- evaluations -------------------------------------------------------------------------------

    def add_evaluation(self, evaluation: Evaluation, arch: Architecture | None = None, run: str | None = None) -> bool:
        """Store an evaluation (and its architecture, if given).  Returns False when an evaluation with
        the same (architecture, task, protocol, seed) was already there: the first one is kept.  A successful
        evaluation's ``val_acc`` must be a finite number."""
        self._expect_task(evaluation.task)
        with self._transaction():
            return self._insert_evaluation(evaluation, arch, run)

    def _insert_evaluation(self, evaluation: Evaluation, arch: Architecture | None, run: str | None) -> bool:
        """``add_evaluation`` inside the caller's transaction."""
        if arch is not None and arch.hash != evaluation.arch_hash:
            raise ArchiveError(f"evaluation is for {evaluation.arch_hash[:12]} but the architecture is {arch.hash[:12]}")
        if evaluation.status not in (OK, FAILED):
            raise ArchiveError(f"evaluation of {evaluation.arch_hash[:12]}: status {evaluation.status!r} is not "
                               f"{OK!r} or {FAILED!r}")
        seed = evaluation.seed
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not -2**63 <= seed < 2**63:
            raise ArchiveError(f"evaluation of {evaluation.arch_hash[:12]} on {evaluation.task!r}: seed {seed!r} is "
                               "not an integer of at most 64 bits")
        val = evaluation.metrics.get("val_acc") if evaluation.ok else None
        if val is not None and not _finite(val):
            raise ArchiveError(f"evaluation of {evaluation.arch_hash[:12]} on {evaluation.task!r}: val_acc {val!r} "
                               "is not a finite number")
        self._bind_task(evaluation.task)
        if arch is not None:
            self._insert_arch(arch)
        elif self._db.execute("SELECT 1 FROM architectures WHERE hash = ?", (evaluation.arch_hash,)).fetchone() is None:
            raise ArchiveError(f"architecture {evaluation.arch_hash[:12]} is not in the archive; pass arch=")
        cur = self._db.execute(
            "INSERT OR IGNORE INTO evaluations (arch_hash, task, protocol, seed, status, val_acc, metrics, "
            "reason, seconds, device, created, version, run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (evaluation.arch_hash, evaluation.task, evaluation.protocol, int(evaluation.seed), evaluation.status,
             None if val is None else float(val), json.dumps(jsonable(evaluation.metrics, "metrics")),
             evaluation.reason, evaluation.seconds, evaluation.device, evaluation.created or timestamp(),
             evaluation.version or software_version(), run),
        )
        return cur.rowcount == 1

    def get_evaluation(self, arch_hash: str, task: str, protocol: str, seed: int) -> Evaluation | None:
        row = self._db.execute(
            f"SELECT {_EVAL_COLS} FROM evaluations WHERE arch_hash = ? AND task = ? AND protocol = ? AND seed = ?",
            (arch_hash, task, protocol, int(seed)),
        ).fetchone()
        return None if row is None else _evaluation(row)

    def has_evaluation(self, arch_hash: str, task: str, protocol: str, seed: int) -> bool:
        return self.get_evaluation(arch_hash, task, protocol, seed) is not None

    def evaluations(
        self, task: str | None = None, protocol: str | None = None, status: str | None = None, run: str | None = None
    ) -> list[Evaluation]:
        """Evaluations in insertion order, optionally filtered."""
        where, args = _filters(task=task, protocol=protocol, status=status, run=run)
        rows = self._db.execute(f"SELECT {_EVAL_COLS} FROM evaluations {where} ORDER BY id", args)
        return [_evaluation(r) for r in rows]

    def count(self, task: str | None = None, protocol: str | None = None, status: str | None = None,
              run: str | None = None) -> int:
        where, args = _filters(task=task, protocol=protocol, status=status, run=run)
        return self._db.execute(f"SELECT COUNT(*) FROM evaluations {where}", args).fetchone()[0]

    def tasks(self) -> list[tuple[str, str, int]]:
        """``(task, protocol, evaluations)`` for every task and protocol in the archive."""
        return [tuple(r) for r in self._db.execute(
            "SELECT task, protocol, COUNT(*) FROM evaluations GROUP BY task, protocol ORDER BY task, protocol")]

    def dataset(
        self,
        task: str,
        protocol: str | None = None,
        metric: str = "val_acc",
        include_failed: bool = False,
        failed_value: float = 0.0,
    ) -> tuple[list[Architecture], np.ndarray]:
        """``(architectures, targets)`` for a task: one row per distinct architecture (the mean over
        seeds), in first-evaluation order.  Failures are left out unless ``include_failed``, in which case
        they score ``failed_value`` (the published archives record failed trainings as 0)."""
        where, args = _filters(task=task, protocol=protocol)
        if protocol is None:
            protocols = {p for (t, p, _) in self.tasks() if t == task}
            if len(protocols) > 1:
                raise ArchiveError(f"task {task!r} has evaluations under several protocols ({', '.join(sorted(protocols))}); "
                                   "name one")
        rows = self._db.execute(f"SELECT arch_hash, status, metrics FROM evaluations {where} ORDER BY id", args)
        values: dict[str, list[float]] = {}
        for arch_hash, status, metrics in rows:
            if status == OK:
                v = json.loads(metrics).get(metric)
                if v is None:
                    raise ArchiveError(f"evaluation of {arch_hash[:12]} on {task!r} has no metric {metric!r}")
                value = float(v)
            elif include_failed:
                value = failed_value
            else:
                continue
            values.setdefault(arch_hash, []).append(value)
        archs = [self.architecture(h) for h in values]
        return archs, np.array([np.mean(v) for v in values.values()], dtype=float)

    # -- features ----------------------------------------------------------------------------------

    def put_features(self, arch_hash: str, task: str, featuriser: str, version: str, names: Sequence[str],
                     vector: Sequence[float]) -> None:
        """Cache a feature vector (idempotent; NaN allowed)."""
        vec = np.asarray(vector, dtype="<f8")
        if vec.ndim != 1 or len(vec) != len(names):
            raise ArchiveError(f"feature vector of length {vec.size} does not match {len(names)} names")
        self._expect_task(task)
        with self._transaction():
            self._bind_task(task)
            row = self._db.execute("SELECT names FROM feature_names WHERE featuriser = ? AND version = ?",
                                   (featuriser, version)).fetchone()
            if row is None:
                self._db.execute("INSERT INTO feature_names VALUES (?, ?, ?)", (featuriser, version, json.dumps(list(names))))
            elif json.loads(row[0]) != list(names):
                raise ArchiveError(f"featuriser {featuriser!r} version {version!r} changed its columns without a new "
                                   "version; bump the featuriser's version")
            self._db.execute("INSERT OR REPLACE INTO features VALUES (?, ?, ?, ?, ?, ?)",
                             (arch_hash, task, featuriser, version, vec.tobytes(), timestamp()))

    def get_features(self, arch_hashes: Sequence[str], task: str, featuriser: str,
                     version: str) -> dict[str, np.ndarray]:
        """Cached vectors for those of ``arch_hashes`` that have one."""
        out: dict[str, np.ndarray] = {}
        hashes = list(arch_hashes)
        for i in range(0, len(hashes), 500):
            chunk = hashes[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for h, blob in self._db.execute(
                f"SELECT arch_hash, vector FROM features WHERE task = ? AND featuriser = ? AND version = ? "
                f"AND arch_hash IN ({marks})", (task, featuriser, version, *chunk)):
                out[h] = np.frombuffer(blob, dtype="<f8").copy()
        return out

    def feature_names(self, featuriser: str, version: str) -> list[str] | None:
        row = self._db.execute("SELECT names FROM feature_names WHERE featuriser = ? AND version = ?",
                               (featuriser, version)).fetchone()
        return None if row is None else json.loads(row[0])

    # -- runs --------------------------------------------------------------------------------------

    def start_run(self, name: str, kind: str, config: dict[str, Any]) -> dict[str, Any]:
        """Record a run, or return the stored config of a run of that name (resume by re-running).  A
        different config under the same name is an error: it would mix two experiments."""
        row = self._db.execute("SELECT kind, config FROM runs WHERE name = ?", (name,)).fetchone()
        if row is not None:
            stored = json.loads(row[1])
            if row[0] != kind or stored != jsonable(config, "run config"):
                raise ArchiveError(
                    f"run {name!r} already exists in {self.path} with a different configuration "
                    f"(stored {row[0]} {json.dumps(stored, sort_keys=True)}); choose another run name"
                )
            with self._transaction():
                self._db.execute("UPDATE runs SET updated = ? WHERE name = ?", (timestamp(), name))
            return stored
        with self._transaction():
            self._db.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?)",
                             (name, kind, json.dumps(jsonable(config, "run config"), sort_keys=True), timestamp(), timestamp()))
        return config

    def append_history(self, run: str, seq: int, evaluation: Evaluation, source: str, wall: float,
                       strategy_seconds: float, info: dict[str, Any]) -> None:
        """Record step ``seq`` of search run ``run``: which evaluation was told, whether the run trained it
        (``trained``) or looked it up (``duplicate``), and the run's cumulative clocks."""
        try:
            with self._transaction():
                self._db.execute(
                    "INSERT INTO search_history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run, seq, evaluation.arch_hash, evaluation.task, evaluation.protocol, int(evaluation.seed),
                     source, float(wall), float(strategy_seconds),
                     json.dumps(jsonable(info, "history info"), sort_keys=True), timestamp()))
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" not in str(exc):
                raise
            raise ArchiveError(f"{self.path}: step {seq} of run {run!r} was already recorded by another process; "
                               "a run has one writer at a time") from None

    def history(self, run: str) -> list[tuple[int, Evaluation, str, float, float, dict[str, Any]]]:
        """Search run ``run``'s steps in order: ``(seq, evaluation, source, wall, strategy_seconds, info)``."""
        rows = self._db.execute(
            f"SELECT h.seq, h.source, h.wall, h.strategy_seconds, h.info, {', '.join('e.' + c for c in _EVAL_COLS.split(', '))} "
            "FROM search_history h LEFT JOIN evaluations e ON e.arch_hash = h.arch_hash AND e.task = h.task "
            "AND e.protocol = h.protocol AND e.seed = h.seed WHERE h.run = ? ORDER BY h.seq", (run,)).fetchall()
        out = []
        for seq, source, wall, strat, info, *ev in rows:
            if ev[0] is None:
                raise ArchiveError(f"{self.path}: run {run!r} step {seq} refers to an evaluation that is not in the archive")
            out.append((seq, _evaluation(tuple(ev)), source, wall, strat, json.loads(info)))
        return out

    def runs(self) -> list[dict[str, Any]]:
        return [
            {"name": n, "kind": k, "config": json.loads(c), "created": cr, "updated": u}
            for n, k, c, cr, u in self._db.execute("SELECT name, kind, config, created, updated FROM runs ORDER BY created")
        ]

    # -- run locks: one writer per run ---------------------------------------------------------------

    def claim_run(self, run: str, stale_after: float = STALE_SECONDS) -> RunHolder:
        """Make this process the one writer of run ``run`` and return its ``RunHolder`` (keep it for
        ``beat_run`` and ``release_run``).  Claimed in one write transaction, so of two processes (on any
        machines sharing the file) one wins; a stale holder (see ``data.runlock.stale_reason``) is taken over.
        ``RunBusy`` (one line naming the run and its holder) when a live process holds it."""
        me = RunHolder.for_this_process(run)
        with self._transaction():
            held = self._holder(run)
            if held is not None:
                reason = stale_reason(held, me.since, stale_after)
                if reason is None:
                    raise RunBusy(f"run {run!r} of {self.path} is being written by another process "
                                  f"({held.describe()}); wait for it to finish (a holder silent for "
                                  f"{stale_after:.0f} s is taken over), or choose another run name")
                log.warning("run %s: taking over from %s (%s)", run, held.describe(), reason)
            self._db.execute("INSERT OR REPLACE INTO run_locks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (me.run, me.owner, me.host, me.machine, me.pid, me.pid_start, me.since, me.heartbeat))
        return me

    def beat_run(self, holder: RunHolder) -> bool:
        """Record that ``holder`` is alive; ``False`` when it no longer holds its run (taken over as stale)."""
        with self._transaction():
            cur = self._db.execute("UPDATE run_locks SET heartbeat = ? WHERE run = ? AND owner = ?",
                                   (time.time(), holder.run, holder.owner))
        return cur.rowcount == 1

    def release_run(self, holder: RunHolder) -> bool:
        """Give up ``holder``'s run (nothing happens where another process has taken it over)."""
        with self._transaction():
            cur = self._db.execute("DELETE FROM run_locks WHERE run = ? AND owner = ?", (holder.run, holder.owner))
        return cur.rowcount == 1

    def run_holder(self, run: str) -> RunHolder | None:
        """The recorded holder of run ``run`` (it may be stale), or ``None``; works on read-only archives."""
        try:
            return self._holder(run)
        except sqlite3.OperationalError:  # a read-only open of an archive written before run locks existed
            return None

    def _holder(self, run: str) -> RunHolder | None:
        row = self._db.execute("SELECT run, owner, host, machine, pid, pid_start, since, heartbeat FROM run_locks "
                               "WHERE run = ?", (run,)).fetchone()
        return None if row is None else RunHolder(*row)

    # -- CSV -----------------------------------------------------------------------------------------

    def export_csv(self, path: "str | os.PathLike[str]", task: str | None = None, protocol: str | None = None) -> int:
        """Write evaluations as CSV: ``arch`` (compact string), ``arch_long``, ``acc`` (validation accuracy
        in [0, 1], empty for failures), then our own columns.  Returns the number of rows."""
        n = 0
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(CSV_COLUMNS)
            for ev in self.evaluations(task=task, protocol=protocol):
                arch = self.architecture(ev.arch_hash)
                writer.writerow([
                    arch.to_string(), arch.long_string(), "" if not ev.ok else repr(float(ev.val_acc)), arch.hash,
                    arch.grammar.name, "x".join(map(str, arch.input_shape)), ev.task, ev.protocol, ev.seed,
                    ev.status, ev.reason, ev.seconds, json.dumps(jsonable(ev.metrics, "metrics")),
                ])
                n += 1
        return n

    def import_csv(
        self,
        path: "str | os.PathLike[str]",
        task: str | None = None,
        protocol: str = "imported",
        input_shape: "str | Sequence[int] | None" = None,
        grammar: str = "einspace",
        seed: int = 0,
    ) -> int:
        """Read a CSV written by ``export_csv`` or in the published LM format (``arch`` and/or
        ``arch_long``, ``acc``; a file whose accuracies exceed 1 holds percentages).  Columns missing from the
        file come from the arguments.  All or nothing: every row is checked first (accuracies finite and
        within [0, 1] or [0, 100] %, one scale per file, no architecture given two different results, in the
        file or against the archive) and nothing is stored when any row is bad; the ``ArchiveError`` names
        the line.  Returns the number of evaluations added (rows already in the archive are skipped)."""
        return self.import_rows(read_csv_evaluations(path, task, protocol, input_shape, grammar, seed))

    def import_rows(self, rows: Sequence[tuple[str, Evaluation, Architecture]]) -> int:
        """Store the rows of ``read_csv_evaluations`` in one transaction: none when any conflicts with a stored
        evaluation of the same key (an ``ArchiveError`` with both values).  Returns the number added."""
        added = 0
        for name in dict.fromkeys(ev.task for _, ev, _ in rows):
            self._expect_task(name)
        with self._transaction():
            for where, ev, arch in rows:
                stored = self._db.execute(
                    "SELECT status, metrics FROM evaluations WHERE arch_hash = ? AND task = ? AND protocol = ? "
                    "AND seed = ?", (ev.arch_hash, ev.task, ev.protocol, int(ev.seed))).fetchone()
                if stored is not None:
                    old = stored[1] and json.loads(stored[1]).get("val_acc") if stored[0] == OK else None
                    if _result(stored[0], old) != _result(ev.status, ev.metrics.get("val_acc")):
                        raise ArchiveError(
                            f"{where}: conflicts with the archive: {arch.to_string()[:60]!r} on {ev.task!r} "
                            f"(protocol {ev.protocol}, seed {ev.seed}) is stored as {_show_result(stored[0], old)}, "
                            f"this row says {_show_result(ev.status, ev.metrics.get('val_acc'))}; nothing imported")
                    continue
                added += self._insert_evaluation(ev, arch, None)
        return added


def read_csv_evaluations(
    path: "str | os.PathLike[str]",
    task: str | None = None,
    protocol: str = "imported",
    input_shape: "str | Sequence[int] | None" = None,
    grammar: str = "einspace",
    seed: int = 0,
) -> list[tuple[str, Evaluation, Architecture]]:
    """The rows of an archive CSV (see ``Archive.import_csv``) as ``(where, evaluation, architecture)``,
    ``where`` naming the file and line; every value checked, accuracies as fractions in [0, 1], and two rows
    of one evaluation key with different results refused (with both values)."""
    rows: list[tuple[str, Evaluation, Architecture]] = []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        cols = set(reader.fieldnames or ())
        if not cols & {"arch", "arch_long"} or "acc" not in cols:
            raise ArchiveError(f"{path}: a CSV archive needs the columns 'arch' or 'arch_long', and 'acc'; "
                               f"found {sorted(cols)}")
        for line, row in enumerate(reader, start=2):
            where = f"{path}, line {line}"
            try:
                rows.append((where, *_csv_row(row, task, protocol, input_shape, grammar, seed)))
            except (ValueError, TypeError) as exc:
                raise ArchiveError(f"{where}: {exc}; nothing imported") from None
    _as_fractions(rows)
    seen: dict[tuple, tuple[str, Evaluation]] = {}
    for where, ev, _ in rows:
        key = (ev.arch_hash, ev.task, ev.protocol, ev.seed)
        if key in seen:
            first_where, first = seen[key]
            if _result(first.status, first.metrics.get("val_acc")) != _result(ev.status, ev.metrics.get("val_acc")):
                raise ArchiveError(
                    f"{where}: conflicts with {first_where.rsplit(', ', 1)[-1]}: the same architecture, task, "
                    f"protocol and seed with {_show_result(first.status, first.metrics.get('val_acc'))} there and "
                    f"{_show_result(ev.status, ev.metrics.get('val_acc'))} here; nothing imported")
        else:
            seen[key] = (where, ev)
    return rows


def _csv_row(row: dict[str, str], task: str | None, protocol: str, input_shape: Any, grammar: str,
             seed: int) -> tuple[Evaluation, Architecture]:
    """One CSV row as an evaluation (``val_acc`` as written: the file's scale is settled by the caller)."""
    shape = row.get("input_shape") or input_shape
    row_task = row.get("task") or task
    if shape is None or row_task is None:
        raise ValueError("no input shape / task in the file; pass input_shape= and task=")
    text = row.get("arch") or row.get("arch_long")
    if not text:
        raise ValueError("no architecture in 'arch' or 'arch_long'")
    arch = Architecture.from_string(text, shape, row.get("grammar") or grammar)
    acc_text = (row.get("acc") or "").strip()
    status = row.get("status") or (OK if acc_text else FAILED)
    if status not in (OK, FAILED):
        raise ValueError(f"status {status!r} is not {OK!r} or {FAILED!r}")
    try:
        metrics = json.loads(row["metrics"]) if row.get("metrics") else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"metrics is not valid JSON ({exc})") from None
    if not isinstance(metrics, dict):
        raise ValueError(f"metrics must be a JSON object, got {type(metrics).__name__}")
    if status == OK:
        try:
            acc = float(acc_text)
        except ValueError:
            raise ValueError(f"acc {row.get('acc')!r} is not a number") from None
        if not math.isfinite(acc) or acc < 0 or acc > 100:
            raise ValueError(f"acc {acc_text!r} is not an accuracy (a finite number within [0, 1], or [0, 100] "
                             "for percentages)")
        metrics["val_acc"] = acc
    seconds = float(row.get("seconds") or 0.0)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"seconds {row.get('seconds')!r} is not a non-negative number")
    ev = Evaluation(
        arch_hash=arch.hash, task=row_task, protocol=row.get("protocol") or protocol,
        seed=int(row.get("seed") or seed), status=status, metrics=metrics, reason=row.get("reason") or "",
        seconds=seconds, device="imported", created=timestamp(), version=software_version(),
    )
    return ev, arch


def _as_fractions(rows: list[tuple[str, Evaluation, Architecture]]) -> None:
    """Accuracies of a file that holds any above 1 are percentages (the published LM data): divided by 100,
    in place.  A file mixing the scales (a fraction strictly between 0 and 1 next to a percentage) is refused."""
    accs = [(where, ev.metrics["val_acc"]) for where, ev, _ in rows if ev.ok]
    percent = next(((w, a) for w, a in accs if a > 1.0), None)
    if percent is None:
        return
    fraction = next(((w, a) for w, a in accs if 0.0 < a < 1.0), None)
    if fraction is not None:
        raise ArchiveError(f"{percent[0]}: acc {percent[1]!r} is a percentage but {fraction[0].rsplit(', ', 1)[-1]} "
                           f"holds the fraction {fraction[1]!r}; use one scale per file; nothing imported")
    for _, ev, _ in rows:
        if ev.ok:
            ev.metrics["val_acc"] = ev.metrics["val_acc"] / 100.0


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _result(status: str, val_acc: Any) -> tuple[str, float | None]:
    """What a conflict check compares: the status and, for a success, val_acc to 12 significant digits."""
    return (status, None if status != OK or val_acc is None else float(f"{float(val_acc):.12g}"))


def _show_result(status: str, val_acc: Any) -> str:
    return f"val_acc {float(val_acc):.6g}" if status == OK and val_acc is not None else status


def upgrade_archive(source: "str | os.PathLike[str]", target: "str | os.PathLike[str]") -> dict[str, int]:
    """Copy a schema-1 archive into a new schema-2 one.  Schema 1 keyed an architecture by its string alone,
    so a string evaluated on two tasks kept the first task's input shape; here every evaluation, feature
    vector and search step gets the architecture rebuilt for *its own* task's input shape and rehashed.
    Runs are copied as they are, so re-running a build command against the new file resumes it.  The
    source is only read.  Returns counts of what was copied."""
    source, target = os.fspath(source), os.fspath(target)
    if os.path.abspath(source) == os.path.abspath(target):
        raise ArchiveError(f"{source}: upgrade into a new file, not onto the source")
    if os.path.exists(target):
        raise ArchiveError(f"{target}: already exists; upgrade writes a new archive")
    if not source or not os.path.isfile(source):
        raise ArchiveError(f"{source or 'the source path is empty'}: no archive there")
    try:
        old = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        row = old.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise ArchiveError(f"{source}: not a surrogate-nas archive ({exc})") from None
    if row is None or int(row[0]) != 1:
        raise ArchiveError(f"{source}: schema {row[0] if row else 'unknown'}; only schema 1 needs upgrading")
    rows = {h: (g, json.loads(shape), text) for h, g, shape, text in
            old.execute("SELECT hash, grammar, input_shape, string FROM architectures")}
    shapes: dict[str, tuple[int, ...] | None] = {}
    rebuilt: dict[tuple[str, str], Architecture] = {}

    def arch_for(old_hash: str, task: str, where: str) -> Architecture:
        """The architecture for ``task``'s input, stored in ``new`` (opened below) when first built."""
        key = (old_hash, task)
        if key not in rebuilt:
            if old_hash not in rows:
                raise ArchiveError(f"{source}: {where} refers to architecture {old_hash[:12]}, which is missing")
            grammar, stored_shape, text = rows[old_hash]
            if task not in shapes:
                try:
                    shapes[task] = tuple(get_task(task).input_shape)
                except Exception:  # noqa: BLE001 - a folder task that is not here: keep the stored shape
                    log.warning("task %r is not available here; keeping the stored input shapes of its rows", task)
                    shapes[task] = None
            shape = shapes[task] or tuple(stored_shape)
            try:
                rebuilt[key] = Architecture.from_string(text, shape, grammar)
            except ValueError as exc:
                raise ArchiveError(f"{source}: {where}: {text[:60]!r} is not valid for {task}'s input "
                                   f"{shape}: {exc}") from None
            new._insert_arch(rebuilt[key])
        return rebuilt[key]

    counts = {"evaluations": 0, "features": 0, "history": 0, "runs": 0}
    bindings = _default_bindings(old)
    with Archive(target) as new:
        with new._transaction():
            new._bind_old_tasks(bindings)
            for name, kind, config, created, updated in old.execute("SELECT * FROM runs"):
                new._db.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?)", (name, kind, config, created, updated))
                counts["runs"] += 1
            for names in old.execute("SELECT * FROM feature_names"):
                new._db.execute("INSERT OR IGNORE INTO feature_names VALUES (?, ?, ?)", names)
            for ev in old.execute("SELECT * FROM evaluations ORDER BY id"):
                (_, h, task, protocol, seed, status, val, metrics, reason, seconds, device, created, version,
                 run) = ev
                arch = arch_for(h, task, f"evaluation {ev[0]}")
                new._db.execute(
                    "INSERT INTO evaluations (arch_hash, task, protocol, seed, status, val_acc, metrics, reason, "
                    "seconds, device, created, version, run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (arch.hash, task, protocol, seed, status, val, metrics, reason, seconds, device, created,
                     version, run))
                counts["evaluations"] += 1
            for h, task, featuriser, version, vector, created in old.execute("SELECT * FROM features"):
                arch = arch_for(h, task, "a feature vector")
                new._db.execute("INSERT OR IGNORE INTO features VALUES (?, ?, ?, ?, ?, ?)",
                                (arch.hash, task, featuriser, version, vector, created))
                counts["features"] += 1
            for step in old.execute("SELECT * FROM search_history ORDER BY run, seq"):
                arch = arch_for(step[2], step[3], f"search step {step[0]}#{step[1]}")
                new._db.execute("INSERT INTO search_history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                (step[0], step[1], arch.hash, *step[3:]))
                counts["history"] += 1
    old.close()
    return counts


def _default_bindings(db: sqlite3.Connection) -> dict[str, str | None]:
    """For an archive written before task identity: each task name in it -> the fingerprint of the registered
    task's default data, or ``None`` for a name that is not registered here, or that a run evaluated with
    another generator seed (which data its evaluations had is not known)."""
    names = {r[0] for r in db.execute("SELECT DISTINCT task FROM evaluations UNION SELECT DISTINCT task FROM features")}
    try:
        rows = db.execute("SELECT DISTINCT r.config, e.task FROM evaluations e JOIN runs r ON r.name = e.run").fetchall()
    except sqlite3.OperationalError:  # no runs table
        rows = []
    seeded = set()
    for config, task in rows:
        try:
            task_seed = json.loads(config).get("task_seed", 0)
        except (ValueError, AttributeError):
            continue
        if task_seed not in (0, None):
            seeded.add(task)
    return {name: None if name in seeded else canonical_fingerprint(name) for name in sorted(names)}


_EVAL_COLS = "arch_hash, task, protocol, seed, status, metrics, reason, seconds, device, created, version"


def _evaluation(row: tuple) -> Evaluation:
    arch_hash, task, protocol, seed, status, metrics, reason, seconds, device, created, version = row
    return Evaluation(arch_hash, task, protocol, int(seed), status, json.loads(metrics), reason, seconds or 0.0,
                      device or "", created, version or "")


def _filters(**kwargs: Any) -> tuple[str, tuple]:
    parts, args = [], []
    for key, value in kwargs.items():
        if value is not None:
            parts.append(f"{key} = ?")
            args.append(value)
    return ("WHERE " + " AND ".join(parts)) if parts else "", tuple(args)

