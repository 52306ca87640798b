"""Network architecture as data: immutable layer specs, three ways in (Python, text, JSON).

Every reader of a network (the analytic report, the Flax model, the inspection tools) reads
one `NetSpec`, so the numbers printed beside an accuracy describe the very network trained.
Semantics follow Keras: padding "valid" by default, pool strides default to the window, and
TensorFlow's SAME rule (pad total = max((out - 1) * s + k - n, 0), extra pixel bottom/right).

This module is pure Python: it never imports JAX.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

Pair = tuple[int, int]
Padding = Union[str, tuple[Pair, Pair]]  # noqa: UP007  ("valid" | "same" | ((t, b), (l, r)))

ACTIVATIONS = ("linear", "relu", "sigmoid", "softmax", "tanh", "gelu", "elu", "swish")


class SpecError(ValueError):
    """An invalid architecture: the message names the layer index, the layer and the shapes."""


# --------------------------------------------------------------------------- normalisers


def _pair(value: Any, what: str) -> Pair:
    if isinstance(value, bool):
        raise SpecError(f"{what} must be an integer or a pair of integers, got {value!r}")
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        a, b = value
        if all(isinstance(v, int) and not isinstance(v, bool) for v in (a, b)):
            return (int(a), int(b))
    raise SpecError(f"{what} must be an integer or a pair of integers, got {value!r}")


def _padding(value: Any) -> Padding:
    if isinstance(value, str):
        low = value.lower()
        if low not in ("valid", "same"):
            raise SpecError(
                f"padding must be 'valid', 'same' or [[top, bottom], [left, right]], got {value!r}"
            )
        return low
    try:
        (t, b), (l, r) = value
        pads = (int(t), int(b), int(l), int(r))
    except (TypeError, ValueError):
        raise SpecError(
            f"padding must be 'valid', 'same' or [[top, bottom], [left, right]], got {value!r}"
        ) from None
    if any(isinstance(v, bool) for v in (t, b, l, r)) or min(pads) < 0:
        raise SpecError(f"explicit padding must be non-negative integers, got {value!r}")
    return ((pads[0], pads[1]), (pads[2], pads[3]))


def _activation(value: Any) -> str:
    name = "linear" if value is None else str(value).lower()
    if name not in ACTIVATIONS:
        raise SpecError(f"unknown activation {value!r}; choose one of {', '.join(ACTIVATIONS)}")
    return name


def _positive(value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SpecError(f"{what} must be a positive integer, got {value!r}")


def _positive_pair(value: Pair, what: str) -> None:
    if min(value) <= 0:
        raise SpecError(f"{what} must be positive, got {list(value)}")


# --------------------------------------------------------------------------- layer specs


@dataclass(frozen=True)
class Layer:
    """Base class of all layer specs; `type` is the JSON / registry name."""

    type: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = [list(v) if isinstance(v, tuple) else v for v in value]
            out[f.name] = value
        return out

    def describe(self) -> str:
        """A short human label, e.g. `Conv(32, 3x3)`."""
        return type(self).__name__


@dataclass(frozen=True)
class Conv(Layer):
    """2-D convolution (Keras `Conv2D`)."""

    type: ClassVar[str] = "conv"
    filters: int
    kernel: Pair = (3, 3)
    strides: Pair = (1, 1)
    padding: Padding = "valid"
    dilation: Pair = (1, 1)
    use_bias: bool = True
    activation: str = "linear"

    def __post_init__(self) -> None:
        _positive(self.filters, "filters")
        for name in ("kernel", "strides", "dilation"):
            object.__setattr__(self, name, _pair(getattr(self, name), name))
            _positive_pair(getattr(self, name), name)
        object.__setattr__(self, "padding", _padding(self.padding))
        object.__setattr__(self, "activation", _activation(self.activation))

    def describe(self) -> str:
        return f"Conv({self.filters}, {self.kernel[0]}x{self.kernel[1]})"


@dataclass(frozen=True)
class DepthwiseConv(Layer):
    """Depthwise 2-D convolution (Keras `DepthwiseConv2D`): one kernel per input channel."""

    type: ClassVar[str] = "depthwise_conv"
    kernel: Pair = (3, 3)
    depth_multiplier: int = 1
    strides: Pair = (1, 1)
    padding: Padding = "valid"
    dilation: Pair = (1, 1)
    use_bias: bool = True
    activation: str = "linear"

    def __post_init__(self) -> None:
        _positive(self.depth_multiplier, "depth_multiplier")
        for name in ("kernel", "strides", "dilation"):
            object.__setattr__(self, name, _pair(getattr(self, name), name))
            _positive_pair(getattr(self, name), name)
        object.__setattr__(self, "padding", _padding(self.padding))
        object.__setattr__(self, "activation", _activation(self.activation))

    def describe(self) -> str:
        return f"DepthwiseConv({self.kernel[0]}x{self.kernel[1]}, x{self.depth_multiplier})"


@dataclass(frozen=True)
class _Pool(Layer):
    window: Pair = (2, 2)
    strides: Pair | None = None  # None: the window (Keras)
    padding: Padding = "valid"

    def __post_init__(self) -> None:
        object.__setattr__(self, "window", _pair(self.window, "window"))
        _positive_pair(self.window, "window")
        strides = self.window if self.strides is None else _pair(self.strides, "strides")
        _positive_pair(strides, "strides")
        object.__setattr__(self, "strides", strides)
        object.__setattr__(self, "padding", _padding(self.padding))

    @property
    def kernel(self) -> Pair:
        return self.window

    @property
    def dilation(self) -> Pair:
        return (1, 1)


@dataclass(frozen=True)
class MaxPool(_Pool):
    """Max pooling (Keras `MaxPooling2D`); `MaxPool(2)` is window 2, stride 2."""

    type: ClassVar[str] = "max_pool"

    def describe(self) -> str:
        return f"MaxPool({self.window[0]}x{self.window[1]})"


@dataclass(frozen=True)
class AvgPool(_Pool):
    """Average pooling (Keras `AveragePooling2D`); padded cells are not counted (as Keras)."""

    type: ClassVar[str] = "avg_pool"

    def describe(self) -> str:
        return f"AvgPool({self.window[0]}x{self.window[1]})"


@dataclass(frozen=True)
class Flatten(Layer):
    """Flatten H x W x C into one vector (Keras `Flatten`)."""

    type: ClassVar[str] = "flatten"


@dataclass(frozen=True)
class GlobalAvgPool(Layer):
    """Mean over H and W (Keras `GlobalAveragePooling2D`)."""

    type: ClassVar[str] = "global_avg_pool"


@dataclass(frozen=True)
class Dense(Layer):
    """Fully connected layer on a vector (Keras `Dense`)."""

    type: ClassVar[str] = "dense"
    units: int
    activation: str = "linear"
    use_bias: bool = True

    def __post_init__(self) -> None:
        _positive(self.units, "units")
        object.__setattr__(self, "activation", _activation(self.activation))

    def describe(self) -> str:
        return f"Dense({self.units})"


@dataclass(frozen=True)
class Dropout(Layer):
    """Dropout at training time (Keras `Dropout`)."""

    type: ClassVar[str] = "dropout"
    rate: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.rate, bool) or not isinstance(self.rate, (int, float)):
            raise SpecError(f"dropout rate must be a number in [0, 1), got {self.rate!r}")
        if not 0.0 <= float(self.rate) < 1.0:
            raise SpecError(f"dropout rate must be in [0, 1), got {self.rate!r}")
        object.__setattr__(self, "rate", float(self.rate))

    def describe(self) -> str:
        return f"Dropout({self.rate:g})"


@dataclass(frozen=True)
class BatchNorm(Layer):
    """Batch normalisation over the last axis (Keras `BatchNormalization` defaults)."""

    type: ClassVar[str] = "batch_norm"
    momentum: float = 0.99
    epsilon: float = 1e-3

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.momentum) < 1.0:
            raise SpecError(f"batch_norm momentum must be in [0, 1), got {self.momentum!r}")
        if not float(self.epsilon) > 0.0:
            raise SpecError(f"batch_norm epsilon must be positive, got {self.epsilon!r}")
        object.__setattr__(self, "momentum", float(self.momentum))
        object.__setattr__(self, "epsilon", float(self.epsilon))


LAYER_TYPES: dict[str, type[Layer]] = {
    cls.type: cls
    for cls in (
        Conv,
        DepthwiseConv,
        MaxPool,
        AvgPool,
        Flatten,
        GlobalAvgPool,
        Dense,
        Dropout,
        BatchNorm,
    )
}


# --------------------------------------------------------------------------- shape rules


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME rule: output ceil(n / s); the odd pixel goes to the bottom/right."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return (total // 2, total - total // 2)


def resolve_padding(padding: Padding, size: Pair, kernel: Pair, strides: Pair) -> tuple[Pair, Pair]:
    """Explicit ((top, bottom), (left, right)) padding for a window layer on an H x W input."""
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        return (
            same_padding(size[0], kernel[0], strides[0]),
            same_padding(size[1], kernel[1], strides[1]),
        )
    return padding  # type: ignore[return-value]


def effective_kernel(kernel: Pair, dilation: Pair) -> Pair:
    """Kernel extent once dilated: d * (k - 1) + 1."""
    return (dilation[0] * (kernel[0] - 1) + 1, dilation[1] * (kernel[1] - 1) + 1)


def window_output(
    size: Pair, kernel: Pair, strides: Pair, dilation: Pair, padding: Padding
) -> tuple[Pair, tuple[Pair, Pair]]:
    """Output H x W and the explicit padding of a conv / pool layer (no validation)."""
    k = effective_kernel(kernel, dilation)
    pads = resolve_padding(padding, size, k, strides)
    out = tuple((size[i] + pads[i][0] + pads[i][1] - k[i]) // strides[i] + 1 for i in range(2))
    return (out[0], out[1]), pads


def _fmt(shape: Sequence[int]) -> str:
    return "x".join(str(s) for s in shape)


def layer_output_shape(layer: Layer, shape: tuple[int, ...], index: int) -> tuple[int, ...]:
    """The output shape of `layer` on an input of `shape` (no batch axis), or a SpecError."""

    def fail(msg: str) -> SpecError:
        return SpecError(f"layer {index} ({layer.describe()}): {msg}")

    if isinstance(layer, (Conv, DepthwiseConv, _Pool)):
        if len(shape) != 3:
            raise fail(f"needs an H x W x C input, got a vector of shape {_fmt(shape)}")
        h, w, c = shape
        k = effective_kernel(layer.kernel, layer.dilation)
        pads = resolve_padding(layer.padding, (h, w), k, layer.strides)
        padded = (h + pads[0][0] + pads[0][1], w + pads[1][0] + pads[1][1])
        if k[0] > padded[0] or k[1] > padded[1]:
            what = "window" if isinstance(layer, _Pool) else "kernel"
            raise fail(
                f"{what} {_fmt(k)} is larger than its input {_fmt(shape)}"
                + (f" (padded to {_fmt(padded)})" if padded != (h, w) else "")
            )
        if isinstance(layer, _Pool) and layer.padding != "valid":
            for (lo, hi), kk in zip(pads, layer.window, strict=True):
                if max(lo, hi) >= kk:
                    raise fail(f"padding {lo},{hi} must be smaller than the window {kk}")
        (oh, ow), _ = window_output(
            (h, w), layer.kernel, layer.strides, layer.dilation, layer.padding
        )
        if isinstance(layer, Conv):
            return (oh, ow, layer.filters)
        if isinstance(layer, DepthwiseConv):
            return (oh, ow, c * layer.depth_multiplier)
        return (oh, ow, c)
    if isinstance(layer, Flatten):
        return (math.prod(shape),)
    if isinstance(layer, GlobalAvgPool):
        if len(shape) != 3:
            raise fail(f"needs an H x W x C input, got a vector of shape {_fmt(shape)}")
        return (shape[2],)
    if isinstance(layer, Dense):
        if len(shape) != 1:
            raise fail(
                f"needs a vector input, got {_fmt(shape)}: add a Flatten or GlobalAvgPool before it"
            )
        return (layer.units,)
    if isinstance(layer, (Dropout, BatchNorm)):
        return shape
    raise fail(f"unknown layer type {type(layer).__name__}")


# --------------------------------------------------------------------------- the network


@dataclass(frozen=True)
class NetSpec:
    """A sequential network: an input shape (H, W, C) and a tuple of layer specs."""

    input_shape: tuple[int, int, int]
    layers: tuple[Layer, ...]
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        shape = self.input_shape
        if (
            isinstance(shape, (str, bytes))
            or len(shape) != 3
            or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in shape)
        ):
            raise SpecError(f"input_shape must be three positive integers H, W, C, got {shape!r}")
        object.__setattr__(self, "input_shape", tuple(int(v) for v in shape))
        layers = tuple(self.layers)
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise SpecError(f"layer {i}: expected a layer spec, got {layer!r}")
        object.__setattr__(self, "layers", layers)
        self.shapes()  # validate now: one clear error at construction time

    def shapes(self) -> list[tuple[int, ...]]:
        """Input shape followed by each layer's output shape (no batch axis)."""
        shapes: list[tuple[int, ...]] = [self.input_shape]
        for i, layer in enumerate(self.layers):
            shapes.append(layer_output_shape(layer, shapes[-1], i))
        return shapes

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.shapes()[-1]

    def with_input(self, input_shape: Sequence[int]) -> NetSpec:
        """The same layers on another input shape (validated again)."""
        return NetSpec(tuple(input_shape), self.layers, self.name)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"input_shape": list(self.input_shape)}
        if self.name:
            out["name"] = self.name
        out["layers"] = [layer.to_dict() for layer in self.layers]
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_text(self) -> str:
        return to_text(self)


