"""Per-epoch history and the statistics printed beside an accuracy (no JAX import).

`History` is what `fit` returns and what a run directory's metrics.jsonl holds; `mean_std_ci`
gives the mean ± 95% confidence half-width over seeds with Student's t from scipy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class History:
    """Per-epoch metrics, as Keras's `History.history` but one dict per epoch.

    Each record has `epoch` (1-based), `loss`, `accuracy`, `val_loss`, `val_accuracy`,
    `seconds`, `images_per_second`; in a k-seed run every metric is a list of k floats.
    """

    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def history(self) -> dict[str, list[Any]]:
        """Keras layout: metric name -> list over epochs."""
        keys = [k for k in (self.records[0] if self.records else {}) if k != "epoch"]
        return {k: [r.get(k) for r in self.records] for k in keys}

    def last(self, key: str) -> Any:
        return self.records[-1][key] if self.records else None

    def __len__(self) -> int:
        return len(self.records)


def t_quantile_975(dof: int) -> float:
    """The 97.5% quantile of Student's t with `dof` degrees of freedom (two-sided 95%)."""
    from scipy import stats

    return float(stats.t.ppf(0.975, dof))


def mean_std_ci(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation and the 95% confidence half-width (Student t)."""
    arr = np.asarray(values, dtype=np.float64)
    k = arr.size
    mean = float(arr.mean())
    if k < 2:
        return {"mean": mean, "std": 0.0, "ci95": float("nan"), "n": k}
    std = float(arr.std(ddof=1))
    return {"mean": mean, "std": std, "ci95": t_quantile_975(k - 1) * std / math.sqrt(k), "n": k}
