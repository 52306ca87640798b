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

Blocks (residual, concat) run each path from the block's input. At the merge the paths must
be aligned, as in the Distill article and google-research's receptive_field library: equal
effective stride j and equal centre offset (r - 1) / 2 - P, so that unit u of every path is
centred on the same input pixel. The merge then takes r, j and P of the path with the largest
field (per axis); a misaligned merge is a SpecError naming both paths (or, with
`allow_misaligned=True`, takes the largest field anyway). Params, MACs and FLOPs sum over
every layer of every path; a merge row adds none (an add costs one FLOP per output value).

An unknown input size (H and/or W None, `?x?x3`) leaves r and j as they are: they never
depend on it. P does under TensorFlow's SAME padding with a stride above 1 (the pad grows
with the size's remainder), so there it is None, as are shapes, values, MACs and FLOPs that
need the size, and the padding past the far edge; params never need it (the spec refuses a
dense after a flatten of an unknown size). A merge's alignment is checked on the axes whose
offsets are known.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from cnnjax import spec as _spec
from cnnjax.spec import (
    BLOCK_TYPES,
    KERAS_NAMES,
    Layer,
    NetSpec,
    Node,
    Shape,
    SpecError,
    resolve_padding,
)

__all__ = [
    "KERAS_NAMES",
    "LayerReport",
    "NetReport",
    "analyze",
    "layer_names",
    "receptive_window",
]


def layer_names(spec: NetSpec) -> list[str]:
    """Unique names of every layer and merge in execution order (conv2d, conv2d_1, ...); the
    report's rows, the Flax model's submodules and its intermediates use the same names."""
    return [n.name for n in spec.nodes()]


@dataclass(frozen=True)
class LayerReport:
    """Analytic numbers for one layer. Spatial pairs are (height, width).

    In the report of a spec whose input size is unknown (`NetReport.size_known` False), the
    fields that need the size hold None: spatial sizes in the shapes, `values`,
    `values_fraction`, `macs`, `flops`, `effective_padding_end`, `effective_padding` where
    SAME padding with a stride above 1 makes it depend on the size, and a global layer's
    `receptive_field`. The annotations give the known-size types, which is what every reader
    that runs the model (it needs the size) sees.
    """

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
    receptive_field: tuple[int, int]  # a global layer's: the input's size
    effective_stride: tuple[int, int] | None
    effective_padding: tuple[int, int] | None
    effective_padding_end: tuple[int, int] | None
    is_global: bool
    macs: int
    flops: int
    path: str = ""  # the name inside its blocks, e.g. residual/main/conv2d_1 (= name at the top)
    inputs: tuple[str, ...] = ()  # a merge's branch paths; empty for a layer

    @property
    def is_merge(self) -> bool:
        return bool(self.inputs)

    def to_dict(self, with_path: bool = False) -> dict:
        """The row as JSON; `with_path` (graphs) adds `path` after `name`, and a merge's inputs."""
        d = asdict(self)
        path, inputs = d.pop("path"), d.pop("inputs")
        for key, value in d.items():
            if isinstance(value, tuple):
                d[key] = list(value)
        if not with_path:
            return d
        out = {}
        for key, value in d.items():
            out[key] = value
            if key == "name":
                out["path"] = path
        if inputs:
            out["inputs"] = list(inputs)
        return out


@dataclass(frozen=True)
class NetReport:
    """The analytic report of a whole network."""

    name: str
    input_shape: tuple[int, int, int]  # H and/or W None when unknown (see LayerReport)
    layers: tuple[LayerReport, ...]
    is_graph: bool = False  # the spec has blocks: rows carry paths, and merges have rows

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
    def size_known(self) -> bool:
        """False for the report of a spec whose input height or width is unknown (None)."""
        return None not in self.input_shape

    @property
    def total_macs(self) -> int:
        """Summed over the rows; None when a row's needs the unknown input size."""
        return _total(r.macs for r in self.layers)  # type: ignore[return-value]

    @property
    def total_flops(self) -> int:
        return _total(r.flops for r in self.layers)  # type: ignore[return-value]

    @property
    def input_values(self) -> int:
        """H x W x C; None when the size is unknown."""
        return _prod(self.input_shape)  # type: ignore[return-value]

    @property
    def output_shape(self) -> Shape:
        return self.layers[-1].output_shape if self.layers else self.input_shape

    def layer(self, name: str) -> LayerReport:
        """The row called `name` (a layer's or merge's unique name, or its path)."""
        for r in self.layers:
            if name in (r.name, r.path):
                return r
        raise KeyError(name)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "layers": [r.to_dict(self.is_graph) for r in self.layers],
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
            "total_macs": self.total_macs,
            "total_flops": self.total_flops,
            "input_values": self.input_values,
        }


def _prod(shape: Shape) -> int | None:
    """The number of values in `shape`, or None when a size in it is unknown."""
    return None if None in shape else math.prod(shape)  # type: ignore[arg-type]


