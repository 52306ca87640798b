"""Training engine: learning, k seeds by vmap, reproducibility, NaN guard, run directories."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnnjax import zoo
from cnnjax.data import ArrayDataset
from cnnjax.grammar import from_text
from cnnjax.train import FitConfig, TrainingError, evaluate, fit, load_run, mean_std_ci, strategies
from cnnjax.train.model import as_model
from cnnjax.train.steps import make_eval_step, make_train_step
from tests.flax_models import CNN

SPEC = from_text("in12x12x1-conv4x3-pool2-flatten-dense8-dense3")


def synthetic(n: int = 384, seed: int = 0, size: int = 12) -> ArrayDataset:
    """Three classes told apart by where a bright bar lies: learnable in one epoch."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n).astype(np.int32)
    images = rng.integers(0, 60, (n, size, size, 1)).astype(np.uint8)
    for i, y in enumerate(labels):
        images[i, :, 4 * y : 4 * y + 3, 0] = 230
    return ArrayDataset(images, labels, 3, ("left", "middle", "right"), "bars")


def leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def test_one_epoch_learns():
    train, test = synthetic(), synthetic(192, seed=1)
    result = fit(SPEC, train, validation=test, config=FitConfig(epochs=2, batch_size=16))
    first, last = result.history.records[0], result.history.records[-1]
    assert last["loss"] < first["loss"]
    assert last["val_accuracy"] > 0.9 > 1 / 3
    assert set(first) >= {
        "epoch",
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "seconds",
        "images_per_second",
    }
    assert result.history.history["loss"][0] == first["loss"]
    metrics = evaluate(SPEC, result.variables(), test)
    assert metrics["accuracy"] == pytest.approx(last["val_accuracy"])
    assert metrics["examples"] == 192


def test_eval_batches_never_exceed_the_dataset():
    """A set smaller than the eval batch is one batch of its own size, not a padded 1,000."""
    from cnnjax.data import DeviceDataset
    from cnnjax.train.evaluation import eval_sums

    seen: list[tuple[int, ...]] = []

    def eval_fn(params, batch_stats, images, labels, mask):
        seen.append(images.shape)
        return jnp.stack([jnp.sum(mask), jnp.sum(mask), jnp.sum(mask)]).astype(jnp.float32)

    sums = eval_sums(eval_fn, {}, {}, DeviceDataset.put(synthetic(50)), 1000)
    assert seen == [(50, 12, 12, 1)] and sums[2] == 50
    seen.clear()
    sums = eval_sums(eval_fn, {}, {}, DeviceDataset.put(synthetic(50)), 16)
    assert seen == [(16, 12, 12, 1)] * 4 and sums[2] == 50  # 16 + 16 + 16 + 2 unmasked


def test_same_seed_gives_bit_identical_parameters_and_metrics():
    train = synthetic()
    cfg = FitConfig(epochs=1, batch_size=32, seed=3)
    a, b = fit(SPEC, train, config=cfg), fit(SPEC, train, config=cfg)
    for x, y in zip(leaves(a.state.params), leaves(b.state.params), strict=True):
        np.testing.assert_array_equal(x, y)
    assert a.history.records[0]["loss"] == b.history.records[0]["loss"]
    c = fit(SPEC, train, config=FitConfig(epochs=1, batch_size=32, seed=4))
    assert not np.array_equal(leaves(a.state.params)[0], leaves(c.state.params)[0])


def test_k_seeds_together_equal_separate_runs():
    """k seeds in one fit (vmapped in one program, looped on one device, or side by side on
    the CPU's devices: the default where it has several) end where k separate runs end;
    looped or side by side, bit for bit."""
    train, test = synthetic(), synthetic(96, seed=1)
    alone = [
        fit(SPEC, train, validation=test, config=FitConfig(epochs=1, batch_size=32, seed=5 + i))
        for i in range(3)
    ]
    for mode in ("vmap", "loop", "devices"):
        config = FitConfig(epochs=1, batch_size=32, seed=5, seeds=3, seed_mode=mode)
        together = fit(SPEC, train, validation=test, config=config)
        assert (
            together.execution
            == {
                "vmap": {"strategy": "seeds vmapped", "devices": 1},
                "loop": {"strategy": "seeds looped", "devices": 1},
                "devices": {"strategy": "seeds side by side", "devices": 3},
            }[mode]
        )
        record = together.history.records[0]
        assert len(record["val_accuracy"]) == 3
        for i, one in enumerate(alone):
            pairs = zip(leaves(together.variables(i)), leaves(one.variables()), strict=True)
            for x, y in pairs:
                if mode == "vmap":
                    np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-5)
                else:  # the same program as the separate run's
                    np.testing.assert_array_equal(x, y)
            assert record["val_accuracy"][i] == pytest.approx(
                one.history.records[0]["val_accuracy"], abs=1 / 96 if mode == "vmap" else 0
            )


