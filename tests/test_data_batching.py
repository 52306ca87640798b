"""Batching laws (hypothesis), the device fast path and the streaming path."""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnnjax.data import (
    ArrayDataset,
    DataError,
    DeviceDataset,
    batch_indices,
    epoch_permutation,
    num_batches,
    scale_images,
    stream_batches,
)


@st.composite
def plans(draw: st.DrawFn) -> tuple[int, int, int, int, int]:
    """(n, batch_size, process_count, seed, epoch) with batch_size divisible by process_count."""
    process_count = draw(st.integers(1, 4))
    batch_size = process_count * draw(st.integers(1, 16))
    n = draw(st.integers(1, 300))
    return n, batch_size, process_count, draw(st.integers(0, 2**32)), draw(st.integers(0, 1000))


@given(plans())
def test_every_example_exactly_once_across_processes(plan: tuple[int, ...]) -> None:
    n, batch_size, processes, seed, epoch = plan
    seen = []
    for p in range(processes):
        idx, mask = batch_indices(
            n,
            batch_size,
            seed=seed,
            epoch=epoch,
            drop_remainder=False,
            process_index=p,
            process_count=processes,
        )
        nb = num_batches(n, batch_size, drop_remainder=False)
        assert idx.shape == mask.shape == (nb, batch_size // processes)
        assert idx.dtype == np.int32 and mask.dtype == bool
        assert idx.min() >= 0 and idx.max() < n  # padding is a valid index too
        seen.append(idx[mask])
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.arange(n))


@given(plans())
def test_drop_remainder_sizes_and_no_repeats(plan: tuple[int, ...]) -> None:
    n, batch_size, processes, seed, epoch = plan
    shards = [
        batch_indices(
            n, batch_size, seed=seed, epoch=epoch, process_index=p, process_count=processes
        )
        for p in range(processes)
    ]
    for shard in shards:
        assert shard.shape == (n // batch_size, batch_size // processes)
    everything = np.concatenate([s.ravel() for s in shards])
    assert len(everything) == (n // batch_size) * batch_size
    assert len(np.unique(everything)) == len(everything)
    # The global batch k is the processes' slices side by side.
    glob = np.concatenate(shards, axis=1)
    whole = batch_indices(n, batch_size, seed=seed, epoch=epoch)
    np.testing.assert_array_equal(glob, whole)


@given(st.integers(20, 500), st.integers(0, 2**32), st.integers(0, 1000))
def test_order_is_a_function_of_seed_and_epoch(n: int, seed: int, epoch: int) -> None:
    a = epoch_permutation(n, seed, epoch)
    np.testing.assert_array_equal(a, epoch_permutation(n, seed, epoch))
    np.testing.assert_array_equal(np.sort(a), np.arange(n))
    assert not np.array_equal(a, epoch_permutation(n, seed, epoch + 1))
    assert not np.array_equal(a, epoch_permutation(n, seed + 1, epoch))


def test_permutation_is_pinned() -> None:
    """Restarts rely on the order; a change (e.g. in numpy's Generator streams) must be seen."""
    np.testing.assert_array_equal(epoch_permutation(8, 0, 0), [2, 4, 3, 6, 5, 0, 1, 7])


def test_no_shuffle_is_sequential() -> None:
    idx, mask = batch_indices(10, 4, seed=0, epoch=0, shuffle=False, drop_remainder=False)
    np.testing.assert_array_equal(idx, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 0]])
    np.testing.assert_array_equal(mask[-1], [True, True, False, False])
    np.testing.assert_array_equal(
        batch_indices(10, 4, seed=0, epoch=0, shuffle=False), [[0, 1, 2, 3], [4, 5, 6, 7]]
    )


def test_batch_errors() -> None:
    with pytest.raises(DataError, match="not divisible by 3 processes"):
        batch_indices(10, 4, seed=0, epoch=0, process_count=3)
    with pytest.raises(DataError, match="bad process 2 of 2"):
        batch_indices(10, 4, seed=0, epoch=0, process_index=2, process_count=2)
    with pytest.raises(DataError, match="batch_size must be positive"):
        batch_indices(10, 0, seed=0, epoch=0)
    with pytest.raises(DataError):
        epoch_permutation(10, -1, 0)


# -------------------------------------------------------------------------- device path


def _dataset(n: int = 64) -> ArrayDataset:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 6, 6, 1), dtype=np.uint8)
    return ArrayDataset(images, rng.integers(0, 3, n), 3, ("a", "b", "c"), "toy")


