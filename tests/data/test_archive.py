import csv

import numpy as np
import pytest

from data.archive import Archive, ArchiveError
from data.training import Evaluation
from nas.architecture import Architecture
from nas.sampler import Sampler

SHAPE = (3, 8, 8)


def archs(n, seed=0):
    s = Sampler("einspace", SHAPE)
    out, i = [], 0
    while len(out) < n:
        a = s.sample(np.random.default_rng([seed, i]))
        i += 1
        if a not in out:
            out.append(a)
    return out


def ev(arch, acc, task="t", protocol="p-1", seed=0, status="ok", reason=""):
    metrics = {"val_acc": acc, "val_loss": 1.0} if status == "ok" else {}
    return Evaluation(arch.hash, task, protocol, seed, status, metrics, reason, 1.5, "cpu", "2026-01-01T00:00:00+00:00", "0")


@pytest.fixture
def archive(tmp_path):
    with Archive(tmp_path / "a.sqlite") as a:
        yield a


def test_wal_mode_and_schema(archive):
    assert archive._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    names = {r[0] for r in archive._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"architectures", "evaluations", "features", "feature_names", "runs", "meta", "run_locks"} <= names


def test_inserts_are_idempotent(archive):
    a = archs(1)[0]
    assert archive.add_architecture(a) == a.hash
    archive.add_architecture(a)
    assert archive.num_architectures() == 1
    assert archive.add_evaluation(ev(a, 0.5), a) is True
    assert archive.add_evaluation(ev(a, 0.9), a) is False  # same key: the first one is kept
    assert archive.count() == 1 and archive.get_evaluation(a.hash, "t", "p-1", 0).val_acc == 0.5
    assert archive.add_evaluation(ev(a, 0.7, seed=1)) is True  # another seed is another evaluation
    assert archive.architecture(a.hash) == a


def test_evaluation_needs_its_architecture(archive):
    a, b = archs(2)
    with pytest.raises(ArchiveError, match="not in the archive"):
        archive.add_evaluation(ev(a, 0.5))
    with pytest.raises(ArchiveError, match="evaluation is for"):
        archive.add_evaluation(ev(a, 0.5), b)


def test_dataset_query(archive):
    a, b, c, d = archs(4)
    archive.add_evaluation(ev(a, 0.5), a)
    archive.add_evaluation(ev(a, 0.7, seed=1), a)  # two seeds: the mean
    archive.add_evaluation(ev(b, 0.2), b)
    archive.add_evaluation(ev(c, None, status="failed", reason="boom"), c)
    archive.add_evaluation(ev(d, 0.9, task="other"), d)
    xs, y = archive.dataset("t")
    assert xs == [a, b] and y.tolist() == pytest.approx([0.6, 0.2])
    xs, y = archive.dataset("t", include_failed=True)
    assert xs == [a, b, c] and y[-1] == 0.0
    assert archive.count(task="t", status="failed") == 1
    assert [e.reason for e in archive.evaluations(status="failed")] == ["boom"]
    assert archive.tasks() == [("other", "p-1", 1), ("t", "p-1", 4)]
    archive.add_evaluation(ev(d, 0.9, protocol="q-2"), d)
    with pytest.raises(ArchiveError, match="several protocols"):
        archive.dataset("t")
    assert archive.dataset("t", protocol="q-2")[0] == [d]


def test_csv_round_trip(archive, tmp_path):
    a, b, c = archs(3)
    archive.add_evaluation(ev(a, 0.5), a)
    archive.add_evaluation(ev(b, 0.25), b)
    archive.add_evaluation(ev(c, None, status="failed", reason="non-finite loss"), c)
    path = tmp_path / "x.csv"
    assert archive.export_csv(path) == 3
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0])[:3] == ["arch", "arch_long", "acc"]
    assert rows[0]["arch"] == a.to_string() and rows[0]["arch_long"] == a.long_string() and float(rows[0]["acc"]) == 0.5
    assert rows[2]["acc"] == "" and rows[2]["status"] == "failed"
    with Archive(tmp_path / "b.sqlite") as other:
        assert other.import_csv(path) == 3
        assert other.import_csv(path) == 0  # idempotent
        assert [(e.arch_hash, e.status, e.val_acc if e.ok else None, e.reason) for e in other.evaluations()] == [
            (e.arch_hash, e.status, e.val_acc if e.ok else None, e.reason) for e in archive.evaluations()]
        assert other.dataset("t")[1].tolist() == archive.dataset("t")[1].tolist()


