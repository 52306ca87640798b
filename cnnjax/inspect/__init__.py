"""Look inside a network: feature maps, effective receptive fields and per-layer linear probes.

One module per tool, all re-exported here:

- `feature_maps`, `first_conv` (`cnnjax.inspect.maps`): the activations of any layer for chosen
  images, one jitted forward pass per batch.
- `effective_receptive_field`, `erf_per_layer` (`cnnjax.inspect.erf`): the mean
  |d out[unit] / d input| over images by `jax.vjp` (Luo et al. 2016), beside the analytic
  receptive field.
- `linear_probes` (`cnnjax.inspect.probes`, solver in `cnnjax.inspect.ridge`): a closed-form
  ridge classifier on each frozen layer's activations, scored on held-out images.

These functions compute numbers and never draw: the figures are `cnnjax.plots`, which takes
their results. The result types (`ErfResult`, `ProbeResult`) are plain data defined in
`cnnjax.results`, which both import: plots never import inspect, inspect never imports plots.
"""

from __future__ import annotations

from typing import Any

from cnnjax.errors import InspectError
from cnnjax.inspect.common import as_images
from cnnjax.inspect.erf import (
    centred_square_side,
    default_erf_layer,
    effective_receptive_field,
    erf_per_layer,
)
from cnnjax.inspect.maps import feature_maps, first_conv
from cnnjax.inspect.probes import INPUT, linear_probes, probe_table
from cnnjax.inspect.ridge import RIDGE_GRID, fit_ridge_probe, ridge_regression
from cnnjax.results import ErfResult, ProbeResult

__all__ = [
    "INPUT",
    "RIDGE_GRID",
    "ErfResult",
    "InspectError",
    "ProbeResult",
    "as_images",
    "centred_square_side",
    "default_erf_layer",
    "effective_receptive_field",
    "erf_per_layer",
    "feature_maps",
    "first_conv",
    "fit_ridge_probe",
    "linear_probes",
    "probe_table",
    "ridge_regression",
]

_MOVED_TO_PLOTS = {
    "save_feature_maps": "cnnjax.plots.save_feature_maps(maps, path, ...)",
    "save_filters": "cnnjax.plots.save_filters(variables, cnnjax.inspect.first_conv(spec), path)",
    "save_erf": "cnnjax.plots.plot_erf(results, path, image_shape, ...)",
}


def __getattr__(name: str) -> Any:
    """The drawing helpers moved to `cnnjax.plots`: say where, instead of a bare AttributeError."""
    if name in _MOVED_TO_PLOTS:
        raise AttributeError(
            f"cnnjax.inspect.{name} moved to cnnjax.plots: use {_MOVED_TO_PLOTS[name]}"
        )
    raise AttributeError(f"module 'cnnjax.inspect' has no attribute {name!r}")
