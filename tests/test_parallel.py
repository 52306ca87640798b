"""Data parallelism and multi-host training, on this CPU.

In-process tests use the 8 fake CPU devices of conftest.py. The multi-process test starts two
`cnnjax train` processes on 127.0.0.1 (2 fake devices each, gloo collectives), with a timeout on
everything; both processes stop by themselves, and are killed if they overstay.

Tolerance: a data-parallel run reduces each batch's loss and gradient in another order than one
device, so parameters agree within float32 rounding, not bit for bit. Measured after 12-32 Adam
steps: at most 6e-8 absolute between 1 device, 8 devices and 2 processes x 2 devices, 4e-7 with
batch norm. The tests allow atol 2e-6 (rtol 1e-5); one Adam step (lr 1e-3) moves a parameter by
up to 1e-3, so a gradient that differs in any step (a shard's mean taken for the batch's, an
example seen twice) shows far above it. (A conv bias just before batch norm has a zero gradient
up to rounding, which Adam scales to full steps: the BN case uses a conv without bias.)
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from cnnjax import parallel
from cnnjax.grammar import from_text
from cnnjax.train import FitConfig, TrainingError, fit, load_run
from tests.test_train import SPEC, leaves, synthetic

ATOL, RTOL = 2e-6, 1e-5
MODEL = "in12x12x1-conv4x3-pool2-flatten-dense8-dense3"


def assert_close_trees(a, b):
    for x, y in zip(leaves(a), leaves(b), strict=True):
        np.testing.assert_allclose(x, y, atol=ATOL, rtol=RTOL)


def test_automatic_choice_and_layout():
    assert jax.device_count() == 8, "conftest.py fakes 8 CPU devices"
    assert parallel.data_parallel(None) is None, "a lone CPU process trains on one device"
    assert parallel.data_parallel(1) is None
    layout = parallel.data_parallel(8)
    assert layout is not None and layout.size == 8 and layout.on_cpu
    assert parallel.data_parallel(4).size == 4
    plan = np.arange(6 * 16, dtype=np.int32).reshape(6, 16)
    array = layout.global_array(plan, 1)
    assert array.sharding.spec == jax.sharding.PartitionSpec(None, "data")
    assert array.addressable_shards[0].data.shape == (6, 2)
    np.testing.assert_array_equal(np.asarray(array), plan)


def test_clear_errors_for_devices_and_batch():
    train = synthetic(96)
    with pytest.raises(TrainingError, match=r"batch size 12 is not divisible by the 8 devices"):
        fit(SPEC, train, config=FitConfig(epochs=1, batch_size=12, devices=8))
    with pytest.raises(TrainingError, match=r"devices=9: this run has 8 cpu device"):
        fit(SPEC, train, config=FitConfig(epochs=1, batch_size=16, devices=9))


@pytest.mark.parametrize(
    ("text", "seeds"),
    [
        (MODEL, 3),  # seeds x data parallel
        ("in12x12x1-conv4x3nb-bn-pool2-flatten-drop0.3-dense8-dense3", 1),  # BN, dropout
    ],
)
def test_eight_devices_equal_one_device(text, seeds):
    """The same run split over 8 devices gives the 1-device parameters and metrics."""
    spec = from_text(text)
    train, test = synthetic(384), synthetic(100, seed=1)
    runs = {
        n: fit(
            spec,
            train,
            validation=test,
            config=FitConfig(epochs=1, batch_size=32, seed=5, seeds=seeds, devices=n),
            progress=False,
            log=io.StringIO(),
        )
        for n in (1, 8)
    }
    one, eight = runs[1], runs[8]
    leaf = jax.tree_util.tree_leaves(eight.state.params)[0]
    # fit hands back this process's own copy of the replicated state (usable with local arrays)
    assert len(leaf.sharding.device_set) == 1 and isinstance(leaf, jax.Array)
    assert_close_trees(one.state.params, eight.state.params)
    assert_close_trees(one.state.batch_stats, eight.state.batch_stats)
    a, b = one.history.records[0], eight.history.records[0]
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
    np.testing.assert_allclose(a["val_loss"], b["val_loss"], rtol=1e-5)
    np.testing.assert_allclose(a["val_accuracy"], b["val_accuracy"], atol=1 / 100)


def test_data_parallel_step_splits_the_batch_and_all_reduces():
    """The compiled step holds one device's share of the batch and an all-reduce."""
    from cnnjax.train import (
        DataParallelStrategy,
        Job,
        as_model,
        make_eval_step,
        make_optimizer,
        make_train_step,
    )

    layout = parallel.data_parallel(8)
    model, tx = as_model(SPEC), make_optimizer()
    job = Job(
        model, tx, make_train_step(model, tx), make_eval_step(model),
        np.arange(1, dtype=np.uint32), synthetic(64), synthetic(20), 1000,
    )  # fmt: skip
    prog = DataParallelStrategy(layout, job)
    assert prog.eval_batch_size == 24, "20 images: one eval batch of 24 (8 devices), not 1,000"
    plan = prog.put_plan(np.zeros((1, 2, 32), np.int32))
    hlo = (
        prog.run_batch_jit.lower(prog.state, prog.train_data, plan, np.int32(0)).compile().as_text()
    )
    assert "all-reduce" in hlo
    assert "f32[4,12,12,1]" in hlo, "each device convolves 32 / 8 = 4 images"


