"""Helpers for the laws that measure receptive fields by gradient support."""

from __future__ import annotations

import jax

from cnnjax.analysis import receptive_window


def positive_params(variables, key):
    """Uniform [0.1, 1) params in the shapes of `variables`, so no gradient path cancels to zero
    (the receptive-field specs have no batch norm: only "params" is kept)."""
    leaves, treedef = jax.tree_util.tree_flatten(variables.get("params", {}))
    keys = jax.random.split(key, len(leaves))
    new = [
        jax.random.uniform(k, leaf.shape, minval=0.1, maxval=1.0)
        for k, leaf in zip(keys, leaves, strict=True)
    ]
    return {"params": jax.tree_util.tree_unflatten(treedef, new)}


def inside_unit(report_layer, h, w):
    """An output unit (centre first) whose analytic window lies wholly inside the H x W input,
    or None."""
    oh, ow = report_layer.output_shape[:2]
    units = sorted(
        ((i, j) for i in range(oh) for j in range(ow)),
        key=lambda u: (abs(u[0] - oh // 2) + abs(u[1] - ow // 2), u),
    )
    for i, j in units:
        top, bottom, left, right = receptive_window(report_layer, i, j)
        if top >= 0 and left >= 0 and bottom < h and right < w:
            return i, j
    return None