def test_import_published_lm_format(archive, tmp_path):
    a = archs(1)[0]
    path = tmp_path / "train.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["acc", "arch", "arch_long"])
        w.writerow(["87.5", a.to_string(), a.long_string()])
    with pytest.raises(ArchiveError, match="no input shape"):
        archive.import_csv(path)
    assert archive.import_csv(path, task="addnist", input_shape="3x8x8") == 1
    assert archive.dataset("addnist")[1].tolist() == [0.875]  # percentages are read as such
    bad = tmp_path / "bad.csv"
    bad.write_text("acc,arch\n0.5,sequential(bogus)\n")
    with pytest.raises(ArchiveError, match=r"bad.csv, line 2"):
        archive.import_csv(bad, task="t", input_shape="3x8x8")
    bad.write_text("accuracy,net\n0.5,x\n")
    with pytest.raises(ArchiveError, match="needs the columns"):
        archive.import_csv(bad, task="t", input_shape="3x8x8")


def test_feature_cache(archive):
    a, b = archs(2)
    names = ["f1", "f2", "f3"]
    archive.put_features(a.hash, "t", "graf", "1", names, [1.0, float("nan"), 3.0])
    archive.put_features(a.hash, "t", "graf", "1", names, [1.0, float("nan"), 3.0])
    got = archive.get_features([a.hash, b.hash], "t", "graf", "1")
    assert list(got) == [a.hash] and np.isnan(got[a.hash][1]) and got[a.hash][2] == 3.0
    assert archive.get_features([a.hash], "t", "graf", "2") == {}
    assert archive.feature_names("graf", "1") == names
    with pytest.raises(ArchiveError, match="bump the featuriser's version"):
        archive.put_features(b.hash, "t", "graf", "1", ["g1", "g2", "g3"], [0, 0, 0])
    with pytest.raises(ArchiveError, match="does not match"):
        archive.put_features(b.hash, "t", "graf", "1", names, [0, 0])


def test_runs_resume_and_refuse_a_changed_config(archive):
    assert archive.start_run("r", "build", {"n": 1, "seed": 0}) == {"n": 1, "seed": 0}
    assert archive.start_run("r", "build", {"n": 1, "seed": 0}) == {"n": 1, "seed": 0}
    with pytest.raises(ArchiveError, match="different configuration"):
        archive.start_run("r", "build", {"n": 1, "seed": 1})
    assert [r["name"] for r in archive.runs()] == ["r"]


def test_a_history_step_recorded_twice_is_a_clear_error(archive):
    a = archs(1)[0]
    archive.add_evaluation(ev(a, 0.5), a)
    archive.append_history("r", 0, ev(a, 0.5), "trained", 1.0, 0.1, {})
    with pytest.raises(ArchiveError, match="step 0 of run 'r' was already recorded by another process"):
        archive.append_history("r", 0, ev(a, 0.5), "duplicate", 2.0, 0.2, {})
    assert len(archive.history("r")) == 1


def test_not_an_archive(tmp_path):
    p = tmp_path / "junk.sqlite"
    p.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(ArchiveError, match="not a surrogate-nas archive"):
        Archive(p)


def test_two_connections_see_each_other(tmp_path):
    a = archs(1)[0]
    with Archive(tmp_path / "a.sqlite") as one, Archive(tmp_path / "a.sqlite") as two:
        one.add_evaluation(ev(a, 0.5), a)
        assert two.count() == 1


def test_same_string_on_two_input_shapes_is_two_architectures(archive):
    relu = "sequential(computation<relu>, computation<identity>)"
    a, b = Architecture.from_string(relu, (3, 8, 8)), Architecture.from_string(relu, (1, 24, 24))
    archive.add_evaluation(ev(a, 0.5, task="t1"), a)
    archive.add_evaluation(ev(b, 0.7, task="t2"), b)
    assert archive.num_architectures() == 2
    assert archive.dataset("t2")[0][0].input_shape == (1, 24, 24)


def test_old_schema_is_refused(tmp_path):
    path = tmp_path / "old.sqlite"
    with Archive(path) as a:
        a._db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    with pytest.raises(ArchiveError, match="nas archive upgrade"):
        Archive(path)


