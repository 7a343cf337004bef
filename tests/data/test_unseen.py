"""The Unseen-NAS folder format: exact round trips, the published layout, and a clear error for each fault."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from data.generators import make_gutenberg_mini, make_multnist_mini
from data.tasks import SPLITS, Split, Task
from data.unseen import UnseenFormatError, export_unseen, load_unseen

SIZES = {"train": 12, "valid": 6, "test": 5}


def write_folder(folder: Path, metadata: dict | None = None, **arrays: np.ndarray) -> Path:
    """A small valid folder in the published style (uint8 images, [N, C, H, W] input_shape); ``arrays``
    replace individual files (a value of None deletes the file)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for s, n in SIZES.items():
        files[f"{s}_x"] = rng.integers(0, 255, size=(n, 3, 4, 5), dtype=np.uint8)
        files[f"{s}_y"] = (np.arange(n) % 4).astype(np.int64)
    files.update(arrays)
    for key, value in files.items():
        if value is not None:
            np.save(folder / f"{key}.npy", value, allow_pickle=True)
    meta = {"num_classes": 4, "input_shape": [12, 3, 4, 5], "codename": "Quokka", "benchmark": 61.5}
    if metadata is not None:
        meta = metadata
    (folder / "metadata").write_text(json.dumps(meta))
    return folder


def test_round_trip_is_exact(tmp_path: Path) -> None:
    task = make_gutenberg_mini(seed=0, n_train=300, n_valid=60, n_test=60)
    folder = export_unseen(task, tmp_path / "gutenberg")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["metadata"] + [f"{s}_{v}.npy" for s in SPLITS for v in "xy"]
    )
    back = load_unseen(folder)
    # the same data, but files are identified by their bytes and a generated task by its recipe
    assert back.fingerprint() == dataclasses.replace(task, recipe=None).fingerprint() != task.fingerprint()
    assert back.name == task.name and back.input_shape == task.input_shape
    assert dict(back.metadata) == dict(task.metadata)
    meta = json.loads((folder / "metadata").read_text())
    assert meta["num_classes"] == 6 and meta["input_shape"] == [300, 1, 27, 18]
    assert meta["name"] == "gutenberg-mini" and meta["codename"] == "gutenberg-mini"
    assert np.load(folder / "train_x.npy", allow_pickle=False).dtype == np.float32


def test_round_trip_of_an_image_task_and_overwrite(tmp_path: Path) -> None:
    task = make_multnist_mini(seed=2, n_train=100, n_valid=40, n_test=40)
    folder = export_unseen(task, tmp_path / "m")
    with pytest.raises(FileExistsError, match="overwrite"):
        export_unseen(task, folder)
    export_unseen(task, folder, overwrite=True)
    assert load_unseen(str(folder)).fingerprint() == dataclasses.replace(task, recipe=None).fingerprint()


def test_export_rejects_metadata_json_cannot_hold(tmp_path: Path) -> None:
    s = Split(np.zeros((2, 1, 2, 2), np.float32), np.zeros(2, np.int64))
    task = Task("t", (1, 2, 2), 2, s, s, s, {"callback": object()})
    with pytest.raises(ValueError, match="callback"):
        export_unseen(task, tmp_path / "t")
    assert not (tmp_path / "t" / "metadata").exists()


def test_published_layout_loads(tmp_path: Path) -> None:
    # float labels that are whole numbers and (N, 1) label columns occur in the wild
    folder = write_folder(
        tmp_path / "quokka",
        valid_y=(np.arange(6) % 4).astype(np.float64),
        test_y=(np.arange(5) % 4).reshape(5, 1).astype(np.int32),
    )
    task = load_unseen(folder)
    assert task.name == "Quokka" and task.input_shape == (3, 4, 5) and task.num_classes == 4
    assert [len(task.split(s)) for s in SPLITS] == [12, 6, 5]
    for s in SPLITS:
        assert task.split(s).x.dtype == np.float32 and task.split(s).y.dtype == np.int64
    raw = np.load(folder / "train_x.npy")
    np.testing.assert_array_equal(task.train.x, raw.astype(np.float32))
    assert task.metadata["benchmark"] == 61.5 and task.metadata["codename"] == "Quokka"
    assert task.metadata["source"] == "unseen-nas folder"


def test_input_shape_without_count_and_missing_fields(tmp_path: Path) -> None:
    task = load_unseen(write_folder(tmp_path / "a", {"num_classes": 4, "input_shape": [3, 4, 5], "name": "A"}))
    assert task.name == "A" and task.input_shape == (3, 4, 5)
    task = load_unseen(write_folder(tmp_path / "plain", {}))
    assert task.name == "plain" and task.num_classes == 4 and task.input_shape == (3, 4, 5)


def _error(folder: Path, *needles: str) -> str:
    with pytest.raises(UnseenFormatError) as info:
        load_unseen(folder)
    message = str(info.value)
    assert str(folder) in message, message
    for needle in needles:
        assert needle in message, message
    return message