def test_seeds_go_side_by_side_on_the_cpu_devices_unless_devices_are_chosen():
    """With several CPU devices (tests run with 8), `auto` puts seed i on device i; a chosen
    `devices` (or `loop`), a short run or a single seed keeps the seeds on one device."""
    model, tx = as_model(SPEC, None), optax.adam(1e-3)
    seeds = np.arange(3, dtype=np.uint32)
    step_fn, eval_fn = make_train_step(model, tx), make_eval_step(model)
    job = strategies.Job(model, tx, step_fn, eval_fn, seeds, synthetic(), None, 1000)
    prog = strategies.choose(None, "auto", job)
    assert isinstance(prog, strategies.SeedDevices)
    placed = [next(iter(jax.tree_util.tree_leaves(s.params)[0].devices())) for s in prog.state]
    assert placed == jax.local_devices()[:3]
    stacked = prog.stacked(prog.state)  # one form for checkpoints and callbacks, and back
    assert jax.tree_util.tree_leaves(stacked.params)[0].shape[0] == 3
    back = prog.unstacked(stacked)
    assert [next(iter(jax.tree_util.tree_leaves(s.params)[0].devices())) for s in back] == placed
    assert type(strategies.choose(None, "loop", job)) is strategies.SeedLoop
    assert type(strategies.choose(None, "auto", job, spread=False)) is strategies.SeedLoop
    assert strategies.seed_devices(1) == []
    assert strategies.spreads_seeds("auto", False, model, 32)
    assert not strategies.spreads_seeds("auto", True, model, 32)  # FitConfig.devices set
    assert not strategies.spreads_seeds("loop", False, model, 32)
    short = strategies.SPREAD_MIN_STEPS - 1  # compiling on every device would cost more
    assert not strategies.spreads_seeds("auto", False, model, 32, steps=short)
    assert strategies.spreads_seeds("devices", False, model, 32, steps=short)
    large = as_model(zoo.pool224(), None)  # 98 MiB of activations per batch of 32
    assert not strategies.spreads_seeds("auto", False, large, 32)
    assert strategies.spreads_seeds("auto", False, large, 8)
    assert strategies.spreads_seeds("devices", False, large, 32)
    own = as_model(CNN(), (28, 28, 1))  # a Flax module: activations not counted, so asked only
    assert not strategies.spreads_seeds("auto", False, own, 32)
    assert strategies.spreads_seeds("devices", False, own, 32)


def test_mean_std_ci():
    s = mean_std_ci([0.9, 0.92, 0.94])
    assert s["mean"] == pytest.approx(0.92)
    assert s["std"] == pytest.approx(0.02)
    assert s["ci95"] == pytest.approx(4.303 * 0.02 / np.sqrt(3), rel=1e-4)  # the t table
    from scipy import stats

    for k in (2, 5, 31, 40):  # past 30 degrees of freedom too (no jump to the normal 1.960)
        values = np.linspace(0.0, 1.0, k)
        want = stats.t.ppf(0.975, k - 1) * values.std(ddof=1) / np.sqrt(k)
        assert mean_std_ci(values)["ci95"] == pytest.approx(want, rel=1e-12)


def _resume(run, train, config, **kwargs):
    """`fit` of SPEC continuing the run directory `run` under `config`."""
    return fit(SPEC, train, config=config, run_dir=run, resume=True, **kwargs)


def test_resume_with_other_settings_is_refused_and_loses_nothing(tmp_path):
    train = synthetic()
    run = tmp_path / "run"
    fit(SPEC, train, config=FitConfig(epochs=1, batch_size=32), run_dir=run)
    saved = sorted(p.name for p in (run / "checkpoints").iterdir())
    before = load_run(run)
    with pytest.raises(Exception, match=r"cannot resume .*learning_rate was 0.001, now 0.1"):
        _resume(run, train, FitConfig(epochs=3, batch_size=32, learning_rate=0.1))
    after = load_run(run)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == saved
    for x, y in zip(leaves(before.state), leaves(after.state), strict=True):
        np.testing.assert_array_equal(x, y)


def test_nan_guard_names_the_step(tmp_path):
    train = synthetic()
    with pytest.raises(
        TrainingError,
        match=r"non-finite loss, gradient or updated parameters at step \d+.*no checkpoint",
    ):
        fit(SPEC, train, config=FitConfig(epochs=2, batch_size=32, learning_rate=1e30))


def test_nan_guard_keeps_earlier_checkpoints(tmp_path):
    """Poisoned data mid-epoch: the checkpoints before the bad step stay, unchanged."""
    train = synthetic()
    images = train.images.astype(np.float32) / 255.0
    run = tmp_path / "run"
    good = ArrayDataset(images, train.labels, 3, train.class_names, "good")
    fit(SPEC, good, config=FitConfig(epochs=1, batch_size=32, checkpoint_every=4), run_dir=run)
    names = sorted(int(p.name) for p in (run / "checkpoints").iterdir())
    assert names == [4, 8, 12]
    bad_images = images.copy()
    bad_images[:] = np.inf
    bad = ArrayDataset(bad_images, train.labels, 3, train.class_names, "good")
    with pytest.raises(TrainingError, match=r"at step 12.*last good checkpoint is step 12"):
        _resume(run, bad, FitConfig(epochs=2, batch_size=32, checkpoint_every=4))
    assert sorted(int(p.name) for p in (run / "checkpoints").iterdir()) == names


