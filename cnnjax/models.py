"""Spec -> Flax Linen module. Every Flax call in cnnjax lives in this one module.

`build_model(spec)` returns a Linen module whose `init` / `apply` are pure functions:
`variables = model.init(key, x)`; `logits = model.apply(variables, x)`. Submodule names are the
analytic report's unique names (conv2d, conv2d_1, ... or the names a spec gives), and every
layer's and every merge's output is sown into the "intermediates" collection in execution
order, so tests and inspection tools compare the real network against the analytic report row
by row. Residual blocks add their paths (then an optional activation); concat blocks join
their branches along the channel axis.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnnjax import batch_norm, conv_grad, pool_grad
from cnnjax.analysis import layer_names
from cnnjax.column_sums import channel_sum
from cnnjax.fence import materialize
from cnnjax.spec import (
    BLOCK_TYPES,
    Activation,
    AvgPool,
    BatchNorm,
    Conv,
    Dense,
    DepthwiseConv,
    Dropout,
    Flatten,
    GlobalAvgPool,
    Layer,
    MaxPool,
    NetSpec,
    Node,
    Residual,
    effective_kernel,
    resolve_padding,
)

POOL_IMPLS = ("auto", "reduce_window", "reshape", "argmax")
CONV_IMPLS = ("auto", "lax", "matmul_bias", "matmul_grads", "patches")
NORM_IMPLS = ("auto", "flax", "matmul")
MERGE_IMPLS = ("auto", "fused", "materialized")

_ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": nn.relu,
    "sigmoid": nn.sigmoid,
    "softmax": nn.softmax,
    "tanh": jnp.tanh,
    "gelu": lambda x: nn.gelu(x, approximate=False),
    "elu": nn.elu,
    "swish": nn.swish,
}

# Keras initialisers: glorot-uniform kernels, zero biases.
_KERNEL_INIT = nn.initializers.glorot_uniform()
_BIAS_INIT = nn.initializers.zeros_init()


def _resolve_pool_impl(impl: str) -> str:
    if impl not in POOL_IMPLS:
        raise ValueError(f"pool_impl must be one of {POOL_IMPLS}, got {impl!r}")
    if impl == "auto":
        # On XLA:CPU the gradient of reduce_window max (select-and-scatter) is slow; windows
        # that tile the map pool faster with a gradient to one arg-max (`pool_grad`).
        return "argmax" if jax.default_backend() == "cpu" else "reduce_window"
    return impl


def _resolve_norm_impl(impl: str) -> str:
    if impl not in NORM_IMPLS:
        raise ValueError(f"norm_impl must be one of {NORM_IMPLS}, got {impl!r}")
    if impl == "auto":
        # XLA:CPU's per-channel column sums are slow; as matmuls with ones they are fast.
        return "matmul" if jax.default_backend() == "cpu" else "flax"
    return impl


def _resolve_merge_impl(impl: str) -> str:
    if impl not in MERGE_IMPLS:
        raise ValueError(f"merge_impl must be one of {MERGE_IMPLS}, got {impl!r}")
    if impl == "auto":
        # XLA:CPU recomputes a residual stream's earlier blocks inside every consumer of a
        # block's output unless it is materialized (`cnnjax.fence`).
        return "materialized" if jax.default_backend() == "cpu" else "fused"
    return impl


def _resolve_conv_impl(impl: str) -> str:
    if impl not in CONV_IMPLS:
        raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {impl!r}")
    if impl == "auto":
        # XLA:CPU reduces a [batch, h, w, c] gradient to the bias's [c] with a slow loop
        # (6 of 15 ms of a 64-filter step, benchmarks/step_paths.py); as a matmul it is fast.
        # A one-channel input's kernel gradient is faster as a matmul too (docs/performance.md).
        return "matmul_grads" if jax.default_backend() == "cpu" else "lax"
    return impl


@jax.custom_vjp
def add_bias(y: jax.Array, bias: jax.Array) -> jax.Array:
    """`y + bias` over the last axis, whose bias gradient is a matmul with ones, not a reduce."""
    return _plus(y, bias)


def _plus(y: jax.Array, bias: jax.Array) -> jax.Array:
    return y + bias.reshape((1,) * (y.ndim - 1) + bias.shape)


def _add_bias_fwd(y: jax.Array, bias: jax.Array) -> tuple[jax.Array, None]:
    return _plus(y, bias), None


def _add_bias_bwd(_: None, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    return g, channel_sum(g)


add_bias.defvjp(_add_bias_fwd, _add_bias_bwd)


class SpecConv(nn.Module):
    """A 2-D convolution with `nn.Conv`'s parameters (names, layout, initialisers).

    `impl` picks how it is computed, all giving the same numbers up to float rounding:
    "lax" is `lax.conv_general_dilated` plus a bias add (exactly what `nn.Conv` does);
    "matmul_bias" the same with the bias gradient as a matmul (`add_bias`), faster on XLA:CPU;
    "matmul_grads" as "matmul_bias", and the kernel gradient as one matmul (`conv_grad`) where
    the input has at most `conv_grad.MAX_IN_CHANNELS` channels;
    "patches" shifted slices + one matmul (im2col), for comparison (not grouped convolutions).
    With `defer_bias` it creates its bias but leaves adding it to the caller (`SpecModel` adds
    it after a max pooling, on the smaller map).
    """

    features: int
    kernel_size: tuple[int, int]
    strides: tuple[int, int]
    padding: tuple[tuple[int, int], tuple[int, int]]
    kernel_dilation: tuple[int, int]
    feature_group_count: int = 1
    use_bias: bool = True
    dtype: Any = jnp.float32
    impl: str = "lax"
    defer_bias: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = self.kernel_size
        c, groups = x.shape[-1], self.feature_group_count
        shape = (kh, kw, c // groups, self.features)
        kernel = self.param("kernel", _KERNEL_INIT, shape, jnp.float32).astype(self.dtype)
        x = x.astype(self.dtype)
        if self.impl == "patches" and groups == 1:
            y = self._patches(x, kernel)
        elif self.impl == "matmul_grads" and groups == 1 and c <= conv_grad.MAX_IN_CHANNELS:
            y = conv_grad.conv(x, kernel, self.strides, self.padding, self.kernel_dilation)
        else:
            y = jax.lax.conv_general_dilated(
                x,
                kernel,
                window_strides=self.strides,
                padding=self.padding,
                rhs_dilation=self.kernel_dilation,
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
                feature_group_count=groups,
            )
        if not self.use_bias:
            return y
        bias = self.param("bias", _BIAS_INIT, (self.features,), jnp.float32).astype(self.dtype)
        if self.defer_bias:
            return y
        return _plus(y, bias) if self.impl == "lax" else add_bias(y, bias)

    def _patches(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
        kh, kw, c, f = kernel.shape
        (sh, sw), (dh, dw) = self.strides, self.kernel_dilation
        x = jnp.pad(x, ((0, 0), *self.padding, (0, 0)))
        oh = (x.shape[1] - (kh - 1) * dh - 1) // sh + 1
        ow = (x.shape[2] - (kw - 1) * dw - 1) // sw + 1
        cols = [
            x[:, i * dh : i * dh + (oh - 1) * sh + 1 : sh, j * dw : j * dw + (ow - 1) * sw + 1 : sw]
            for i in range(kh)
            for j in range(kw)
        ]
        patches = jnp.concatenate(cols, axis=-1) if len(cols) > 1 else cols[0]
        return patches @ kernel.reshape(kh * kw * c, f)


def _tiles(layer: MaxPool, spatial: tuple[int, ...]) -> bool:
    """Whether the pooling's windows tile the map: stride = window, nothing padded."""
    pads = resolve_padding(layer.padding, spatial, layer.window, layer.strides)
    return layer.window == layer.strides and pads == ((0, 0), (0, 0))


