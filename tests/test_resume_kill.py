"""A training process killed with SIGKILL at random moments resumes to the exact parameters."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np

from cnnjax.train import load_run
from tests.test_train import synthetic

MODEL = "in12x12x1-conv4x3-pool2-flatten-dense8-dense3"


def _command(npz, run_dir):
    """`cnnjax train` into run_dir; --resume once it holds a run (on an empty one it is refused)."""
    has_run = (run_dir / "config.json").exists() or (run_dir / "checkpoints").exists()
    resume = ["--resume"] if has_run else []
    return [
        sys.executable, "-m", "cnnjax.cli", "train", "--model", MODEL, "--dataset", str(npz),
        "--epochs", "3", "--batch-size", "16", "--checkpoint-every", "20", "--keep", "2",
        "--seed", "7", "--out", str(run_dir), *resume,
    ]  # fmt: skip


def _env():
    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("XLA_FLAGS", None)
    return env


def _wait_for_checkpoint_after(run, seen, proc, timeout=120.0):
    """Poll until a checkpoint newer than `seen` exists (or the process ends); its step."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        ckpts = run / "checkpoints"
        steps = [int(p.name) for p in ckpts.iterdir() if p.name.isdigit()] if ckpts.is_dir() else []
        if steps and max(steps) > seen:
            return max(steps)
        time.sleep(0.01)
    return seen


def test_sigkill_at_random_moments_then_resume_gives_identical_parameters(tmp_path):
    train, test = synthetic(1200, seed=0), synthetic(200, seed=1)
    npz = tmp_path / "bars.npz"
    np.savez(
        npz, x_train=train.images, y_train=train.labels, x_test=test.images, y_test=test.labels
    )

    reference = tmp_path / "reference"
    subprocess.run(
        _command(npz, reference), check=True, env=_env(), capture_output=True, timeout=300
    )

    run = tmp_path / "killed"
    rng = random.Random(1234)
    kills, seen = 0, 0
    for attempt in range(12):
        proc = subprocess.Popen(
            _command(npz, run), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        if attempt == 0:  # during start-up / compilation
            time.sleep(rng.uniform(0.5, 2.5))
        elif kills < 4:  # mid-training: just after a new checkpoint, at a random delay
            seen = _wait_for_checkpoint_after(run, seen, proc)
            time.sleep(rng.uniform(0.0, 0.15))
        if kills < 4 and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            kills += 1
            continue
        out, _ = proc.communicate(timeout=300)
        if proc.returncode == 0:
            break
        raise AssertionError(out.decode())
    else:
        raise AssertionError("the killed run never finished")
    assert kills >= 3, f"only {kills} kills landed while training ran"

    a, b = load_run(reference), load_run(run)
    for x, y in zip(
        jax.tree_util.tree_leaves(a.state), jax.tree_util.tree_leaves(b.state), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert [r["epoch"] for r in b.history] == [1, 2, 3]
    for ra, rb in zip(a.history, b.history, strict=True):
        assert ra["val_accuracy"] == rb["val_accuracy"]
        assert ra["loss"] == rb["loss"]
    leftovers = [p.name for p in (run / "checkpoints").iterdir() if not p.name.isdigit()]
    assert not leftovers, leftovers
