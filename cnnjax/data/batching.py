"""Deterministic batches: index plans from (seed, epoch), a device-resident fast path, streaming.

The order of an epoch is a function of ``(seed, epoch)`` alone, so a run restarted
at epoch ``e`` sees exactly the batches it would have seen. Shuffling permutes
indices, never data. Multi-host runs split each global batch by process, so every
example is seen exactly once per epoch across processes. jax is imported only by
the device path, when it is used.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

from cnnjax.data.dataset import ArrayDataset
from cnnjax.data.errors import DataError
from cnnjax.data.views import scale_images

if TYPE_CHECKING:
    pass


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """A permutation of ``range(n)`` (int32) that depends on ``(seed, epoch)`` only."""
    if n < 0 or seed < 0 or epoch < 0:
        raise DataError(f"need n, seed, epoch >= 0, got n={n}, seed={seed}, epoch={epoch}")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, epoch])))
    return rng.permutation(n).astype(np.int32)


def num_batches(n: int, batch_size: int, *, drop_remainder: bool = True) -> int:
    """Number of (global) batches in an epoch of ``n`` examples."""
    return n // batch_size if drop_remainder else -(-n // batch_size)


@overload
def batch_indices(
    n: int,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    shuffle: bool = ...,
    drop_remainder: Literal[True] = ...,
    process_index: int = ...,
    process_count: int = ...,
) -> np.ndarray: ...


@overload
def batch_indices(
    n: int,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    shuffle: bool = ...,
    drop_remainder: Literal[False],
    process_index: int = ...,
    process_count: int = ...,
) -> tuple[np.ndarray, np.ndarray]: ...


def batch_indices(
    n: int,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    drop_remainder: bool = True,
    process_index: int = 0,
    process_count: int = 1,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """This process's index plan for one epoch: int32 ``[num_batches, local_batch]``.

    ``local_batch = batch_size // process_count`` (``batch_size`` is the global batch).

    Global batch ``k`` is ``order[k * batch_size : (k + 1) * batch_size]``, where ``order``
    is ``epoch_permutation(n, seed, epoch)`` (or ``arange(n)`` without shuffling);
    process ``p`` takes the ``p``-th contiguous slice of each global batch.

    ``drop_remainder=True`` returns just the indices; the last ``n % batch_size``
    examples of the epoch's order are skipped (a different set every epoch).
    ``drop_remainder=False`` returns ``(indices, mask)``: the last global batch is
    padded with index 0 up to ``batch_size`` and ``mask`` (bool, same shape) is False
    on the padding, so jitted code sees one static shape and weights out the pads.
    """
    if batch_size <= 0:
        raise DataError(f"batch_size must be positive, got {batch_size}")
    if process_count < 1 or not 0 <= process_index < process_count:
        raise DataError(f"bad process {process_index} of {process_count}")
    if batch_size % process_count:
        raise DataError(
            f"global batch size {batch_size} is not divisible by {process_count} processes"
        )
    order = epoch_permutation(n, seed, epoch) if shuffle else np.arange(n, dtype=np.int32)
    local = batch_size // process_count
    cols = slice(process_index * local, (process_index + 1) * local)
    if drop_remainder:
        full = num_batches(n, batch_size)
        return np.ascontiguousarray(order[: full * batch_size].reshape(full, batch_size)[:, cols])
    nb = num_batches(n, batch_size, drop_remainder=False)
    pad = nb * batch_size - n
    padded = np.concatenate([order, np.zeros(pad, np.int32)]).reshape(nb, batch_size)
    mask = np.concatenate([np.ones(n, bool), np.zeros(pad, bool)]).reshape(nb, batch_size)
    return np.ascontiguousarray(padded[:, cols]), np.ascontiguousarray(mask[:, cols])


def process_shard() -> tuple[int, int]:
    """``(jax.process_index(), jax.process_count())`` for ``batch_indices`` on multi-host runs."""
    import jax

    return jax.process_index(), jax.process_count()


# ----------------------------------------------------------------------- streaming


def _batch_reader(data: Any) -> Any:
    """A function index-array -> (float32 images, int32 labels) for a dataset or data source."""
    if isinstance(data, ArrayDataset):
        return lambda idx: (scale_images(data.images[idx]), data.labels[idx])

    from cnnjax.data.store import fetch_examples

    def read(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        items = fetch_examples(data, idx.tolist())
        images = np.stack([np.asarray(item["image"]) for item in items])
        return scale_images(images), np.asarray([item["label"] for item in items], np.int32)

    return read


class _Done:
    pass


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def _put(q: queue.Queue[Any], stop: threading.Event, item: Any) -> bool:
    """Put ``item`` unless asked to stop first; False when stopped."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _work(read: Any, rows: Iterator[Any], q: queue.Queue[Any], stop: threading.Event) -> None:
    """Reader thread body; holds no reference to the iterator so that it can be collected."""
    try:
        for row in rows:
            if stop.is_set() or not _put(q, stop, read(np.asarray(row))):
                return
        _put(q, stop, _Done())
    except BaseException as e:  # handed to the consumer
        _put(q, stop, _Failed(e))


class PrefetchIterator(Iterator[tuple[np.ndarray, np.ndarray]]):
    """Yields batches read by a background thread, up to ``prefetch`` ahead.

    The reader thread stops when the iterator is exhausted, closed, or garbage
    collected; an error in the reader is raised by ``next``.
    """

    def __init__(self, read: Any, rows: Iterable[Any], prefetch: int):
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=prefetch)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(
            target=_work,
            args=(read, iter(rows), self._queue, self._stop),
            name="cnnjax-prefetch",
            daemon=True,
        )
        self._thread.start()

    def __next__(self) -> tuple[np.ndarray, np.ndarray]:
        if self._finished:
            raise StopIteration
        item = self._queue.get()
        if isinstance(item, _Done):
            self.close()
            raise StopIteration
        if isinstance(item, _Failed):
            self.close()
            raise item.error
        return item

    def close(self) -> None:
        """Stop the reader thread and drop what it had read ahead."""
        self._finished = True
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> PrefetchIterator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self._stop.set()


def stream_batches(
    data: ArrayDataset | Any, indices: Iterable[Any], *, prefetch: int = 2
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Batches ``(float32 images in [0, 1], int32 labels)`` for each row of ``indices``.

    ``data`` is an ArrayDataset or a random-access source such as ``open_source(...)``
    (items ``{"image", "label"}``); ``indices`` is a ``[num_batches, batch]`` plan from
    ``batch_indices`` or any iterable of index arrays. A thread reads up to
    ``prefetch`` batches ahead (``prefetch=0`` reads in the caller's thread).
    """
    read = _batch_reader(data)
    if prefetch <= 0:
        return (read(np.asarray(row)) for row in indices)
    return PrefetchIterator(read, indices, prefetch)
