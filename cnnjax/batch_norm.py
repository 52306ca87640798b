"""Batch normalisation whose per-channel sums are matmuls with a row of ones.

`flax.linen.BatchNorm` reduces a [batch, h, w, c] map to [c] for its statistics, and its
gradient reduces twice more (the scale's and the offset's gradients); XLA:CPU runs each such
column reduction as a slow loop: two thirds of a small ResNet's training step
(docs/performance.md). `BatchNorm` here has flax's variables (params `scale`, `bias`;
batch_stats `mean`, `var`), initialisers, fast variance (E[x²] - E[x]², clipped at 0) and
running-average update, so checkpoints and reports are the same, and computes the training
pass as one `jax.custom_vjp` whose every sum over the batch is a dot with ones. The batch
statistics it returns carry no gradient: they only update the running averages.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnnjax.column_sums import column_sums


def _stats(x2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean and (fast, clipped) variance of the columns of x2, each [1, c]."""
    total, squares = column_sums(x2, x2 * x2)
    n = x2.shape[0]
    mean = total / n
    return mean, jnp.maximum(0.0, squares / n - mean * mean)


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def normalize_batch(
    x: jax.Array, scale: jax.Array, bias: jax.Array, epsilon: float
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(y, mean, var) of batch norm in training mode over all axes but the last: x of any
    float dtype is normalised in float32; y = (x - mean) / sqrt(var + eps) * scale + bias."""
    return _forward(x, scale, bias, epsilon)[0]


def _forward(x, scale, bias, epsilon):
    c = x.shape[-1]
    x2 = x.reshape(-1, c).astype(jnp.float32)
    mean, var = _stats(x2)
    inv = jax.lax.rsqrt(var + epsilon)
    mul = inv * scale.reshape(1, c)
    y = (x2 * mul + (bias.reshape(1, c) - mean * mul)).reshape(x.shape)
    return (y, mean.reshape(c), var.reshape(c)), (x, mean, inv, scale)


def _fwd(x, scale, bias, epsilon):
    return _forward(x, scale, bias, epsilon)


def _bwd(epsilon, residuals, cotangents):
    x, mean, inv, scale = residuals
    c = x.shape[-1]
    x2 = x.reshape(-1, c).astype(jnp.float32)
    g = cotangents[0].reshape(x2.shape).astype(jnp.float32)  # mean and var: no gradient
    n = x2.shape[0]
    xhat = (x2 - mean) * inv
    g_sum, gx_sum = column_sums(g, g * xhat)
    dx = (scale.reshape(1, c) * inv / n) * (n * g - g_sum - xhat * gx_sum)
    return dx.reshape(x.shape).astype(x.dtype), gx_sum.reshape(c), g_sum.reshape(c)


normalize_batch.defvjp(_fwd, _bwd)


class BatchNorm(nn.Module):
    """`flax.linen.BatchNorm` over the last axis (same variables and numbers up to float
    rounding), computed with `normalize_batch` in training mode."""

    use_running_average: bool
    momentum: float = 0.99
    epsilon: float = 1e-5
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
        scale = self.param("scale", nn.initializers.ones_init(), (c,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros_init(), (c,), jnp.float32)
        out_dtype = self.dtype or jnp.result_type(x, jnp.float32)
        if self.use_running_average:
            per_channel = (1,) * (x.ndim - 1) + (c,)
            mul = (jax.lax.rsqrt(ra_var.value + self.epsilon) * scale).reshape(per_channel)
            shift = ra_mean.value.reshape(per_channel)
            y = (x.astype(jnp.float32) - shift) * mul + bias.reshape(per_channel)
            return y.astype(out_dtype)
        y, mean, var = normalize_batch(x, scale, bias, float(self.epsilon))
        if not self.is_initializing():
            mean, var = jax.lax.stop_gradient(mean), jax.lax.stop_gradient(var)
            ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
            ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
        return y.astype(out_dtype)
