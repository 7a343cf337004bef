"""``nas features compute|show`` and ``nas show --graph``."""

import json

import numpy as np
import pytest

from data.archive import Archive
from features.pipeline import make_featuriser, parse_feature_sets
from nas.cli import main

CONV = "sequential(routing[im2col(3,1,1), computation<linear(16)>, col2im], computation<relu>)"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_features_show_graf_hides_zeros(capsys):
    code, out, _ = run(capsys, "features", "show", CONV, "--input-shape", "3x8x8", "--json")
    values = json.loads(out)
    assert code == 0 and values["cnt_im2col3k1s1p"] == 1 and values["cnt_linear16"] == 1
    assert all(v != 0 for v in values.values())


def test_features_compute_is_cached_and_resumable(capsys, tmp_path):
    archive = str(tmp_path / "nb.sqlite")
    assert run(capsys, "archive", "build", "--archive", archive, "--task", "nb201-cifar10", "--n", "30")[0] == 0
    code, out, _ = run(capsys, "features", "compute", "--archive", archive, "--task", "nb201-cifar10",
                       "--features", "graf,zcp")
    info = json.loads(out)
    assert code == 0 and info["architectures"] == 30 and info["columns"] == 65 + 13
    with Archive(archive) as a:
        stored = a._db.execute("SELECT COUNT(*) FROM features").fetchone()[0]
    assert stored == 60  # 30 architectures × 2 featurisers
    assert run(capsys, "features", "compute", "--archive", archive, "--task", "nb201-cifar10", "--features", "graf")[0] == 0
    with Archive(archive) as a:
        assert a._db.execute("SELECT COUNT(*) FROM features").fetchone()[0] == 60  # nothing recomputed


def test_nb201_table_proxies_match_the_table():
    from data.tasks import get_task

    task = get_task("nb201-cifar10")
    cell = "|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
    f = make_featuriser("zcp", task)
    row = dict(zip(f.get_feature_names_out(), f.transform([cell])[0]))
    assert row["synflow"] == pytest.approx(85.29524686388314) and row["jacob_cov"] == pytest.approx(-65.19330998681718)


def test_feature_set_parsing():
    assert parse_feature_sets("graf, zcp") == ["graf", "zcp"]
    with pytest.raises(ValueError, match="unknown feature set"):
        parse_feature_sets("graf,bogus")
    with pytest.raises(ValueError, match="need a task"):
        make_featuriser("zcp")


def test_show_graph_writes_png(capsys, tmp_path):
    png = tmp_path / "g.png"
    code, _, err = run(capsys, "show", CONV, "--graph", str(png))
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
