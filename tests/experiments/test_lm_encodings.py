"""``experiments.lm_encodings`` on an offline task of the shipped archive, with a tiny random BERT (no download)."""

import numpy as np
import pytest

from experiments.lm_encodings import load_networks, main, split
from surrogates.sources import SHIPPED_ARCHIVE
from tests.surrogates.test_lm import build_tiny_bert


def test_an_offline_task_gives_its_successfully_trained_networks():
    archs, y = load_networks("gutenberg-mini", str(SHIPPED_ARCHIVE))
    assert len(archs) == len(y) == 295  # 300 evaluated, 5 failed trainings left out
    assert np.all(y > 0) and {a.grammar.name for a in archs} == {"einspace"}
    assert len({a.hash for a in archs}) == len(archs)
    with pytest.raises(ValueError, match="no successful evaluation of task 'no-such-task'"):
        load_networks("no-such-task", str(SHIPPED_ARCHIVE))


def test_splits_are_disjoint_seeded_and_bounded():
    train, test = split(295, 150, 145, seed=1)
    assert len(set(train) | set(test)) == 295 and not set(train) & set(test)
    assert np.array_equal(split(295, 150, 145, seed=1)[0], train)
    assert not np.array_equal(split(295, 150, 145, seed=2)[0], train)
    with pytest.raises(ValueError, match="exceeds the 295 networks"):
        split(295, 150, 146, seed=0)


def test_the_study_on_an_offline_task_writes_its_table_and_command(tmp_path, capsys):
    pytest.importorskip("transformers")
    model = tmp_path / "tiny"
    build_tiny_bert(model)
    out = tmp_path / "enc.md"
    main(["--task", "gutenberg-mini", "--n-train", "12", "--n-test", "10", "--splits", "1", "--encodings",
          "tokens,module", "--epochs", "1", "--batch", "4", "--num-layers", "1", "--lm-path", str(model),
          "--out", str(out)])
    capsys.readouterr()
    text = out.read_text(encoding="utf-8")
    assert "on gutenberg-mini (einspace networks of offline-tasks.sqlite, failed trainings left out)" in text
    assert "12 training networks, Kendall τ-b on 10 held-out networks" in text
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in text.splitlines()
            if line.startswith("| tokens") or line.startswith("| module")}
    assert set(rows) == {"tokens", "module"}
    assert float(rows["module"][3]) > float(rows["tokens"][3])  # tokens per string: the module tree is longer
    assert (f"--task gutenberg-mini --n-train 12 --n-test 10 --splits 1 --encodings tokens,module --epochs 1 "
            f"--lr 0.0001 --batch 4 --num-layers 1 --threads 1 --lm-path {model} --out {out}`") in text
