"""Refuse a run that cannot fit in memory before anything is allocated.

The estimate is deliberately simple and errs on the generous side: the training state is the
parameters four times over (weights, gradients, and Adam's two moments) per seed; the
activations are every layer's values for one batch, twice (kept for the backward pass and its
gradients), per seed; the datasets sit on the device once. The analytic report gives the
parameter and activation counts of a cnnjax spec; a user's module gives its parameter count
(from an abstract `init`, no memory used) and no activation estimate. The budget is the
device's memory limit on GPU/TPU and the host's physical memory on CPU; a run estimated above
it is refused with the numbers, instead of hanging or dying in the allocator.
"""

from __future__ import annotations

import math
import os
from typing import Any

import jax

from cnnjax.analysis import analyze
from cnnjax.errors import TrainingError

STATE_COPIES = 4  # weights, gradients, two optimizer moments
BYTES = 4  # float32


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB"


def model_counts(model: Any) -> tuple[int, int]:
    """(parameters, activation values per example) of an engine `Model`."""
    if model.spec is not None:
        report = analyze(model.spec)
        values = sum(r.values for r in report.layers)
        return report.total_params, values
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0)))
    params = sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(variables))
    return params, 0


def device_budget(device: Any = None) -> int | None:
    """Bytes the device can hold: its memory limit (GPU/TPU), else the host's physical memory."""
    device = device or jax.devices()[0]
    stats = None
    try:
        stats = device.memory_stats()
    except Exception:  # some backends do not report
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(
    model: Any, batch_size: int, seeds: int, data_bytes: int, budget: int | None = None
) -> dict[str, int]:
    """The estimate in bytes; raise `TrainingError` when it exceeds the budget."""
    params, values = model_counts(model)
    estimate = {
        "state": params * BYTES * STATE_COPIES * seeds,
        "activations": values * batch_size * BYTES * 2 * seeds,
        "data": data_bytes,
    }
    need = sum(estimate.values())
    budget = device_budget() if budget is None else budget
    if budget is not None and need > budget:
        raise TrainingError(
            f"this run needs about {_gib(need)} but the device holds {_gib(budget)}: "
            f"{params:,} parameters x {STATE_COPIES} (weights, gradients, optimizer) x "
            f"{seeds} seed(s) = {_gib(estimate['state'])}, activations of a batch of "
            f"{batch_size} = {_gib(estimate['activations'])}, data {_gib(data_bytes)}. "
            "Use a smaller model, batch or number of seeds"
        )
    return estimate