def sequential(input_shape: Sequence[int], *layers: Layer, name: str = "") -> NetSpec:
    """Build a `NetSpec` from Python objects: `sequential((28, 28, 1), Conv(32), ...)`."""
    return NetSpec(tuple(input_shape), tuple(layers), name)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- JSON


def layer_from_dict(d: Mapping[str, Any], index: int = 0) -> Layer:
    """One layer from its JSON object; unknown types or keys are a SpecError."""
    if not isinstance(d, Mapping) or "type" not in d:
        raise SpecError(f"layer {index}: expected an object with a 'type' key, got {d!r}")
    kind = str(d["type"])
    cls = LAYER_TYPES.get(kind)
    if cls is None:
        raise SpecError(
            f"layer {index} ({kind}): unknown layer type {kind!r}; "
            f"known: {', '.join(sorted(LAYER_TYPES))}"
        )
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in d.items() if k != "type"}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise SpecError(
            f"layer {index} ({kind}): unknown key(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(names)) or 'none'}"
        )
    try:
        return cls(**kwargs)
    except SpecError as err:
        raise SpecError(f"layer {index} ({kind}): {err}") from None
    except TypeError as err:
        raise SpecError(f"layer {index} ({kind}): {err}") from None


def from_dict(d: Mapping[str, Any]) -> NetSpec:
    """A `NetSpec` from its JSON object (missing keys take the Keras defaults)."""
    if not isinstance(d, Mapping):
        raise SpecError(f"a spec must be a JSON object, got {type(d).__name__}")
    unknown = sorted(set(d) - {"input_shape", "layers", "name"})
    if unknown:
        raise SpecError(
            f"unknown top-level key(s) {', '.join(unknown)}; allowed: input_shape, layers, name"
        )
    if "input_shape" not in d or "layers" not in d:
        raise SpecError("a spec needs 'input_shape' ([h, w, c]) and 'layers' (a list)")
    layers_raw = d["layers"]
    if not isinstance(layers_raw, list):
        raise SpecError(f"'layers' must be a list, got {type(layers_raw).__name__}")
    layers = tuple(layer_from_dict(x, i) for i, x in enumerate(layers_raw))
    shape = d["input_shape"]
    if not isinstance(shape, (list, tuple)):
        raise SpecError(f"input_shape must be three positive integers H, W, C, got {shape!r}")
    return NetSpec(tuple(shape), layers, str(d.get("name", "")))