def test_device_gather_equals_numpy_indexing() -> None:
    jax = pytest.importorskip("jax")
    ds = _dataset()
    dev = DeviceDataset.put(ds)
    assert len(dev) == 64 and dev.image_shape == (6, 6, 1) and dev.num_classes == 3
    # uint8 stays uint8 on the device (a quarter of float32's memory); batches come out scaled
    assert dev.images.dtype == np.uint8 and dev.labels.dtype == np.int32
    assert dev.nbytes == ds.images.nbytes + 4 * len(ds)
    idx = batch_indices(len(ds), 16, seed=5, epoch=2)

    @jax.jit
    def step(d: DeviceDataset, i: jax.Array) -> tuple[jax.Array, jax.Array]:
        return d.gather(i)  # a DeviceDataset is a pytree: it can be a jit argument

    for row in idx:
        images, labels = step(dev, row)
        np.testing.assert_allclose(np.asarray(images), scale_images(ds.images[row]), rtol=1e-6)
        np.testing.assert_array_equal(np.asarray(labels), ds.labels[row])
    gathered = jax.jit(lambda i: dev.gather(i)[1])(idx[0])  # closed over, inside jit
    np.testing.assert_array_equal(np.asarray(gathered), ds.labels[idx[0]])


def test_device_put_sharded_over_all_devices() -> None:
    jax = pytest.importorskip("jax")
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devices = jax.devices()
    mesh = Mesh(np.array(devices), ("data",))
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    ds = _dataset(8 * len(devices))
    dev = DeviceDataset.put(ds, sharding=sharding)
    assert dev.images.sharding == sharding and dev.labels.sharding == sharding
    idx = batch_indices(len(ds), 2 * len(devices), seed=0, epoch=1)
    images, labels = jax.jit(DeviceDataset.gather)(dev, idx[-1])
    np.testing.assert_allclose(np.asarray(images), scale_images(ds.images[idx[-1]]), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(labels), ds.labels[idx[-1]])


def test_device_put_float_input_and_dtype() -> None:
    jax = pytest.importorskip("jax")
    ds = _dataset(8)
    floats = ArrayDataset(scale_images(ds.images), ds.labels, 3, ds.class_names, "f")
    np.testing.assert_allclose(np.asarray(DeviceDataset.put(floats).images), floats.images)
    bf16 = DeviceDataset.put(ds, dtype=jax.numpy.bfloat16)
    assert bf16.gather(np.arange(4))[0].dtype == jax.numpy.bfloat16
    assert DeviceDataset.put(floats, dtype=jax.numpy.bfloat16).images.dtype == jax.numpy.bfloat16


# ----------------------------------------------------------------------- streaming path


class _ListSource:
    """A random-access source of {"image", "label"} dicts, like a TFDS data source."""

    def __init__(self, ds: ArrayDataset):
        self.ds = ds
        self.batched_reads = 0

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.ds.images[i], "label": int(self.ds.labels[i])}

    def __getitems__(self, keys: list[int]) -> list[dict]:
        self.batched_reads += 1
        return [self[k] for k in keys]


@pytest.mark.parametrize("prefetch", [0, 1, 3])
def test_stream_batches_match_direct_indexing(prefetch: int) -> None:
    ds = _dataset(50)
    idx = batch_indices(len(ds), 8, seed=1, epoch=0)
    source = _ListSource(ds)
    for data in (ds, source):
        batches = list(stream_batches(data, idx, prefetch=prefetch))
        assert len(batches) == len(idx)
        for (images, labels), row in zip(batches, idx, strict=True):
            assert images.dtype == np.float32 and labels.dtype == np.int32
            np.testing.assert_array_equal(images, scale_images(ds.images[row]))
            np.testing.assert_array_equal(labels, ds.labels[row])
    assert source.batched_reads == len(idx)  # one vectorised read per batch


def test_stream_reader_error_reaches_consumer() -> None:
    class Broken(_ListSource):
        def __getitems__(self, keys: list[int]) -> list[dict]:
            if 7 in keys:
                raise OSError("disk went away")
            return super().__getitems__(keys)

    it = stream_batches(Broken(_dataset(16)), np.arange(16).reshape(4, 4))
    assert len(list(zip(range(1), it, strict=False))) == 1
    with pytest.raises(OSError, match="disk went away"):
        list(it)


def _wait_for_threads(count: int) -> int:
    deadline = time.monotonic() + 5
    while threading.active_count() > count and time.monotonic() < deadline:
        time.sleep(0.01)
    return threading.active_count()


def test_stream_close_stops_the_reader() -> None:
    before = threading.active_count()
    it = stream_batches(_dataset(64), np.arange(64).reshape(32, 2), prefetch=2)
    next(it)
    it.close()
    assert _wait_for_threads(before) == before
    with pytest.raises(StopIteration):
        next(it)


def test_abandoned_stream_stops_the_reader() -> None:
    before = threading.active_count()
    for _ in stream_batches(_dataset(64), np.arange(64).reshape(32, 2), prefetch=2):
        break  # the iterator is dropped without close()
    gc.collect()
    assert _wait_for_threads(before) == before