def test_resume_on_another_device_count(tmp_path):
    """A run checkpointed on 8 devices resumes on 1 (Orbax re-shards) and ends where a straight
    run ends."""
    train = synthetic(256)
    run = tmp_path / "run"
    fit(SPEC, train, config=FitConfig(epochs=1, batch_size=32, devices=8), run_dir=run)
    config = load_run(run).config
    assert config["parallel"] == {
        "backend": "cpu",
        "devices": 8,
        "processes": 1,
        "device_kind": "cpu",
    }
    resumed = fit(
        SPEC, train, config=FitConfig(epochs=2, batch_size=32, devices=1), run_dir=run, resume=True
    )
    straight = fit(SPEC, train, config=FitConfig(epochs=2, batch_size=32, devices=1))
    assert_close_trees(resumed.state.params, straight.state.params)
    assert [r["epoch"] for r in load_run(run).history] == [1, 2]


# --------------------------------------------------------------------------- two processes

# Runs `cnnjax train` in-process, then dumps the parameters this process holds, so the test
# can check that both processes end with the same ones.
DRIVER = """
import sys
import numpy as np
import jax
import cnnjax.train
from cnnjax.cli import main

fit = cnnjax.train.fit

def fit_and_dump(*args, **kwargs):
    result = fit(*args, **kwargs)
    leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(result.state.params)]
    np.savez(sys.argv[1] + f"/params_{jax.process_index()}.npz", *leaves)
    return result

cnnjax.train.fit = fit_and_dump
sys.exit(main(sys.argv[2:]))
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(devices: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "grpc_proxy")
    }
    env.update(
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    return env


def _run_processes(commands: list[list[str]], env: dict[str, str], timeout: float) -> list[str]:
    """Run the commands together; all must succeed within `timeout` s, else all are killed."""
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for cmd in commands
    ]
    deadline = time.monotonic() + timeout
    outputs = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=max(deadline - time.monotonic(), 1))
            outputs.append(out)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"processes still running after {timeout} s") from None
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out
    return outputs


def _bars_npz(tmp_path: Path):
    """Train and test bars in a Keras-style .npz for the command line: (train, test, path)."""
    train, test = synthetic(256, seed=0), synthetic(64, seed=1)
    npz = tmp_path / "bars.npz"
    np.savez(
        npz, x_train=train.images, y_train=train.labels, x_test=test.images, y_test=test.labels
    )
    return train, test, npz


def _one_device_fit(train, test, seed: int):
    """The two-process runs' training done by this process on one device: what they must match."""
    return fit(
        SPEC,
        train,
        validation=test,
        config=FitConfig(epochs=2, batch_size=16, seed=seed, devices=1),
        progress=False,
        log=io.StringIO(),
    )