def fuses_relu(layer: Layer, impl: str, spatial: tuple[int, ...]) -> bool:
    """Whether a ReLU just before `layer` can run inside it (`pool_grad.max_pool(relu=True)`)."""
    return (
        isinstance(layer, MaxPool)
        and _resolve_pool_impl(impl) == "argmax"
        and _tiles(layer, spatial)
    )


def max_pool(
    x: jax.Array,
    layer: MaxPool,
    impl: str = "auto",
    *,
    relu: bool = False,
    bias: jax.Array | None = None,
) -> jax.Array:
    """Max pooling with Keras semantics (of `relu(x + bias)` with `relu=True` and a `bias`).
    Windows that tile the map may use a reshape ("reshape") or `pool_grad` ("argmax": gradient
    to one arg-max, the bias added on the pooled map)."""
    window, strides = layer.window, layer.strides
    pads = resolve_padding(layer.padding, x.shape[1:3], window, strides)
    impl = _resolve_pool_impl(impl)
    if impl == "argmax" and _tiles(layer, x.shape[1:3]):
        return pool_grad.max_pool(x, window, relu=relu, bias=bias)
    if bias is not None:
        x = add_bias(x, bias)
    if relu:
        x = nn.relu(x)
    if impl in ("reshape", "argmax") and window == strides and pads == ((0, 0), (0, 0)):
        b, h, w, c = x.shape
        oh, ow = h // window[0], w // window[1]
        x = x[:, : oh * window[0], : ow * window[1], :]
        return x.reshape(b, oh, window[0], ow, window[1], c).max(axis=(2, 4))
    return nn.max_pool(x, window, strides, padding=pads)