def test_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_unseen(tmp_path / "absent")


def test_missing_metadata(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "f")
    (folder / "metadata").unlink()
    _error(folder, "metadata", "missing")


@pytest.mark.parametrize("text, needle", [("{not json", "not valid JSON"), ("[1, 2]", "JSON object")])
def test_bad_metadata_json(tmp_path: Path, text: str, needle: str) -> None:
    folder = write_folder(tmp_path / "f")
    (folder / "metadata").write_text(text)
    _error(folder, "metadata", needle)


@pytest.mark.parametrize(
    "meta, needle",
    [
        ({"num_classes": 0}, "num_classes"),
        ({"num_classes": "four"}, "num_classes"),
        ({"num_classes": 4, "input_shape": "3x4x5"}, "input_shape"),
        ({"num_classes": 4, "input_shape": [12, 3, 4]}, "train_x.npy"),  # 3 entries fit neither reading
        ({"num_classes": 4, "input_shape": [9, 3, 5, 4]}, "input_shape"),
    ],
)
def test_bad_metadata_fields(tmp_path: Path, meta: dict, needle: str) -> None:
    folder = write_folder(tmp_path / "f", meta)
    _error(folder, needle)


@pytest.mark.parametrize("missing", [f"{s}_{v}" for s in SPLITS for v in "xy"])
def test_missing_array(tmp_path: Path, missing: str) -> None:
    folder = write_folder(tmp_path / "f", **{missing: None})
    _error(folder, f"{missing}.npy", "missing")


def test_mismatched_lengths(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "f", valid_y=np.zeros(5, np.int64))
    _error(folder, "valid_y.npy", "5 labels", "valid_x.npy", "6 examples")


def test_wrong_dims(tmp_path: Path) -> None:
    _error(write_folder(tmp_path / "a", {}, train_x=np.zeros((12, 60), np.float32)), "train_x.npy", "N×C×H×W")
    _error(write_folder(tmp_path / "b", train_x=np.zeros((12, 60), np.float32)), "metadata", "input_shape")
    _error(write_folder(tmp_path / "c", test_x=np.zeros((5, 3, 5, 4), np.float32)), "test_x.npy", "example shape")
    _error(write_folder(tmp_path / "d", train_y=np.zeros((12, 2), np.int64)), "train_y.npy", "one label")


@pytest.mark.parametrize("labels", [np.array([0, 1, 2, 4, 0, 1]), np.array([0, 1, -1, 3, 0, 1])])
def test_labels_out_of_range(tmp_path: Path, labels: np.ndarray) -> None:
    folder = write_folder(tmp_path / "f", valid_y=labels)
    _error(folder, "valid_y.npy", "outside 0..3", "num_classes = 4")


def test_non_numeric_dtypes(tmp_path: Path) -> None:
    _error(write_folder(tmp_path / "a", test_y=np.array(list("abcde"))), "test_y.npy", "non-numeric")
    _error(write_folder(tmp_path / "b", train_x=np.zeros((12, 3, 4, 5), np.complex64)), "train_x.npy", "non-numeric")
    objects = np.empty(6, dtype=object)
    objects[:] = [0, 1, 2, 3, 0, 1]
    _error(write_folder(tmp_path / "c", valid_y=objects), "valid_y.npy", "pickled")
    _error(write_folder(tmp_path / "d", valid_y=np.array([0, 1, 2.5, 3, 0, 1])), "valid_y.npy", "non-integer")


def test_non_finite_inputs(tmp_path: Path) -> None:
    x = np.zeros((6, 3, 4, 5), np.float64)
    x[2, 0, 0, 0] = np.nan
    _error(write_folder(tmp_path / "a", valid_x=x), "valid_x.npy", "NaN")
    x[2, 0, 0, 0] = 1e300  # overflows float32
    _error(write_folder(tmp_path / "b", valid_x=x), "valid_x.npy", "infinite")


def test_not_an_npy_file(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "f")
    (folder / "train_y.npy").write_bytes(b"definitely not numpy")
    _error(folder, "train_y.npy", "not a readable")


def test_empty_train_split(tmp_path: Path) -> None:
    folder = write_folder(
        tmp_path / "f", {"num_classes": 4}, train_x=np.zeros((0, 3, 4, 5), np.uint8), train_y=np.zeros(0, np.int64)
    )
    _error(folder, "train_x.npy", "no examples")


def test_get_task_resolves_a_folder(tmp_path: Path) -> None:
    pytest.importorskip("data.nb201")
    from data.tasks import get_task

    folder = write_folder(tmp_path / "quokka")
    assert get_task(str(folder)).fingerprint() == load_unseen(folder).fingerprint()


def test_npz_archive_instead_of_npy(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "f")
    with open(folder / "test_x.npy", "wb") as fh:
        np.savez(fh, x=np.zeros((5, 3, 4, 5)))
    _error(folder, "test_x.npy", ".npz archive")
