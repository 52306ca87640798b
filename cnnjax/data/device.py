"""Small datasets on the device: put once, gather batches there by index inside jit.

`DeviceDataset` is a pytree (`jax.tree_util.register_pytree_node_class`): its arrays are leaves,
so it can be a jitted function's argument. uint8 images stay uint8 on the device (a quarter of
the memory of float32) and each gathered batch is scaled to [0, 1] in the compiled step; float
images are scaled once and kept as float32 (or `dtype`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.data.dataset import ArrayDataset
from cnnjax.data.views import scale_images


@jax.tree_util.register_pytree_node_class
class DeviceDataset:
    """A small dataset on the device; `gather(idx)` gives `(images, labels)` of a batch.

    ``images`` are uint8 as stored, or float in [0, 1]; ``gather`` always returns `dtype`
    images in [0, 1] and int32 labels.
    """

    def __init__(
        self, images: jax.Array, labels: jax.Array, num_classes: int, dtype: Any = np.float32
    ):
        self.images, self.labels, self.num_classes = images, labels, num_classes
        self.dtype = np.dtype(dtype)

    def tree_flatten(self) -> tuple[tuple[Any, Any], tuple[int, str]]:
        return (self.images, self.labels), (self.num_classes, self.dtype.name)

    @classmethod
    def tree_unflatten(cls, aux: tuple[int, str], children: tuple[Any, Any]) -> DeviceDataset:
        obj = object.__new__(cls)
        obj.images, obj.labels = children
        obj.num_classes, obj.dtype = aux[0], np.dtype(aux[1])
        return obj

    @classmethod
    def put(
        cls,
        ds: ArrayDataset,
        *,
        sharding: jax.sharding.Sharding | None = None,
        label_sharding: jax.sharding.Sharding | None = None,
        dtype: Any = np.float32,
    ) -> DeviceDataset:
        """Copy ``ds`` to the device (uint8 as bytes; floats scaled once).

        ``sharding`` places the images (default: the default device); labels use
        ``label_sharding``, defaulting to ``sharding``.
        """
        label_sharding = label_sharding if label_sharding is not None else sharding
        if ds.images.dtype == np.uint8:
            images = jax.device_put(ds.images, sharding)
        else:
            images = jax.device_put(scale_images(ds.images).astype(dtype), sharding)
        labels = jax.device_put(ds.labels.astype(np.int32), label_sharding)
        return cls(images, labels, ds.num_classes, dtype)

    def gather(self, idx: Any) -> tuple[jax.Array, jax.Array]:
        """``(images[idx], labels[idx])`` by ``jnp.take`` on the device; jit-friendly."""
        images = jnp.take(self.images, idx, axis=0)
        if images.dtype == jnp.uint8:
            images = images.astype(jnp.float32) / 255.0
        return images.astype(self.dtype), jnp.take(self.labels, idx, axis=0)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.images.shape[1:])

    @property
    def nbytes(self) -> int:
        """Bytes on the device (uint8 images count one byte a value)."""
        return int(self.images.nbytes + self.labels.nbytes)
