"""The compact text form of a spec: `from_text` parses it, `to_text` writes it (pure Python).

    in28x28x1-conv32x3-pool2-conv32x3-pool2-flatten-dense128-dense10

Tokens are joined by '-'. Conv and dense default to ReLU, except the last top-level dense
layer, the classifier head, which defaults to softmax (sigmoid for one unit). ':act' overrides.

    conv{F}x{K}[x{K2}][s{S}][d{D}][same|valid|p{N}][nb][:act]  conv32x3, conv64x3x5s2same:linear
    dw{K}[m{M}][s{S}][d{D}][same|valid|p{N}][nb][:act]         depthwise, multiplier M
    pool{K}[s{S}][same|p{N}] / maxpool{K}... / avgpool{K}...   max pool is the default pool
    flatten | gap | bn | drop{RATE} | dense{U}[nb][:act]   gap = global average pool
    relu | tanh | linear | ...                             an activation on its own
    in{H}x{W}x{C}                                          optional first token, default 28x28x1;
                                                           H, W may be ? (unknown): in?x?x3

Padding is 'valid' by default; 'same' is TensorFlow's rule; p{N} pads N pixels on every side
(PyTorch's `padding=N`), which keeps stride-2 paths of a block aligned on even inputs.

Blocks hold paths separated by '|', each path a '-'-joined chain (blocks nest):

    res(MAIN)[:act]            residual with an identity shortcut; ReLU after the add
    res(MAIN|SHORTCUT)[:act]   residual with a projection, e.g. a ResNet basic block that halves
                               the size: res(conv64x3s2p1-conv64x3p1:linear|conv64x1s2:linear)
    cat(A|B|...)               channel concatenation (Inception); an empty branch passes through

Any token may end in '@name' (lowercase letters, digits, '_', '.') to name its layer or block.

This module imports `cnnjax.spec`, never the other way round: it registers `to_text` as the
writer behind `NetSpec.to_text()`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from cnnjax import spec as _spec
from cnnjax.spec import ACTIVATIONS, Layer, NetSpec, Padding, Pair, SpecError, _Pool

_CONV_RE = re.compile(
    r"^conv(?P<f>\d+)x(?P<kh>\d+)(?:x(?P<kw>\d+))?(?:s(?P<s>\d+))?(?:d(?P<d>\d+))?"
    r"(?P<pad>same|valid|p\d+)?(?P<nb>nb)?(?::(?P<act>[a-z]+))?$"
)
_DW_RE = re.compile(
    r"^dw(?P<kh>\d+)(?:x(?P<kw>\d+))?(?:m(?P<m>\d+))?(?:s(?P<s>\d+))?(?:d(?P<d>\d+))?"
    r"(?P<pad>same|valid|p\d+)?(?P<nb>nb)?(?::(?P<act>[a-z]+))?$"
)
_POOL_RE = re.compile(
    r"^(?P<kind>pool|maxpool|avgpool)(?P<kh>\d+)(?:x(?P<kw>\d+))?(?:s(?P<s>\d+))?(?P<pad>same|valid|p\d+)?$"
)
_DENSE_RE = re.compile(r"^dense(?P<u>\d+)(?P<nb>nb)?(?::(?P<act>[a-z]+))?$")
_DROP_RE = re.compile(r"^drop(?:out)?(?P<r>0?\.\d+|0)$")
_IN_RE = re.compile(r"^in(?P<h>\d+|\?)x(?P<w>\d+|\?)x(?P<c>\d+)$")  # ? : an unknown size
_BLOCK_RE = re.compile(r"^(?P<kind>res|cat)\((?P<body>.*)\)(?::(?P<act>[a-z]+))?$", re.DOTALL)
_NAME_RE = re.compile(r"^[a-z0-9_.]+$")

DEFAULT_TEXT_INPUT = (28, 28, 1)

_TOKENS_HINT = (
    "expected conv{F}x{K}, dw{K}, pool{K}, avgpool{K}, flatten, gap, bn, drop{RATE}, dense{U}, "
    "an activation (relu, ...), res(...) or cat(...|...) (e.g. conv32x3-pool2-flatten-dense10)"
)


def _split(text: str, sep: str) -> list[str]:
    """Split at `sep` outside parentheses; unbalanced parentheses are a SpecError."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SpecError(f"unbalanced ')' in {text!r}")
        if ch == sep and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth != 0:
        raise SpecError(f"unbalanced '(' in {text!r}")
    parts.append("".join(current))
    return parts


def _pad(m: re.Match[str]) -> Padding:
    """'same', 'valid' (the default), or p{N}: N pixels on every side."""
    pad = m["pad"] or "valid"
    if pad.startswith("p"):
        n = int(pad[1:])
        return ((n, n), (n, n))
    return pad


