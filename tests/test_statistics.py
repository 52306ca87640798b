"""`cnnjax.metrics.mean_std_ci` against scipy.stats: the 95% interval over k seeds is Student's
t with k - 1 degrees of freedom, smooth across 30 -> 31 dof (the old table jumped from 2.042
to 1.960 there)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from cnnjax.metrics import mean_std_ci


@pytest.mark.parametrize("k", [2, 3, 5, 31, 40])
def test_ci_is_scipys_student_t_interval(k):
    values = np.random.default_rng(k).normal(0.9, 0.02, k)
    out = mean_std_ci(values.tolist())
    sem = stats.sem(values)  # sample std (ddof=1) / sqrt(k)
    low, high = stats.t.interval(0.95, df=k - 1, loc=values.mean(), scale=sem)
    assert out["n"] == k
    assert out["mean"] == pytest.approx(values.mean(), rel=1e-12)
    assert out["std"] == pytest.approx(values.std(ddof=1), rel=1e-12)
    assert out["ci95"] == pytest.approx((high - low) / 2, rel=1e-9)
    assert out["mean"] - out["ci95"] == pytest.approx(low, rel=1e-9)


def test_ci_has_no_jump_between_30_and_31_degrees_of_freedom():
    """Half-width / (std / sqrt(k)) is the t quantile: 2.042 at 30 dof, 2.040 at 31 (not 1.960)."""
    values = [0.0, 1.0]

    def quantile(k: int) -> float:
        out = mean_std_ci(values * (k // 2) + values[: k % 2])
        return out["ci95"] / (out["std"] / math.sqrt(k))

    assert quantile(31) == pytest.approx(2.0423, abs=1e-4)
    assert quantile(32) == pytest.approx(2.0395, abs=1e-4)
    assert quantile(31) - quantile(32) < 0.01


def test_one_value_has_no_interval():
    out = mean_std_ci([0.5])
    assert out == {"mean": 0.5, "std": 0.0, "ci95": out["ci95"], "n": 1}
    assert math.isnan(out["ci95"])
