"""An in-memory labelled image dataset: the unit every view and batcher works on."""

from __future__ import annotations

from dataclasses import dataclass

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
