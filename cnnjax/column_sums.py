"""Per-channel sums as matmuls with a row of ones, for the gradients of the faster CPU paths.

XLA:CPU reduces a [rows, channels] array over its rows with a slow loop (a bias gradient was
6 of 15 ms of a 64-filter training step); the same sum as a dot with ones is fast
(docs/performance.md). `models.add_bias`, `pool_grad` and `batch_norm` sum through here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def column_sums(*columns: jax.Array) -> list[jax.Array]:
    """Sums over the rows of [m, c] arrays, each as [1, c]: one dot of ones with the arrays
    side by side."""
    m, c = columns[0].shape
    ones = jnp.ones((1, m), columns[0].dtype)
    stacked = jnp.concatenate(columns, axis=1) if len(columns) > 1 else columns[0]
    sums = ones @ stacked
    return [sums[:, i * c : (i + 1) * c] for i in range(len(columns))]


def channel_sum(x: jax.Array) -> jax.Array:
    """The sum of an [..., c] array over every axis but the last: [c]."""
    c = x.shape[-1]
    return column_sums(x.reshape(-1, c))[0].reshape(c)
