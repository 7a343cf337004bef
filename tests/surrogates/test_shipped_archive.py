"""The source archive shipped with the package: what it holds, and that no verb can change it."""

from __future__ import annotations

import hashlib

import numpy as np

from data.archive import Archive
from nas.cli import main
from surrogates.persistence import load_surrogate
from surrogates.sources import SHIPPED_ARCHIVE

OFFLINE = ("addnist-mini", "chesseract-mini", "cifartile-mini", "gutenberg-mini", "language-mini", "multnist-mini")


def digest() -> str:
    return hashlib.sha256(SHIPPED_ARCHIVE.read_bytes()).hexdigest()


def test_it_holds_300_networks_per_offline_task_with_bound_fingerprints():
    assert SHIPPED_ARCHIVE.stat().st_size < 2 * 2**20  # tracked files stay under 2 MiB
    with Archive(SHIPPED_ARCHIVE, readonly=True) as archive:
        counts = {task: n for task, _, n in archive.tasks()}
        fingerprints = archive.task_fingerprints()
    assert counts == {task: 300 for task in OFFLINE}
    assert all(fingerprints[task] for task in OFFLINE)


def test_a_write_open_is_read_only_and_verbs_leave_it_unchanged(capsys, tmp_path, monkeypatch):
    before = digest()
    with Archive(SHIPPED_ARCHIVE) as archive:  # asked for writing: opened read-only all the same
        assert archive.readonly
    monkeypatch.chdir(tmp_path)
    assert main(["surrogate", "evaluate", "--archive", str(SHIPPED_ARCHIVE), "--task", "gutenberg-mini",
                 "--features", "graf"]) == 0
    assert main(["surrogate", "fit", "--transfer", "--task", "chesseract-mini", "-o", str(tmp_path / "tr")]) == 0
    assert "kendall_tau" in capsys.readouterr().out
    assert digest() == before
    assert sorted(p.name for p in SHIPPED_ARCHIVE.parent.iterdir()) == ["README.md", SHIPPED_ARCHIVE.name]


def test_it_holds_the_proxies_of_its_networks_so_the_default_transfer_fit_computes_none(capsys, tmp_path, monkeypatch):
    """``nas surrogate fit --transfer`` defaults to GRAF + proxies; the sources' proxies come from the file."""
    from features.zcp import ZeroCostProxies

    def refuse(self, X):  # any network whose proxies the file lacks would be computed here
        if len(X):
            raise AssertionError(f"computed proxies for {len(X)} source network(s)")
        return np.zeros((0, 13))

    monkeypatch.setattr(ZeroCostProxies, "transform", refuse)
    monkeypatch.chdir(tmp_path)
    assert main(["surrogate", "fit", "--transfer", "--task", "language-mini", "-o", str(tmp_path / "tr")]) == 0
    saved = load_surrogate(tmp_path / "tr")
    assert saved.features == "graf,zcp" and len(saved.source_blocks_) == 5
