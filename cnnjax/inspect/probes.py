"""Per-layer linear probes: freeze the network, fit a closed-form ridge classifier
(`cnnjax.inspect.ridge`) on each layer's flattened activations, and score it on held-out images.

The measured answer to "less data, more accuracy": the values a layer keeps fall while the
class information a linear classifier reads off it rises. `cnnjax.plots.plot_values_vs_probe`
draws the two side by side.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax import markdown
from cnnjax.analysis import NetReport
from cnnjax.errors import InspectError
from cnnjax.inspect import common
from cnnjax.inspect.ridge import RIDGE_GRID, fit_ridge_probe
from cnnjax.results import ProbeResult

INPUT = "input"  # the name of the raw-input row of a probe table
_HIGHEST = jax.lax.Precision.HIGHEST  # no TF32 / bf16 passes when pooling the features
_BUCKET = 512  # probe feature widths are padded to a multiple of this (fewer compilations)


# --------------------------------------------------------------------------- features


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
    model: Any, variables: dict[str, Any], x: jax.Array, layer: str, plan: _Reduction
) -> jax.Array:
    """One batch's probe features of `layer` (or of the raw input), zero-padded to a bucket.

    Zero columns change nothing: standardisation leaves them zero and the ridge penalty keeps
    their weights at zero (primal), or they add nothing to the kernel (dual).
    """
    if layer == INPUT:
        a = _reduce(x, plan)
    else:
        _, acts = common.activations(model, variables, x)
        a = _reduce(acts[layer], plan)
    return jnp.pad(a, ((0, 0), (0, _bucket(plan.features) - plan.features)))


def _layer_shapes(
    input_shape: tuple[int, ...], name: str, report: NetReport
) -> tuple[tuple[int, ...], tuple[int, int, int] | None]:
    """(output shape, the H x W x C map to pool before flattening, or None) of a probed layer."""
    if name == INPUT:
        return tuple(input_shape), (input_shape[0], input_shape[1], input_shape[2])
    by_name = {r.name: r for r in report.layers}
    if name not in by_name:
        raise InspectError(f"unknown layer {name!r}; layers: input, {', '.join(by_name)}")
    r = by_name[name]
    shape = tuple(r.output_shape)
    if len(shape) == 3:
        return shape, (shape[0], shape[1], shape[2])
    if r.type == "flatten" and len(r.input_shape) == 3:
        h, w, c = r.input_shape
        return shape, (h, w, c)  # pool before flattening
    return shape, None


# --------------------------------------------------------------------------- public


def linear_probes(
    model: Any,
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
    shape = common.input_shape_of(model, train_images)
    report = common.report_of(model, shape)
    known = common.known_layers(model, shape)
    names = [INPUT, *known] if layers is None else list(layers)
    common.layer_names(known, [n for n in names if n != INPUT])  # a clear error for an unknown name
    xtr = common.as_images(train_images, shape)
    xte = common.as_images(test_images, shape)
    ytr = np.asarray(train_labels, np.int32).reshape(-1)
    yte = np.asarray(test_labels, np.int32).reshape(-1)
    if len(ytr) != len(xtr) or len(yte) != len(xte):
        raise InspectError(
            f"each image needs one label: {len(xtr)} training images, {len(ytr)} labels; "
            f"{len(xte)} test images, {len(yte)} labels"
        )
    in_values = math.prod(shape)
    results = []
    for name in names:
        t0 = time.perf_counter()
        out_shape, spatial = _layer_shapes(shape, name, report)
        plan = _plan_reduction(out_shape, spatial, pool_to, max_features)

        def features(xb: jax.Array, name: str = name, plan: _Reduction = plan) -> jax.Array:
            return _probe_features(model, variables, xb, name, plan)

        ftr = common.batched(features, xtr, batch_size)  # numpy [n, bucket(features)]
        fte = common.batched(features, xte, batch_size)
        train_acc, test_acc, chosen = fit_ridge_probe(ftr, ytr, fte, yte, ridge=ridge)
        values = math.prod(out_shape)
        results.append(
            ProbeResult(
                layer=name,
                shape=out_shape,
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
    header = (
        "layer",
        "output",
        "values kept (of input)",
        "receptive field",
        "features probed",
        "ridge",
        "probe train acc",
        "probe test acc",
    )
    rows = []
    rfs: dict[str, str] = {INPUT: "1x1"}
    if report is not None:
        for r in report.layers:
            rf = r.receptive_field
            rfs[r.name] = "global" if r.is_global else f"{rf[0]}x{rf[1]}"
    for p in probes:
        feat = f"{p.features:,}" + ("" if p.reduction == "none" else f" ({p.reduction})")
        rows.append(
            (
                p.layer,
                "x".join(map(str, p.shape)),
                f"{p.values:,} ({p.values_fraction:.3g}x)",
                rfs.get(p.layer, "-"),
                feat,
                f"{p.ridge:g}",
                f"{p.train_acc:.4f}",
                f"{p.test_acc:.4f}",
            )
        )
    return markdown.table(header, rows)