def from_json(text: str) -> NetSpec:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise SpecError(f"not valid JSON: {err}") from None
    return from_dict(data)


# --------------------------------------------------------------------------- text form
#
#   in28x28x1-conv32x3-pool2-conv32x3-pool2-flatten-dense128-dense10
#
# Tokens are joined by '-'. Conv and dense default to ReLU, except the last dense layer,
# the classifier head, which defaults to softmax (sigmoid for one unit). ':act' overrides.
#   conv{F}x{K}[x{K2}][s{S}][d{D}][same|valid][nb][:act]   conv32x3, conv64x3x5s2same:linear
#   dw{K}[m{M}][s{S}][d{D}][same|valid][nb][:act]          depthwise, multiplier M
#   pool{K}[s{S}][same] / maxpool{K}... / avgpool{K}...    max pool is the default pool
#   flatten | gap | bn | drop{RATE} | dense{U}[nb][:act]   gap = global average pool
#   in{H}x{W}x{C}                                          optional first token, default 28x28x1

_CONV_RE = re.compile(
    r"^conv(?P<f>\d+)x(?P<kh>\d+)(?:x(?P<kw>\d+))?(?:s(?P<s>\d+))?(?:d(?P<d>\d+))?"
    r"(?P<pad>same|valid)?(?P<nb>nb)?(?::(?P<act>[a-z]+))?$"
)
_DW_RE = re.compile(
    r"^dw(?P<kh>\d+)(?:x(?P<kw>\d+))?(?:m(?P<m>\d+))?(?:s(?P<s>\d+))?(?:d(?P<d>\d+))?"
    r"(?P<pad>same|valid)?(?P<nb>nb)?(?::(?P<act>[a-z]+))?$"
)
_POOL_RE = re.compile(
    r"^(?P<kind>pool|maxpool|avgpool)(?P<kh>\d+)(?:x(?P<kw>\d+))?(?:s(?P<s>\d+))?(?P<pad>same|valid)?$"
)
_DENSE_RE = re.compile(r"^dense(?P<u>\d+)(?P<nb>nb)?(?::(?P<act>[a-z]+))?$")
_DROP_RE = re.compile(r"^drop(?:out)?(?P<r>0?\.\d+|0)$")
_IN_RE = re.compile(r"^in(?P<h>\d+)x(?P<w>\d+)x(?P<c>\d+)$")

