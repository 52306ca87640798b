"""Any optax optimizer: recorded in config.json, checked on resume, not needed to load a run."""

from __future__ import annotations

import json

import jax
import numpy as np
import optax
import pytest

from cnnjax.errors import RunDirError
from cnnjax.train import FitConfig, fit, load_run
from tests.test_train import SPEC, leaves, synthetic

CFG = FitConfig(epochs=1, batch_size=32)


def sgd_cosine():
    return optax.sgd(optax.cosine_decay_schedule(0.1, 24), momentum=0.9)


def test_custom_optimizer_is_recorded_and_load_run_needs_it_only_for_the_optimizer_state(
    tmp_path,
):
    run = tmp_path / "run"
    result = fit(SPEC, synthetic(), config=CFG, optimizer=sgd_cosine(), run_dir=run)
    config = json.loads((run / "config.json").read_text())
    assert config["fit"]["optimizer"] == "custom" and config["fit"]["learning_rate"] is None
    assert config["optimizer"]["structure"] == "(TraceState, ScaleByScheduleState)"

    params_only = load_run(run)  # no optimizer: params and batch stats, no Orbax error
    assert params_only.state.opt_state is None
    for x, y in zip(leaves(params_only.variables), leaves(result.variables_of(0)), strict=True):
        np.testing.assert_array_equal(x, y)

    full = load_run(run, optimizer=sgd_cosine())
    for x, y in zip(leaves(full.state.opt_state), leaves(result.state.opt_state), strict=True):
        np.testing.assert_array_equal(x, y)


def test_injected_hyperparameters_are_recorded(tmp_path):
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.05, momentum=0.9)
    result = fit(SPEC, synthetic(), config=CFG, optimizer=tx, run_dir=tmp_path / "run")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["optimizer"]["hyperparams"] == {
        "learning_rate": pytest.approx(0.05),
        "momentum": pytest.approx(0.9),
    }
    assert config["fit"]["learning_rate"] == pytest.approx(0.05)
    assert result.history.records[0]["learning_rate"] == pytest.approx(0.05)


def test_resume_with_another_optimizer_is_refused_and_with_the_same_is_exact(tmp_path):
    run = tmp_path / "run"
    train = synthetic()
    fit(SPEC, train, config=CFG, optimizer=sgd_cosine(), run_dir=run)
    two = FitConfig(epochs=2, batch_size=32)
    with pytest.raises(RunDirError, match=r"cannot resume .*another optimizer"):
        fit(SPEC, train, config=two, optimizer=optax.adam(1e-3), run_dir=run, resume=True)
    with pytest.raises(RunDirError, match=r"cannot resume .*another optimizer"):
        fit(SPEC, train, config=two, run_dir=run, resume=True)  # the named default, adam
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    with pytest.raises(RunDirError, match=r"cannot resume .*another optimizer"):
        fit(SPEC, train, config=two, optimizer=tx, run_dir=run, resume=True)
    resumed = fit(SPEC, train, config=two, optimizer=sgd_cosine(), run_dir=run, resume=True)
    straight = fit(SPEC, train, config=two, optimizer=sgd_cosine())
    for x, y in zip(leaves(resumed.state), leaves(straight.state), strict=True):
        np.testing.assert_array_equal(x, y)
    assert [r["epoch"] for r in load_run(run).history] == [1, 2]


def test_k_seeds_load_without_the_optimizer(tmp_path):
    run = tmp_path / "run"
    cfg = FitConfig(epochs=1, batch_size=32, seeds=2)
    result = fit(SPEC, synthetic(96), config=cfg, optimizer=sgd_cosine(), run_dir=run)
    loaded = load_run(run)
    assert loaded.seeds == 2
    leaf = jax.tree_util.tree_leaves(loaded.state.params)[0]
    assert leaf.shape[0] == 2
    for x, y in zip(leaves(loaded.variables_of(1)), leaves(result.variables_of(1)), strict=True):
        np.testing.assert_array_equal(x, y)
