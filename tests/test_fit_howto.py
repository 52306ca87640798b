"""The how-to "train your own Flax module" runs as written: in-process on a small synthetic
subset, and (slow) killed with SIGKILL mid-run, resumed to bit-identical parameters, reloaded."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from cnnjax.train import load_run
from tests.test_train import synthetic

HOWTO = Path(__file__).resolve().parent.parent / "docs" / "howto" / "own-module.md"


def script(tmp_path: Path) -> Path:
    """The how-to's Python block, as a file."""
    (block,) = re.findall(r"```python\n(.*?)```", HOWTO.read_text(), re.S)
    path = tmp_path / "own_module.py"
    path.write_text(block)
    return path


def data(tmp_path: Path, n: int) -> Path:
    """Keras-style arrays of 28x28 bar images (3 of the module's 10 classes)."""
    train, test = synthetic(n, seed=0, size=28), synthetic(n // 5, seed=1, size=28)
    npz = tmp_path / "bars.npz"
    np.savez(
        npz, x_train=train.images, y_train=train.labels, x_test=test.images, y_test=test.labels
    )
    return npz


def test_howto_script_runs_and_reloads(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOWTO_DATA", str(data(tmp_path, 160)))
    spec = importlib.util.spec_from_file_location("own_module", script(tmp_path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run = tmp_path / "run"
    module.main(str(run), 160, 2, 32)
    out = capsys.readouterr().out
    assert "epochs run: 2" in out and "reloaded: {'loss'" in out
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    loaded = load_run(run, model=module.ResNet())
    assert loaded.spec is None and loaded.variables_of(0)["batch_stats"]
    assert (run / "results.json").is_file()


def _env(npz: Path) -> dict[str, str]:
    env = dict(os.environ, HOWTO_DATA=str(npz), JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    return env


@pytest.mark.slow
def test_howto_script_killed_and_resumed_is_bit_identical(tmp_path):
    npz, path = data(tmp_path, 640), script(tmp_path)
    args = ["640", "3", "32"]  # 20 steps an epoch, a checkpoint every 20 steps
    reference = tmp_path / "reference"
    subprocess.run(
        [sys.executable, str(path), str(reference), *args],
        check=True, env=_env(npz), capture_output=True, timeout=600,
    )  # fmt: skip
    run, kills = tmp_path / "killed", 0
    for _ in range(8):
        proc = subprocess.Popen(
            [sys.executable, str(path), str(run), *args],
            env=_env(npz), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        if kills < 2:
            before = _checkpoints(run)
            deadline = time.monotonic() + 300
            while (
                proc.poll() is None and _checkpoints(run) <= before and time.monotonic() < deadline
            ):
                time.sleep(0.02)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=60)
                kills += 1
                continue
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out.decode()
        break
    assert kills == 2
    spec = importlib.util.spec_from_file_location("own_module_k", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    a, b = load_run(reference, model=module.ResNet()), load_run(run, model=module.ResNet())
    for x, y in zip(
        jax.tree_util.tree_leaves(a.state), jax.tree_util.tree_leaves(b.state), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert [r["val_loss"] for r in a.history] == [r["val_loss"] for r in b.history]


def _checkpoints(run: Path) -> int:
    ckpts = run / "checkpoints"
    steps = [int(p.name) for p in ckpts.iterdir() if p.name.isdigit()] if ckpts.is_dir() else []
    return max(steps, default=0)