DEFAULT_TEXT_INPUT = (28, 28, 1)


def _kernel(m: re.Match[str]) -> Pair:
    kh = int(m["kh"])
    return (kh, int(m["kw"]) if m["kw"] else kh)


def from_text(text: str, input_shape: Sequence[int] | None = None) -> NetSpec:
    """Parse the compact text form (see the grammar above this function)."""
    tokens = [t.strip().lower() for t in text.strip().split("-")]
    if not tokens or any(not t for t in tokens):
        raise SpecError(f"empty layer token in {text!r} (tokens are joined by a single '-')")
    shape: Sequence[int] = DEFAULT_TEXT_INPUT
    m = _IN_RE.match(tokens[0])
    if m:
        shape = (int(m["h"]), int(m["w"]), int(m["c"]))
        tokens = tokens[1:]
    if input_shape is not None:
        shape = tuple(input_shape)
    dense_positions = [i for i, t in enumerate(tokens) if t.startswith("dense")]
    head = dense_positions[-1] if dense_positions else -1
    layers: list[Layer] = []
    for i, tok in enumerate(tokens):
        try:
            layers.append(_parse_token(tok, is_head=(i == head)))
        except SpecError as err:
            raise SpecError(f"layer {i} ({tok!r}): {err}") from None
    return NetSpec(tuple(shape), tuple(layers))  # type: ignore[arg-type]


