"""Look inside a network: feature maps, effective receptive fields and per-layer linear probes.

- `feature_maps`: the activations of any layer for chosen images, captured from the model's
  "intermediates" collection (`cnnjax.models.intermediates`), one jitted forward pass per batch.
- `effective_receptive_field` (Luo et al., "Understanding the Effective Receptive Field in Deep
  Convolutional Neural Networks", NeurIPS 2016): the mean |d out[centre unit] / d input| over
  images, computed by one `jax.vjp` per batch, beside the analytic receptive field. Its support
  never leaves the analytic window (tests/test_inspect.py checks it).
- `linear_probes`: freeze the network, fit a closed-form ridge classifier on each layer's
  flattened activations, and score it on held-out images: the measured answer to "less data,
  more accuracy" (values kept fall while linearly readable class information rises).

The figures are drawn by `cnnjax.plots` (matplotlib, Agg, imported lazily); `save_feature_maps`,
`save_filters` and `save_erf` here are thin wrappers that pick the data for those figures.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.analysis import LayerReport, NetReport, analyze, receptive_window
from cnnjax.models import SpecModel, intermediates
from cnnjax.spec import Conv, DepthwiseConv, Flatten, NetSpec

INPUT = "input"  # the name of the raw-input row of a probe table
_HIGHEST = jax.lax.Precision.HIGHEST  # no TF32 / bf16 passes in the probe's Gram matrices
_BUCKET = 512  # probe feature widths are padded to a multiple of this (fewer compilations)


# --------------------------------------------------------------------------- helpers


def as_images(images: Any, spec: NetSpec) -> np.ndarray:
    """float32 NHWC images in [0, 1] matching the spec's input (uint8 is divided by 255)."""
    x = np.asarray(images)
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / np.float32(255.0)
    else:
        x = x.astype(np.float32, copy=False)
    expected = tuple(spec.input_shape)
    if x.shape == expected:
        x = x[None]
    elif expected[2] == 1 and x.shape == expected[:2]:
        x = x[None, :, :, None]
    elif x.ndim == 3 and expected[2] == 1 and x.shape[1:] == expected[:2]:
        x = x[..., None]
    if x.ndim != 4 or tuple(x.shape[1:]) != expected:
        raise ValueError(
            f"images of shape {x.shape} do not match the model's input "
            f"(N, {', '.join(map(str, expected))})"
        )
    return x


def _padded(x: np.ndarray, batch_size: int) -> tuple[np.ndarray, int]:
    """`x` zero-padded to a whole number of batches (so every batch has one compiled shape)."""
    bs = max(1, min(batch_size, len(x)))
    extra = -len(x) % bs
    if extra:
        x = np.concatenate([x, np.zeros((extra, *x.shape[1:]), x.dtype)])
    return x, bs


def _batched(fn: Callable[[jax.Array], Any], x: np.ndarray, batch_size: int) -> Any:
    """Apply the jitted `fn` to fixed-size batches of `x`; outputs as numpy, padding dropped.

    Batches are cut on the host, so no eager slicing op is compiled per shape, and every batch
    is dispatched before the first result is read (one host sync at the end).
    """
    n = len(x)
    xp, bs = _padded(x, batch_size)
    outs = [fn(jnp.asarray(xp[start : start + bs])) for start in range(0, len(xp), bs)]
    return jax.tree_util.tree_map(
        lambda *parts: np.concatenate([np.asarray(p) for p in parts])[:n], *outs
    )


def _layer_names(spec: NetSpec, layers: Sequence[str] | str | None) -> list[str]:
    """Validated layer names (all layers when None)."""
    report = analyze(spec)
    known = [r.name for r in report.layers]
    if layers is None:
        return known
    names = [layers] if isinstance(layers, str) else list(layers)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown layer(s) {', '.join(unknown)}; layers: {', '.join(known)}")
    return names


# --------------------------------------------------------------------------- feature maps


@functools.partial(jax.jit, static_argnames=("model", "names"))
def _capture(
    model: SpecModel, variables: dict[str, Any], x: jax.Array, names: tuple[str, ...]
) -> dict[str, jax.Array]:
    """The named layers' outputs for a batch (XLA drops every layer after the last asked)."""
    _, acts = intermediates(model, variables, x)
    return {n: acts[n] for n in names}


def feature_maps(
    model: SpecModel,
    variables: dict[str, Any],
    images: Any,
    layers: Sequence[str] | str | None = None,
    *,
    batch_size: int = 256,
) -> dict[str, np.ndarray]:
    """Each chosen layer's activations (eval mode) for `images`, as numpy arrays [N, ...]."""
    names = tuple(_layer_names(model.spec, layers))
    x = as_images(images, model.spec)
    out = _batched(lambda xb: _capture(model, variables, xb, names), x, batch_size)
    return {n: out[n] for n in names}