class SpecModel(nn.Module):
    """A CNN read from a `NetSpec`: a chain of layers, residual and concat blocks.

    Attributes:
      spec: the architecture.
      dtype: compute dtype (float32 by default; bfloat16 for faster accelerator compute).
      pool_impl: "auto", "reduce_window", "reshape" or "argmax" (see `max_pool`).
      conv_impl: one of CONV_IMPLS (see `SpecConv`).
      norm_impl: "flax" (`flax.linen.BatchNorm`), "matmul" (`cnnjax.batch_norm`) or "auto".
      merge_impl: "materialized" (a residual block's output computed once in training,
        `cnnjax.fence`), "fused" (XLA may recompute it in each consumer) or "auto".
    """

    spec: NetSpec
    dtype: Any = jnp.float32
    pool_impl: str = "auto"
    conv_impl: str = "auto"
    norm_impl: str = "auto"
    merge_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, logits: bool = True) -> jax.Array:
        """Forward pass on NHWC `x`. With `logits=True` a final softmax / sigmoid is left out."""
        expected = self.spec.input_shape
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"input of shape {tuple(x.shape)} does not match the spec's "
                f"(batch, {', '.join(map(str, expected))})"
            )
        x = x.astype(self.dtype)
        return self._chain(self.spec.layers, x, iter(self.spec.nodes()), train, logits)

    def _chain(
        self,
        layers: tuple[Layer, ...],
        x: jax.Array,
        nodes: Iterator[Node],
        train: bool,
        logits: bool,
    ) -> jax.Array:
        """Run `layers` on `x`, consuming `nodes` (names) in the spec's execution order.
        `logits` leaves out a final softmax / sigmoid of the last layer of this chain."""
        last = len(layers) - 1
        # A ReLU followed by a max pooling that can take it runs inside the pooling, and so
        # does a convolution's bias (added on the pooled map), unless the layer's own output is
        # being recorded (`intermediates`).
        recording = self.is_mutable_collection("intermediates")
        relu_pending, bias_pending = False, None
        for i, layer in enumerate(layers):
            if relu_pending or bias_pending is not None:
                assert isinstance(layer, MaxPool)
                next(nodes)
                x = max_pool(x, layer, self.pool_impl, relu=relu_pending, bias=bias_pending)
                relu_pending, bias_pending = False, None
            elif isinstance(layer, BLOCK_TYPES):
                outs = [self._chain(sub, x, nodes, train, False) for _, sub in layer.paths]
                next(nodes)  # the merge
                if isinstance(layer, Residual):
                    x = _ACTIVATIONS[layer.activation](outs[0] + outs[1])
                    if train and _resolve_merge_impl(self.merge_impl) == "materialized":
                        x = materialize(x)
                else:
                    x = jnp.concatenate(outs, axis=-1)
            else:
                act = getattr(layer, "activation", "linear")
                name = next(nodes).name
                if isinstance(layer, (Conv, DepthwiseConv)) and self._defers_bias(
                    layers, i, recording
                ):
                    x, bias_pending = self._conv(layer, name, x, defer_bias=True)
                    relu_pending = act == "relu"
                    continue
                x = self._layer(layer, name, x, train)
                if (
                    act == "relu"
                    and not recording
                    and i < last
                    and fuses_relu(layers[i + 1], self.pool_impl, x.shape[1:3])
                ):
                    relu_pending = True
                elif not (logits and i == last and act in ("softmax", "sigmoid")):
                    x = _ACTIVATIONS[act](x)
            self.sow("intermediates", "layer_outputs", x)
        return x

    def _defers_bias(self, layers: tuple[Layer, ...], i: int, recording: bool) -> bool:
        """Whether layer i is a convolution whose bias (and ReLU) the max pooling after it adds,
        on the pooled map: `pool_grad.max_pool(bias=...)`, values equal, a quarter the traffic."""
        layer = layers[i]
        return (
            not recording
            and isinstance(layer, (Conv, DepthwiseConv))
            and layer.use_bias
            and layer.activation in ("relu", "linear")
            and i + 1 < len(layers)
            and isinstance(layers[i + 1], MaxPool)
            and _resolve_pool_impl(self.pool_impl) == "argmax"
        )

    def _conv(
        self, layer: Conv | DepthwiseConv, name: str, x: jax.Array, *, defer_bias: bool = False
    ) -> tuple[jax.Array, jax.Array | None]:
        """The convolution's output, and with `defer_bias` its bias, not yet added."""
        k = effective_kernel(layer.kernel, layer.dilation)
        pads = resolve_padding(layer.padding, x.shape[1:3], k, layer.strides)
        depthwise = isinstance(layer, DepthwiseConv)
        if isinstance(layer, DepthwiseConv):
            features = x.shape[-1] * layer.depth_multiplier
        else:
            features = layer.filters
        conv = SpecConv(
            features=features,
            kernel_size=layer.kernel,
            strides=layer.strides,
            padding=pads,
            kernel_dilation=layer.dilation,
            feature_group_count=x.shape[-1] if depthwise else 1,
            use_bias=layer.use_bias,
            dtype=self.dtype,
            impl=_resolve_conv_impl(self.conv_impl),
            defer_bias=defer_bias,
            name=name,
        )
        y = conv(x)
        bias = conv.variables["params"]["bias"].astype(self.dtype) if defer_bias else None
        return y, bias

    def _layer(self, layer: Layer, name: str, x: jax.Array, train: bool) -> jax.Array:
        if isinstance(layer, (Conv, DepthwiseConv)):
            return self._conv(layer, name, x)[0]
        if isinstance(layer, MaxPool):
            return max_pool(x, layer, self.pool_impl)
        if isinstance(layer, AvgPool):
            pads = resolve_padding(layer.padding, x.shape[1:3], layer.window, layer.strides)
            return nn.avg_pool(
                x, layer.window, layer.strides, padding=pads, count_include_pad=False
            )
        if isinstance(layer, Flatten):
            return x.reshape(x.shape[0], math.prod(x.shape[1:]))
        if isinstance(layer, GlobalAvgPool):
            return x.mean(axis=(1, 2))
        if isinstance(layer, Dense):
            return nn.Dense(
                layer.units,
                use_bias=layer.use_bias,
                dtype=self.dtype,
                kernel_init=_KERNEL_INIT,
                bias_init=_BIAS_INIT,
                name=name,
            )(x)
        if isinstance(layer, Dropout):
            return nn.Dropout(layer.rate, deterministic=not train, name=name)(x)
        if isinstance(layer, BatchNorm):
            norm = (
                nn.BatchNorm
                if _resolve_norm_impl(self.norm_impl) == "flax"
                else batch_norm.BatchNorm
            )
            return norm(
                use_running_average=not train,
                momentum=layer.momentum,
                epsilon=layer.epsilon,
                dtype=self.dtype,
                name=name,
            )(x)
        if isinstance(layer, Activation):
            return x  # the caller applies `layer.activation`
        raise TypeError(f"no Flax layer for {type(layer).__name__}")


