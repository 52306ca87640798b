"""Pure views of an ArrayDataset: class subsets, random subsets, validation splits, resizing.

Each view returns a new ArrayDataset and leaves its input untouched. Subsets keep
the original example order (shuffling is the batcher's job) and are deterministic
in their seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from cnnjax.data.dataset import ArrayDataset
from cnnjax.data.errors import DataError


def _rng(*seed: int) -> np.random.Generator:
    if any(s < 0 for s in seed):
        raise DataError(f"seeds must be non-negative integers, got {seed}")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(seed))))


def select(ds: ArrayDataset, indices: np.ndarray | Sequence[int], *, tag: str = "") -> ArrayDataset:
    """The examples at ``indices``, in that order."""
    idx = np.asarray(indices, dtype=np.int64)
    if idx.ndim != 1:
        raise DataError(f"{ds.name}: indices must be 1-d, got shape {idx.shape}")
    if idx.size and (idx.min() < -len(ds) or idx.max() >= len(ds)):
        raise DataError(f"{ds.name}: indices outside 0..{len(ds) - 1}")
    name = f"{ds.name}|{tag}" if tag else ds.name
    return replace(ds, images=ds.images[idx], labels=ds.labels[idx], name=name)


def subset_classes(ds: ArrayDataset, classes: Sequence[int], relabel: bool = True) -> ArrayDataset:
    """Only the examples of ``classes``; ``relabel`` maps them to 0..len-1 in the given order.

    ``subset_classes(ds, [0, 6])`` gives a two-class T-shirt (0) vs shirt (1) problem.
    """
    classes = [int(c) for c in classes]
    if not classes:
        raise DataError(f"{ds.name}: subset_classes needs at least one class")
    if len(set(classes)) != len(classes):
        raise DataError(f"{ds.name}: repeated class in {classes}")
    bad = [c for c in classes if not 0 <= c < ds.num_classes]
    if bad:
        raise DataError(f"{ds.name}: classes {bad} outside 0..{ds.num_classes - 1}")
    keep = np.flatnonzero(np.isin(ds.labels, classes))
    tag = "classes=" + ",".join(map(str, classes))
    out = select(ds, keep, tag=tag)
    if not relabel:
        return out
    lookup = np.full(ds.num_classes, -1, np.int32)
    lookup[classes] = np.arange(len(classes), dtype=np.int32)
    names = tuple(ds.class_names[c] for c in classes)
    return replace(out, labels=lookup[out.labels], num_classes=len(classes), class_names=names)


def random_subset(ds: ArrayDataset, n: int, seed: int) -> ArrayDataset:
    """``n`` examples drawn without replacement, deterministic in ``seed``, original order kept."""
    if not 0 <= n <= len(ds):
        raise DataError(f"{ds.name}: cannot take {n} of {len(ds)} examples")
    idx = np.sort(_rng(seed).choice(len(ds), size=n, replace=False))
    return select(ds, idx, tag=f"subset={n},seed={seed}")


def split_validation(
    ds: ArrayDataset, size: int | float, seed: int
) -> tuple[ArrayDataset, ArrayDataset]:
    """Carve a validation set from ``ds``: returns ``(train, validation)``, disjoint.

    ``size`` is a count (int) or a fraction in (0, 1) (float).
    """
    if isinstance(size, float):
        if not 0.0 < size < 1.0:
            raise DataError(f"{ds.name}: a validation fraction must be in (0, 1), got {size}")
        count = round(size * len(ds))
    else:
        count = int(size)
    if not 0 < count < len(ds):
        raise DataError(f"{ds.name}: cannot carve {count} validation examples from {len(ds)}")
    perm = _rng(seed).permutation(len(ds))
    val, train = np.sort(perm[:count]), np.sort(perm[count:])
    return (
        select(ds, train, tag=f"train-minus-val={count},seed={seed}"),
        select(ds, val, tag=f"val={count},seed={seed}"),
    )


def resize(ds: ArrayDataset, size: tuple[int, int], *, chunk_size: int = 256) -> ArrayDataset:
    """Bilinear resize to ``size`` = (H, W) with PIL; uint8 stays uint8, float32 stays float32.

    Images are resized one at a time into a preallocated output, ``chunk_size`` at a
    time, so no full-size float copy of the dataset is ever made.
    """
    from PIL import Image

    h, w = (int(s) for s in size)
    if h <= 0 or w <= 0:
        raise DataError(f"{ds.name}: cannot resize to {size}")
    if (h, w) == ds.image_shape[:2]:
        return ds
    n, c = len(ds), ds.image_shape[2]
    out = np.empty((n, h, w, c), ds.images.dtype)
    is_byte = ds.images.dtype == np.uint8
    bilinear = Image.Resampling.BILINEAR
    for start in range(0, n, chunk_size):
        chunk = ds.images[start : start + chunk_size]
        for i, image in enumerate(chunk, start):
            if is_byte and c in (1, 3):
                mode_image = Image.fromarray(image[..., 0] if c == 1 else image)
                resized = np.asarray(mode_image.resize((w, h), bilinear))
                out[i] = resized.reshape(h, w, c)
            else:  # any channel count, or float: one 'L'/'F' plane at a time
                for ch in range(c):
                    plane = image[..., ch] if is_byte else image[..., ch].astype(np.float32)
                    out[i, ..., ch] = np.asarray(Image.fromarray(plane).resize((w, h), bilinear))
    return replace(ds, images=out, name=f"{ds.name}|resize={h}x{w}")


def to_channels(ds: ArrayDataset, channels: int) -> ArrayDataset:
    """Replicate a 1-channel image to ``channels`` (e.g. grayscale -> RGB)."""
    c = ds.image_shape[2]
    if c == channels:
        return ds
    if c != 1:
        raise DataError(f"{ds.name}: can only replicate 1-channel images, these have {c}")
    if channels < 1:
        raise DataError(f"{ds.name}: cannot make {channels} channels")
    images = np.repeat(ds.images, channels, axis=-1)
    return replace(ds, images=images, name=f"{ds.name}|channels={channels}")


def scale_images(images: np.ndarray) -> np.ndarray:
    """float32 images in [0, 1]: uint8 is divided by 255, float is taken as already scaled."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255.0)
    if np.issubdtype(images.dtype, np.floating):
        return images.astype(np.float32, copy=False)
    raise DataError(f"cannot scale images of dtype {images.dtype}; expected uint8 or float")


def scaled(ds: ArrayDataset) -> ArrayDataset:
    """The dataset with float32 images in [0, 1]."""
    return replace(ds, images=scale_images(ds.images))