def save_feature_maps(
    maps: dict[str, np.ndarray],
    path: str | Path,
    *,
    max_channels: int = 64,
    image: Any = None,
    index: int = 0,
) -> list[Path]:
    """Draw image `index`'s activations, one tile per channel, and return the PNGs written.

    A `path` ending in `.png` gets one figure with a panel per layer (the input on top when
    `image` is given); any other `path` is a directory that gets one PNG per layer, named
    `NN_<layer>.png` in network order (and `00_input.png`).
    """
    from cnnjax import plots

    path = Path(path)
    if path.suffix.lower() == ".png":
        return [
            plots.plot_feature_maps(maps, path, max_channels=max_channels, image=image, index=index)
        ]
    path.mkdir(parents=True, exist_ok=True)
    written = []
    if image is not None:
        written.append(plots.plot_feature_maps({}, path / "00_input.png", image=image))
    for i, (name, value) in enumerate(maps.items(), start=1):
        written.append(
            plots.plot_feature_maps(
                {name: value}, path / f"{i:02d}_{name}.png", max_channels=max_channels, index=index
            )
        )
    return written


def first_conv(spec: NetSpec) -> LayerReport:
    """The report of the spec's first convolution (its filters look at raw pixels)."""
    report = analyze(spec)
    for layer, r in zip(spec.layers, report.layers, strict=True):
        if isinstance(layer, (Conv, DepthwiseConv)):
            return r
    raise ValueError(f"{spec.name or 'the spec'} has no convolution, so no filters to draw")


def save_filters(variables: dict[str, Any], spec: NetSpec, path: str | Path) -> Path:
    """Draw the first convolution's kernels as small images (what the first layer looks for)."""
    from cnnjax import plots

    r = first_conv(spec)
    kernel = np.asarray(variables["params"][r.name]["kernel"])
    return plots.plot_filters(kernel, path, layer=r.name, description=r.description)


# --------------------------------------------------------------------------- effective RF