def test_two_processes_train_together_like_one(tmp_path: Path):
    """Two processes on 127.0.0.1 (2 devices each) train one model: identical parameters in both,
    equal to the single-process run; process 0 alone writes cnnjax's files and prints."""
    train, test, npz = _bars_npz(tmp_path)
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    run = tmp_path / "run"
    port = _free_port()
    args = [
        "train", "--model", MODEL, "--dataset", str(npz), "--epochs", "2", "--batch-size", "16",
        "--seed", "7", "--out", str(run), "--coordinator", f"127.0.0.1:{port}",
        "--num-processes", "2",
    ]  # fmt: skip
    commands = [
        [sys.executable, str(driver), str(tmp_path), *args, "--process-id", str(i)]
        for i in range(2)
    ]
    out0, out1 = _run_processes(commands, _env(2), timeout=150)
    assert "test accuracy" in out0 and "wrote" in out0
    assert "test accuracy" not in out1 and "epoch 1/2" not in out1

    p0, p1 = np.load(tmp_path / "params_0.npz"), np.load(tmp_path / "params_1.npz")
    for name in p0.files:
        np.testing.assert_array_equal(p0[name], p1[name])
    loaded = load_run(run)
    assert loaded.config["parallel"]["devices"] == 4
    assert loaded.config["parallel"]["processes"] == 2
    assert [r["epoch"] for r in loaded.history] == [1, 2]
    for name, x in zip(p0.files, leaves(loaded.state.params), strict=True):
        np.testing.assert_array_equal(p0[name], x)

    alone = _one_device_fit(train, test, seed=7)
    assert_close_trees(alone.state.params, loaded.state.params)
    for a, b in zip(alone.history.records, loaded.history, strict=True):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
        assert a["val_accuracy"] == pytest.approx(b["val_accuracy"], abs=1 / 64)


def test_two_processes_resume_a_run(tmp_path: Path):
    """A run checkpointed by one process on 8 devices is resumed by two processes (every process
    restores from the shared directory) and ends where a straight 1-device run ends."""
    from cnnjax.cli import main

    train, test, npz = _bars_npz(tmp_path)
    run = tmp_path / "run"
    args = [
        "train", "--model", MODEL, "--dataset", str(npz), "--batch-size", "16", "--seed", "3",
        "--out", str(run),
    ]  # fmt: skip
    assert main([*args, "--epochs", "1", "--devices", "8"]) == 0
    assert load_run(run).config["parallel"]["devices"] == 8
    port = _free_port()
    commands = [
        [
            sys.executable, "-m", "cnnjax.cli", *args, "--epochs", "2", "--resume",
            "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i),
        ]
        for i in range(2)
    ]  # fmt: skip
    _run_processes(commands, _env(2), timeout=150)
    resumed = load_run(run)
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    assert resumed.config["parallel"]["processes"] == 2
    straight = _one_device_fit(train, test, seed=3)
    assert_close_trees(straight.state.params, resumed.state.params)
    assert straight.history.records[-1]["val_accuracy"] == pytest.approx(
        resumed.history[-1]["val_accuracy"], abs=1 / 64
    )


@pytest.mark.slow  # 85-100 s on 2 cores: make test-slow
@pytest.mark.realdata
@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist").is_dir(),
    reason="needs Fashion-MNIST: apt-get install dataset-fashion-mnist",
)
def test_two_processes_run_the_seed000_experiment_like_one(tmp_path: Path):
    """`cnnjax experiment pooling_information` from the command line in two processes on
    127.0.0.1 gives the report of one process: same analytic numbers, test accuracies within
    an example or two (float rounding can flip a borderline prediction), and process 0 alone
    writes the run directory and prints its path."""
    data_dir = tmp_path / "data"
    base = [
        sys.executable, "-m", "cnnjax.cli", "experiment", "pooling_information", "--quick",
        "--seeds", "1", "--data-dir", str(data_dir),
    ]  # fmt: skip
    alone = tmp_path / "alone"
    _run_processes([[*base, "--out", str(alone)]], _env(1), timeout=300)
    port = _free_port()
    both = tmp_path / "both"
    commands = [
        [
            *base, "--out", str(both), "--coordinator", f"127.0.0.1:{port}",
            "--num-processes", "2", "--process-id", str(i),
        ]
        for i in range(2)
    ]  # fmt: skip
    out0, out1 = _run_processes(commands, _env(1), timeout=400)
    assert f"report: {both}" in out0 and "report:" not in out1

    import json

    one = json.loads((alone / "results.json").read_text())
    two = json.loads((both / "results.json").read_text())
    assert json.loads((both / "config.json").read_text())["settings"]["seeds"] == 1
    tests = {v["name"]: v for v in one["variants"]}
    assert len(tests) == 3
    for v in two["variants"]:
        w = tests[v["name"]]
        assert v["analysis"] == w["analysis"]
        n = 256  # the quick mode's test images
        assert abs(v["test_accuracy"]["mean"] - w["test_accuracy"]["mean"]) <= 2 / n
        np.testing.assert_allclose(
            [r["loss"] for r in v["history"]], [r["loss"] for r in w["history"]], rtol=1e-4
        )