def build_model(
    spec: NetSpec,
    *,
    dtype: Any = jnp.float32,
    pool_impl: str = "auto",
    conv_impl: str = "auto",
    norm_impl: str = "auto",
    merge_impl: str = "auto",
) -> SpecModel:
    """The Flax Linen module for `spec` (its input size must be known)."""
    spec.require_size("the Flax model")
    _resolve_pool_impl(pool_impl)
    _resolve_conv_impl(conv_impl)
    _resolve_norm_impl(norm_impl)
    _resolve_merge_impl(merge_impl)
    return SpecModel(
        spec=spec,
        dtype=dtype,
        pool_impl=pool_impl,
        conv_impl=conv_impl,
        norm_impl=norm_impl,
        merge_impl=merge_impl,
    )


def init_variables(model: SpecModel, key: jax.Array, batch_size: int = 1) -> dict[str, Any]:
    """Initial variables ("params", and "batch_stats" when the spec has batch norm)."""
    x = jnp.zeros((batch_size, *model.spec.input_shape), jnp.float32)
    variables = model.init({"params": key, "dropout": key}, x, train=False)
    return {k: v for k, v in variables.items() if k != "intermediates"}


def count_params(tree: Any) -> int:
    """Number of scalars in a pytree of arrays."""
    return sum(int(math.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(tree))


def has_batch_norm(spec: NetSpec) -> bool:
    """Whether any layer, in any block, is a batch norm (the model then has "batch_stats")."""
    return any(isinstance(node.layer, BatchNorm) for node in spec.nodes())


def intermediates(
    model: SpecModel, variables: dict[str, Any], x: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Logits and every layer's and merge's output (eval mode), keyed by the report's names."""
    out, state = model.apply(variables, x, train=False, mutable=["intermediates"])
    outputs = state["intermediates"]["layer_outputs"]
    return out, dict(zip(layer_names(model.spec), outputs, strict=True))
