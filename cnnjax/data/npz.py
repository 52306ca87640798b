"""Bring-your-own data: a Keras-style `.npz` file (x_train, y_train, x_test, y_test).

Whatever the file holds, the result is two datasets or one DataError naming the file and the
array: random bytes, pickled (object) arrays, wrong shapes or dtypes, non-finite pixels and
labels that are not whole numbers are all refused, never truncated or guessed.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from cnnjax.data.dataset import ArrayDataset
from cnnjax.data.errors import DataError

KEYS = ("x_train", "y_train", "x_test", "y_test")
MAX_CLASSES = 100_000  # labels beyond this are corrupt data, not classes (and would not fit)


def _images(images: np.ndarray, where: str) -> np.ndarray:
    """Images as [N, H, W, C] uint8 (integers in 0..255) or float32 (finite), or DataError."""
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise DataError(f"{where}: images must be [N, H, W] or [N, H, W, C], got {images.shape}")
    if 0 in images.shape[1:]:
        raise DataError(f"{where}: images of shape {images.shape[1:]} hold no pixels")
    if images.dtype == np.uint8:
        return images
    if np.issubdtype(images.dtype, np.integer) or images.dtype == np.bool_:
        if images.size and (images.min() < 0 or images.max() > 255):
            raise DataError(
                f"{where}: integer images must lie in 0..255, got {images.min()}..{images.max()}"
            )
        return images.astype(np.uint8)
    if np.issubdtype(images.dtype, np.floating):
        images = images.astype(np.float32)
        bad = images.size - int(np.count_nonzero(np.isfinite(images)))
        if bad:
            raise DataError(f"{where}: {bad} pixel value(s) are NaN or infinite")
        return images
    raise DataError(
        f"{where}: images must be uint8, integers in 0..255 or floats in [0, 1], not {images.dtype}"
    )


def _labels(labels: np.ndarray, where: str) -> np.ndarray:
    """Labels as int64 class indices; floats only when they are whole numbers."""
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        hint = " (one-hot labels: store labels.argmax(-1))" if labels.ndim == 2 else ""
        raise DataError(f"{where}: labels must be [N] class indices, got {labels.shape}{hint}")
    if labels.dtype == np.bool_:
        return labels.astype(np.int64)
    if np.issubdtype(labels.dtype, np.integer):
        values = labels
    elif np.issubdtype(labels.dtype, np.floating):
        finite = np.isfinite(labels)
        whole = finite & (labels == np.round(np.where(finite, labels, 0)))
        if not whole.all():
            i = int(np.flatnonzero(~whole)[0])
            raise DataError(
                f"{where}: labels must be whole class indices, but label {i} is "
                f"{labels[i]!r} (float labels are accepted only when integral)"
            )
        values = labels
    else:
        raise DataError(f"{where}: labels must be integer class indices, not {labels.dtype}")
    if values.size and values.min() < 0:
        raise DataError(f"{where}: labels must be non-negative, got {values.min()}")
    if values.size and values.max() >= MAX_CLASSES:
        raise DataError(
            f"{where}: label {values.max()} is not a plausible class index (at most "
            f"{MAX_CLASSES - 1}); the labels are corrupt"
        )
    return values.astype(np.int64)


def _read(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The four arrays of an .npz file, or one DataError saying why it cannot be read."""
    try:
        f = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(
            f"{path}: not a readable .npz archive ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else 'corrupt'}); save it with "
            "numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"
        ) from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: holds a single array, not an .npz archive with {', '.join(KEYS)}")
    with f:
        missing = [k for k in KEYS if k not in f.files]
        if missing:
            raise DataError(
                f"{path}: missing array(s) {', '.join(missing)}; expected {', '.join(KEYS)}"
            )
        arrays = {}
        for key in KEYS:
            try:
                arrays[key] = np.asarray(f[key])
            except ValueError as e:
                why = "an object (pickled) array" if "pickle" in str(e) else str(e).splitlines()[0]
                raise DataError(f"{path}: {key} is {why}; store plain numeric arrays") from None
            except (OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
                raise DataError(
                    f"{path}: {key} is corrupt or truncated ({type(e).__name__})"
                ) from None
    return arrays


def load_npz(path: str | os.PathLike[str]) -> tuple[ArrayDataset, ArrayDataset]:
    """(train, test) from an .npz with Keras's keys; float images are taken to be in [0, 1]."""
    if not os.path.isfile(path):
        raise DataError(f"npz file not found: {path}")
    arrays = _read(path)
    name = os.path.basename(str(path))
    out = {}
    for split in ("train", "test"):
        where = f"{path}: x_{split}/y_{split}"
        images = _images(arrays[f"x_{split}"], f"{path}: x_{split}")
        labels = _labels(arrays[f"y_{split}"], f"{path}: y_{split}")
        if len(images) != len(labels):
            raise DataError(f"{where}: {len(images)} images but {len(labels)} labels")
        if len(images) == 0:
            raise DataError(f"{where}: no examples; both splits need at least one")
        out[split] = (images, labels)
    (xa, ya), (xb, yb) = out["train"], out["test"]
    if xa.shape[1:] != xb.shape[1:]:
        raise DataError(
            f"{path}: x_train images are {'x'.join(map(str, xa.shape[1:]))} but x_test "
            f"images are {'x'.join(map(str, xb.shape[1:]))}; both splits need one shape"
        )
    num_classes = int(max(ya.max(), yb.max())) + 1
    names = tuple(str(i) for i in range(num_classes))
    return (
        ArrayDataset(xa, ya.astype(np.int32), num_classes, names, f"{name}:train"),
        ArrayDataset(xb, yb.astype(np.int32), num_classes, names, f"{name}:test"),
    )
