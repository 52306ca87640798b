"""The analytic per-layer report of a spec, in pure Python (no JAX import).

For each layer: output shape, parameters (trainable / non-trainable, as Keras counts them),
values in the activation and their fraction of the input's values, receptive field,
effective stride and effective padding (Araujo, Norris & Sim, "Computing Receptive Fields of
Convolutional Neural Networks", Distill 2019), multiply-accumulates and FLOPs.

Receptive-field recursion, from the input (r=1, j=1, P=0) to each layer l:
    r_l = r_{l-1} + (k_l - 1) * j_{l-1}        k_l the dilated kernel d * (k - 1) + 1
    j_l = j_{l-1} * s_l                          the effective stride
    P_l = P_{l-1} + p_l * j_{l-1}                the effective (top / left) padding
Output unit u of layer l sees input pixels [u * j_l - P_l, u * j_l - P_l + r_l - 1].
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass

from cnnjax.spec import (
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
    window_output,
)

KERAS_NAMES: dict[type[Layer], str] = {
    Conv: "conv2d",
    DepthwiseConv: "depthwise_conv2d",
    MaxPool: "max_pooling2d",
    AvgPool: "average_pooling2d",
    Flatten: "flatten",
    GlobalAvgPool: "global_average_pooling2d",
    Dense: "dense",
    Dropout: "dropout",
    BatchNorm: "batch_normalization",
}


def layer_names(spec: NetSpec) -> list[str]:
    """Keras-style unique names (conv2d, conv2d_1, ...); the Flax model uses the same names."""
    seen: Counter[str] = Counter()
    names = []
    for layer in spec.layers:
        base = KERAS_NAMES[type(layer)]
        names.append(base if seen[base] == 0 else f"{base}_{seen[base]}")
        seen[base] += 1
    return names


@dataclass(frozen=True)
class LayerReport:
    """Analytic numbers for one layer. Spatial pairs are (height, width)."""

    index: int
    name: str
    type: str
    description: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: int
    trainable_params: int
    non_trainable_params: int
    values: int
    values_fraction: float
    receptive_field: tuple[int, int]
    effective_stride: tuple[int, int] | None
    effective_padding: tuple[int, int] | None
    effective_padding_end: tuple[int, int] | None
    is_global: bool
    macs: int
    flops: int

    def to_dict(self) -> dict:
        d = asdict(self)
        for key, value in d.items():
            if isinstance(value, tuple):
                d[key] = list(value)
        return d


@dataclass(frozen=True)
class NetReport:
    """The analytic report of a whole network."""

    name: str
    input_shape: tuple[int, int, int]
    layers: tuple[LayerReport, ...]

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.layers)

    @property
    def trainable_params(self) -> int:
        return sum(r.trainable_params for r in self.layers)

    @property
    def non_trainable_params(self) -> int:
        return sum(r.non_trainable_params for r in self.layers)

    @property
    def total_macs(self) -> int:
        return sum(r.macs for r in self.layers)

    @property
    def total_flops(self) -> int:
        return sum(r.flops for r in self.layers)

    @property
    def input_values(self) -> int:
        return math.prod(self.input_shape)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.layers[-1].output_shape if self.layers else self.input_shape

    def layer(self, name: str) -> LayerReport:
        for r in self.layers:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "layers": [r.to_dict() for r in self.layers],
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
            "total_macs": self.total_macs,
            "total_flops": self.total_flops,
            "input_values": self.input_values,
        }


def _params(layer: Layer, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> tuple[int, int]:
    """(trainable, non-trainable) parameter counts as Keras reports them."""
    if isinstance(layer, Conv):
        kh, kw = layer.kernel
        return kh * kw * in_shape[-1] * layer.filters + (layer.filters if layer.use_bias else 0), 0
    if isinstance(layer, DepthwiseConv):
        kh, kw = layer.kernel
        out_c = in_shape[-1] * layer.depth_multiplier
        return kh * kw * out_c + (out_c if layer.use_bias else 0), 0
    if isinstance(layer, Dense):
        return in_shape[0] * layer.units + (layer.units if layer.use_bias else 0), 0
    if isinstance(layer, BatchNorm):
        return 2 * in_shape[-1], 2 * in_shape[-1]  # gamma, beta | moving mean, variance
    return 0, 0


def _macs_flops(
    layer: Layer, in_shape: tuple[int, ...], out_shape: tuple[int, ...]
) -> tuple[int, int]:
    """Multiply-accumulates, and FLOPs = 2 x MACs + one op per pooled / averaged input element."""
    out_values = math.prod(out_shape)
    if isinstance(layer, Conv):
        macs = out_values * layer.kernel[0] * layer.kernel[1] * in_shape[-1]
        return macs, 2 * macs
    if isinstance(layer, DepthwiseConv):
        macs = out_values * layer.kernel[0] * layer.kernel[1]
        return macs, 2 * macs
    if isinstance(layer, Dense):
        macs = in_shape[0] * layer.units
        return macs, 2 * macs
    if isinstance(layer, (MaxPool, AvgPool)):
        return 0, out_values * layer.window[0] * layer.window[1]
    if isinstance(layer, GlobalAvgPool):
        return 0, math.prod(in_shape)
    return 0, 0


def analyze(spec: NetSpec) -> NetReport:
    """The per-layer analytic report of `spec` (validated shapes, params, receptive fields)."""
    shapes = spec.shapes()
    names = layer_names(spec)
    in_values = math.prod(spec.input_shape)
    h, w = spec.input_shape[:2]
    r, j, p, is_global = [1, 1], [1, 1], [0, 0], False
    reports = []
    for i, layer in enumerate(spec.layers):
        in_shape, out_shape = shapes[i], shapes[i + 1]
        pad_end: tuple[int, int] | None = None
        if not is_global and isinstance(layer, (Conv, DepthwiseConv, MaxPool, AvgPool)):
            _, pads = window_output(
                in_shape[:2], layer.kernel, layer.strides, layer.dilation, layer.padding
            )
            for a in range(2):
                k = layer.dilation[a] * (layer.kernel[a] - 1) + 1
                r[a] = r[a] + (k - 1) * j[a]
                p[a] = p[a] + pads[a][0] * j[a]
                j[a] = j[a] * layer.strides[a]
        elif isinstance(layer, (Flatten, GlobalAvgPool)):
            is_global = True
        if is_global:
            rf, stride, pad = (h, w), None, None
        else:
            rf, stride, pad = (r[0], r[1]), (j[0], j[1]), (p[0], p[1])
            # How far the last output unit's field reaches past the input's far edge.
            pad_end = tuple(  # type: ignore[assignment]
                max((out_shape[a] - 1) * j[a] - p[a] + r[a] - (h, w)[a], 0) for a in range(2)
            )
        trainable, frozen = _params(layer, in_shape, out_shape)
        macs, flops = _macs_flops(layer, in_shape, out_shape)
        values = math.prod(out_shape)
        reports.append(
            LayerReport(
                index=i,
                name=names[i],
                type=layer.type,
                description=layer.describe(),
                input_shape=in_shape,
                output_shape=out_shape,
                params=trainable + frozen,
                trainable_params=trainable,
                non_trainable_params=frozen,
                values=values,
                values_fraction=values / in_values,
                receptive_field=rf,
                effective_stride=stride,
                effective_padding=pad,
                effective_padding_end=pad_end,
                is_global=is_global,
                macs=macs,
                flops=flops,
            )
        )
    return NetReport(spec.name, spec.input_shape, tuple(reports))


def receptive_window(report: LayerReport, row: int, col: int) -> tuple[int, int, int, int]:
    """Input rows/cols [top, bottom] x [left, right] (inclusive, may extend into padding) seen by
    output unit (row, col) of a spatial layer."""
    if report.is_global or report.effective_stride is None or report.effective_padding is None:
        raise ValueError(f"layer {report.name} is global: every unit sees the whole input")
    (sh, sw), (ph, pw), (rh, rw) = (
        report.effective_stride,
        report.effective_padding,
        report.receptive_field,
    )
    top, left = row * sh - ph, col * sw - pw
    return top, top + rh - 1, left, left + rw - 1