@dataclass(frozen=True)
class ErfResult:
    """The effective receptive field of one output unit, beside its analytic receptive field.

    `map` is [H, W]: mean |d out / d input| over images and input channels, normalised to sum 1
    (all zeros when no gradient reaches the input). Windows are inclusive (top, bottom, left,
    right) input pixel coordinates; `analytic_window` is clipped to the input, `window` is not.
    `size95` is the side of the smallest square centred on the unit's analytic window that holds
    95% of the gradient mass (`size50`: half of it, the bright core); `mass_in_window` the share
    of the mass inside the analytic window (1 up to rounding: the support law).
    """

    map: np.ndarray
    layer: str
    unit: tuple[int, int] | int | str
    analytic_rf: tuple[int, int]
    analytic_window: tuple[int, int, int, int]
    window: tuple[int, int, int, int]
    size95: int
    size50: int
    mass_in_window: float
    num_images: int

    @property
    def centre(self) -> tuple[float, float]:
        """The centre (row, column) of the analytic window, in input pixels."""
        t, b, l, r = self.window
        return ((t + b) / 2, (l + r) / 2)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the map, JSON-ready."""
        return {
            "layer": self.layer,
            "unit": list(self.unit) if isinstance(self.unit, tuple) else self.unit,
            "analytic_rf": list(self.analytic_rf),
            "analytic_window": list(self.analytic_window),
            "window": list(self.window),
            "size95": self.size95,
            "size50": self.size50,
            "mass_in_window": self.mass_in_window,
            "num_images": self.num_images,
        }


def default_erf_layer(report: NetReport) -> LayerReport:
    """The last spatial layer (whose units have the largest finite fields), else the last layer."""
    spatial = [r for r in report.layers if not r.is_global]
    return spatial[-1] if spatial else report.layers[-1]


@functools.partial(jax.jit, static_argnames=("model", "layer", "mode"))
def _erf_sum(
    model: SpecModel,
    variables: dict[str, Any],
    x: jax.Array,
    weight: jax.Array,
    target: jax.Array,
    unit: jax.Array,
    layer: str,
    mode: str,
) -> jax.Array:
    """Sum over the batch and input channels of |d out[unit] / d x|, as [H, W].

    `mode` "spatial": unit (row, col) of a spatial layer, all its channels (as Luo et al.);
    "vector": unit[0] of a vector layer; "class": the logit `target[n]` of each image. The unit
    is traced, so one compiled function serves every unit of a layer; `weight` masks padding.
    """

    def forward(inp: jax.Array) -> jax.Array:
        logits, acts = intermediates(model, variables, inp)
        return logits if mode == "class" else acts[layer]

    out, pullback = jax.vjp(forward, x)
    if mode == "spatial":
        rows = jnp.arange(out.shape[1]) == unit[0]
        cols = jnp.arange(out.shape[2]) == unit[1]
        cot = (rows[None, :, None, None] & cols[None, None, :, None]).astype(out.dtype)
        cot = jnp.broadcast_to(cot, out.shape)
    elif mode == "class":
        cot = jax.nn.one_hot(target, out.shape[-1], dtype=out.dtype)
    else:
        cot = jnp.broadcast_to(jax.nn.one_hot(unit[:1], out.shape[-1], dtype=out.dtype), out.shape)
    cot = cot * weight.reshape((-1,) + (1,) * (cot.ndim - 1)).astype(cot.dtype)
    (grad,) = pullback(cot)
    return jnp.abs(grad.astype(jnp.float32)).sum(axis=(0, 3))


@functools.partial(jax.jit, static_argnames=("model",))
def _predicted(model: SpecModel, variables: dict[str, Any], x: jax.Array) -> jax.Array:
    return jnp.argmax(model.apply(variables, x, train=False), axis=-1)


def centred_square_side(m: np.ndarray, centre2: tuple[int, int], fraction: float = 0.95) -> int:
    """Side of the smallest square centred at `centre2`/2 (row, col) holding `fraction` of `m`.

    A square of side s spans rows floor((2c - (s - 1)) / 2) + [0, s), so the square of side r
    centred on an r x r analytic window is exactly that window. 0 when `m` has no mass.
    """
    total = float(m.sum())
    if total <= 0.0:
        return 0
    h, w = m.shape
    table = np.zeros((h + 1, w + 1), np.float64)
    table[1:, 1:] = np.asarray(m, np.float64).cumsum(0).cumsum(1)
    goal = fraction * total * (1.0 - 1e-9)
    for s in range(1, 2 * max(h, w) + 2):
        top = (centre2[0] - (s - 1)) // 2
        left = (centre2[1] - (s - 1)) // 2
        t, b = min(max(top, 0), h), min(max(top + s, 0), h)
        l, r = min(max(left, 0), w), min(max(left + s, 0), w)
        if table[b, r] - table[t, r] - table[b, l] + table[t, l] >= goal:
            return s
    return 2 * max(h, w) + 1


def _spatial_unit(lr: LayerReport, unit: Any) -> tuple[int, int]:
    """A validated (row, col) unit of a spatial layer; None is the centre unit."""
    oh, ow = lr.output_shape[:2]
    if unit is None:
        return ((oh - 1) // 2, (ow - 1) // 2)
    if not (isinstance(unit, tuple) and len(unit) == 2):
        raise ValueError(f"a unit of spatial layer {lr.name} is a (row, col) pair, got {unit}")
    row, col = int(unit[0]), int(unit[1])
    if not (0 <= row < oh and 0 <= col < ow):
        raise ValueError(f"unit {(row, col)} is outside {lr.name}'s {oh}x{ow} map")
    return (row, col)


def _erf_result(
    total: np.ndarray,
    layer: str,
    unit: tuple[int, int] | int | str,
    window: tuple[int, int, int, int],
    rf: tuple[int, int],
    num_images: int,
) -> ErfResult:
    """Normalise a summed |gradient| map and measure it against the analytic window."""
    m = np.asarray(total, np.float64)
    h, w = m.shape
    mass = m.sum()
    if mass > 0:
        m = m / mass
    top, bottom, left, right = window
    clipped = (max(top, 0), min(bottom, h - 1), max(left, 0), min(right, w - 1))
    inside = float(m[clipped[0] : clipped[1] + 1, clipped[2] : clipped[3] + 1].sum())
    centre2 = (top + bottom, left + right)
    return ErfResult(
        map=m.astype(np.float32),
        layer=layer,
        unit=unit,
        analytic_rf=(int(rf[0]), int(rf[1])),
        analytic_window=clipped,
        window=(int(top), int(bottom), int(left), int(right)),
        size95=centred_square_side(m, centre2, 0.95),
        size50=centred_square_side(m, centre2, 0.5),
        mass_in_window=inside if mass > 0 else 0.0,
        num_images=num_images,
    )


def _batches(*arrays: np.ndarray, batch_size: int) -> list[tuple[jax.Array, ...]]:
    """Equal-length arrays cut into padded device batches, plus a 0/1 weight marking padding."""
    n = len(arrays[0])
    padded = [_padded(a, batch_size)[0] for a in arrays]
    bs = max(1, min(batch_size, n))
    weight = (np.arange(len(padded[0])) < n).astype(np.float32)
    return [
        tuple(jnp.asarray(a[i : i + bs]) for a in (*padded, weight))
        for i in range(0, len(weight), bs)
    ]


def effective_receptive_field(
    model: SpecModel,
    variables: dict[str, Any],
    images: Any,
    layer: str | None = None,
    *,
    unit: tuple[int, int] | int | str | None = None,
    labels: Any = None,
    batch_size: int = 128,
) -> ErfResult:
    """The effective receptive field of one unit of `layer`, averaged over `images`.

    Spatial layer: the unit defaults to the centre ((H - 1) // 2, (W - 1) // 2) and the gradient
    of the sum of its channels is taken (Luo et al.). Global layer (flatten, dense, ...) with no
    `unit`: the logit of each image's true class when `labels` are given, else of its predicted
    class; an int `unit` picks that unit of the named global layer instead.
    """
    spec = model.spec
    report = analyze(spec)
    if layer is not None:
        _layer_names(spec, layer)  # a clear error for an unknown name
    lr = report.layer(layer) if layer is not None else default_erf_layer(report)
    x = as_images(images, spec)
    h, w = spec.input_shape[:2]
    if not lr.is_global:
        unit = _spatial_unit(lr, unit)
        window, rf = receptive_window(lr, *unit), lr.receptive_field
        mode, pos, layer_name = "spatial", unit, lr.name
    else:
        window, rf = (0, h - 1, 0, w - 1), (h, w)
        if unit is None or unit in ("class", "predicted", "true"):
            mode, pos, layer_name = "class", (0, 0), report.layers[-1].name
            unit = "true class logit" if labels is not None else "predicted class logit"
        else:
            if isinstance(unit, (tuple, str)) or not 0 <= int(unit) < lr.output_shape[-1]:
                raise ValueError(f"a unit of {lr.name} is an index below {lr.output_shape[-1]}")
            unit = int(unit)
            mode, pos, layer_name = "vector", (unit, 0), lr.name
    if mode == "class" and labels is not None:
        targets = np.asarray(labels, np.int32).reshape(-1)
        if len(targets) != len(x):
            raise ValueError(f"{len(x)} images but {len(targets)} labels")
    elif mode == "class":
        targets = _batched(lambda xb: _predicted(model, variables, xb), x, batch_size)
    else:
        targets = np.zeros(len(x), np.int32)
    unit_array = jnp.asarray(pos, jnp.int32)
    sums = [
        _erf_sum(model, variables, xb, wb, tb, unit_array, layer_name, mode)
        for xb, tb, wb in _batches(x, targets.astype(np.int32), batch_size=batch_size)
    ]
    total = np.sum([np.asarray(a, np.float64) for a in sums], axis=0)
    return _erf_result(total, layer_name, unit, window, rf, len(x))  # type: ignore[arg-type]


@functools.partial(jax.jit, static_argnames=("model", "layers"))
def _erf_layers(
    model: SpecModel,
    variables: dict[str, Any],
    x: jax.Array,
    weight: jax.Array,
    units: jax.Array,
    layers: tuple[str, ...],
) -> jax.Array:
    """[L, H, W]: `_erf_sum` of unit `units[l]` of each spatial layer, one forward pass and one
    compiled program for all of them."""

    def forward(inp: jax.Array) -> tuple[jax.Array, ...]:
        _, acts = intermediates(model, variables, inp)
        return tuple(acts[name] for name in layers)

    outs, pullback = jax.vjp(forward, x)
    maps = []
    for i, out in enumerate(outs):
        rows = jnp.arange(out.shape[1]) == units[i, 0]
        cols = jnp.arange(out.shape[2]) == units[i, 1]
        mask = (rows[None, :, None, None] & cols[None, None, :, None]).astype(out.dtype)
        cot = jnp.broadcast_to(mask, out.shape) * weight.reshape(-1, 1, 1, 1).astype(out.dtype)
        cots = tuple(cot if j == i else jnp.zeros_like(o) for j, o in enumerate(outs))
        (grad,) = pullback(cots)
        maps.append(jnp.abs(grad.astype(jnp.float32)).sum(axis=(0, 3)))
    return jnp.stack(maps)


def erf_per_layer(
    model: SpecModel,
    variables: dict[str, Any],
    images: Any,
    *,
    units: dict[str, tuple[int, int]] | None = None,
    batch_size: int = 128,
) -> list[ErfResult]:
    """The effective receptive field of one unit (default: the centre) of every spatial layer,
    in network order, from one compiled program."""
    report = analyze(model.spec)
    spatial = [r for r in report.layers if not r.is_global]
    if not spatial:
        return []
    x = as_images(images, model.spec)
    chosen = [_spatial_unit(r, (units or {}).get(r.name)) for r in spatial]
    unit_array = jnp.asarray(chosen, jnp.int32)
    names = tuple(r.name for r in spatial)
    sums = [
        _erf_layers(model, variables, xb, wb, unit_array, names)
        for xb, wb in _batches(x, batch_size=batch_size)
    ]
    total = np.sum([np.asarray(a, np.float64) for a in sums], axis=0)
    return [
        _erf_result(total[i], r.name, u, receptive_window(r, *u), r.receptive_field, len(x))
        for i, (r, u) in enumerate(zip(spatial, chosen, strict=True))
    ]


def save_erf(
    result_or_results: ErfResult | Sequence[ErfResult],
    path: str | Path,
    image_shape: Sequence[int],
    *,
    titles: Sequence[str] | None = None,
    columns: int | None = None,
) -> Path:
    """Heat map(s) of the effective receptive field with the analytic square drawn over each."""
    from cnnjax import plots

    return plots.plot_erf(result_or_results, path, image_shape, titles=titles, columns=columns)


# --------------------------------------------------------------------------- linear probes


@dataclass(frozen=True)
class ProbeResult:
    """One layer's linear probe: accuracy beside the values the layer keeps.

    `values` is the layer's size per image (its fraction of the input's values beside it);
    `features` the number fed to the probe after `reduction` (e.g. average pooling or a random
    projection when the layer has more than `max_features` values); `ridge` the penalty used.
    """

    layer: str
    shape: tuple[int, ...]
    values: int
    values_fraction: float
    features: int
    reduction: str
    train_acc: float
    test_acc: float
    ridge: float
    seconds: float


@dataclass(frozen=True)
class _Reduction:
    """How a layer's activations become probe features (static: part of the jit key)."""

    spatial: tuple[int, int, int] | None  # reshape to this H x W x C first (None: a vector)
    grid: tuple[int, int] | None  # then adaptive average pooling to this grid
    sketch: int | None  # then a signed random projection (count sketch) to this many features
    features: int
    text: str