def _total(numbers: Iterable[int | None]) -> int | None:
    """The sum, or None when one of the numbers is unknown."""
    total = 0
    for n in numbers:
        if n is None:
            return None
        total += n
    return total


def _params(layer: Layer, shape: Shape, out_shape: Shape) -> tuple[int, int]:
    """(trainable, non-trainable) parameter counts as Keras reports them. They never need an
    unknown size: the spec refuses a dense or batch norm on a vector of unknown length."""
    in_shape: tuple[int, ...] = tuple(0 if n is None else n for n in shape)
    if isinstance(layer, _spec.Conv):
        kh, kw = layer.kernel
        return kh * kw * in_shape[-1] * layer.filters + (layer.filters if layer.use_bias else 0), 0
    if isinstance(layer, _spec.DepthwiseConv):
        kh, kw = layer.kernel
        out_c = in_shape[-1] * layer.depth_multiplier
        return kh * kw * out_c + (out_c if layer.use_bias else 0), 0
    if isinstance(layer, _spec.Dense):
        return in_shape[0] * layer.units + (layer.units if layer.use_bias else 0), 0
    if isinstance(layer, _spec.BatchNorm):
        return 2 * in_shape[-1], 2 * in_shape[-1]  # gamma, beta | moving mean, variance
    return 0, 0


def _macs_flops(layer: Layer, in_shape: Shape, out_shape: Shape) -> tuple[int | None, int | None]:
    """Multiply-accumulates, and FLOPs = 2 x MACs + one op per pooled / averaged input element;
    None where they need an unknown input size."""
    out_values = _prod(out_shape)
    if out_values is None and isinstance(layer, (_spec.Conv, _spec.DepthwiseConv)):
        return None, None
    if out_values is None and isinstance(layer, (_spec.MaxPool, _spec.AvgPool)):
        return 0, None  # no multiply-accumulates, one op per pooled element
    if isinstance(layer, _spec.GlobalAvgPool) and None in in_shape:
        return 0, None
    return _known_macs_flops(layer, in_shape, out_values or 0)


def _known_macs_flops(layer: Layer, shape: Shape, out_values: int) -> tuple[int, int]:
    in_shape: tuple[int, ...] = tuple(0 if n is None else n for n in shape)
    if isinstance(layer, _spec.Conv):
        macs = out_values * layer.kernel[0] * layer.kernel[1] * in_shape[-1]
        return macs, 2 * macs
    if isinstance(layer, _spec.DepthwiseConv):
        macs = out_values * layer.kernel[0] * layer.kernel[1]
        return macs, 2 * macs
    if isinstance(layer, _spec.Dense):
        macs = in_shape[0] * layer.units
        return macs, 2 * macs
    if isinstance(layer, (_spec.MaxPool, _spec.AvgPool)):
        return 0, out_values * layer.window[0] * layer.window[1]
    if isinstance(layer, _spec.GlobalAvgPool):
        return 0, math.prod(in_shape)
    return 0, 0


@dataclass(frozen=True)
class _Field:
    """Receptive field r, effective stride j, effective padding P per axis, at one point."""

    r: tuple[int, int] = (1, 1)
    j: tuple[int, int] = (1, 1)
    p: tuple[int | None, int | None] = (0, 0)  # None: depends on an unknown input size
    is_global: bool = False

    def offset(self, a: int) -> float | None:
        """Centre offset (r - 1) / 2 - P of axis `a`: where unit 0's field is centred."""
        p = self.p[a]
        return None if p is None else (self.r[a] - 1) / 2 - p


def _through(f: _Field, layer: Layer, node: Node) -> _Field:
    if f.is_global or isinstance(layer, (_spec.Flatten, _spec.GlobalAvgPool)):
        return _Field(f.r, f.j, f.p, True)
    if not isinstance(layer, (_spec.Conv, _spec.DepthwiseConv, _spec.MaxPool, _spec.AvgPool)):
        return f
    r, j, p = list(f.r), list(f.j), list(f.p)
    for a in range(2):
        k = layer.dilation[a] * (layer.kernel[a] - 1) + 1
        r[a] += (k - 1) * j[a]
        start = _pad_start(layer, node.input_shape[a], k, a)
        p[a] = None if p[a] is None or start is None else p[a] + start * j[a]  # type: ignore[operator]
        j[a] *= layer.strides[a]
    return _Field((r[0], r[1]), (j[0], j[1]), (p[0], p[1]))


def _pad_start(layer: Any, size: int | None, k: int, a: int) -> int | None:
    """The top / left padding of axis `a` of a window layer (dilated kernel `k`) on an input of
    `size`: with an unknown size only SAME with a stride above 1 is unknown (stride 1 pads
    (k - 1) // 2 whatever the size)."""
    s = layer.strides[a]
    if size is None:
        if layer.padding == "same":
            return (k - 1) // 2 if s == 1 else None
        size = k  # valid or explicit padding: the start does not depend on the size
    kernel, strides = (k, k), (s, s)
    return resolve_padding(layer.padding, (size, size), kernel, strides)[a][0]


