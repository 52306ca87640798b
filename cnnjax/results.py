"""What `cnnjax.inspect` returns and `cnnjax.plots` draws: plain data (NumPy arrays and numbers,
no JAX), in a module of its own so that plots can take these results without importing inspect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Unit = tuple[int, int] | int | str  # (row, col) of a spatial layer, an index, or a logit's name


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
    unit: Unit
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