def _plan_reduction(
    shape: tuple[int, ...],
    spatial: tuple[int, int, int] | None,
    pool_to: int | None,
    max_features: int,
) -> _Reduction:
    """Pool spatial maps to `pool_to` and below `max_features`; sketch vectors that are larger."""
    notes = []
    grid = None
    d = math.prod(shape)
    if spatial is not None:
        h, w, c = spatial
        gh, gw = h, w
        if pool_to is not None and (h > pool_to or w > pool_to):
            gh, gw = min(h, pool_to), min(w, pool_to)
        if gh * gw * c > max_features:
            f = 1
            while math.ceil(gh / f) * math.ceil(gw / f) * c > max_features and (
                math.ceil(gh / f) > 1 or math.ceil(gw / f) > 1
            ):
                f += 1
            gh, gw = math.ceil(gh / f), math.ceil(gw / f)
        if (gh, gw) != (h, w):
            grid = (gh, gw)
            notes.append(f"avg-pool {h}x{w} -> {gh}x{gw}")
        d = gh * gw * c
    sketch = None
    if d > max_features:
        sketch = max_features
        notes.append(f"random projection {d} -> {max_features}")
        d = max_features
    return _Reduction(spatial, grid, sketch, d, ", ".join(notes) or "none")


def _adaptive_matrix(size: int, bins: int) -> np.ndarray:
    """[bins, size]: row i averages input cells floor(i*size/bins) .. ceil((i+1)*size/bins)-1."""
    a = np.zeros((bins, size), np.float32)
    for i in range(bins):
        lo, hi = (i * size) // bins, -((-(i + 1) * size) // bins)
        a[i, lo:hi] = 1.0 / (hi - lo)
    return a


