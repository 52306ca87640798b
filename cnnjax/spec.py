"""Network architecture as data: immutable layer specs and blocks, read from Python or JSON.

Every reader of a network (the analytic report, the Flax model, the inspection tools) reads
one `NetSpec`, so the numbers printed beside an accuracy describe the very network trained.
Semantics follow Keras: padding "valid" by default, pool strides default to the window, and
TensorFlow's SAME rule (pad total = max((out - 1) * s + k - n, 0), extra pixel bottom/right).

A spec is a chain of layers in which two blocks may branch, nested at will: `Residual`
(main(x) + shortcut(x), then an optional activation) and `Concat` (channel concatenation of
its branches). `NetSpec.nodes()` lists every layer and every merge in execution order with a
unique name (given, or Keras-style generated) and a path such as `residual/main/conv2d_1`;
the report, the Flax model and the inspection tools all key their rows by those names.

The text form lives in `cnnjax.grammar` and `load_spec` (zoo names, files) in
`cnnjax.loading`: both import this module, never the other way round.

This module is pure Python: it never imports JAX. It is over 500 lines because the layer
types, their shape rules and the graph walk that names and validates them are one vocabulary
that every other room reads; the text form and loading already live elsewhere.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

from cnnjax.errors import SpecError

Pair = tuple[int, int]
# A shape without the batch axis; a spatial size is None where the input's height or width is
# unknown (`?x?x3`): the receptive field and stride do not need it, the Flax model does.
Shape = tuple[Union[int, None], ...]  # noqa: UP007
Padding = Union[str, tuple[Pair, Pair]]  # noqa: UP007  ("valid" | "same" | ((t, b), (l, r)))

ACTIVATIONS = ("linear", "relu", "sigmoid", "softmax", "tanh", "gelu", "elu", "swish")


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
    except (TypeError, ValueError):
        raise SpecError(
            f"padding must be 'valid', 'same' or [[top, bottom], [left, right]], got {value!r}"
        ) from None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (t, b, l, r)):
        raise SpecError(f"explicit padding must be non-negative integers, got {value!r}")
    pads = (int(t), int(b), int(l), int(r))
    if min(pads) < 0:
        raise SpecError(f"explicit padding must be non-negative integers, got {value!r}")
    return ((pads[0], pads[1]), (pads[2], pads[3]))


def _number(value: Any, what: str) -> float:
    """A real number (not a bool, not a string), or a SpecError naming `what`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{what} must be a number, got {value!r}")
    return float(value)


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
    """Base class of all layer specs; `type` is the JSON / registry name.

    `name` (keyword only, optional) names the layer in reports, the Flax parameter tree and
    inspection; it must be unique in a spec. Unnamed layers get Keras-style names (conv2d_1).
    """

    type: ClassVar[str] = ""
    name: str = field(default="", kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.name:
            out["name"] = self.name
        for f in dataclasses.fields(self):
            if f.name == "name":
                continue
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
    # None: the window (Keras); __post_init__ stores the pair, so readers always see a Pair.
    strides: Pair = None  # type: ignore[assignment]
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
        momentum = _number(self.momentum, "batch_norm momentum")
        epsilon = _number(self.epsilon, "batch_norm epsilon")
        if not 0.0 <= momentum < 1.0:
            raise SpecError(f"batch_norm momentum must be in [0, 1), got {self.momentum!r}")
        if not 0.0 < epsilon < math.inf:
            raise SpecError(f"batch_norm epsilon must be positive and finite, got {self.epsilon!r}")
        object.__setattr__(self, "momentum", momentum)
        object.__setattr__(self, "epsilon", epsilon)


@dataclass(frozen=True)
class Activation(Layer):
    """An activation on its own (Keras `Activation`), e.g. the ReLU after a batch norm."""

    type: ClassVar[str] = "activation"
    activation: str = "relu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "activation", _activation(self.activation))

    def describe(self) -> str:
        return f"Activation({self.activation})"


def _layer_tuple(value: Any, what: str) -> tuple[Layer, ...]:
    if isinstance(value, (Layer, str, bytes)):
        raise SpecError(f"{what} must be a list of layers, got {value!r}")
    try:
        layers = tuple(value)
    except TypeError:
        raise SpecError(f"{what} must be a list of layers, got {value!r}") from None
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise SpecError(f"{what} item {i}: expected a layer spec, got {layer!r}")
    return layers


@dataclass(frozen=True)
class Residual(Layer):
    """A residual block: main(x) + shortcut(x), then `activation` (ResNet v1: ReLU after the
    add). An empty `shortcut` is the identity; `main` may not be empty."""

    type: ClassVar[str] = "residual"
    main: tuple[Layer, ...] = ()
    shortcut: tuple[Layer, ...] = ()
    activation: str = "linear"

    def __post_init__(self) -> None:
        object.__setattr__(self, "main", _layer_tuple(self.main, "residual main"))
        object.__setattr__(self, "shortcut", _layer_tuple(self.shortcut, "residual shortcut"))
        object.__setattr__(self, "activation", _activation(self.activation))

    @property
    def paths(self) -> tuple[tuple[str, tuple[Layer, ...]], ...]:
        """The block's paths, each (label, layers), in execution order."""
        return (("main", self.main), ("shortcut", self.shortcut))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.name:
            out["name"] = self.name
        out["main"] = [layer.to_dict() for layer in self.main]
        out["shortcut"] = [layer.to_dict() for layer in self.shortcut]
        out["activation"] = None if self.activation == "linear" else self.activation
        return out

    def describe(self) -> str:
        return "Add" if self.activation == "linear" else f"Add+{self.activation}"


@dataclass(frozen=True, init=False)
class Concat(Layer):
    """Channel concatenation of parallel branches (Inception): `Concat([...], [...], ...)`.
    An empty branch passes its input through (DenseNet-style)."""

    type: ClassVar[str] = "concat"
    branches: tuple[tuple[Layer, ...], ...] = ()

    def __init__(self, *branches: Iterable[Layer], name: str = "") -> None:
        if not branches:
            raise SpecError("a concat block needs at least one branch (a list of layers)")
        object.__setattr__(
            self,
            "branches",
            tuple(_layer_tuple(b, f"concat branch {i}") for i, b in enumerate(branches)),
        )
        object.__setattr__(self, "name", name)

    @property
    def paths(self) -> tuple[tuple[str, tuple[Layer, ...]], ...]:
        return tuple((f"branch{i}", b) for i, b in enumerate(self.branches))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.name:
            out["name"] = self.name
        out["branches"] = [[layer.to_dict() for layer in b] for b in self.branches]
        return out

    def describe(self) -> str:
        return f"Concat({len(self.branches)})"


Block = Union[Residual, Concat]  # noqa: UP007
BLOCK_TYPES = (Residual, Concat)

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
        Activation,
        Residual,
        Concat,
    )
}

