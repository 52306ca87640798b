"""Views: class subsets, random subsets, validation splits, resizing, channels, scaling."""

from __future__ import annotations

import time

import numpy as np
import pytest

from cnnjax.data import (
    ArrayDataset,
    DataError,
    random_subset,
    resize,
    scale_images,
    scaled,
    split_validation,
    subset_classes,
    to_channels,
)

NAMES = tuple(f"c{i}" for i in range(10))


def _dataset(n: int = 100, hw: int = 8, channels: int = 1) -> ArrayDataset:
    """Example i has label i % 10 and every pixel equal to i % 256 (its identity)."""
    ids = np.arange(n)
    images = np.broadcast_to(
        (ids % 256).astype(np.uint8)[:, None, None, None], (n, hw, hw, channels)
    )
    return ArrayDataset(images.copy(), (ids % 10).astype(np.int32), 10, NAMES, "toy")


def _ids(ds: ArrayDataset) -> np.ndarray:
    return ds.images[:, 0, 0, 0].astype(int)


def test_array_dataset_basics() -> None:
    ds = _dataset(20)
    assert len(ds) == 20 and ds.image_shape == (8, 8, 1) and ds.labels.dtype == np.int32
    with pytest.raises(DataError, match=r"labels span 0..10, outside 0..9"):
        ArrayDataset(ds.images, np.arange(20) % 11, 10, NAMES, "bad")
    with pytest.raises(DataError, match=r"must be \[N, H, W, C\]"):
        ArrayDataset(ds.images[..., 0], ds.labels, 10, NAMES, "bad")
    with pytest.raises(DataError, match=r"10 classes but 2 class names"):
        ArrayDataset(ds.images, ds.labels, 10, ("a", "b"), "bad")


def test_subset_classes_relabels_in_given_order() -> None:
    ds = _dataset()
    sub = subset_classes(ds, [6, 0])
    assert len(sub) == 20 and sub.num_classes == 2 and sub.class_names == ("c6", "c0")
    np.testing.assert_array_equal(sub.labels, np.where(_ids(sub) % 10 == 6, 0, 1))
    assert set(_ids(sub) % 10) == {0, 6}
    kept = subset_classes(ds, [3, 4], relabel=False)
    assert kept.num_classes == 10 and set(kept.labels) == {3, 4}
    assert len(ds) == 100 and ds.num_classes == 10  # the input is untouched


@pytest.mark.parametrize("classes", [[], [1, 1], [10], [-1]])
def test_subset_classes_rejects(classes: list[int]) -> None:
    with pytest.raises(DataError):
        subset_classes(_dataset(), classes)


def test_random_subset() -> None:
    ds = _dataset(200)
    a, b, c = random_subset(ds, 50, seed=1), random_subset(ds, 50, seed=1), random_subset(ds, 50, 2)
    assert len(a) == 50 and len(set(_ids(a))) == 50
    np.testing.assert_array_equal(_ids(a), _ids(b))
    assert not np.array_equal(_ids(a), _ids(c))
    assert np.all(np.diff(_ids(a)) > 0)  # original order kept
    np.testing.assert_array_equal(a.labels, _ids(a) % 10)  # rows stay paired
    with pytest.raises(DataError, match=r"cannot take 201 of 200"):
        random_subset(ds, 201, seed=0)


@pytest.mark.parametrize("size", [50, 0.25])
def test_split_validation_disjoint_and_complete(size: int | float) -> None:
    ds = _dataset(200)
    train, val = split_validation(ds, size, seed=3)
    assert len(val) == 50 and len(train) == 150
    assert set(_ids(train)).isdisjoint(_ids(val))
    assert sorted([*_ids(train), *_ids(val)]) == list(range(200))
    again = split_validation(ds, size, seed=3)[1]
    np.testing.assert_array_equal(_ids(again), _ids(val))
    assert not np.array_equal(_ids(split_validation(ds, size, seed=4)[1]), _ids(val))


@pytest.mark.parametrize("size", [0, 200, 1.0, 0.0])
def test_split_validation_rejects(size: int | float) -> None:
    with pytest.raises(DataError):
        split_validation(_dataset(200), size, seed=0)


def test_resize_uint8_and_float() -> None:
    ds = _dataset(12, hw=28)
    big = resize(ds, (64, 48))
    assert big.images.shape == (12, 64, 48, 1) and big.images.dtype == np.uint8
    np.testing.assert_array_equal(big.images[:, 30, 20, 0], _ids(ds))  # flat stays flat
    f = resize(scaled(ds), (14, 14))
    assert f.images.dtype == np.float32 and f.images.shape == (12, 14, 14, 1)
    np.testing.assert_allclose(f.images[:, 7, 7, 0], _ids(ds) / 255.0, rtol=1e-5)
    rgb = resize(_dataset(3, hw=10, channels=3), (5, 5))
    assert rgb.images.shape == (3, 5, 5, 3)
    two = resize(_dataset(3, hw=10, channels=2), (5, 5))
    assert two.images.shape == (3, 5, 5, 2)


def test_resize_real_image_content() -> None:
    images = np.zeros((1, 4, 4, 1), np.uint8)
    images[0, :, 2:] = 255  # right half white
    out = resize(ArrayDataset(images, [0], 1, ("x",), "edge"), (8, 8)).images[0, :, :, 0]
    assert out[:, 0].max() == 0 and out[:, -1].min() == 255
    assert 0 < out[0, 4] < 255 or 0 < out[0, 3] < 255  # bilinear blends at the edge


def test_seed004_stand_in_shape_and_speed() -> None:
    ds = _dataset(1500, hw=28)
    start = time.perf_counter()
    out = to_channels(resize(ds, (224, 224)), 3)
    elapsed = time.perf_counter() - start
    assert out.images.shape == (1500, 224, 224, 3) and out.images.dtype == np.uint8
    assert elapsed < 10, f"resize+to_channels took {elapsed:.1f} s"


def test_to_channels() -> None:
    ds = _dataset(5)
    rgb = to_channels(ds, 3)
    assert rgb.image_shape == (8, 8, 3)
    for c in range(3):
        np.testing.assert_array_equal(rgb.images[..., c], ds.images[..., 0])
    assert to_channels(rgb, 3) is rgb
    with pytest.raises(DataError, match=r"can only replicate 1-channel images"):
        to_channels(rgb, 4)


def test_scale_images() -> None:
    x = np.array([0, 128, 255], np.uint8)
    y = scale_images(x)
    assert y.dtype == np.float32 and y[0] == 0.0 and y[-1] == 1.0
    np.testing.assert_allclose(y[1], 128 / 255)
    assert scale_images(y).dtype == np.float32
    with pytest.raises(DataError):
        scale_images(np.array([1, 2], np.int64))