def _merge(node: Node, fields: Sequence[_Field], allow_misaligned: bool) -> _Field:
    if any(f.is_global for f in fields):
        return _Field(fields[0].r, fields[0].j, fields[0].p, True)
    first = fields[0]
    for path, f in zip(node.inputs[1:], fields[1:], strict=True):
        aligned = f.j == first.j and all(
            f.offset(a) == first.offset(a) or None in (f.offset(a), first.offset(a))
            for a in range(2)
        )
        if not aligned and not allow_misaligned:

            def where(f: _Field) -> str:
                o = ["?" if v is None else f"{v:g}" for v in (f.offset(0), f.offset(1))]
                return f"stride {f.j[0]}x{f.j[1]}, offset {o[0]}x{o[1]}"

            raise SpecError(
                f"{node.type} {node.path!r} merges misaligned paths: {node.inputs[0]} "
                f"({where(first)}) and {path} ({where(f)}); the receptive field of a merge "
                "needs every path at the same effective stride and centre offset "
                "(r - 1) / 2 - P (Araujo et al., Distill 2019): give the paths the same "
                "strides and 'same' (or matching) padding"
            )
    r, j, p = [0, 0], [1, 1], [0, 0]  # type: list[int], list[int], list[int | None]
    for a in range(2):
        widest = max(fields, key=lambda f: f.r[a])
        r[a], j[a], p[a] = widest.r[a], widest.j[a], widest.p[a]
    return _Field((r[0], r[1]), (j[0], j[1]), (p[0], p[1]))


def padding_end(out_size: int, r: float, j: float, p: float, in_size: int) -> float:
    """How far the last of `out_size` units reaches past the input's far edge (0 if inside),
    for a field of size `r`, stride `j` and start padding `p` on an axis of `in_size`."""
    return max((out_size - 1) * j - p + r - in_size, 0)


def layer_report(trainable: int, frozen: int, in_values: int | None, **fields: Any) -> LayerReport:
    """A `LayerReport` with the numbers that follow from the others filled in: params (the
    trainable and frozen counts) and the values of its output and their fraction of the input's
    (None where they need an unknown input size)."""
    values = _prod(fields["output_shape"])
    fraction = None if values is None or in_values is None else values / in_values
    return LayerReport(
        params=trainable + frozen,
        trainable_params=trainable,
        non_trainable_params=frozen,
        values=values,  # type: ignore[arg-type]  # None: unknown size (see LayerReport)
        values_fraction=fraction,  # type: ignore[arg-type]
        **fields,
    )


def analyze(spec: NetSpec, *, allow_misaligned: bool = False) -> NetReport:
    """The per-layer analytic report of `spec` (validated shapes, params, receptive fields):
    one row per layer, and for a graph one row per merge, in execution order."""
    nodes = iter(spec.nodes())
    rows: list[LayerReport] = []
    h, w = spec.input_shape[:2]
    in_values = _prod(spec.input_shape)

    def row(
        node: Node, f: _Field, trainable: int, frozen: int, macs: int | None, flops: int | None
    ) -> None:
        out_shape = node.output_shape
        if f.is_global:
            rf, stride, pad, pad_end = (h, w), None, None, None
        else:
            rf, stride = f.r, f.j
            pad = None if None in f.p else f.p
            sizes = (out_shape[0], out_shape[1], f.p[0], f.p[1], h, w)
            pad_end = (
                None
                if None in sizes
                else tuple(
                    padding_end(out_shape[a], f.r[a], f.j[a], f.p[a], (h, w)[a])  # type: ignore[arg-type]
                    for a in range(2)
                )
            )
        rows.append(
            layer_report(
                trainable,
                frozen,
                in_values,
                index=node.index,
                name=node.name,
                type=node.type,
                description=node.layer.describe(),
                input_shape=node.input_shape,
                output_shape=out_shape,
                receptive_field=rf,
                effective_stride=stride,
                effective_padding=pad,  # type: ignore[arg-type]
                effective_padding_end=pad_end,  # type: ignore[arg-type]
                is_global=f.is_global,
                macs=macs,
                flops=flops,
                path=node.path,
                inputs=node.inputs,
            )
        )

    def chain(layers: Sequence[Layer], f: _Field, it: Iterator[Node]) -> _Field:
        for layer in layers:
            if isinstance(layer, BLOCK_TYPES):
                fields = [chain(sub, f, it) for _, sub in layer.paths]
                node = next(it)
                f = _merge(node, fields, allow_misaligned)
                values = _prod(node.output_shape)
                adds = None if values is None else values * (len(fields) - 1)
                row(node, f, 0, 0, 0, adds if isinstance(layer, _spec.Residual) else 0)
                continue
            node = next(it)
            f = _through(f, layer, node)
            trainable, frozen = _params(layer, node.input_shape, node.output_shape)
            macs, flops = _macs_flops(layer, node.input_shape, node.output_shape)
            row(node, f, trainable, frozen, macs, flops)
        return f

    chain(spec.layers, _Field(), nodes)
    return NetReport(spec.name, spec.input_shape, tuple(rows), not spec.is_chain)


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