def _pad_text(layer: _spec.Conv | _spec.DepthwiseConv | _Pool) -> str:
    if layer.padding == "valid":
        return ""
    if layer.padding == "same":
        return "same"
    (t, b), (left, r) = layer.padding  # type: ignore[misc,str-unpack]
    if t == b == left == r:
        return f"p{t}"
    raise SpecError(f"{layer.describe()}: unequal explicit padding has no text form; use JSON")


def _kernel(m: re.Match[str]) -> Pair:
    kh = int(m["kh"])
    return (kh, int(m["kw"]) if m["kw"] else kh)


def _size(text: str) -> int | None:
    return None if text == "?" else int(text)


def from_text(text: str, input_shape: Sequence[int] | None = None) -> NetSpec:
    """Parse the compact text form (see the grammar in this module's docstring)."""
    tokens = [t.strip().lower() for t in _split(text.strip(), "-")]
    if not tokens or any(not t for t in tokens):
        raise SpecError(f"empty layer token in {text!r} (tokens are joined by a single '-')")
    shape: Sequence[int] = DEFAULT_TEXT_INPUT
    m = _IN_RE.match(tokens[0])
    if m:
        shape = (_size(m["h"]), _size(m["w"]), int(m["c"]))  # type: ignore[assignment]
        tokens = tokens[1:]
    if input_shape is not None:
        shape = tuple(input_shape)
    dense_positions = [i for i, t in enumerate(tokens) if t.startswith("dense")]
    head = dense_positions[-1] if dense_positions else -1
    layers = [_parse_indexed(tok, i, is_head=(i == head)) for i, tok in enumerate(tokens)]
    return NetSpec(tuple(shape), tuple(layers))  # type: ignore[arg-type]


def _parse_indexed(tok: str, index: int | str, is_head: bool = False) -> Layer:
    try:
        return _parse_token(tok, is_head)
    except SpecError as err:
        if str(err).startswith("layer "):  # names a layer inside a block already
            raise
        raise SpecError(f"layer {index} ({tok!r}): {err}") from None


def _parse_path(text: str, where: str) -> tuple[Layer, ...]:
    if not text.strip():
        return ()
    tokens = [t.strip() for t in _split(text, "-")]
    if any(not t for t in tokens):
        raise SpecError(f"layer {where}: empty layer token in {text!r}")
    return tuple(_parse_indexed(t, f"{where}/{i}") for i, t in enumerate(tokens))


def _parse_token(tok: str, is_head: bool) -> Layer:
    name = ""
    body = tok
    if "@" in tok and ")" not in tok.rsplit("@", 1)[1]:
        body, name = tok.rsplit("@", 1)
        if not _NAME_RE.match(name):
            raise SpecError(f"a name after '@' is letters, digits, '_' or '.', got {name!r}")
    return _parse_body(body, is_head, name)


def _conv_options(m: re.Match[str]) -> dict[str, Any]:
    """The options a conv and a dw token share: strides, padding, dilation, bias, activation."""
    s, d = int(m["s"] or 1), int(m["d"] or 1)
    return {
        "strides": (s, s),
        "padding": _pad(m),
        "dilation": (d, d),
        "use_bias": not m["nb"],
        "activation": m["act"] or "relu",
    }


def _parse_body(tok: str, is_head: bool, name: str) -> Layer:
    if m := _BLOCK_RE.match(tok):
        paths = _split(m["body"], "|")
        where = name or tok.split("(", 1)[0]
        if m["kind"] == "res":
            if len(paths) > 2:
                raise SpecError("res(...) takes one or two paths: res(MAIN) or res(MAIN|SHORTCUT)")
            main = _parse_path(paths[0], f"{where}/main")
            short = _parse_path(paths[1], f"{where}/shortcut") if len(paths) == 2 else ()
            return _spec.Residual(main, short, m["act"] or "relu", name=name)
        if m["act"]:
            raise SpecError("cat(...) takes no activation; put one inside each branch")
        branches = [_parse_path(p, f"{where}/branch{i}") for i, p in enumerate(paths)]
        return _spec.Concat(*branches, name=name)
    if m := _CONV_RE.match(tok):
        return _spec.Conv(int(m["f"]), _kernel(m), **_conv_options(m), name=name)
    if m := _DW_RE.match(tok):
        return _spec.DepthwiseConv(_kernel(m), int(m["m"] or 1), **_conv_options(m), name=name)
    if m := _POOL_RE.match(tok):
        cls = _spec.AvgPool if m["kind"] == "avgpool" else _spec.MaxPool
        strides = (int(m["s"]), int(m["s"])) if m["s"] else None
        return cls(_kernel(m), strides, _pad(m), name=name)  # type: ignore[arg-type]
    if m := _DENSE_RE.match(tok):
        units = int(m["u"])
        default = ("sigmoid" if units == 1 else "softmax") if is_head else "relu"
        return _spec.Dense(units, m["act"] or default, not m["nb"], name=name)
    if m := _DROP_RE.match(tok):
        return _spec.Dropout(float(m["r"]), name=name)
    if tok == "flatten":
        return _spec.Flatten(name=name)
    if tok in ("gap", "globalavgpool"):
        return _spec.GlobalAvgPool(name=name)
    if tok in ("bn", "batchnorm"):
        return _spec.BatchNorm(name=name)
    if tok in ACTIVATIONS:
        return _spec.Activation(tok, name=name)
    raise SpecError(f"not a layer token; {_TOKENS_HINT}")