def _parse_token(tok: str, is_head: bool) -> Layer:
    if m := _CONV_RE.match(tok):
        s, d = int(m["s"] or 1), int(m["d"] or 1)
        return Conv(
            int(m["f"]),
            _kernel(m),
            (s, s),
            m["pad"] or "valid",
            (d, d),
            not m["nb"],
            m["act"] or "relu",
        )
    if m := _DW_RE.match(tok):
        s, d = int(m["s"] or 1), int(m["d"] or 1)
        return DepthwiseConv(
            _kernel(m),
            int(m["m"] or 1),
            (s, s),
            m["pad"] or "valid",
            (d, d),
            not m["nb"],
            m["act"] or "relu",
        )
    if m := _POOL_RE.match(tok):
        cls = AvgPool if m["kind"] == "avgpool" else MaxPool
        k = _kernel(m)
        strides = (int(m["s"]), int(m["s"])) if m["s"] else None
        return cls(k, strides, m["pad"] or "valid")
    if m := _DENSE_RE.match(tok):
        units = int(m["u"])
        default = ("sigmoid" if units == 1 else "softmax") if is_head else "relu"
        return Dense(units, m["act"] or default, not m["nb"])
    if m := _DROP_RE.match(tok):
        return Dropout(float(m["r"]))
    if tok == "flatten":
        return Flatten()
    if tok in ("gap", "globalavgpool"):
        return GlobalAvgPool()
    if tok in ("bn", "batchnorm"):
        return BatchNorm()
    raise SpecError(
        "not a layer token; expected conv{F}x{K}, dw{K}, pool{K}, avgpool{K}, flatten, gap, bn, "
        "drop{RATE}, dense{U} (e.g. conv32x3-pool2-flatten-dense10)"
    )