def test_upgrade_rebuilds_each_evaluation_for_its_tasks_shape(tmp_path):
    """A schema-1 archive held one row per string; the string evaluated on two tasks of different input
    shapes must come out as two architectures, each with its task's shape, evaluations and features kept."""
    from data.archive import upgrade_archive
    from data.tasks import get_task

    t1, t2 = "addnist-mini", "language-mini"
    s1, s2 = tuple(get_task(t1).input_shape), tuple(get_task(t2).input_shape)
    text = "sequential(computation<relu>, computation<identity>)"
    a1 = Architecture.from_string(text, s1)
    a2 = Architecture.from_string(text, s2)
    old_hash = "0" * 64
    path = tmp_path / "old.sqlite"
    with Archive(path) as a:
        a.start_run("build:x", "build", {"task": t1})
        a.add_evaluation(ev(a1, 0.6, task=t1), a1, run="build:x")
        a.add_evaluation(ev(a2, 0.3, task=t2), a2)
        db = a._db
        db.execute("PRAGMA foreign_keys=OFF")
        db.execute("INSERT INTO features VALUES (?, ?, 'f', '1', ?, 'now')", (a1.hash, t1, b"\x00" * 8))
        db.execute("INSERT INTO search_history VALUES ('s', 0, ?, ?, 'p-1', 0, 'trained', 1.0, 0.1, '{}', 'now')",
                   (a2.hash, t2))
        # what schema 1 stored: one row keyed by a string-only hash, with the first task's shape
        db.execute("DELETE FROM architectures WHERE hash = ?", (a2.hash,))
        for table in ("architectures", "evaluations", "features", "search_history"):
            col = "hash" if table == "architectures" else "arch_hash"
            db.execute(f"UPDATE {table} SET {col} = ?", (old_hash,))
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    new = tmp_path / "new.sqlite"
    counts = upgrade_archive(path, new)
    assert counts == {"evaluations": 2, "features": 1, "history": 1, "runs": 1}
    with Archive(new) as b:
        assert b.num_architectures() == 2
        assert b.get_evaluation(a1.hash, t1, "p-1", 0).val_acc == 0.6
        assert b.get_evaluation(a2.hash, t2, "p-1", 0).val_acc == 0.3
        assert b.architecture(a2.hash).input_shape == s2
        assert b.count(task=t1, run="build:x") == 1
        assert b._db.execute("SELECT arch_hash FROM features").fetchone()[0] == a1.hash
        assert b.history("s")[0][1].arch_hash == a2.hash
    with pytest.raises(ArchiveError, match="already exists"):
        upgrade_archive(path, new)
    with pytest.raises(ArchiveError, match="only schema 1"):
        upgrade_archive(new, tmp_path / "again.sqlite")


def files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_read_only_archive_reads_refuses_writes_and_leaves_no_file(tmp_path):
    a = archs(1)[0]
    path = tmp_path / "a.sqlite"
    with Archive(path) as archive:
        archive.add_evaluation(ev(a, 0.5), a)
    before = files(tmp_path)
    with Archive(path, readonly=True) as archive:
        assert archive.count() == 1 and archive.dataset("t")[1].tolist() == [0.5]
        with pytest.raises(ArchiveError, match="read-only"):
            archive.add_evaluation(ev(a, 0.7, seed=1), a)
    assert files(tmp_path) == before  # no -wal/-shm left behind by the reader
    with pytest.raises(ArchiveError, match="no archive there"):
        Archive(tmp_path / "typo" / "b.sqlite", readonly=True)
    with pytest.raises(ArchiveError, match="no archive there"):
        Archive(tmp_path / "c.sqlite", create=False)
    assert files(tmp_path) == before


def test_another_programs_database_is_refused_in_every_mode(tmp_path):
    import sqlite3

    path = tmp_path / "other.db"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE meta (k TEXT)")  # a table name we use too: still not ours
    con.close()
    for kwargs in ({}, {"readonly": True}, {"create": False}):
        with pytest.raises(ArchiveError, match=r"other.db: not a surrogate-nas archive .*meta"):
            Archive(path, **kwargs)
    with sqlite3.connect(path) as con:
        assert [r[0] for r in con.execute("SELECT name FROM sqlite_master")] == ["meta"]
        assert con.execute("PRAGMA journal_mode").fetchone()[0] != "wal"
    con.close()


def test_a_successful_evaluation_needs_a_finite_val_acc(archive):
    a = archs(1)[0]
    for bad in (float("nan"), float("inf"), "high"):
        with pytest.raises(ArchiveError, match="val_acc .* is not a finite number"):
            archive.add_evaluation(ev(a, bad), a)
    assert archive.count() == 0