# --------------------------------------------------------------------------- writing


def _text_conv_suffix(layer: _spec.Conv | _spec.DepthwiseConv, default_act: str) -> str:
    out = ""
    if layer.strides[0] != layer.strides[1] or layer.dilation[0] != layer.dilation[1]:
        raise SpecError(f"{layer.describe()}: unequal strides/dilation have no text form; use JSON")
    if layer.strides[0] != 1:
        out += f"s{layer.strides[0]}"
    if layer.dilation[0] != 1:
        out += f"d{layer.dilation[0]}"
    out += _pad_text(layer)
    if not layer.use_bias:
        out += "nb"
    if layer.activation != default_act:
        out += f":{layer.activation}"
    return out


def _kernel_text(k: Pair) -> str:
    return f"{k[0]}" if k[0] == k[1] else f"{k[0]}x{k[1]}"


def to_text(spec: NetSpec) -> str:
    """The compact text form of a spec; `from_text(to_text(s)) == s` where a text form exists
    (explicit padding, unequal strides and non-default batch norm are JSON only)."""
    dense_positions = [i for i, layer in enumerate(spec.layers) if isinstance(layer, _spec.Dense)]
    head = dense_positions[-1] if dense_positions else -1
    tokens = ["in{}x{}x{}".format(*("?" if n is None else n for n in spec.input_shape))]
    tokens += [_token(layer, i, i == head) for i, layer in enumerate(spec.layers)]
    return "-".join(tokens)


def _path_text(layers: Sequence[Layer]) -> str:
    return "-".join(_token(layer, i, False) for i, layer in enumerate(layers))


def _token(layer: Layer, i: int, is_head: bool) -> str:
    text = _token_body(layer, i, is_head)
    if layer.name:
        if not _NAME_RE.match(layer.name):
            raise SpecError(
                f"layer {i} ({layer.describe()}): the name {layer.name!r} has no text form "
                "(lowercase letters, digits, '_' or '.'); use JSON"
            )
        text += f"@{layer.name}"
    return text


def _token_body(layer: Layer, i: int, is_head: bool) -> str:
    if isinstance(layer, _spec.Residual):
        body = _path_text(layer.main)
        if layer.shortcut:
            body += "|" + _path_text(layer.shortcut)
        act = "" if layer.activation == "relu" else f":{layer.activation}"
        return f"res({body}){act}"
    if isinstance(layer, _spec.Concat):
        return "cat(" + "|".join(_path_text(b) for b in layer.branches) + ")"
    if isinstance(layer, _spec.Conv):
        return f"conv{layer.filters}x{_kernel_text(layer.kernel)}" + _text_conv_suffix(
            layer, "relu"
        )
    if isinstance(layer, _spec.DepthwiseConv):
        mult = f"m{layer.depth_multiplier}" if layer.depth_multiplier != 1 else ""
        return f"dw{_kernel_text(layer.kernel)}{mult}" + _text_conv_suffix(layer, "relu")
    if isinstance(layer, _Pool):
        kind = "avgpool" if isinstance(layer, _spec.AvgPool) else "pool"
        if layer.strides[0] != layer.strides[1]:
            raise SpecError(f"layer {i} ({layer.describe()}): no text form; use JSON")
        s = f"s{layer.strides[0]}" if layer.strides != layer.window else ""
        return f"{kind}{_kernel_text(layer.window)}{s}{_pad_text(layer)}"
    if isinstance(layer, _spec.Dense):
        default = ("sigmoid" if layer.units == 1 else "softmax") if is_head else "relu"
        nb = "" if layer.use_bias else "nb"
        act = f":{layer.activation}" if layer.activation != default else ""
        return f"dense{layer.units}{nb}{act}"
    if isinstance(layer, _spec.Dropout):
        return f"drop{layer.rate:g}"
    if isinstance(layer, _spec.Flatten):
        return "flatten"
    if isinstance(layer, _spec.GlobalAvgPool):
        return "gap"
    if isinstance(layer, _spec.Activation):
        return layer.activation
    if isinstance(layer, _spec.BatchNorm):
        if (layer.momentum, layer.epsilon) != (0.99, 1e-3):
            raise SpecError(f"layer {i} (BatchNorm): non-default settings have no text form")
        return "bn"
    raise SpecError(f"layer {i} ({layer.describe()}): no text form; use JSON")


_spec.register_text_writer(to_text)