def _text_conv_suffix(layer: Conv | DepthwiseConv, default_act: str) -> str:
    out = ""
    if layer.strides[0] != layer.strides[1] or layer.dilation[0] != layer.dilation[1]:
        raise SpecError(f"{layer.describe()}: unequal strides/dilation have no text form; use JSON")
    if layer.strides[0] != 1:
        out += f"s{layer.strides[0]}"
    if layer.dilation[0] != 1:
        out += f"d{layer.dilation[0]}"
    if not isinstance(layer.padding, str):
        raise SpecError(f"{layer.describe()}: explicit padding has no text form; use JSON")
    if layer.padding == "same":
        out += "same"
    if not layer.use_bias:
        out += "nb"
    if layer.activation != default_act:
        out += f":{layer.activation}"
    return out


def _kernel_text(k: Pair) -> str:
    return f"{k[0]}" if k[0] == k[1] else f"{k[0]}x{k[1]}"


def to_text(spec: NetSpec) -> str:
    """The compact text form of a spec; `from_text(to_text(s)) == s` where a text form exists."""
    dense_positions = [i for i, layer in enumerate(spec.layers) if isinstance(layer, Dense)]
    head = dense_positions[-1] if dense_positions else -1
    tokens = ["in{}x{}x{}".format(*spec.input_shape)]
    for i, layer in enumerate(spec.layers):
        if isinstance(layer, Conv):
            tokens.append(
                f"conv{layer.filters}x{_kernel_text(layer.kernel)}"
                + _text_conv_suffix(layer, "relu")
            )
        elif isinstance(layer, DepthwiseConv):
            mult = f"m{layer.depth_multiplier}" if layer.depth_multiplier != 1 else ""
            tokens.append(
                f"dw{_kernel_text(layer.kernel)}{mult}" + _text_conv_suffix(layer, "relu")
            )
        elif isinstance(layer, _Pool):
            kind = "avgpool" if isinstance(layer, AvgPool) else "pool"
            if not isinstance(layer.padding, str) or layer.strides[0] != layer.strides[1]:
                raise SpecError(f"layer {i} ({layer.describe()}): no text form; use JSON")
            s = f"s{layer.strides[0]}" if layer.strides != layer.window else ""
            pad = "same" if layer.padding == "same" else ""
            tokens.append(f"{kind}{_kernel_text(layer.window)}{s}{pad}")
        elif isinstance(layer, Dense):
            default = ("sigmoid" if layer.units == 1 else "softmax") if i == head else "relu"
            nb = "" if layer.use_bias else "nb"
            act = f":{layer.activation}" if layer.activation != default else ""
            tokens.append(f"dense{layer.units}{nb}{act}")
        elif isinstance(layer, Dropout):
            tokens.append(f"drop{layer.rate:g}")
        elif isinstance(layer, Flatten):
            tokens.append("flatten")
        elif isinstance(layer, GlobalAvgPool):
            tokens.append("gap")
        elif isinstance(layer, BatchNorm):
            if (layer.momentum, layer.epsilon) != (0.99, 1e-3):
                raise SpecError(f"layer {i} (BatchNorm): non-default settings have no text form")
            tokens.append("bn")
    return "-".join(tokens)


