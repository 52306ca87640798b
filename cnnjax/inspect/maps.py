"""Feature maps: the activations of any layer for chosen images, captured from the model's
"intermediates" collection (a cnnjax model's layers, or any Flax module's submodules and sown
values), one jitted forward pass per batch.

The figures are drawn by `cnnjax.plots.save_feature_maps` and `cnnjax.plots.save_filters`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from cnnjax.analysis import LayerReport, analyze
from cnnjax.errors import InspectError
from cnnjax.inspect import common
from cnnjax.spec import Conv, DepthwiseConv, NetSpec


@functools.partial(jax.jit, static_argnames=("model", "names"))
def _capture(
    model: Any, variables: dict[str, Any], x: jax.Array, names: tuple[str, ...]
) -> dict[str, jax.Array]:
    """The named layers' outputs for a batch (XLA drops every layer after the last asked)."""
    _, acts = common.activations(model, variables, x)
    return {n: acts[n] for n in names}


def feature_maps(
    model: Any,
    variables: dict[str, Any],
    images: Any,
    layers: Sequence[str] | str | None = None,
    *,
    batch_size: int = 256,
) -> dict[str, np.ndarray]:
    """Each chosen layer's activations (eval mode) for `images`, as numpy arrays [N, ...].

    `model` is a cnnjax model or any Flax module; a module's layers are its report's rows
    (`cnnjax.analyze(module, input_shape=...)`) that are submodule outputs or sown values.
    """
    shape = common.input_shape_of(model, images)
    names = tuple(common.layer_names(common.known_layers(model, shape), layers))
    x = common.as_images(images, shape)
    out = common.batched(lambda xb: _capture(model, variables, xb, names), x, batch_size)
    return {n: out[n] for n in names}


def first_conv(spec: NetSpec) -> LayerReport:
    """The report of the spec's first convolution (its filters look at raw pixels)."""
    report = analyze(spec)
    for node, r in zip(spec.nodes(), report.layers, strict=True):
        if isinstance(node.layer, (Conv, DepthwiseConv)):
            return r
    raise InspectError(f"{spec.name or 'the spec'} has no convolution, so no filters to draw")
