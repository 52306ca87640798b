"""One API voice: devices forms, variables_of, quiet progress, results.json, argument names."""

from __future__ import annotations

import io
import json

import jax
import numpy as np
import pytest
from jax.sharding import Mesh

from cnnjax import parallel
from cnnjax.errors import RunDirError, TrainingError
from cnnjax.train import NAN_CHECK_EVERY, Callback, FitConfig, fit, load_run
from tests.test_train import SPEC, leaves, synthetic


def test_devices_accepts_a_count_all_a_list_and_a_mesh():
    devices = jax.devices()
    assert len(parallel.select_devices("all")) == len(devices) == 8
    assert parallel.data_parallel("all").size == 8, "'all' means every device, even on a CPU"
    assert parallel.data_parallel(devices[2:4]).size == 2
    assert parallel.data_parallel(Mesh(np.asarray(devices[:4]), ("data",))).size == 4
    assert parallel.data_parallel([devices[0]]) is None
    with pytest.raises(parallel.ParallelError, match=r"devices='most': expected a count"):
        parallel.select_devices("most")
    with pytest.raises(parallel.ParallelError, match=r"non-empty list of this run's devices"):
        parallel.select_devices([])


def test_fit_on_a_list_of_devices_records_them(tmp_path):
    devices = jax.devices()[:2]
    cfg = FitConfig(epochs=1, batch_size=32, devices=devices)
    result = fit(SPEC, synthetic(64), config=cfg, run_dir=tmp_path / "run", progress=False)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["fit"]["devices"] == [d.id for d in devices]
    assert config["parallel"]["devices"] == 2
    assert result.execution == {"strategy": "data parallel", "devices": 2}
    leaf = jax.tree_util.tree_leaves(result.state.params)[0]
    assert len(leaf.sharding.device_set) == 1, "the returned state is this process's own copy"
    with pytest.raises(TrainingError, match=r"devices=9: this run has 8"):
        fit(SPEC, synthetic(64), config=FitConfig(epochs=1, devices=9))


def test_variables_of_on_every_result_and_results_json(tmp_path):
    run = tmp_path / "run"
    cfg = FitConfig(epochs=1, batch_size=32, seeds=2)
    result = fit(SPEC, synthetic(96), validation=synthetic(32, 1), config=cfg, run_dir=run)
    loaded = load_run(run)
    for i in (0, 1):
        for x, y in zip(
            leaves(result.variables_of(i)), leaves(loaded.variables_of(i)), strict=True
        ):
            np.testing.assert_array_equal(x, y)
    # the older spellings keep working: a method on FitResult, a property on LoadedRun
    assert leaves(result.variables()) and leaves(loaded.variables)
    with pytest.raises(TrainingError, match="seed index 2 is out of range for 2 seed"):
        result.variables_of(2)
    results = json.loads((run / "results.json").read_text())
    assert results["history"] == result.history.records
    assert results["val_accuracy"]["n"] == 2
    # 3 steps per seed: too short to spread over the 8 CPU devices, so looped, and it says so
    assert results["execution"] == result.execution == {"strategy": "seeds looped", "devices": 1}
    assert results["val_accuracy"]["mean"] == pytest.approx(
        np.mean(result.history.records[0]["val_accuracy"])
    )


def test_library_errors_name_arguments_not_flags(tmp_path):
    run = tmp_path / "run"
    fit(SPEC, synthetic(64), config=FitConfig(epochs=1, batch_size=32), run_dir=run)
    with pytest.raises(
        RunDirError, match=r"pass resume=True to continue it, or another run_dir="
    ) as err:
        fit(SPEC, synthetic(64), config=FitConfig(epochs=1, batch_size=32), run_dir=run)
    assert "--" not in str(err.value)
    with pytest.raises(TrainingError, match=r"FitConfig.epochs must be positive, got 0"):
        fit(SPEC, synthetic(64), config=FitConfig(epochs=0))


def test_progress_false_prints_nothing_and_a_log_gets_one_line_per_epoch(capsys):
    cfg = FitConfig(epochs=2, batch_size=32)
    quiet = io.StringIO()
    fit(SPEC, synthetic(64), config=cfg, progress=False, log=quiet)
    assert quiet.getvalue() == "" and capsys.readouterr().err == ""
    plain = io.StringIO()
    fit(SPEC, synthetic(64), config=cfg, log=plain)
    lines = plain.getvalue().splitlines()
    assert [x.split(" ")[:2] for x in lines] == [["epoch", "1/2"], ["epoch", "2/2"]]
    bar = io.StringIO()
    fit(SPEC, synthetic(64), config=cfg, log=bar, progress=True)
    assert "Epoch 1/2" in bar.getvalue() and "val_loss" not in bar.getvalue()


def test_nan_check_runs_on_its_step_schedule_without_a_terminal():
    """A poisoned run stops at the first scheduled check, not at the end of the epoch."""

    class Count(Callback):
        steps = 0

        def on_step_end(self, step, state):
            Count.steps = step

    train = synthetic(4 * 3 * NAN_CHECK_EVERY)  # 3 checks' worth of steps in one epoch
    with pytest.raises(
        TrainingError, match=r"non-finite loss, gradient or updated parameters at step [0-9]\b"
    ):
        fit(
            SPEC,
            train,
            config=FitConfig(epochs=1, batch_size=4, learning_rate=1e30),
            progress=False,
            callbacks=[Count()],
        )
    assert Count.steps == NAN_CHECK_EVERY - 1  # the check after step 50 stops before its hooks
