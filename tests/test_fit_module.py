"""fit / evaluate / load_run with a plain Flax Linen module (no cnnjax spec), and a user loss."""

from __future__ import annotations

import json

import flax.linen as nn
import jax
import numpy as np
import optax
import pytest

from cnnjax.errors import RunDirError, TrainingError
from cnnjax.train import FitConfig, as_model, evaluate, fit, load_run
from tests.test_train import SPEC, leaves, synthetic


class BnDropNet(nn.Module):
    """Batch norm and dropout, switched by a `train` flag."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(4, (3, 3), use_bias=False)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        x = nn.relu(x)
        x = x.reshape(x.shape[0], -1)
        x = nn.Dropout(0.2, deterministic=not train)(x)
        return nn.Dense(3)(x)


class NoFlagNet(nn.Module):
    """No train flag at all."""

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(4, (3, 3))(x))
        return nn.Dense(3)(x.reshape(x.shape[0], -1))


class DeterministicNet(nn.Module):
    """An inverted flag: `deterministic=False` while training."""

    @nn.compact
    def __call__(self, x, deterministic: bool = True):
        x = nn.relu(nn.Conv(4, (3, 3))(x)).reshape(x.shape[0], -1)
        return nn.Dense(3)(nn.Dropout(0.5, deterministic=deterministic)(x))


def arrays(n=192, seed=0):
    ds = synthetic(n, seed=seed)
    return ds.images, ds.labels


def test_user_module_with_batch_norm_and_dropout_learns_and_evaluates(tmp_path):
    train, val = arrays(), arrays(96, seed=1)
    cfg = FitConfig(epochs=2, batch_size=16)
    result = fit(BnDropNet(), train, validation=val, config=cfg, run_dir=tmp_path / "run")
    assert result.spec is None
    last = result.history.records[-1]
    assert last["val_accuracy"] > 0.8
    variables = result.variables_of(0)
    mean = np.asarray(jax.tree_util.tree_leaves(variables["batch_stats"])[0])
    assert np.abs(mean).sum() > 0, "running statistics were updated in training mode"
    metrics = evaluate(BnDropNet(), variables, val)
    assert metrics["accuracy"] == pytest.approx(last["val_accuracy"])
    assert metrics["examples"] == 96

    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["spec"] is None
    assert config["model"]["module"].endswith("BnDropNet")
    assert config["model"]["input_shape"] == [12, 12, 1]
    with pytest.raises(TrainingError, match=r"trained with a Flax module .*BnDropNet.*model="):
        load_run(tmp_path / "run")
    loaded = load_run(tmp_path / "run", model=BnDropNet())
    for x, y in zip(leaves(loaded.variables_of(0)), leaves(variables), strict=True):
        np.testing.assert_array_equal(x, y)


def test_modules_without_a_train_flag_or_with_an_inverted_one():
    assert as_model(NoFlagNet(), (12, 12, 1)).mode_arg is None
    det = as_model(DeterministicNet(), (12, 12, 1))
    assert (det.mode_arg, det.mode_inverted, det.output_shape) == ("deterministic", True, (3,))
    assert det._mode(True) == {"deterministic": False}
    for net in (NoFlagNet(), DeterministicNet()):
        result = fit(net, arrays(), config=FitConfig(epochs=2, batch_size=16), progress=False)
        first, last = result.history.records
        assert last["loss"] < first["loss"]


def test_resume_with_another_module_is_refused(tmp_path):
    run = tmp_path / "run"
    fit(NoFlagNet(), arrays(), config=FitConfig(epochs=1, batch_size=32), run_dir=run)
    with pytest.raises(RunDirError, match=r"cannot resume .*another model"):
        fit(
            DeterministicNet(),
            arrays(),
            config=FitConfig(epochs=2, batch_size=32),
            run_dir=run,
            resume=True,
        )


def test_a_module_that_does_not_fit_the_data_is_named():
    with pytest.raises(
        TrainingError, match=r"images are 12x12x1 but the model NoFlagNet expects 12x12"
    ):
        fit(NoFlagNet(), arrays(), input_shape=(12, 12), config=FitConfig(epochs=1))

    class Broken(nn.Module):
        def __call__(self, x):
            raise ValueError("wants 3 channels")

    with pytest.raises(TrainingError, match=r"Broken cannot be applied to .*wants 3 channels"):
        fit(Broken(), arrays(), config=FitConfig(epochs=1))
    with pytest.raises(TrainingError, match=r"NetSpec or a Flax Linen module, got str"):
        fit("conv", arrays(), config=FitConfig(epochs=1))


def test_user_loss_replaces_the_default():
    """Twice the cross-entropy: Adam is scale-free, so the same run reports twice the loss."""

    def double(logits, labels):
        return 2.0 * optax.softmax_cross_entropy_with_integer_labels(logits, labels)

    cfg = FitConfig(epochs=1, batch_size=32)
    plain = fit(SPEC, arrays(), config=cfg, progress=False)
    doubled = fit(SPEC, arrays(), config=cfg, progress=False, loss=double)
    assert doubled.history.records[0]["loss"] == pytest.approx(
        2 * plain.history.records[0]["loss"], rel=1e-2
    )
    with pytest.raises(TrainingError, match="one loss per example"):
        fit(SPEC, arrays(), config=cfg, loss=lambda lg, lb: double(lg, lb).mean())
