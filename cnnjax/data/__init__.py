"""Datasets for cnnjax: TFDS array_record files read without TensorFlow, views and batching.

Importing this package imports numpy only; tensorflow_datasets, PIL and jax are
imported by the functions that need them (`DeviceDataset` lives in `cnnjax.data.device`, which
imports jax, and is loaded on first use).
"""

from typing import Any

from cnnjax.data.batching import (
    batch_indices,
    epoch_permutation,
    num_batches,
    process_shard,
    stream_batches,
)
from cnnjax.data.dataset import ArrayDataset
from cnnjax.data.errors import DataError
from cnnjax.data.registry import DATASETS, DatasetSpec, default_data_dir, get_spec
from cnnjax.data.store import info, load, open_source, prepare, read_source, status
from cnnjax.data.views import (
    random_subset,
    resize,
    scale_images,
    scaled,
    select,
    split_validation,
    subset_classes,
    to_channels,
)

__all__ = [
    "DATASETS",
    "ArrayDataset",
    "DataError",
    "DatasetSpec",
    "DeviceDataset",
    "batch_indices",
    "default_data_dir",
    "epoch_permutation",
    "get_spec",
    "info",
    "load",
    "num_batches",
    "open_source",
    "prepare",
    "process_shard",
    "random_subset",
    "read_source",
    "resize",
    "scale_images",
    "scaled",
    "select",
    "split_validation",
    "status",
    "stream_batches",
    "subset_classes",
    "to_channels",
]


def __getattr__(name: str) -> Any:
    """`DeviceDataset` on first use: its module imports jax, which this package does not."""
    if name == "DeviceDataset":
        from cnnjax.data.device import DeviceDataset

        return DeviceDataset
    raise AttributeError(f"module 'cnnjax.data' has no attribute {name!r}")
