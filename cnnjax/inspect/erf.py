"""The effective receptive field (Luo et al., "Understanding the Effective Receptive Field in
Deep Convolutional Neural Networks", NeurIPS 2016): the mean |d out[unit] / d input| over
images, computed by one `jax.vjp` per batch, beside the analytic receptive field.

Its support never leaves the analytic window (tests/test_inspect.py checks it). The heat maps
are drawn by `cnnjax.plots.plot_erf`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.analysis import LayerReport, NetReport, receptive_window
from cnnjax.errors import InspectError
from cnnjax.inspect.common import (
    activations,
    as_images,
    batched,
    input_shape_of,
    known_layers,
    layer_names,
    predict,
    report_of,
    weighted_batches,
)
from cnnjax.results import ErfResult, Unit


def default_erf_layer(report: NetReport, known: Sequence[str] | None = None) -> LayerReport:
    """The last spatial layer (whose units have the largest finite fields), else the last layer;
    among the `known` ones (those whose activations can be read) when given."""
    rows = [r for r in report.layers if known is None or r.name in known]
    spatial = [r for r in rows if not r.is_global and r.receptive_field is not None]
    return spatial[-1] if spatial else rows[-1]


def _stopped(report: NetReport) -> str:
    stopped = getattr(report, "stopped", None)
    return f"the analysis stopped at {stopped}" if stopped else "not a spatial layer"


# --------------------------------------------------------------------------- gradients


@functools.partial(jax.jit, static_argnames=("model", "layers"))
def _erf_maps(
    model: Any,
    variables: dict[str, Any],
    x: jax.Array,
    weight: jax.Array,
    units: jax.Array,
    targets: jax.Array,
    layers: tuple[str, ...],
) -> jax.Array:
    """[L, H, W]: summed |d out / d x| for one unit of each layer, from one forward pass and
    one compiled program: of spatial layer l, the sum of unit (units[l, 0], units[l, 1])'s
    channels (as Luo et al.); of a vector layer, unit `targets[n]` for image n (the last
    layer's output is the logits, so a class logit is a target of the last layer).

    The units are traced, so one compiled function serves every unit; `weight` masks padding.
    """

    def forward(inp: jax.Array) -> tuple[jax.Array, ...]:
        _, acts = activations(model, variables, inp)
        return tuple(acts[name] for name in layers)

    outs, pullback = jax.vjp(forward, x)
    maps = []
    for i, out in enumerate(outs):
        if out.ndim == 4:
            rows = jnp.arange(out.shape[1]) == units[i, 0]
            cols = jnp.arange(out.shape[2]) == units[i, 1]
            mask = (rows[None, :, None, None] & cols[None, None, :, None]).astype(out.dtype)
            cot = jnp.broadcast_to(mask, out.shape)
        else:
            cot = jax.nn.one_hot(targets, out.shape[-1], dtype=out.dtype)
        cot = cot * weight.reshape((-1,) + (1,) * (out.ndim - 1)).astype(out.dtype)
        (grad,) = pullback(tuple(cot if j == i else jnp.zeros_like(o) for j, o in enumerate(outs)))
        maps.append(jnp.abs(grad.astype(jnp.float32)).sum(axis=(0, 3)))
    return jnp.stack(maps)


@functools.partial(jax.jit, static_argnames=("model",))
def _predicted(model: Any, variables: dict[str, Any], x: jax.Array) -> jax.Array:
    """Each image's predicted class (the argmax of the logits)."""
    logits = cast(jax.Array, predict(model, variables, x))
    return jnp.argmax(logits, axis=-1)


# --------------------------------------------------------------------------- measures


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
        raise InspectError(f"a unit of spatial layer {lr.name} is a (row, col) pair, got {unit}")
    row, col = int(unit[0]), int(unit[1])
    if not (0 <= row < oh and 0 <= col < ow):
        raise InspectError(f"unit {(row, col)} is outside {lr.name}'s {oh}x{ow} map")
    return (row, col)


def _erf_result(
    total: np.ndarray,
    layer: str,
    unit: Unit,
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


def _erf_sums(
    model: Any,
    variables: dict[str, Any],
    x: np.ndarray,
    layers: tuple[str, ...],
    units: list[tuple[int, int]],
    targets: np.ndarray,
    batch_size: int,
) -> np.ndarray:
    """`_erf_maps` summed over all of `x` in padded batches, in float64: [L, H, W]."""
    unit_array = jnp.asarray(units, jnp.int32)
    sums = [
        _erf_maps(model, variables, xb, wb, unit_array, tb, layers)
        for xb, tb, wb in weighted_batches(x, targets.astype(np.int32), batch_size=batch_size)
    ]
    return np.sum([np.asarray(a, np.float64) for a in sums], axis=0)


# --------------------------------------------------------------------------- public


def effective_receptive_field(
    model: Any,
    variables: dict[str, Any],
    images: Any,
    layer: str | None = None,
    *,
    unit: Unit | None = None,
    labels: Any = None,
    batch_size: int = 128,
) -> ErfResult:
    """The effective receptive field of one unit of `layer`, averaged over `images`.

    Spatial layer: the unit defaults to the centre ((H - 1) // 2, (W - 1) // 2) and the gradient
    of the sum of its channels is taken (Luo et al.). Global layer (flatten, dense, ...) with no
    `unit`: the logit of each image's true class when `labels` are given, else of its predicted
    class; an int `unit` picks that unit of the named global layer instead.
    """
    shape = input_shape_of(model, images)
    report = report_of(model, shape)
    known = known_layers(model, shape)
    if layer is not None:
        layer_names(known, layer)  # a clear error for an unknown name
    lr = report.layer(layer) if layer is not None else default_erf_layer(report, known)
    if not lr.is_global and lr.receptive_field is None:
        raise InspectError(f"{lr.name} has no analytic receptive field ({_stopped(report)})")
    x = as_images(images, shape)
    if not lr.is_global:
        cell = _spatial_unit(lr, unit)
        total = _erf_sums(
            model, variables, x, (lr.name,), [cell], np.zeros(len(x), np.int32), batch_size
        )
        return _erf_result(
            total[0], lr.name, cell, receptive_window(lr, *cell), lr.receptive_field, len(x)
        )
    h, w = shape[:2]
    if unit is None or unit in ("class", "predicted", "true"):
        target_layer = known[-1]
        if labels is not None:
            unit = "true class logit"
            targets = np.asarray(labels, np.int32).reshape(-1)
            if len(targets) != len(x):
                raise InspectError(f"{len(x)} images but {len(targets)} labels")
        else:
            unit = "predicted class logit"
            targets = batched(lambda xb: _predicted(model, variables, xb), x, batch_size)
    else:
        if isinstance(unit, (tuple, str)) or not 0 <= int(unit) < lr.output_shape[-1]:
            raise InspectError(f"a unit of {lr.name} is an index below {lr.output_shape[-1]}")
        unit = int(unit)
        target_layer = lr.name
        targets = np.full(len(x), unit, np.int32)
    total = _erf_sums(model, variables, x, (target_layer,), [(0, 0)], targets, batch_size)
    return _erf_result(total[0], target_layer, unit, (0, h - 1, 0, w - 1), (h, w), len(x))


def erf_per_layer(
    model: Any,
    variables: dict[str, Any],
    images: Any,
    *,
    units: dict[str, tuple[int, int]] | None = None,
    batch_size: int = 128,
) -> list[ErfResult]:
    """The effective receptive field of one unit (default: the centre) of every spatial layer,
    in network order, from one compiled program."""
    shape = input_shape_of(model, images)
    known = set(known_layers(model, shape))
    spatial = [
        r
        for r in report_of(model, shape).layers
        if not r.is_global and r.receptive_field is not None and r.name in known
    ]
    if not spatial:
        return []
    x = as_images(images, shape)
    chosen = [_spatial_unit(r, (units or {}).get(r.name)) for r in spatial]
    names = tuple(r.name for r in spatial)
    total = _erf_sums(model, variables, x, names, chosen, np.zeros(len(x), np.int32), batch_size)
    return [
        _erf_result(total[i], r.name, u, receptive_window(r, *u), r.receptive_field, len(x))
        for i, (r, u) in enumerate(zip(spatial, chosen, strict=True))
    ]