# --------------------------------------------------------------------------- one entry point


def load_spec(
    source: str | NetSpec | Mapping[str, Any], input_shape: Sequence[int] | None = None
) -> NetSpec:
    """A spec from a zoo name, a JSON file path, a JSON string, a text form, or a dict."""
    if isinstance(source, NetSpec):
        spec = source
    elif isinstance(source, Mapping):
        spec = from_dict(source)
    else:
        spec = _load_string(str(source))
    if input_shape is not None and tuple(input_shape) != spec.input_shape:
        spec = spec.with_input(input_shape)
    return spec


def _load_string(text: str) -> NetSpec:
    from pathlib import Path

    from cnnjax import zoo

    stripped = text.strip()
    if stripped in zoo.ZOO:
        return zoo.get(stripped)
    if stripped.startswith("{"):
        return from_json(stripped)
    if stripped.endswith(".json") or "/" in stripped:
        path = Path(stripped)
        if not path.is_file():
            raise SpecError(f"spec file not found: {path}")
        return from_json(path.read_text())
    try:
        return from_text(stripped)
    except SpecError as err:
        if "-" in stripped:  # a text form with a bad layer: the error says which
            raise
        close = [n for n in zoo.ZOO if n.startswith(stripped[:4])]
        hint = f"did you mean {close[0]}?" if close else f"zoo names: {', '.join(zoo.ZOO)}"
        raise SpecError(
            f"{stripped!r} is neither a zoo name nor a valid text form ({err}); {hint}"
        ) from None


def parse_shape(text: str | Iterable[int]) -> tuple[int, int, int]:
    """'28x28x1' (or an iterable) -> (28, 28, 1)."""
    if isinstance(text, str):
        try:
            parts = tuple(int(p) for p in text.lower().replace(",", "x").split("x"))
        except ValueError:
            raise SpecError(
                f"input shape must look like HxWxC (e.g. 28x28x1), got {text!r}"
            ) from None
    else:
        parts = tuple(text)
    if len(parts) != 3 or min(parts) <= 0:
        raise SpecError(f"input shape must be three positive integers HxWxC, got {text!r}")
    return parts  # type: ignore[return-value]