def test_run_directory_and_resume_extends_training(tmp_path):
    train, test = synthetic(), synthetic(64, seed=1)
    run = tmp_path / "run"
    fit(SPEC, train, validation=test, config=FitConfig(epochs=1, batch_size=32), run_dir=run)
    config = json.loads((run / "config.json").read_text())
    assert config["spec"] == SPEC.to_dict() and config["fit"]["batch_size"] == 32
    assert "jax" in config["versions"]
    with pytest.raises(Exception, match="already holds a run"):
        fit(SPEC, train, config=FitConfig(epochs=1, batch_size=32), run_dir=run)
    _resume(run, train, FitConfig(epochs=2, batch_size=32), validation=test)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]
    straight = fit(SPEC, train, validation=test, config=FitConfig(epochs=2, batch_size=32))
    loaded = load_run(run)
    for x, y in zip(leaves(loaded.variables), leaves(straight.variables()), strict=True):
        np.testing.assert_array_equal(x, y)
    assert loaded.history[-1]["val_accuracy"] == straight.history.records[-1]["val_accuracy"]


def test_clear_errors_for_mismatched_data():
    with pytest.raises(TrainingError, match=r"images are 12x12x1 but the model .* expects 28x28x1"):
        fit(from_text("conv4x3-flatten-dense3"), synthetic(), config=FitConfig(epochs=1))
    with pytest.raises(
        TrainingError, match="output has shape \\(10,\\) but the data has 3 classes"
    ):
        fit(from_text("in12x12x1-flatten-dense10"), synthetic(), config=FitConfig(epochs=1))


def test_binary_head_uses_sigmoid_cross_entropy():
    train = synthetic()
    two = np.isin(train.labels, [0, 2])
    binary = ArrayDataset(
        train.images[two], (train.labels[two] == 2).astype(np.int32), 2, ("l", "r"), "lr"
    )
    spec = from_text("in12x12x1-conv4x3-pool2-flatten-dense1")
    result = fit(spec, binary, validation=binary, config=FitConfig(epochs=3, batch_size=16))
    assert result.history.records[-1]["val_accuracy"] > 0.9


def test_dropout_and_batch_norm_train_and_eval_modes():
    spec = from_text("in12x12x1-conv4x3-bn-pool2-flatten-drop0.5-dense8-dense3")
    train = synthetic()
    result = fit(spec, train, validation=train, config=FitConfig(epochs=2, batch_size=16))
    stats = result.state.batch_stats
    assert stats, "batch statistics are part of the state"
    mean = np.asarray(jax.tree_util.tree_leaves(stats)[0])
    assert np.abs(mean).sum() > 0, "running statistics were updated in training"
    assert result.history.records[-1]["val_accuracy"] > 0.8


def test_nan_guard_checks_the_updated_parameters(tmp_path):
    """A NaN learning rate: the loss and gradient of step 0 are finite, its update is not. The
    guard stops at step 0, saves nothing non-finite, and evaluate refuses non-finite weights."""
    import optax

    from cnnjax.train import evaluate

    run = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"updated parameters at step 0\b"):
        fit(
            SPEC,
            synthetic(),
            config=FitConfig(epochs=1, batch_size=32, checkpoint_every=1),
            optimizer=optax.sgd(float("nan")),
            run_dir=run,
        )
    assert not list((run / "checkpoints").glob("[0-9]*"))
    good = fit(SPEC, synthetic(), config=FitConfig(epochs=1, batch_size=32))
    bad = jax.tree_util.tree_map(lambda a: a * np.nan, good.variables_of(0))
    with pytest.raises(TrainingError, match="not finite"):
        evaluate(SPEC, bad, synthetic())


def test_guarded_step_leaves_the_state_untouched_and_stops_after_a_bad_update():
    """A non-finite gradient: the step changes nothing but its counter and records itself. A
    finite gradient whose update is not finite (a NaN learning rate) is recorded too, and no
    later step changes the state."""
    import jax.numpy as jnp
    import optax

    from cnnjax.train import create_train_state, make_optimizer, make_train_step

    train = synthetic(64)
    x = jnp.asarray(train.images[:32].astype(np.float32) / 255.0)
    y = jnp.asarray(train.labels[:32])
    tx = make_optimizer()
    step = jax.jit(make_train_step(SPEC, tx))
    start = create_train_state(SPEC, tx, 0)
    after = step(start, x.at[0, 0, 0, 0].set(np.nan), y)
    assert int(after.bad_step) == 0 and int(after.step) == 1
    for a, b in zip(
        jax.tree.leaves((start.params, start.opt_state)),
        jax.tree.leaves((after.params, after.opt_state)),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)

    nan_tx = optax.sgd(float("nan"))
    step = jax.jit(make_train_step(SPEC, nan_tx))
    state = step(create_train_state(SPEC, nan_tx, 0), x, y)
    assert int(state.bad_step) == 0
    later = step(step(state, x, y), x, y)
    assert int(later.bad_step) == 0 and int(later.step) == 3
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(later.params), strict=True):
        np.testing.assert_array_equal(a, b)
