"""The ridge probe against oracles: the closed form (Z'Z + n*ridge I)^-1 Z'(Y - mean Y) in
float64, and scikit-learn's `Ridge` / `RidgeClassifier` on `StandardScaler` features (the
probe minimises the mean squared error, scikit-learn the sum: alpha = n * ridge)."""

from __future__ import annotations

import numpy as np
import pytest

from cnnjax.inspect import fit_ridge_probe, ridge_regression

pytest.importorskip("sklearn")
from sklearn.linear_model import Ridge, RidgeClassifier
from sklearn.preprocessing import StandardScaler


def _data(n: int, d: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, integer labels, one-hot targets): features of uneven scales and offsets, one
    constant column, labels that a linear readout can partly recover."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, d))
    labels = np.argmax(base[:, :k] + 0.5 * rng.standard_normal((n, k)), axis=1)
    scales = np.random.default_rng(0).uniform(0.2, 5.0, d)  # the same for every split
    x = base * scales + np.random.default_rng(1).uniform(-3, 3, d)
    x[:, -1] = 2.5  # constant: standardised to zero, its weight stays zero
    return x.astype(np.float32), labels.astype(np.int32), np.eye(k)[labels]


@pytest.mark.parametrize(("n", "d"), [(80, 12), (20, 50)], ids=["primal", "dual"])
@pytest.mark.parametrize("ridge", [1e-3, 0.1, 3.0])
def test_ridge_regression_matches_the_closed_form_and_sklearn(n, d, ridge):
    x, _, y = _data(n, d, 3, seed=n + d)
    mean, std, weights, y_mean = (np.asarray(a, np.float64) for a in ridge_regression(x, y, ridge))
    z = StandardScaler().fit_transform(x.astype(np.float64))
    np.testing.assert_allclose((x - mean) / std, z, atol=1e-4)  # the same standardisation
    closed = np.linalg.solve(z.T @ z + ridge * n * np.eye(d), z.T @ (y - y.mean(axis=0)))
    sk = Ridge(alpha=ridge * n, fit_intercept=True, solver="cholesky").fit(z, y)
    np.testing.assert_allclose(sk.coef_.T, closed, rtol=1e-8, atol=1e-10)  # the oracles agree
    scale = np.abs(closed).max()
    np.testing.assert_allclose(weights, closed, atol=1e-4 * scale)
    np.testing.assert_allclose(y_mean[0], sk.intercept_, atol=1e-6)
    x_new = _data(30, d, 3, seed=99)[0]
    z_new = (x_new - mean) / std
    np.testing.assert_allclose(z_new @ weights + y_mean, sk.predict(z_new), atol=1e-4)
    assert np.all(weights[-1] == 0.0)  # the constant column


@pytest.mark.parametrize(("n", "d"), [(200, 16), (40, 90)], ids=["primal", "dual"])
def test_probe_accuracies_match_sklearn_ridge_classifier(n, d):
    """One penalty (no hold-out): the probe's train and test accuracies are scikit-learn's.
    RidgeClassifier fits +-1 targets instead of 0/1 ones: the same argmax."""
    x, labels, _ = _data(n, d, 4, seed=1)
    x_test, test_labels, _ = _data(60, d, 4, seed=2)
    ridge = 0.05
    train_acc, test_acc, chosen = fit_ridge_probe(x, labels, x_test, test_labels, ridge=ridge)
    scaler = StandardScaler().fit(x.astype(np.float64))
    sk = RidgeClassifier(alpha=ridge * n, solver="cholesky").fit(scaler.transform(x), labels)
    assert chosen == ridge
    assert train_acc == pytest.approx(sk.score(scaler.transform(x), labels), abs=1e-6)
    assert test_acc == pytest.approx(sk.score(scaler.transform(x_test), test_labels), abs=1e-6)
    assert train_acc > 0.75 and test_acc > 0.25  # a real fit, above chance (0.25)
