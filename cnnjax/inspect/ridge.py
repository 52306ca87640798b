"""Closed-form ridge regression on standardised features, the solver behind the linear probes.

Minimises mean |ZW - Y|^2 + ridge |W|^2 on features Z standardised with the training
statistics, solving the smaller of the primal (d x d) and dual (n x n) systems; Gram matrices at
full float32 precision, the solve in float64 on CPU. tests/test_probe_oracle.py checks it
against scikit-learn's `Ridge`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.errors import InspectError

RIDGE_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
_HIGHEST = jax.lax.Precision.HIGHEST  # no TF32 / bf16 passes in the Gram matrices


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


@jax.jit
def _full_system(x: jax.Array, y: jax.Array) -> dict[str, Any]:
    """Standardise the training features once and build the whole set's system."""
    z, mean, std = _standardise(x)
    return {"z": z, "mean": mean, "std": std, "full": _system(z, y)}


@jax.jit
def _split_system(
    z: jax.Array, onehot: jax.Array, fit_rows: jax.Array, val_rows: jax.Array
) -> dict[str, Any]:
    """For choosing the penalty: the system of the fit rows and the hold-out rows' features."""
    fit = z[fit_rows]
    return {"fit": fit, "fit_system": _system(fit, onehot[fit_rows]), "val": z[val_rows]}


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


def ridge_regression(x: Any, y: Any, ridge: float) -> tuple[jax.Array, ...]:
    """Ridge regression of targets `y` [n, k] on standardised `x` [n, d] with one penalty:
    (mean, std, weights, y_mean); predict with ((x - mean) / std) @ weights + y_mean.

    The same fit as scikit-learn's `Ridge(alpha=ridge * n)` on `StandardScaler` features.
    """
    sys = _full_system(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32))
    lhs, rhs, y_mean = sys["full"]
    solution = _solve_shifted(lhs, rhs, [ridge * len(sys["z"])])[0]
    return sys["mean"], sys["std"], _weights(sys["z"], solution), y_mean


def _ridges(ridge: float | Sequence[float]) -> list[float]:
    """The penalties to try, validated."""
    ridges = [float(ridge)] if isinstance(ridge, (int, float)) else [float(r) for r in ridge]
    if not ridges or min(ridges) <= 0:
        raise InspectError(f"ridge penalties must be positive, got {ridge!r}")
    return ridges


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

    With several `ridge` values, a random `select_examples` of the training images are split
    (1 - holdout) : holdout, each penalty is fitted on the first part and scored on the second,
    and the best (the larger on a tie) is refitted on the whole training set: one large solve
    per layer, however many penalties. The test set is only scored.
    """
    ytr = np.asarray(train_y, np.int32).reshape(-1)
    yte = np.asarray(test_y, np.int32).reshape(-1)
    ridges = _ridges(ridge)
    k = max(int(ytr.max(initial=0)), int(yte.max(initial=0)), 1) + 1
    n = len(ytr)
    n_select = min(n, max(select_examples, 2))
    n_val = round(n_select * holdout) if len(ridges) > 1 else 0
    onehot = jnp.asarray(np.eye(k, dtype=np.float32)[ytr])
    sys = _full_system(jnp.asarray(train_x, jnp.float32), onehot)
    chosen = ridges[0]
    if 0 < n_val < n_select:
        order = np.random.default_rng(seed).permutation(n).astype(np.int32)
        split = _split_system(sys["z"], onehot, order[n_val:n_select], order[:n_val])
        fit = split["fit"]
        lhs, rhs, y_mean = split["fit_system"]
        solutions = _solve_shifted(lhs, rhs, [r * len(fit) for r in ridges])
        scores = np.asarray(
            _holdout_accuracies(fit, split["val"], ytr[order[:n_val]], solutions, y_mean)
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
