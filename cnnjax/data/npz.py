"""Bring-your-own data: a Keras-style `.npz` file (x_train, y_train, x_test, y_test)."""

from __future__ import annotations

import os

import numpy as np

from cnnjax.data.dataset import ArrayDataset
from cnnjax.data.errors import DataError

KEYS = ("x_train", "y_train", "x_test", "y_test")


def _as_dataset(
    images: np.ndarray, labels: np.ndarray, name: str, num_classes: int
) -> ArrayDataset:
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise DataError(
            f"{name}: images must be [N, H, W] or [N, H, W, C], got shape {images.shape}"
        )
    labels = np.asarray(labels).reshape(-1).astype(np.int32)
    if labels.shape[0] != images.shape[0]:
        raise DataError(f"{name}: {images.shape[0]} images but {labels.shape[0]} labels")
    if images.dtype != np.uint8:
        images = images.astype(np.float32)
    names = tuple(str(i) for i in range(num_classes))
    return ArrayDataset(images, labels, num_classes, names, name)


def load_npz(path: str | os.PathLike[str]) -> tuple[ArrayDataset, ArrayDataset]:
    """(train, test) from an .npz with Keras's keys; float images are taken to be in [0, 1]."""
    if not os.path.isfile(path):
        raise DataError(f"npz file not found: {path}")
    with np.load(path) as f:
        missing = [k for k in KEYS if k not in f]
        if missing:
            raise DataError(
                f"{path}: missing array(s) {', '.join(missing)}; expected {', '.join(KEYS)}"
            )
        arrays = {k: f[k] for k in KEYS}
    labels = np.concatenate([arrays["y_train"].reshape(-1), arrays["y_test"].reshape(-1)])
    if labels.size and (labels.min() < 0):
        raise DataError(f"{path}: labels must be non-negative integers")
    num_classes = int(labels.max()) + 1 if labels.size else 0
    name = os.path.basename(str(path))
    return (
        _as_dataset(arrays["x_train"], arrays["y_train"], f"{name}:train", num_classes),
        _as_dataset(arrays["x_test"], arrays["y_test"], f"{name}:test", num_classes),
    )
