"""An in-memory labelled image dataset: the unit every view and batcher works on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnjax.data.errors import DataError


@dataclass(frozen=True, eq=False)
class ArrayDataset:
    """Images ``[N, H, W, C]`` (uint8 or float32 in [0, 1]) with int32 labels ``[N]``.

    Frozen so that views can share arrays safely: every view returns a new dataset
    and never writes into the arrays of another.
    """

    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    class_names: tuple[str, ...]
    name: str

    def __post_init__(self) -> None:
        images = np.asarray(self.images)
        labels = np.asarray(self.labels)
        if images.ndim != 4:
            raise DataError(f"{self.name}: images must be [N, H, W, C], got shape {images.shape}")
        if images.dtype not in (np.uint8, np.float32):
            raise DataError(f"{self.name}: images must be uint8 or float32, got {images.dtype}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataError(
                f"{self.name}: {len(images)} images but labels have shape {labels.shape}"
            )
        if not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"{self.name}: labels must be integers, got {labels.dtype}")
        if len(self.class_names) != self.num_classes:
            raise DataError(
                f"{self.name}: {self.num_classes} classes but {len(self.class_names)} class names"
            )
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise DataError(
                f"{self.name}: labels span {labels.min()}..{labels.max()}, "
                f"outside 0..{self.num_classes - 1}"
            )
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", labels.astype(np.int32, copy=False))
        object.__setattr__(self, "class_names", tuple(self.class_names))

    @classmethod
    def from_arrays(
        cls,
        images: Any,
        labels: Any,
        *,
        num_classes: int | None = None,
        class_names: tuple[str, ...] | None = None,
        name: str = "arrays",
    ) -> ArrayDataset:
        """A dataset from plain arrays: images ``[N, H, W, C]`` of any real dtype, labels ``[N]``.

        uint8 images stay uint8; floating images become float32 once (taken as scaled to
        [0, 1]), and NaN or infinite pixels are refused; other integer images must lie in
        0..255 and become uint8. The class count defaults to the largest label + 1 (at least 2).
        """
        x, y = np.asarray(images), np.asarray(labels)
        if x.ndim != 4:
            hint = " (add a channel axis: images[..., None])" if x.ndim == 3 else ""
            raise DataError(f"{name}: images must be [N, H, W, C], got shape {x.shape}{hint}")
        if x.dtype == np.uint8:
            pass
        elif np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float32)
            bad = int(x.size - np.count_nonzero(np.isfinite(x)))
            if bad:
                raise DataError(f"{name}: {bad} image values are NaN or infinite")
        elif np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
            if x.size and (x.min() < 0 or x.max() > 255):
                raise DataError(
                    f"{name}: integer images must lie in 0..255, got {x.min()}..{x.max()}"
                )
            x = x.astype(np.uint8)
        else:
            raise DataError(f"{name}: images must have a real dtype, got {x.dtype}")
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            hint = " (one-hot labels: pass labels.argmax(-1))" if y.ndim == 2 else ""
            raise DataError(f"{name}: labels must be [N] class indices, got {y.shape}{hint}")
        if not np.issubdtype(y.dtype, np.integer):
            if not np.issubdtype(y.dtype, np.floating) or not np.all(y == np.round(y)):
                raise DataError(f"{name}: labels must be whole class indices, got {y.dtype}")
            y = y.astype(np.int64)
        if num_classes is None:
            num_classes = max(int(y.max()) + 1 if y.size else 0, 2)
        names = class_names or tuple(str(i) for i in range(num_classes))
        return cls(x, y.astype(np.int32), int(num_classes), tuple(names), name)

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return (
            f"ArrayDataset(name={self.name!r}, n={len(self)}, image_shape={self.image_shape}, "
            f"dtype={self.images.dtype}, num_classes={self.num_classes})"
        )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Shape of one image, ``(H, W, C)``."""
        h, w, c = self.images.shape[1:]
        return (int(h), int(w), int(c))
