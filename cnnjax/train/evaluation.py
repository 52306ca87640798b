"""Evaluation: loss and accuracy of one set of variables on a dataset (Keras `evaluate`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.checkpoint import nonfinite_part
from cnnjax.data import ArrayDataset, batch_indices
from cnnjax.data.device import DeviceDataset
from cnnjax.errors import TrainingError
from cnnjax.spec import NetSpec
from cnnjax.train.inputs import as_dataset, check_data_fits
from cnnjax.train.model import Model, as_model
from cnnjax.train.steps import LossFn, make_eval_step


def eval_sums(
    eval_fn: Callable[..., jax.Array],
    params: Any,
    batch_stats: Any,
    data: DeviceDataset,
    batch: int,
) -> np.ndarray:
    """[loss sum, correct, count] over `data` in batches of `batch` (the last one masked).

    A batch never exceeds the dataset: a 500-image set is one batch of 500, not 1,000 with
    half of them padding (the 224x224 networks evaluated twice the images they had).
    """
    return np.asarray(eval_sums_async(eval_fn, params, batch_stats, data, batch))


def eval_sums_async(
    eval_fn: Callable[..., jax.Array],
    params: Any,
    batch_stats: Any,
    data: DeviceDataset,
    batch: int,
) -> jax.Array:
    """`eval_sums` still on the device, not waited for (several seeds evaluate at once)."""
    batch = min(batch, len(data))
    idx, mask = batch_indices(
        len(data), batch, seed=0, epoch=0, shuffle=False, drop_remainder=False
    )
    total = None
    for b in range(idx.shape[0]):
        images, labels = data.gather(jnp.asarray(idx[b]))
        sums = eval_fn(params, batch_stats, images, labels, jnp.asarray(mask[b]))
        total = sums if total is None else total + sums
    assert total is not None  # batch_indices gives at least one batch
    return total


def metrics_from_sums(sums: np.ndarray) -> tuple[Any, Any]:
    """(loss, accuracy) from [..., 3] sums: floats for one seed, lists for k seeds."""
    loss, acc = sums[..., 0] / sums[..., 2], sums[..., 1] / sums[..., 2]
    if loss.ndim == 0:
        return float(loss), float(acc)
    return [float(v) for v in loss], [float(v) for v in acc]


def evaluate(
    model: Model | NetSpec | nn.Module,
    variables: dict[str, Any],
    data: ArrayDataset | tuple[Any, Any],
    *,
    batch_size: int = 1000,
    pool_impl: str = "auto",
    input_shape: tuple[int, ...] | None = None,
    loss: LossFn | None = None,
) -> dict[str, float]:
    """Loss and accuracy of `variables` on `data` (Keras `model.evaluate`).

    `model` is a cnnjax spec or any Flax Linen module (its input shape defaults to the data's);
    `data` an `ArrayDataset` or an `(images, labels)` pair of arrays.
    """
    if batch_size < 1:
        raise TrainingError(f"batch_size must be positive, got {batch_size}")
    bad = nonfinite_part(
        {"params": variables.get("params", {}), "batch_stats": variables.get("batch_stats", {})}
    )
    if bad is not None:
        raise TrainingError(
            f"the model's {bad} are not finite (NaN or inf): nothing to evaluate; "
            "retrain with a lower learning rate"
        )
    shape = input_shape
    if shape is None and not isinstance(model, (Model, NetSpec)):
        shape = as_dataset(data, "data").image_shape
    m = as_model(model, shape, pool_impl=pool_impl)
    ds = as_dataset(data, "data", num_classes=max(m.output_shape[-1], 2))
    check_data_fits(m, ds)
    eval_jit = jax.jit(make_eval_step(m, loss))
    sums = eval_sums(
        eval_jit,
        variables.get("params", {}),
        variables.get("batch_stats", {}),
        DeviceDataset.put(ds),
        batch_size,
    )
    loss_value, acc = metrics_from_sums(sums)
    return {"loss": loss_value, "accuracy": acc, "examples": int(sums[2])}
