"""A 2-D convolution whose kernel gradient is one matmul: windows(x)^T @ dY.

XLA:CPU computes the kernel gradient of `lax.conv_general_dilated` as another convolution
(batch and output positions as the contraction). `conv_matmul_kernel_grad` keeps the forward
pass and the input gradient as `lax.conv_general_dilated` and only replaces the kernel
gradient: the input's kh*kw shifted (strided, dilated) windows stacked, [kh*kw, n*oh*ow, c],
contracted with the output gradient [n*oh*ow, features] in one dot. Ungrouped convolutions.
Measured on a 2-core Xeon (jaxlib 0.10.2) it beats lax only on one input channel (the first
convolution of a grayscale net), where lax's kernel-gradient convolution vectorises poorly;
from 3 channels up, building the windows costs more than it saves (MAX_IN_CHANNELS).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

Pair = tuple[int, int]
Padding = tuple[Pair, Pair]
# SpecConv's "matmul_grads" uses this path up to this many input channels, lax above it.
MAX_IN_CHANNELS = 1
# Up to this many input channels the forward pass is a matmul over the same windows too (kept
# for the kernel gradient), not lax's convolution.
FORWARD_MATMUL_MAX_CHANNELS = 1


def _conv(x: jax.Array, kernel: jax.Array, strides: Pair, padding: Padding, dilation: Pair):
    return jax.lax.conv_general_dilated(
        x,
        kernel,
        window_strides=strides,
        padding=padding,
        rhs_dilation=dilation,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )


def windows(
    x: jax.Array, kernel_size: Pair, strides: Pair, padding: Padding, dilation: Pair
) -> jax.Array:
    """[kh*kw, n, oh, ow, c]: for every kernel tap (i, j), the input values it meets at every
    output position; stacked along a new leading axis, so each tap is one contiguous block."""
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, strides, dilation
    x = jnp.pad(x, ((0, 0), *padding, (0, 0)))
    oh = (x.shape[1] - (kh - 1) * dh - 1) // sh + 1
    ow = (x.shape[2] - (kw - 1) * dw - 1) // sw + 1
    taps = [
        x[:, i * dh : i * dh + (oh - 1) * sh + 1 : sh, j * dw : j * dw + (ow - 1) * sw + 1 : sw]
        for i in range(kh)
        for j in range(kw)
    ]
    return jnp.stack(taps)


def kernel_grad(
    x: jax.Array,
    g: jax.Array,
    kernel_shape: tuple[int, ...],
    strides: Pair,
    padding: Padding,
    dilation: Pair,
) -> jax.Array:
    """The HWIO kernel's gradient for output gradient `g`: windows(x)^T @ g, one matmul
    contracting the batch and output positions ([kh*kw, m, c] x [m, f] -> [kh*kw, c, f])."""
    kernel = (kernel_shape[0], kernel_shape[1])
    return _taps_grad(windows(x, kernel, strides, padding, dilation), g, kernel_shape)


def _taps_grad(taps: jax.Array, g: jax.Array, kernel_shape: tuple[int, ...]) -> jax.Array:
    kh, kw, c, f = kernel_shape
    t = taps.reshape(kh * kw, -1, c)
    return jax.lax.dot_general(t, g.reshape(-1, f), (((1,), (0,)), ((), ()))).reshape(kernel_shape)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv_matmul_kernel_grad(
    x: jax.Array, kernel: jax.Array, strides: Pair, padding: Padding, dilation: Pair
) -> jax.Array:
    """`lax.conv_general_dilated` (NHWC, HWIO, explicit padding) with the kernel gradient as
    one matmul, and up to FORWARD_MATMUL_MAX_CHANNELS input channels the forward pass as a
    matmul over the same windows; the plain convolution's numbers up to float rounding."""
    return _conv(x, kernel, strides, padding, dilation)


def _fwd(x, kernel, strides, padding, dilation):  # residuals: x, the windows or None, kernel
    kh, kw, c, f = kernel.shape
    if c > FORWARD_MATMUL_MAX_CHANNELS:
        return _conv(x, kernel, strides, padding, dilation), (x, None, kernel)
    taps = windows(x, (kh, kw), strides, padding, dilation)  # [kh*kw, n, oh, ow, c]
    t = taps.reshape(kh * kw, -1, c)
    y = jax.lax.dot_general(t, kernel.reshape(kh * kw, c, f), (((0, 2), (0, 1)), ((), ())))
    return y.reshape(*taps.shape[1:4], f), (x, taps, kernel)


def _bwd(strides, padding, dilation, residuals, g):
    x, taps, kernel = residuals
    _, input_vjp = jax.vjp(lambda x: _conv(x, kernel, strides, padding, dilation), x)
    (dx,) = input_vjp(g)  # lax's own input gradient (dead code when x is the data)
    if taps is None:
        dk = kernel_grad(x, g, kernel.shape, strides, padding, dilation)
    else:  # the forward pass's windows
        dk = _taps_grad(taps, g, kernel.shape)
    return dx, dk.astype(kernel.dtype)


conv_matmul_kernel_grad.defvjp(_fwd, _bwd)


def conv(
    x: jax.Array, kernel: jax.Array, strides: Pair, padding: Padding, dilation: Pair
) -> jax.Array:
    """`conv_matmul_kernel_grad` with its static arguments made hashable tuples."""
    return conv_matmul_kernel_grad(
        x,
        kernel,
        tuple(map(int, strides)),
        tuple(tuple(map(int, p)) for p in padding),
        tuple(map(int, dilation)),
    )