def test_csv_import_is_all_or_nothing(archive, tmp_path):
    a, b = archs(2)
    path = tmp_path / "x.csv"
    path.write_text(f'arch,acc\n"{a.to_string()}",0.5\n"{b.to_string()}",nan\n')
    with pytest.raises(ArchiveError, match=r"x.csv, line 3: acc 'nan' is not an accuracy"):
        archive.import_csv(path, task="t", input_shape="3x8x8")
    assert archive.count() == 0 and archive.num_architectures() == 0
    path.write_text(f'arch,acc\n"{a.to_string()}",0.5\n"{a.to_string()}",0.9\n')
    with pytest.raises(ArchiveError, match=r"line 3: conflicts with line 2: .* val_acc 0.5 there and val_acc 0.9 here"):
        archive.import_csv(path, task="t", input_shape="3x8x8")
    path.write_text(f'arch,acc\n"{a.to_string()}",0.5\n"{a.to_string()}",0.5\n"{b.to_string()}",\n')
    assert archive.import_csv(path, task="t", input_shape="3x8x8") == 2  # a repeated identical row is one
    path.write_text(f'arch,acc\n"{b.to_string()}",0.25\n')
    with pytest.raises(ArchiveError, match=r"conflicts with the archive: .* stored as failed, this row says val_acc 0.25"):
        archive.import_csv(path, task="t", input_shape="3x8x8")


# -- task identity: evaluations are keyed by the task's name and the fingerprint of its data ---------------

OFFLINE_BUILD = "experiments/results/offline_tasks_build/tasks-partial.sqlite"


def _zero_folder(folder, name, shape=(3, 6, 7), classes=3, n=30):
    from data.task import Split, Task
    from data.unseen import export_unseen

    split = Split(np.zeros((n, *shape), np.float32), np.arange(n, dtype=np.int64) % classes)
    return str(export_unseen(Task(name, shape, classes, split, split, split), folder))


def test_an_all_zero_folder_named_like_a_builtin_does_not_get_its_results(tmp_path):
    from data.tasks import get_task
    from nas.search.evaluators import TaskEvaluator

    real = get_task("chesseract-mini")
    folder = _zero_folder(tmp_path / "zeros", "chesseract-mini")
    zeros = get_task(folder)
    assert TaskEvaluator(folder, protocol="smoke").task == zeros.name != real.name  # what a search stores under
    arch = Sampler("einspace", real.input_shape).sample(np.random.default_rng(0))
    with Archive(tmp_path / "a.sqlite") as a:
        assert a.add_evaluation(ev(arch, 0.9, task=real.name), arch)
        assert a.get_evaluation(arch.hash, zeros.name, "p-1", 0) is None  # not the real task's result
        assert a.add_evaluation(ev(arch, 0.2, task=zeros.name), arch)
        assert a.get_evaluation(arch.hash, real.name, "p-1", 0).val_acc == 0.9
        assert a.get_evaluation(arch.hash, zeros.name, "p-1", 0).val_acc == 0.2
        assert a.task_fingerprints() == {real.name: real.fingerprint(), zeros.name: zeros.fingerprint()}


def test_an_exported_builtin_folder_is_kept_apart(tmp_path):
    from data.tasks import get_task
    from data.unseen import export_unseen

    builtin = get_task("gutenberg-mini")
    exported = get_task(str(export_unseen(builtin, tmp_path / "gutenberg")))
    arch = Sampler("einspace", builtin.input_shape).sample(np.random.default_rng(1))
    with Archive(tmp_path / "a.sqlite") as a:
        a.add_evaluation(ev(arch, 0.5, task=builtin.name), arch)
        assert a.add_evaluation(ev(arch, 0.6, task=exported.name), arch)  # not a duplicate of the built-in's
        assert a.count(task="gutenberg-mini") == 1 and a.count() == 2


