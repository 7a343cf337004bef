"""Saving a surrogate is atomic: a save that fails or is killed leaves the previous surrogate (or nothing)."""

import os
import signal
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from surrogates import folder
from surrogates.persistence import MANIFEST, PersistenceError, load_surrogate, save_surrogate
from surrogates.tabular import TabularSurrogate


def fitted(model, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40, 3))
    y = X[:, 0] - 2 * X[:, 1] + 0.1 * rng.normal(size=40)
    return TabularSurrogate(model, features=None, model_params={"n_estimators": 8}).fit_matrix(X, y), X


def entries(parent):
    return sorted(p.name for p in parent.iterdir())


def fail_after_the_model_file(monkeypatch):
    """Make every save raise once its model file is written (before the manifest)."""
    def crash(directory, manifest):
        assert any(directory.iterdir()), "the model file should be written first"
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(folder, "write_manifest", crash)


def test_a_failed_overwrite_keeps_the_previous_surrogate(tmp_path, monkeypatch):
    old, X = fitted("rf")
    save_surrogate(old, tmp_path / "m")
    with monkeypatch.context() as patch:
        fail_after_the_model_file(patch)
        with pytest.raises(OSError, match="simulated"):
            save_surrogate(fitted("xgb", seed=1)[0], tmp_path / "m")
    assert entries(tmp_path) == ["m"]  # no half folder, no temporary folder left
    assert entries(tmp_path / "m") == ["features.csv", MANIFEST]
    np.testing.assert_array_equal(load_surrogate(tmp_path / "m").predict(X), old.predict(X))


def test_a_failed_first_save_leaves_no_folder(tmp_path, monkeypatch):
    model, X = fitted("rf")
    with monkeypatch.context() as patch:
        fail_after_the_model_file(patch)
        with pytest.raises(OSError, match="simulated"):
            save_surrogate(model, tmp_path / "out" / "m")
    assert entries(tmp_path / "out") == []  # not a folder holding only features.csv
    save_surrogate(model, tmp_path / "out" / "m")  # so the same save works afterwards
    np.testing.assert_array_equal(load_surrogate(tmp_path / "out" / "m").predict(X), model.predict(X))


def test_a_successful_overwrite_replaces_the_folder(tmp_path):
    save_surrogate(fitted("rf")[0], tmp_path / "m")
    new, X = fitted("xgb", seed=1)
    assert save_surrogate(new, tmp_path / "m") == tmp_path / "m"
    assert entries(tmp_path) == ["m"]
    assert entries(tmp_path / "m") == [MANIFEST, "model.json"]  # the forest's features.csv went with it
    np.testing.assert_array_equal(load_surrogate(tmp_path / "m").predict(X), new.predict(X))
    (tmp_path / "empty").mkdir()
    save_surrogate(new, tmp_path / "empty")  # an empty folder is a fine target
    assert entries(tmp_path / "empty") == [MANIFEST, "model.json"]


KILLED_SAVE = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    from surrogates import folder
    from surrogates.persistence import save_surrogate
    from surrogates.tabular import TabularSurrogate

    X = np.random.default_rng(1).normal(size=(40, 3))
    model = TabularSurrogate("xgb", features=None, model_params={"n_estimators": 8}).fit_matrix(X, X[:, 0])
    folder.write_manifest = lambda directory, manifest: os.kill(os.getpid(), signal.SIGKILL)
    save_surrogate(model, sys.argv[1])
""")


def test_kill_9_during_an_overwrite(tmp_path):
    """A save killed (SIGKILL) after writing its model file: the previous surrogate is still there and
    loads; the temporary folder it left blocks nothing and is removed by the next save."""
    old, X = fitted("rf")
    save_surrogate(old, tmp_path / "m")
    done = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(tmp_path / "m")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr
    leftovers = [name for name in entries(tmp_path) if name != "m"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".m.saving-")  # the killed save's own folder
    np.testing.assert_array_equal(load_surrogate(tmp_path / "m").predict(X), old.predict(X))
    new, X = fitted("xgb", seed=2)
    save_surrogate(new, tmp_path / "m")
    assert entries(tmp_path) == ["m"]  # the stale temporary folder is gone
    np.testing.assert_array_equal(load_surrogate(tmp_path / "m").predict(X), new.predict(X))


def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_surrogate_moved_aside_by_a_killed_save_is_put_back(tmp_path):
    # killed between moving the old surrogate aside and renaming the new one into place
    old, X = fitted("rf")
    aside = tmp_path / f".m.{folder.OLD}-{socket.gethostname()}-{dead_pid()}-abc"
    save_surrogate(old, aside / "surrogate")
    folder.clean_stale(tmp_path / "m")
    assert entries(tmp_path) == ["m"]
    np.testing.assert_array_equal(load_surrogate(tmp_path / "m").predict(X), old.predict(X))


def test_temporary_folders_of_live_saves_are_left_alone(tmp_path):
    mine = tmp_path / f".m.{folder.SAVING}-{socket.gethostname()}-{os.getpid()}-abc"
    other_host = tmp_path / f".m.{folder.SAVING}-not-{socket.gethostname()}-{dead_pid()}-abc"
    mine.mkdir(), other_host.mkdir()
    save_surrogate(fitted("rf")[0], tmp_path / "m")
    assert entries(tmp_path) == sorted([mine.name, other_host.name, "m"])


def test_targets_that_are_not_surrogates_are_refused_before_writing(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    model = fitted("rf")[0]
    with pytest.raises(PersistenceError, match="exists and is not a folder"):
        save_surrogate(model, tmp_path / "file")
    with pytest.raises(PersistenceError, match="not empty and holds no manifest.json"):
        save_surrogate(model, tmp_path / "busy")
    assert entries(tmp_path) == ["busy", "file"] and entries(tmp_path / "busy") == ["notes.txt"]


def test_a_link_to_a_folder_keeps_leading_to_the_new_surrogate(tmp_path):
    save_surrogate(fitted("rf")[0], tmp_path / "real")
    (tmp_path / "link").symlink_to("real")
    new, X = fitted("xgb", seed=1)
    save_surrogate(new, tmp_path / "link")
    assert (tmp_path / "link").is_symlink() and entries(tmp_path) == ["link", "real"]
    np.testing.assert_array_equal(load_surrogate(tmp_path / "link").predict(X), new.predict(X))
