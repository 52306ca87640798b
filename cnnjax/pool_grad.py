"""Max pooling over non-overlapping windows whose gradient goes to one arg-max per window.

JAX differentiates a max reduction by splitting the gradient among tied maxima: it compares
every input with the broadcast maximum, counts the ties and divides, which on XLA:CPU is a
third of a small CNN's training step (docs/performance.md). `max_pool` here finds the maximum
and the first position holding it, keeps only that position (an int32 per output) for the
backward pass, and there writes each tap's gradient with one select, as PyTorch and Keras do. Without ties the numbers equal JAX's; with ties
the whole gradient goes to the first maximum, where JAX shares it (the sum is the same).

With `relu=True` it computes `max_pool(relu(x))` as `relu(max_pool(x))` (max commutes with
a monotone function), so a convolution's ReLU runs on the pooled map, and its backward
pass needs nothing but the stored positions: the activation map is never kept for it.

With `bias=b` it computes `max_pool(x + b)` as `max_pool(x) + b` (adding a per-channel
constant is monotone, and float addition is too, so the values are the same), so a
convolution's bias is added, and its gradient summed, on the pooled map: a quarter of the
memory traffic for 2x2 windows (1.17x on pool224, docs/performance.md).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from cnnjax.column_sums import channel_sum

Pair = tuple[int, int]


def _channels(bias: jax.Array) -> jax.Array:
    """A per-channel vector shaped to broadcast over NHWC (explicitly: no rank promotion)."""
    return bias.reshape(1, 1, 1, -1)


def _windows(x: jax.Array, window: Pair) -> jax.Array:
    """The cropped input as [b, oh, wh, ow, ww, c]."""
    b, h, w, c = x.shape
    wh, ww = window
    oh, ow = h // wh, w // ww
    return x[:, : oh * wh, : ow * ww, :].reshape(b, oh, wh, ow, ww, c)


def _forward(
    x: jax.Array, window: Pair, relu: bool, bias: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """(pooled output, index of the first maximum in each window; wh*ww where ReLU zeroes it).
    The maximum is a reduction, as in the reshape path: as elementwise selects over the taps
    XLA:CPU fused it into the next convolution's transposed input, recomputing it per element
    (30x slower, profiled). NaNs propagate as in `jnp.max`."""
    xr = _windows(x, window)
    y = xr.max(axis=(2, 4))
    taps = [xr[:, :, i, :, j, :] for i in range(window[0]) for j in range(window[1])]
    k = len(taps)
    idx_dtype = jnp.int32  # uint8 indices made the backward pass slower on 224x224 maps
    idx = jnp.full(y.shape, k - 1, idx_dtype)
    for t in range(k - 2, -1, -1):  # the first tap equal to the maximum wins
        idx = jnp.where(taps[t] == y, jnp.asarray(t, idx_dtype), idx)
    if bias is not None:
        y = y + _channels(bias)
    if relu:
        # ReLU's gradient at 0 is 0 (jax.nn.relu): such windows pass no gradient at all.
        idx = jnp.where(y > 0, idx, jnp.asarray(k, idx_dtype))
        y = jnp.maximum(y, 0)
    return y, idx


@partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _pool(x: jax.Array, window: Pair, relu: bool, size: Pair) -> jax.Array:
    # Outside differentiation only the maximum: no positions, and a program the traced
    # report (cnnjax.trace) reads as an ordinary reshape pooling.
    y = _windows(x, window).max(axis=(2, 4))
    return jnp.maximum(y, 0) if relu else y


def _pool_fwd(x, window, relu, size):  # residuals: the arg-max positions only
    y, idx = _forward(x, window, relu)
    return y, idx


def _pool_bwd(window, relu, size, idx, g):
    return (_scatter(window, size, idx, g),)


def _scatter(window: Pair, size: Pair, idx: jax.Array, g: jax.Array) -> jax.Array:
    """The pooled gradient `g` written to each window's stored arg-max (none where idx = taps)."""
    (h, w), (b, _, _, c) = size, idx.shape
    (wh, ww), (oh, ow) = window, idx.shape[1:3]
    # One select per tap, stacked, then put in place: 10% faster on pool224 than one select
    # broadcasting the positions over [b, oh, wh, ow, ww, c] (benchmarks/step_paths.py).
    taps = [jnp.where(idx == t, g, 0) for t in range(wh * ww)]
    gx = jnp.stack(taps, axis=-2).reshape(b, oh, ow, wh, ww, c)
    gx = gx.transpose(0, 1, 3, 2, 4, 5)
    gx = gx.reshape(b, oh * wh, ow * ww, c)
    if (oh * wh, ow * ww) != (h, w):  # the rows and columns the windows leave out
        gx = jnp.pad(gx, ((0, 0), (0, h - oh * wh), (0, w - ow * ww), (0, 0)))
    return gx


_pool.defvjp(_pool_fwd, _pool_bwd)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _pool_bias(x: jax.Array, bias: jax.Array, window: Pair, relu: bool, size: Pair) -> jax.Array:
    # Outside differentiation (evaluation; a traced program) the usual order: bias first.
    return _pool(x + _channels(bias), window, relu, size)


def _pool_bias_fwd(x, bias, window, relu, size):
    y, idx = _forward(x, window, relu, bias)
    return y, idx


def _pool_bias_bwd(window, relu, size, idx, g):
    if relu:  # the windows ReLU zeroed pass nothing, to the bias either
        g = jnp.where(idx < window[0] * window[1], g, 0)
    return _scatter(window, size, idx, g), channel_sum(g)


_pool_bias.defvjp(_pool_bias_fwd, _pool_bias_bwd)


def max_pool(
    x: jax.Array, window: Pair, *, relu: bool = False, bias: jax.Array | None = None
) -> jax.Array:
    """Max pooling of NHWC `x` over non-overlapping `window`s (stride = window, VALID: the
    rows and columns left over are dropped), optionally of `relu(x)` and of `x + bias` (a
    per-channel bias, added before the ReLU); gradient to one arg-max per window."""
    size = (int(x.shape[1]), int(x.shape[2]))
    window = (int(window[0]), int(window[1]))
    if bias is None:
        return _pool(x, window, bool(relu), size)
    return _pool_bias(x, bias, window, bool(relu), size)