# Keras-style base names of generated layer names (conv2d, conv2d_1, ...).
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
    Activation: "activation",
    Residual: "residual",
    Concat: "concat",
}

# The row type of a block's merge in reports ("add" as Keras' `Add`, "concatenate").
MERGE_TYPES: dict[type[Layer], str] = {Residual: "add", Concat: "concatenate"}


# --------------------------------------------------------------------------- shape rules


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME rule: output ceil(n / s); the odd pixel goes to the bottom/right."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return (total // 2, total - total // 2)


def resolve_padding(
    padding: Padding, size: Sequence[int], kernel: Pair, strides: Pair
) -> tuple[Pair, Pair]:
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
    size: Sequence[int], kernel: Pair, strides: Pair, dilation: Pair, padding: Padding
) -> tuple[Pair, tuple[Pair, Pair]]:
    """Output H x W and the explicit padding of a conv / pool layer (no validation)."""
    k = effective_kernel(kernel, dilation)
    pads = resolve_padding(padding, size, k, strides)
    out = tuple((size[i] + pads[i][0] + pads[i][1] - k[i]) // strides[i] + 1 for i in range(2))
    return (out[0], out[1]), pads


def _fmt(shape: Sequence[int | None]) -> str:
    return "x".join("?" if s is None else str(s) for s in shape)


def layer_output_shape(layer: Layer, shape: Shape, index: int | str) -> Shape:
    """The output shape of a plain `layer` on an input of `shape` (no batch axis), or a SpecError
    naming the layer by `index` (its position, or its path inside a block)."""

    def fail(msg: str) -> SpecError:
        return SpecError(f"layer {index} ({layer.describe()}): {msg}")

    if isinstance(layer, (Conv, DepthwiseConv, _Pool)):
        if len(shape) != 3:
            raise fail(f"needs an H x W x C input, got a vector of shape {_fmt(shape)}")
        h, w, c = shape
        assert c is not None  # channels are always known
        k = effective_kernel(layer.kernel, layer.dilation)
        if h is None or w is None:  # unknown sizes stay unknown; a known axis is checked
            known = tuple(n if n is not None else k[a] for a, n in enumerate((h, w)))
            sub = layer_output_shape(layer, (*known, c), index)
            oh, ow = (None if n is None else o for n, o in zip((h, w), sub[:2], strict=True))
            return (oh, ow, sub[2])
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
        return (None,) if None in shape else (math.prod(shape),)  # type: ignore[arg-type]
    if isinstance(layer, GlobalAvgPool):
        if len(shape) != 3:
            raise fail(f"needs an H x W x C input, got a vector of shape {_fmt(shape)}")
        return (shape[2],)
    if isinstance(layer, (Dense, BatchNorm)) and shape == (None,):
        what = "weights" if isinstance(layer, Dense) else "scale and offset"
        raise fail(
            f"its {what} need the length of its input vector, which depends on the input's "
            "height and width, and they are unknown (?); give the input size (e.g. --input "
            "224x224x3) or use a GlobalAvgPool instead of the Flatten before it"
        )
    if isinstance(layer, Dense):
        if len(shape) != 1:
            raise fail(
                f"needs a vector input, got {_fmt(shape)}: add a Flatten or GlobalAvgPool before it"
            )
        return (layer.units,)
    if isinstance(layer, (Dropout, BatchNorm, Activation)):
        return shape
    raise fail(f"unknown layer type {type(layer).__name__}")


# --------------------------------------------------------------------------- the graph


@dataclass(frozen=True)
class Node:
    """One row of a network in execution order: a layer, or the merge that ends a block.

    `name` is unique in the spec (the given name, or a generated Keras-style one); `path` adds
    the enclosing blocks and their paths (`residual/main/conv2d_1`); a merge's `name` and
    `path` are its block's, and `inputs` are the paths of the branches it merges."""

    index: int
    name: str
    path: str
    layer: Layer
    input_shape: Shape
    output_shape: Shape
    is_merge: bool = False
    inputs: tuple[str, ...] = ()

    @property
    def type(self) -> str:
        return MERGE_TYPES[type(self.layer)] if self.is_merge else self.layer.type


def _given_names(layers: Sequence[Layer], seen: dict[str, str], where: str) -> None:
    for i, layer in enumerate(layers):
        label = f"{where}{i}"
        if layer.name:
            if not isinstance(layer.name, str) or "/" in layer.name or not layer.name.strip():
                raise SpecError(
                    f"layer {label} ({layer.describe()}): name must be a non-empty string "
                    f"without '/', got {layer.name!r}"
                )
            if layer.name in seen:
                raise SpecError(
                    f"layer name {layer.name!r} is used twice (layers {seen[layer.name]} and "
                    f"{label}); names must be unique in a spec"
                )
            seen[layer.name] = label
        if isinstance(layer, BLOCK_TYPES):
            for path, sub in layer.paths:
                _given_names(sub, seen, f"{label}/{path}/")


class _Walker:
    """Names every layer and infers every shape, depth first in execution order."""

    def __init__(self, layers: Sequence[Layer]) -> None:
        given: dict[str, str] = {}
        _given_names(layers, given, "")
        self.taken = set(given)
        self.counts: Counter[str] = Counter()
        self.nodes: list[Node] = []

    def name(self, layer: Layer) -> str:
        if layer.name:
            return layer.name
        base = KERAS_NAMES.get(type(layer), type(layer).__name__.lower())
        while True:
            n = self.counts[base]
            self.counts[base] += 1
            candidate = base if n == 0 else f"{base}_{n}"
            if candidate not in self.taken:
                self.taken.add(candidate)
                return candidate

    def chain(self, layers: Sequence[Layer], shape: Shape, prefix: str) -> Shape:
        for i, layer in enumerate(layers):
            name = self.name(layer)
            path = prefix + name
            label: int | str = i if not prefix else path
            if isinstance(layer, BLOCK_TYPES):
                shape = self.block(layer, shape, path, label)
            else:
                out = layer_output_shape(layer, shape, label)
                self.nodes.append(Node(len(self.nodes), name, path, layer, shape, out))
                shape = out
        return shape

    def block(self, block: Block, shape: Shape, path: str, label: int | str) -> Shape:
        where = f"layer {label} ({block.type} {path!r})"
        if isinstance(block, Residual) and not block.main:
            raise SpecError(f"{where}: the main path is empty; a residual block needs layers")
        outs = [(f"{path}/{p}", self.chain(sub, shape, f"{path}/{p}/")) for p, sub in block.paths]
        if None in shape[:2]:  # unknown sizes: paths must at least shrink them alike
            _same_strides(where, block, outs, shape)
        if isinstance(block, Residual):
            (a, sa), (b, sb) = outs
            if sa != sb:
                raise SpecError(
                    f"{where}: cannot add {a} ({_fmt(sa)}) and {b} ({_fmt(sb)}); "
                    "an add needs equal shapes (give the shortcut a projection, e.g. a 1x1 "
                    "conv with the main path's stride and filters)"
                )
            out = sa
        else:
            ranks = {len(s) for _, s in outs}
            if len(ranks) > 1:
                spatial = next(p for p, s in outs if len(s) == 3)
                flat = next(p for p, s in outs if len(s) == 1)
                raise SpecError(
                    f"{where}: branch {flat} ({_fmt(dict(outs)[flat])}) is a vector but "
                    f"{spatial} ({_fmt(dict(outs)[spatial])}) stays spatial; a flatten, "
                    "global pool or dense inside one branch needs one in every branch"
                )
            if ranks == {3}:
                first, s0 = outs[0]
                for p, s in outs[1:]:
                    if s[:2] != s0[:2]:
                        raise SpecError(
                            f"{where}: cannot concatenate {first} ({_fmt(s0)}) and {p} "
                            f"({_fmt(s)}); branches need equal height and width"
                        )
                out = (*s0[:2], sum(s[2] for _, s in outs))  # type: ignore[misc]
            elif any(s[0] is None for _, s in outs):
                out = (None,)
            else:
                out = (sum(s[0] for _, s in outs),)  # type: ignore[misc]
        self.nodes.append(
            Node(
                len(self.nodes),
                path.rsplit("/", 1)[-1],
                path,
                block,
                shape,
                out,
                is_merge=True,
                inputs=tuple(p for p, _ in outs),
            )
        )
        return out


def path_stride(layers: Sequence[Layer]) -> Pair:
    """The product of the strides along `layers` (a block counts its first path's)."""
    sh, sw = 1, 1
    for layer in layers:
        if isinstance(layer, BLOCK_TYPES):
            s = path_stride(layer.paths[0][1])
        elif isinstance(layer, (Conv, DepthwiseConv, _Pool)):
            s = layer.strides
        else:
            continue
        sh, sw = sh * s[0], sw * s[1]
    return (sh, sw)


def _same_strides(
    where: str, block: Block, outs: Sequence[tuple[str, Shape]], shape: Shape
) -> None:
    """With an unknown input size, refuse a merge of spatial paths whose strides differ on an
    unknown axis: their sizes there cannot match at every input size (on a known axis the
    shapes themselves say whether they match)."""
    if len(shape) != 3 or any(len(s) != 3 for _, s in outs):
        return  # vectors, or a vector against a map: the caller's rank check says so
    unknown = [a for a in range(2) if shape[a] is None]
    strides = [path_stride(sub) for _, sub in block.paths]
    for i in range(1, len(outs)):
        if any(strides[i][a] != strides[0][a] for a in unknown):
            (a, sa), (b, sb) = outs[0], outs[i]
            raise SpecError(
                f"{where}: cannot merge {a} ({_fmt(sa)}, stride {_fmt(strides[0])}) and {b} "
                f"({_fmt(sb)}, stride {_fmt(strides[i])}); with different strides their "
                "sizes cannot match at every input size (give the paths equal strides)"
            )


# --------------------------------------------------------------------------- the network


@dataclass(frozen=True)
class NetSpec:
    """A network: an input shape (H, W, C) and a tuple of layer specs (and blocks).

    H and/or W may be None (an unknown input size, `?x?x3`): shapes then carry None, the
    analytic report still gives receptive fields and strides, and a layer whose parameters need
    the size (a dense after a flatten) is refused. The Flax model needs the size
    (`require_size`)."""

    # H and/or W may be None (unknown); annotated with the known-size type that every reader
    # which runs the model sees (it calls `require_size` first).
    input_shape: tuple[int, int, int]
    layers: tuple[Layer, ...]
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        shape = self.input_shape
        if (
            isinstance(shape, (str, bytes))
            or len(shape) != 3
            or any(
                not (v is None and i < 2)
                and (isinstance(v, bool) or not isinstance(v, int) or v <= 0)
                for i, v in enumerate(shape)
            )
        ):
            raise SpecError(
                "input_shape must be three positive integers H, W, C (H and W may be null: "
                f"unknown), got {shape!r}"
            )
        object.__setattr__(self, "input_shape", tuple(None if v is None else int(v) for v in shape))
        layers = tuple(self.layers)
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise SpecError(f"layer {i}: expected a layer spec, got {layer!r}")
        object.__setattr__(self, "layers", layers)
        self.nodes()  # validate now: one clear error at construction time

    def nodes(self) -> list[Node]:
        """Every layer and every merge in execution order, named, with its shapes."""
        walker = _Walker(self.layers)
        walker.chain(self.layers, self.input_shape, "")
        return walker.nodes

    @property
    def size_known(self) -> bool:
        """False when the input's height or width is unknown (None)."""
        return None not in self.input_shape

    def require_size(self, what: str) -> tuple[int, int, int]:
        """The input shape, or a SpecError saying that `what` needs the input size."""
        h, w, c = self.input_shape
        if not self.size_known:
            raise SpecError(
                f"{what} needs the input size, but this spec's input is {_fmt(self.input_shape)} "
                "(unknown height or width): give the input size, e.g. --input 224x224x3 or "
                "spec.with_input((224, 224, 3))"
            )
        return (h, w, c)

    def shapes(self) -> list[tuple[int, ...]]:
        """Input shape followed by each top-level layer's (or block's) output shape (None for a
        spatial size that an unknown input size leaves unknown)."""
        out = [n.output_shape for n in self.nodes() if "/" not in n.path]
        return [self.input_shape, *out]  # type: ignore[list-item]

    @property
    def is_chain(self) -> bool:
        """True when no layer is a block (a plain sequential network)."""
        return not any(isinstance(layer, BLOCK_TYPES) for layer in self.layers)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.shapes()[-1]

    def with_input(self, input_shape: Sequence[int | None]) -> NetSpec:
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
        """The compact text form, written by `cnnjax.grammar` (which registers itself here)."""
        if _text_writer is None:  # pragma: no cover - cnnjax/__init__ imports cnnjax.grammar
            raise SpecError("the text form needs cnnjax.grammar (import cnnjax first)")
        return _text_writer(self)


# `cnnjax.grammar` registers its writer here, so that this module never imports the grammar.
_text_writer: Callable[[NetSpec], str] | None = None


def register_text_writer(writer: Callable[[NetSpec], str]) -> None:
    """Called once by `cnnjax.grammar`: the function behind `NetSpec.to_text()`."""
    global _text_writer
    _text_writer = writer


def sequential(input_shape: Sequence[int], *layers: Layer, name: str = "") -> NetSpec:
    """Build a `NetSpec` from Python objects: `sequential((28, 28, 1), Conv(32), ...)`."""
    return NetSpec(tuple(input_shape), tuple(layers), name)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- JSON


def layer_from_dict(d: Mapping[str, Any], index: int | str = 0) -> Layer:
    """One layer (or block) from its JSON object; unknown types or keys are a SpecError."""
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
        if cls is Residual:
            for key in ("main", "shortcut"):
                if key in kwargs:
                    kwargs[key] = _layers_from_list(kwargs[key], f"{index}/{key}/")
        if cls is Concat:
            branches = kwargs.pop("branches", None)
            if not isinstance(branches, list) or not branches:
                raise SpecError(
                    f"'branches' must be a non-empty list of layer lists, got {branches!r}"
                )
            return Concat(
                *(_layers_from_list(b, f"{index}/branch{i}/") for i, b in enumerate(branches)),
                **kwargs,
            )
        return cls(**kwargs)
    except SpecError as err:
        if str(err).startswith("layer "):  # already names a layer inside the block
            raise
        raise SpecError(f"layer {index} ({kind}): {err}") from None
    except (TypeError, ValueError) as err:
        raise SpecError(f"layer {index} ({kind}): {err}") from None


def _layers_from_list(raw: Any, where: str) -> tuple[Layer, ...]:
    if not isinstance(raw, list):
        raise SpecError(f"layer {where.rstrip('/')}: expected a list of layers, got {raw!r}")
    return tuple(layer_from_dict(x, f"{where}{i}") for i, x in enumerate(raw))  # type: ignore[arg-type]


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
    """A `NetSpec` from JSON text; anything but a valid spec is one `SpecError`."""
    try:
        data = json.loads(text)
        return from_dict(data)
    except json.JSONDecodeError as err:
        raise SpecError(f"not valid JSON: {err}") from None
    except RecursionError:
        raise SpecError(
            "the JSON is nested too deeply to be a spec (a spec is an object with a list of "
            "layers; blocks nest a few levels at most)"
        ) from None


def parse_shape(text: str | Iterable[int | None]) -> tuple[int, int, int]:
    """'28x28x1' (or an iterable) -> (28, 28, 1); '?x?x3' -> (None, None, 3), an unknown size."""
    if isinstance(text, str):
        try:
            parts = tuple(
                None if p.strip() == "?" else int(p)
                for p in text.lower().replace(",", "x").split("x")
            )
        except ValueError:
            raise SpecError(
                f"input shape must look like HxWxC (e.g. 28x28x1, or ?x?x3 for an unknown "
                f"size), got {text!r}"
            ) from None
    else:
        parts = tuple(text)
    if len(parts) != 3 or parts[2] is None or any(p is not None and p <= 0 for p in parts):
        raise SpecError(
            f"input shape must be three positive integers HxWxC (H and W may be ?), got {text!r}"
        )
    return parts  # type: ignore[return-value]