def _reduce(a: jax.Array, plan: _Reduction) -> jax.Array:
    """Apply a reduction plan to a batch of activations; returns [B, features] float32."""
    a = a.astype(jnp.float32)
    b = a.shape[0]
    if plan.spatial is not None:
        a = a.reshape((b, *plan.spatial))
        if plan.grid is not None:
            ah = jnp.asarray(_adaptive_matrix(plan.spatial[0], plan.grid[0]))
            aw = jnp.asarray(_adaptive_matrix(plan.spatial[1], plan.grid[1]))
            a = jnp.einsum("ph,qw,nhwc->npqc", ah, aw, a, precision=_HIGHEST)
    a = a.reshape(b, -1)
    if plan.sketch is not None:
        rng = np.random.default_rng(0)
        d = a.shape[1]
        bucket = jnp.asarray(rng.integers(0, plan.sketch, d), jnp.int32)
        sign = jnp.asarray(rng.choice(np.array([-1.0, 1.0], np.float32), d))
        a = jnp.zeros((b, plan.sketch), a.dtype).at[:, bucket].add(a * sign[None, :])
    return a


def _bucket(features: int) -> int:
    """Feature width rounded up to a multiple of `_BUCKET`, so that layers of similar width
    share compiled programs; systems of a few hundred unknowns cost microseconds to solve."""
    return max(1, -(-features // _BUCKET)) * _BUCKET


@functools.partial(jax.jit, static_argnames=("model", "layer", "plan"))
def _probe_features(
    model: SpecModel, variables: dict[str, Any], x: jax.Array, layer: str, plan: _Reduction
) -> jax.Array:
    """One batch's probe features of `layer` (or of the raw input), zero-padded to a bucket.

    Zero columns change nothing: standardisation leaves them zero and the ridge penalty keeps
    their weights at zero (primal), or they add nothing to the kernel (dual).
    """
    if layer == INPUT:
        a = _reduce(x, plan)
    else:
        _, acts = intermediates(model, variables, x)
        a = _reduce(acts[layer], plan)
    return jnp.pad(a, ((0, 0), (0, _bucket(plan.features) - plan.features)))


def _standardise(x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(z, mean, std): zero mean, unit variance per feature; constant features stay zero."""
    mean = x.mean(axis=0, keepdims=True)
    std = x.std(axis=0, keepdims=True)
    std = jnp.where(std > 1e-6 * (1.0 + jnp.max(std)), std, 1.0)
    return (x - mean) / std, mean, std


def _system(z: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The ridge system without its penalty: primal (Z'Z, Z'Yc) when d <= n, else dual
    (ZZ', Yc); and the target mean (the intercept)."""
    n, d = z.shape
    y_mean = y.mean(axis=0, keepdims=True)
    yc = y - y_mean
    if d <= n:
        return (
            jnp.matmul(z.T, z, precision=_HIGHEST),
            jnp.matmul(z.T, yc, precision=_HIGHEST),
            y_mean,
        )
    return jnp.matmul(z, z.T, precision=_HIGHEST), yc, y_mean


def _weights(z: jax.Array, solution: jax.Array) -> jax.Array:
    """Primal solutions are the weights; dual ones (n x k) map back through Z'."""
    n, d = z.shape
    return solution if d <= n else jnp.matmul(z.T, solution, precision=_HIGHEST)


def _accuracy(z: jax.Array, labels: jax.Array, weights: jax.Array, y_mean: jax.Array) -> jax.Array:
    """Fraction of `labels` a probe gets right on standardised features (argmax of scores)."""
    scores = jnp.matmul(z, weights, precision=_HIGHEST) + y_mean
    return jnp.mean(jnp.argmax(scores, axis=-1) == labels)


@functools.partial(jax.jit, static_argnames=("n_val", "n_select"))
def _probe_systems(
    x: jax.Array, onehot: jax.Array, order: jax.Array, n_val: int, n_select: int
) -> dict[str, Any]:
    """Standardise the training features once; the full system and, for choosing the penalty,
    the system of the fit split (`order[n_val:n_select]`) and the hold-out (`order[:n_val]`)."""
    z, mean, std = _standardise(x)
    out: dict[str, Any] = {"z": z, "mean": mean, "std": std, "full": _system(z, onehot)}
    if n_val:
        fit = z[order[n_val:n_select]]
        out["fit"] = fit
        out["fit_system"] = _system(fit, onehot[order[n_val:n_select]])
        out["val"] = z[order[:n_val]]
    return out


@jax.jit
def _holdout_accuracies(
    fit: jax.Array, val: jax.Array, val_labels: jax.Array, solutions: jax.Array, y_mean: jax.Array
) -> jax.Array:
    """Hold-out accuracy of each of R stacked solutions [R, ., k]."""
    return jax.vmap(lambda sol: _accuracy(val, val_labels, _weights(fit, sol), y_mean))(solutions)


@jax.jit
def _final_accuracies(
    z: jax.Array,
    labels: jax.Array,
    x_test: jax.Array,
    test_labels: jax.Array,
    mean: jax.Array,
    std: jax.Array,
    solution: jax.Array,
    y_mean: jax.Array,
) -> jax.Array:
    """[train accuracy, test accuracy] of the refitted probe."""
    weights = _weights(z, solution)
    return jnp.stack(
        [
            _accuracy(z, labels, weights, y_mean),
            _accuracy((x_test - mean) / std, test_labels, weights, y_mean),
        ]
    )


@jax.jit
def _device_solve(lhs: jax.Array, rhs: jax.Array, shift: jax.Array) -> jax.Array:
    eye = jnp.eye(lhs.shape[0], dtype=lhs.dtype)
    return jax.scipy.linalg.solve(lhs + shift * eye, rhs, assume_a="pos")


def _solve_shifted(lhs: jax.Array, rhs: jax.Array, shifts: Sequence[float]) -> jax.Array:
    """Solutions of (lhs + shift I) x = rhs (symmetric positive definite), stacked over shifts:
    NumPy's LAPACK in float64 on CPU, jax.scipy on an accelerator.

    Measured with jaxlib 0.10 / NumPy 2 on a 2-core CPU, d = 1024: XLA:CPU's Cholesky takes
    seconds, SciPy's bundled LAPACK 1.4 s, `numpy.linalg.solve` 0.23 s; so CPU systems go to
    NumPy.
    """
    if all(dev.platform == "cpu" for dev in lhs.devices()):
        a, b = np.asarray(lhs, np.float64), np.asarray(rhs, np.float64)
        eye = np.eye(len(a))
        sols = [np.linalg.solve(a + shift * eye, b) for shift in shifts]
        return jnp.asarray(np.stack(sols), jnp.float32)
    return jnp.stack([_device_solve(lhs, rhs, jnp.float32(shift)) for shift in shifts])


RIDGE_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


def fit_ridge_probe(
    train_x: Any,
    train_y: Any,
    test_x: Any,
    test_y: Any,
    *,
    ridge: float | Sequence[float] = RIDGE_GRID,
    holdout: float = 0.5,
    select_examples: int = 4000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(train accuracy, test accuracy, ridge used) of a ridge classifier on one-hot targets.

    Minimises mean |ZW - Y|^2 + ridge |W|^2 on standardised features Z (training statistics),
    solving the smaller of the primal (d x d) and dual (n x n) systems. With several `ridge`
    values, a random `select_examples` of the training images are split (1 - holdout) : holdout,
    each penalty is fitted on the first part and scored on the second, and the best (the larger
    on a tie) is refitted on the whole training set: one large solve per layer, however many
    penalties. The test set is only scored.
    """
    ytr = np.asarray(train_y, np.int32).reshape(-1)
    yte = np.asarray(test_y, np.int32).reshape(-1)
    ridges = [float(ridge)] if isinstance(ridge, (int, float)) else [float(r) for r in ridge]
    if not ridges or min(ridges) <= 0:
        raise ValueError(f"ridge penalties must be positive, got {ridge!r}")
    k = max(int(ytr.max(initial=0)), int(yte.max(initial=0)), 1) + 1
    n = len(ytr)
    n_select = min(n, max(select_examples, 2))
    n_val = round(n_select * holdout) if len(ridges) > 1 else 0
    if not 0 < n_val < n_select:
        n_val = 0
    order = np.random.default_rng(seed).permutation(n).astype(np.int32)
    onehot = np.eye(k, dtype=np.float32)[ytr]
    sys = _probe_systems(
        jnp.asarray(train_x, jnp.float32), jnp.asarray(onehot), order, n_val, n_select
    )
    chosen = ridges[0]
    if n_val:
        fit = sys["fit"]
        lhs, rhs, y_mean = sys["fit_system"]
        solutions = _solve_shifted(lhs, rhs, [r * len(fit) for r in ridges])
        scores = np.asarray(
            _holdout_accuracies(fit, sys["val"], ytr[order[:n_val]], solutions, y_mean)
        )
        chosen = max(r for r, sc in zip(ridges, scores, strict=True) if sc == scores.max())
    lhs, rhs, y_mean = sys["full"]
    solution = _solve_shifted(lhs, rhs, [chosen * n])[0]
    acc = _final_accuracies(
        sys["z"],
        ytr,
        jnp.asarray(test_x, jnp.float32),
        yte,
        sys["mean"],
        sys["std"],
        solution,
        y_mean,
    )
    train_acc, test_acc = np.asarray(acc).tolist()
    return float(train_acc), float(test_acc), chosen


def _ridge_fit(x: Any, y: Any, ridge: float) -> tuple[jax.Array, ...]:
    """Ridge regression of targets `y` on standardised `x` with one penalty: (mean, std,
    weights, y_mean); predict with ((x - mean) / std) @ weights + y_mean."""
    out = _probe_systems(
        jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), np.zeros(1, np.int32), 0, 0
    )
    lhs, rhs, y_mean = out["full"]
    solution = _solve_shifted(lhs, rhs, [ridge * len(out["z"])])[0]
    return out["mean"], out["std"], _weights(out["z"], solution), y_mean


def linear_probes(
    model: SpecModel,
    variables: dict[str, Any],
    train_images: Any,
    train_labels: Any,
    test_images: Any,
    test_labels: Any,
    *,
    layers: Sequence[str] | None = None,
    pool_to: int | None = None,
    ridge: float | Sequence[float] = RIDGE_GRID,
    max_features: int = 8192,
    batch_size: int = 256,
) -> list[ProbeResult]:
    """Fit a linear classifier on each frozen layer's activations; score it on the test images.

    The first row is the raw input ("input"). Each layer's activations are flattened (spatial
    maps first average-pooled to at most `pool_to` x `pool_to` when given), standardised, and
    reduced below `max_features` values (average pooling of spatial maps, else a signed random
    projection; the result's `reduction` says which). The probe is closed-form ridge regression
    on one-hot targets, solved on the smaller of the primal (d x d) and dual (n x n) systems;
    its penalty (per example, on standardised features) is `ridge`, or the best of several on a
    hold-out split of (up to 4,000) training images (`fit_ridge_probe`), so that wide layers are
    not judged by an over-fitted probe.
    """
    spec = model.spec
    report = analyze(spec)
    names = [INPUT, *_layer_names(spec, None)] if layers is None else list(layers)
    xtr = as_images(train_images, spec)
    xte = as_images(test_images, spec)
    ytr = np.asarray(train_labels, np.int32).reshape(-1)
    yte = np.asarray(test_labels, np.int32).reshape(-1)
    if len(ytr) != len(xtr) or len(yte) != len(xte):
        raise ValueError("each image needs one label")
    by_name = {r.name: (i, r) for i, r in enumerate(report.layers)}
    in_values = math.prod(spec.input_shape)
    results = []
    for name in names:
        t0 = time.perf_counter()
        if name == INPUT:
            shape: tuple[int, ...] = tuple(spec.input_shape)
            spatial: tuple[int, int, int] | None = spec.input_shape
        elif name in by_name:
            i, r = by_name[name]
            shape = tuple(r.output_shape)
            spatial = None
            if len(shape) == 3:
                spatial = shape  # type: ignore[assignment]
            elif isinstance(spec.layers[i], Flatten) and len(r.input_shape) == 3:
                spatial = r.input_shape  # type: ignore[assignment]  # pool before flattening
        else:
            raise ValueError(f"unknown layer {name!r}; layers: input, {', '.join(by_name)}")
        plan = _plan_reduction(shape, spatial, pool_to, max_features)

        def features(xb: jax.Array, name: str = name, plan: _Reduction = plan) -> jax.Array:
            return _probe_features(model, variables, xb, name, plan)

        ftr = _batched(features, xtr, batch_size)  # numpy [n, bucket(features)]
        fte = _batched(features, xte, batch_size)
        train_acc, test_acc, chosen = fit_ridge_probe(ftr, ytr, fte, yte, ridge=ridge)
        values = math.prod(shape)
        results.append(
            ProbeResult(
                layer=name,
                shape=shape,
                values=values,
                values_fraction=values / in_values,
                features=plan.features,
                reduction=plan.text,
                train_acc=train_acc,
                test_acc=test_acc,
                ridge=chosen,
                seconds=time.perf_counter() - t0,
            )
        )
    return results


def probe_table(probes: Sequence[ProbeResult], report: NetReport | None = None) -> str:
    """The probes as a Markdown table (with receptive fields when the analytic report is given)."""
    rows = [
        "| layer | output | values kept (of input) | receptive field | features probed "
        "| ridge | probe train acc | probe test acc |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rfs: dict[str, str] = {INPUT: "1x1"}
    if report is not None:
        for r in report.layers:
            rf = r.receptive_field
            rfs[r.name] = "global" if r.is_global else f"{rf[0]}x{rf[1]}"
    for p in probes:
        feat = f"{p.features:,}" + ("" if p.reduction == "none" else f" ({p.reduction})")
        rows.append(
            f"| {p.layer} | {'x'.join(map(str, p.shape))} | {p.values:,} "
            f"({p.values_fraction:.3g}x) | {rfs.get(p.layer, '-')} | {feat} | {p.ridge:g} "
            f"| {p.train_acc:.4f} | {p.test_acc:.4f} |"
        )
    return "\n".join(rows)
