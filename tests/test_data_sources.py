"""The archive-based datasets (CIFAR-10, pizza_steak) from files the tests write, and TFDS mocks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cnnjax.data import DataError, info, load, prepare, read_source, stream_batches
from cnnjax.data.cifar import CIFAR10_FILES, write_cifar_file


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNNJAX_OFFLINE", "1")


# ------------------------------------------------------------------------------ CIFAR-10


@pytest.fixture
def cifar_dir(tmp_path: Path) -> tuple[Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """An extracted-archive layout with 4 examples per batch file."""
    root = tmp_path / "cifar-10-batches-bin"
    root.mkdir()
    rng = np.random.default_rng(0)
    arrays = {}
    for split, files in CIFAR10_FILES.items():
        parts = []
        for f in files:
            images = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
            labels = rng.integers(0, 10, 4).astype(np.uint8)
            write_cifar_file(root / f, images, labels)
            parts.append((images, labels))
        arrays[split] = (
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
        )
    return tmp_path, arrays


def test_cifar10_prepare_and_load(tmp_path: Path, cifar_dir: tuple[Path, dict]) -> None:
    src, arrays = cifar_dir
    data = tmp_path / "data"
    facts = info("cifar10", data_dir=data, source_dir=src)  # finds cifar-10-batches-bin/
    assert facts["splits"] == {"train": 20, "test": 4} and facts["image_shape"] == [32, 32, 3]
    assert facts["class_names"][0] == "airplane"
    for split, (images, labels) in arrays.items():
        ds = load("cifar10", split, data_dir=data)
        np.testing.assert_array_equal(ds.images, images)
        np.testing.assert_array_equal(ds.labels, labels)


def test_cifar10_truncated_file(tmp_path: Path, cifar_dir: tuple[Path, dict]) -> None:
    src, _ = cifar_dir
    batch = src / "cifar-10-batches-bin" / "data_batch_3.bin"
    batch.write_bytes(batch.read_bytes()[:-10])
    with pytest.raises(DataError, match=r"data_batch_3.bin: truncated or corrupt: 12282 bytes"):
        prepare("cifar10", data_dir=tmp_path / "data", source_dir=src)


def test_cifar10_missing_batch(tmp_path: Path, cifar_dir: tuple[Path, dict]) -> None:
    src, _ = cifar_dir
    (src / "cifar-10-batches-bin" / "data_batch_5.bin").unlink()
    with pytest.raises(DataError, match=r"missing CIFAR-10 batch file.* data_batch_5.bin"):
        prepare("cifar10", data_dir=tmp_path / "data", source_dir=src)


def test_cifar10_label_out_of_range(tmp_path: Path, cifar_dir: tuple[Path, dict]) -> None:
    src, _ = cifar_dir
    images = np.zeros((2, 32, 32, 3), np.uint8)
    write_cifar_file(src / "cifar-10-batches-bin" / "test_batch.bin", images, [1, 10])
    with pytest.raises(DataError, match=r"test_batch.bin: label 10 of record 1 is out of range"):
        prepare("cifar10", data_dir=tmp_path / "data", source_dir=src)


# ------------------------------------------------------------------------ pizza_steak


def _food101(root: Path, sizes: dict[str, dict[str, int]]) -> Path:
    """A Food-101 layout with small solid-colour JPEGs: sizes[split][class] images each."""
    from PIL import Image

    base = root / "food-101"
    (base / "meta").mkdir(parents=True)
    colours = {"pizza": (200, 40, 40), "steak": (40, 40, 200), "sushi": (40, 200, 40)}
    for split, per_class in sizes.items():
        lists: dict[str, list[str]] = {}
        for cls, n in per_class.items():
            (base / "images" / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                image_id = f"{cls}/{split}{i}"
                Image.new("RGB", (60 + i, 40), colours[cls]).save(
                    base / "images" / f"{image_id}.jpg"
                )
                lists.setdefault(cls, []).append(image_id)
        (base / "meta" / f"{split}.json").write_text(json.dumps(lists))
    return root


def test_pizza_steak_from_food101(tmp_path: Path) -> None:
    sizes = {"train": {"pizza": 3, "steak": 2, "sushi": 2}, "test": {"pizza": 1, "steak": 2}}
    src = _food101(tmp_path / "dl", sizes)
    train = load("pizza_steak", "train", data_dir=tmp_path / "data", source_dir=src)
    assert train.images.shape == (5, 224, 224, 3) and train.images.dtype == np.uint8
    assert train.class_names == ("pizza", "steak")
    np.testing.assert_array_equal(train.labels, [0, 0, 0, 1, 1])  # sushi left out
    red = train.images[0].reshape(-1, 3).mean(axis=0)
    assert red[0] > 150 and red[2] < 90  # pizza is the red one
    test = load("pizza_steak", "test", data_dir=tmp_path / "data")
    np.testing.assert_array_equal(test.labels, [0, 1, 1])


def test_pizza_steak_missing_image(tmp_path: Path) -> None:
    src = _food101(tmp_path / "dl", {"train": {"pizza": 2, "steak": 1}, "test": {"pizza": 1}})
    (src / "food-101" / "images" / "pizza" / "train1.jpg").unlink()
    with pytest.raises(DataError, match=r"pizza/train1.jpg: listed in meta/train but missing"):
        prepare("pizza_steak", data_dir=tmp_path / "data", source_dir=src)


def test_pizza_steak_corrupt_image(tmp_path: Path) -> None:
    src = _food101(
        tmp_path / "dl", {"train": {"pizza": 1, "steak": 1}, "test": {"pizza": 1, "steak": 1}}
    )
    (src / "food-101" / "images" / "steak" / "train0.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"steak/train0.jpg: cannot decode image"):
        prepare("pizza_steak", data_dir=tmp_path / "data", source_dir=src)
    assert not (tmp_path / "data" / "cnnjax_food101" / "pizza_steak" / "1.0.0").exists()


def test_not_a_food101_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"not an extracted Food-101 archive"):
        prepare("pizza_steak", data_dir=tmp_path / "data", source_dir=tmp_path)


# ---------------------------------------------------------------------- tfds mock_data


def test_read_and_stream_a_mocked_tfds_source(tmp_path: Path) -> None:
    tfds = pytest.importorskip("tensorflow_datasets")
    import cnnjax.data.builders  # noqa: F401  (registers the builders with TFDS)

    with tfds.testing.mock_data(num_examples=12):
        source = tfds.data_source(
            "cnnjax_idx/fashion_mnist", split="train", data_dir=str(tmp_path), download=False
        )
        ds = read_source(source, name="mock", chunk_size=5)
        assert ds.images.shape == (12, 28, 28, 1) and ds.class_names[0] == "T-shirt/top"
        plan = np.arange(12).reshape(3, 4)[::-1]
        batches = list(stream_batches(source, plan))
    assert len(batches) == 3
    for (images, labels), row in zip(batches, plan, strict=True):
        np.testing.assert_allclose(images, ds.images[row] / 255.0, rtol=1e-6)
        np.testing.assert_array_equal(labels, ds.labels[row])
