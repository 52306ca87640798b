"""Hostile or broken data inputs get one DataError: .npz files, data directories, Food-101 ids."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cnnjax.data import DataError, default_data_dir, prepare
from cnnjax.data.food101 import check_image_id, food101_files
from cnnjax.data.npz import load_npz


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNNJAX_OFFLINE", "1")


def _npz(path: Path, **over) -> Path:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (6, 4, 4), dtype=np.uint8),
        "y_train": np.array([0, 1, 2, 0, 1, 2]),
        "x_test": rng.integers(0, 256, (3, 4, 4), dtype=np.uint8),
        "y_test": np.array([2, 1, 0]),
    }
    arrays.update(over)
    np.savez(path, **arrays)
    return path


# ----------------------------------------------------------------------------- npz


def test_valid_npz_loads(tmp_path):
    train, test = load_npz(_npz(tmp_path / "d.npz"))
    assert train.images.shape == (6, 4, 4, 1) and train.num_classes == 3
    np.testing.assert_array_equal(test.labels, [2, 1, 0])


def test_integral_float_labels_are_accepted(tmp_path):
    train, _ = load_npz(_npz(tmp_path / "d.npz", y_train=np.array([0.0, 1, 2, 0, 1, 2])))
    np.testing.assert_array_equal(train.labels, [0, 1, 2, 0, 1, 2])


@pytest.mark.parametrize(
    "labels", [[0.0, 1.7, 2, 0, 1, 2], [0, 1, np.nan, 0, 1, 2], [0, 1, np.inf, 0, 1, 2]]
)
def test_float_labels_are_refused_not_truncated(tmp_path, labels):
    path = _npz(tmp_path / "d.npz", y_train=np.array(labels))
    with pytest.raises(DataError, match=r"y_train: labels must be whole class indices"):
        load_npz(path)


def test_random_bytes_npz_is_one_clear_error(tmp_path):
    path = tmp_path / "d.npz"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(DataError, match=r"d\.npz: not a readable \.npz archive"):
        load_npz(path)


def test_truncated_zip_npz_is_one_clear_error(tmp_path):
    path = _npz(tmp_path / "d.npz")
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match=r"d\.npz"):
        load_npz(path)


def test_object_array_npz_is_one_clear_error(tmp_path):
    path = tmp_path / "d.npz"
    objects = np.array([{"a": 1}, None, "x", 3, 4, 5], dtype=object)
    np.savez(path, x_train=objects, y_train=np.arange(6), x_test=objects, y_test=np.arange(6))
    with pytest.raises(DataError, match=r"x_train is an object \(pickled\) array"):
        load_npz(path)


def test_npy_instead_of_npz_is_one_clear_error(tmp_path):
    path = tmp_path / "d.npz"
    with path.open("wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(DataError, match=r"single array, not an \.npz archive"):
        load_npz(path)


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"x_train": np.zeros((6, 4, 4), np.complex64)}, "images must be uint8"),
        ({"x_train": np.full((6, 4, 4), np.nan, np.float32)}, "NaN or infinite"),
        ({"x_train": np.full((6, 4, 4), 300, np.int32)}, "must lie in 0..255"),
        ({"x_train": np.zeros((6, 0, 4), np.uint8)}, "hold no pixels"),
        ({"x_train": np.zeros((6,), np.uint8)}, r"images must be \[N, H, W\]"),
        ({"y_train": np.array(["a"] * 6)}, "labels must be integer class indices"),
        ({"y_train": np.array([0, 1, 2, 0, 1, -1])}, "non-negative"),
        ({"y_train": np.array([0, 1, 2, 0, 1, 10**9])}, "not a plausible class index"),
        ({"y_train": np.array([0, 1, 2])}, "6 images but 3 labels"),
        ({"x_test": np.zeros((3, 5, 5), np.uint8)}, "both splits need one shape"),
        ({"x_train": np.zeros((0, 4, 4), np.uint8), "y_train": np.zeros(0, int)}, "no examples"),
    ],
)
def test_bad_npz_arrays_are_one_clear_error(tmp_path, over, match):
    with pytest.raises(DataError, match=match):
        load_npz(_npz(tmp_path / "d.npz", **over))


def test_integer_images_in_byte_range_become_uint8(tmp_path):
    x = np.arange(96).reshape(6, 4, 4).astype(np.int64)
    train, _ = load_npz(_npz(tmp_path / "d.npz", x_train=x))
    assert train.images.dtype == np.uint8
    np.testing.assert_array_equal(train.images[..., 0], x)


def test_zip_with_a_corrupt_member_is_one_clear_error(tmp_path):
    path = tmp_path / "d.npz"
    with zipfile.ZipFile(path, "w") as z:
        for key in ("x_train", "y_train", "x_test", "y_test"):
            z.writestr(f"{key}.npy", b"\x93NUMPY garbage")
    with pytest.raises(DataError, match=r"d\.npz: x_train"):
        load_npz(path)


# ------------------------------------------------------------------------ data directories


def test_data_dir_under_a_file_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DataError, match=r"lies under the file .*file, so it is not a directory"):
        default_data_dir(blocker / "data")
    with pytest.raises(DataError, match="is not a directory"):
        prepare("mnist", data_dir=blocker)


@pytest.mark.parametrize("where", ["/proc/self/data", "/proc", "/sys/kernel/x"])
def test_data_dir_in_a_pseudo_filesystem_is_one_clear_error(where):
    with pytest.raises(DataError, match="kernel pseudo-filesystem"):
        prepare("mnist", data_dir=where)


def test_data_dir_from_the_environment_is_checked_too(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNJAX_DATA_DIR", "/proc/1")
    with pytest.raises(DataError, match="kernel pseudo-filesystem"):
        default_data_dir()


def test_unwritable_data_dir_is_one_clear_error(tmp_path, monkeypatch):
    from cnnjax.data import store
    from cnnjax.data.idx import write_idx_dir

    src = write_idx_dir(
        tmp_path / "src",
        {
            "train": (np.zeros((2, 28, 28), np.uint8), np.array([0, 1])),
            "test": (np.zeros((1, 28, 28), np.uint8), np.array([1])),
        },
    )

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(DataError, match=r"cannot write mnist into the data directory .*denied"):
        store.prepare("mnist", data_dir=tmp_path / "data", source_dir=src)


# ------------------------------------------------------------------------------ Food-101


@pytest.mark.parametrize(
    "image_id",
    [
        "pizza/../../../etc/passwd",
        "/etc/passwd",
        "pizza//x",
        "pizza/a/b",
        "steak/1",
        "pizza/",
        "pizza/..",
        "pizza/a\\b",
        "pizza/a\x00",
        7,
        None,
    ],
)
def test_hostile_food101_ids_are_refused(image_id):
    with pytest.raises(DataError, match="is not of the form 'pizza/<id>'"):
        check_image_id(image_id, "pizza", "meta/train")


def test_food101_id_check_accepts_real_ids():
    assert check_image_id("pizza/1001116", "pizza", "m") == "pizza/1001116"
    assert check_image_id("apple_pie/a-b_9", "apple_pie", "m") == "apple_pie/a-b_9"


def test_food101_split_list_with_escaping_ids_reads_nothing_outside(tmp_path):
    root = tmp_path / "food-101"
    (root / "images" / "pizza").mkdir(parents=True)
    (root / "meta").mkdir()
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"x")
    lists = {"pizza": ["pizza/../../secret"], "steak": []}
    for split in ("train", "test"):
        (root / "meta" / f"{split}.json").write_text(json.dumps(lists))
    with pytest.raises(DataError, match=r"image id 'pizza/\.\./\.\./secret'"):
        food101_files(tmp_path, ["pizza", "steak"])


def test_food101_split_list_of_wrong_shape_is_refused(tmp_path):
    root = tmp_path / "food-101"
    (root / "images").mkdir(parents=True)
    (root / "meta").mkdir()
    (root / "meta" / "train.json").write_text(json.dumps({"pizza": "pizza/1"}))
    with pytest.raises(DataError, match="class -> list of image ids"):
        food101_files(tmp_path, ["pizza"])