def test_the_same_name_on_other_data_is_refused(tmp_path, monkeypatch):
    """Two folders of one name, each loaded first by its own process: the archive refuses the second."""
    from data import tasks

    first = tasks.get_task(_zero_folder(tmp_path / "a", "twin-task"))
    arch = Sampler("einspace", first.input_shape).sample(np.random.default_rng(2))
    with Archive(tmp_path / "a.sqlite") as a:
        a.add_evaluation(ev(arch, 0.5, task=first.name), arch)
    monkeypatch.setattr(tasks, "_LOADED", {})  # a new process
    second = tasks.get_task(_zero_folder(tmp_path / "b", "twin-task", n=36))
    assert second.name == first.name and second.fingerprint() != first.fingerprint()
    with Archive(tmp_path / "a.sqlite") as a:
        with pytest.raises(ArchiveError, match=rf"'twin-task' here was evaluated on other data \(fingerprint "
                                               rf"{first.fingerprint()[:12]}\).*{second.fingerprint()[:12]}"):
            a.add_evaluation(ev(arch, 0.7, task=second.name), arch)
        with pytest.raises(ArchiveError, match="other data"):
            a.put_features(arch.hash, second.name, "graf", "1", ["f"], [1.0])
        assert a.count() == 1


def test_names_unknown_here_are_bound_by_the_first_process_that_knows_them(tmp_path, monkeypatch):
    from data import tasks

    arch = archs(1)[0]
    with Archive(tmp_path / "a.sqlite") as a:
        a.add_evaluation(ev(arch, 0.5, task="objective"), arch)  # e.g. a function objective: no data
        assert a.task_fingerprints() == {"objective": None}
    monkeypatch.setitem(tasks._LOADED, "objective", "f" * 64)
    with Archive(tmp_path / "a.sqlite") as a:
        a.add_evaluation(ev(arch, 0.5, task="objective", seed=1), arch)
        assert a.task_fingerprints() == {"objective": "f" * 64}


def _counts(path):
    import sqlite3

    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            "evaluations": db.execute("SELECT task, protocol, status, COUNT(*) FROM evaluations GROUP BY 1, 2, 3")
            .fetchall(),
            "architectures": db.execute("SELECT COUNT(*) FROM architectures").fetchone(),
            "features": db.execute("SELECT task, featuriser, COUNT(*) FROM features GROUP BY 1, 2").fetchall(),
            "runs": db.execute("SELECT name, config FROM runs ORDER BY name").fetchall(),
        }
    finally:
        db.close()


def test_the_offline_build_archive_is_upgraded_in_place(tmp_path):
    """A copy of the archive the offline-task build wrote (schema 2, before task identity, no run locks):
    read-only opens read it unchanged; the first write-open binds its task names to the built-in tasks'
    fingerprints, and every count stays what it was."""
    import shutil
    import sqlite3

    from data.tasks import get_task

    path = tmp_path / "tasks.sqlite"
    shutil.copyfile(OFFLINE_BUILD, path)
    before = _counts(path)
    with Archive(path, readonly=True) as a:
        names = [t for t, _, _ in a.tasks()]
        assert names == ["addnist-mini", "cifartile-mini", "language-mini", "multnist-mini"]
        assert a.task_fingerprints() == dict.fromkeys(names)
        assert a.count() == 940 and len(a.dataset("language-mini")[0]) > 0
    assert _counts(path) == before
    assert sqlite3.connect(path).execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("2",)
    with Archive(path) as a:
        assert a.task_fingerprints() == {n: get_task(n).fingerprint() for n in names}
        assert a._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("3",)
        real = get_task("language-mini")
        arch = Sampler("einspace", real.input_shape).sample(np.random.default_rng(3))
        a.add_evaluation(ev(arch, 0.5, task=real.name), arch)  # the built-in's own data: accepted
    after = _counts(path)
    assert after["architectures"][0] == before["architectures"][0] + 1
    assert after["features"] == before["features"] and after["runs"] == before["runs"]
    assert [r for r in after["evaluations"] if r[1] != "p-1"] == before["evaluations"]
    with Archive(path, readonly=True) as a:  # and it reads as schema 3
        assert a.task_fingerprints()["addnist-mini"] == get_task("addnist-mini").fingerprint()


def test_a_binding_rolled_back_with_its_write_is_made_again(tmp_path, monkeypatch):
    from data import tasks

    monkeypatch.setitem(tasks._LOADED, "t", "a" * 64)
    arch = archs(1)[0]
    with Archive(tmp_path / "a.sqlite") as a:
        with pytest.raises(ArchiveError, match="pass arch="):
            a.add_evaluation(ev(arch, 0.5))  # bound the name, then failed: the transaction is rolled back
        assert a.task_fingerprints() == {}
        a.add_evaluation(ev(arch, 0.5), arch)
        assert a.task_fingerprints() == {"t": "a" * 64}
