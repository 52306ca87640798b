"""Run directories under faults: damaged checkpoints fall back, corrupt files are named, the
NaN guard never saves a bad state, `keep` >= 1, and the lock admits one writer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest

from cnnjax import checkpoint as ckpt
from cnnjax.data import ArrayDataset
from cnnjax.errors import RunDirError, TrainingError
from cnnjax.spec import Conv, Dense, Flatten, sequential
from cnnjax.train import FitConfig, fit

SPEC = sequential((8, 8, 1), Conv(2, 3), Flatten(), Dense(3))
CONFIG = FitConfig(epochs=2, batch_size=16)  # 48 examples: 3 steps an epoch, checkpoints 3, 6


def tiny_data(n: int = 48) -> ArrayDataset:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (n, 8, 8, 1)).astype(np.uint8)
    labels = rng.integers(0, 3, n).astype(np.int32)
    return ArrayDataset(images, labels, 3, ("a", "b", "c"), "tiny")


def leaves(tree) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def tree_bytes(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


class Run:
    """A finished two-epoch run, its per-checkpoint states and its bytes (built once)."""

    def __init__(self, root: Path) -> None:
        self.path = root / "run"
        self.result = fit(SPEC, tiny_data(), config=CONFIG, run_dir=self.path, progress=False)
        self.template = self.result.state
        manager = ckpt._manager(self.path, keep=1_000_000)
        try:
            self.steps = sorted(manager.all_steps())
            self.states = {s: leaves(ckpt.restore(manager, s, self.template)) for s in self.steps}
        finally:
            manager.close()
        self.bytes = tree_bytes(self.path)

    def copy(self, where: Path) -> Path:
        target = where / "copy"
        shutil.copytree(self.path, target)
        return target

    def data_file(self, run: Path, step: int) -> Path:
        """The largest file of a checkpoint (the OCDBT data holding the arrays)."""
        files = [p for p in (run / "checkpoints" / str(step)).rglob("*") if p.is_file()]
        return max(files, key=lambda p: p.stat().st_size)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    return Run(tmp_path_factory.mktemp("ckpt"))


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 3])
    elif how == "delete":
        path.unlink()
    elif how == "garbage":
        path.write_bytes(np.random.default_rng(1).bytes(len(data)))
    else:  # one flipped bit
        flipped = bytearray(data)
        flipped[len(flipped) // 2] ^= 0x10
        path.write_bytes(bytes(flipped))


def assert_same(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_run_has_two_checksummed_checkpoints_and_no_lock_left(run):
    assert run.steps == [3, 6]
    for step in run.steps:
        assert ckpt.verify_checkpoint(run.path / "checkpoints" / str(step)) is None
        assert f"checkpoints/{step}/{ckpt.CHECKSUMS}" in run.bytes
    assert not (run.path / ckpt.LOCK_NAME).exists()


@pytest.mark.parametrize("how", ["truncate", "delete", "garbage", "flip"])
def test_damaged_newest_checkpoint_falls_back_bit_identically(run, tmp_path, how):
    copy = run.copy(tmp_path)
    damage(run.data_file(copy, 6), how)
    with pytest.warns(ckpt.CheckpointWarning) as caught:
        step, state = ckpt.restore_usable(copy, run.template)
    assert step == 3
    assert_same(leaves(state), run.states[3])
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "\n" not in message
    assert (
        "step 6" in message and str(copy / "checkpoints") in message and "using step 3" in message
    )
    # Reading touches nothing: the damaged checkpoint is still there, the rest byte for byte.
    assert (copy / "checkpoints" / "6").is_dir()
    after = tree_bytes(copy)
    assert {k: v for k, v in after.items() if k.startswith("checkpoints/3/")} == {
        k: v for k, v in run.bytes.items() if k.startswith("checkpoints/3/")
    }


def test_load_run_falls_back_too(run, tmp_path):
    from cnnjax.train import load_run

    copy = run.copy(tmp_path)
    shutil.rmtree(copy / "checkpoints" / "6" / "default")
    with pytest.warns(ckpt.CheckpointWarning, match="step 6"):
        loaded = load_run(copy)
    assert_same(leaves(loaded.state), run.states[3])


def test_unverified_checkpoint_is_judged_by_restoring_it(run, tmp_path):
    """Without a checksum file (an older cnnjax), an intact checkpoint is used, a broken one
    skipped, and Orbax's output on the broken one is held back."""
    copy = run.copy(tmp_path)
    for step in run.steps:
        (copy / "checkpoints" / str(step) / ckpt.CHECKSUMS).unlink()
    step, state = ckpt.restore_usable(copy, run.template)
    assert step == 6
    assert_same(leaves(state), run.states[6])
    damage(run.data_file(copy, 6), "truncate")
    with pytest.warns(ckpt.CheckpointWarning, match=r"step 6 \(unreadable"):
        step, state = ckpt.restore_usable(copy, run.template)
    assert step == 3
    assert_same(leaves(state), run.states[3])


def test_no_usable_checkpoint_is_one_clear_error_and_deletes_nothing(run, tmp_path):
    copy = run.copy(tmp_path)
    for step in run.steps:
        damage(run.data_file(copy, step), "garbage")
    before = tree_bytes(copy)
    with pytest.raises(RunDirError, match=r"no usable checkpoint \(step 6: .*step 3: .*nothing"):
        ckpt.restore_usable(copy, run.template)
    with pytest.raises(RunDirError, match="no usable checkpoint"):
        fit(SPEC, tiny_data(), config=CONFIG, run_dir=copy, resume=True, progress=False)
    assert tree_bytes(copy) == before
    assert not (copy / ckpt.LOCK_NAME).exists()


def test_resume_after_damage_moves_it_aside_and_ends_bit_identical(run, tmp_path):
    copy = run.copy(tmp_path)
    damage(run.data_file(copy, 6), "truncate")
    damaged_bytes = {k: v for k, v in tree_bytes(copy).items() if k.startswith("checkpoints/6/")}
    with pytest.warns(ckpt.CheckpointWarning, match="using step 3 instead; moved to"):
        resumed = fit(SPEC, tiny_data(), config=CONFIG, run_dir=copy, resume=True, progress=False)
    assert_same(leaves(resumed.state), leaves(run.result.state))
    # The damaged checkpoint was moved, not deleted; step 3 is untouched; 6 is whole again.
    moved = tree_bytes(copy / ckpt.DAMAGED / "6")
    assert moved == {k.removeprefix("checkpoints/6/"): v for k, v in damaged_bytes.items()}
    assert {k: v for k, v in tree_bytes(copy).items() if k.startswith("checkpoints/3/")} == {
        k: v for k, v in run.bytes.items() if k.startswith("checkpoints/3/")
    }
    assert ckpt.verify_checkpoint(copy / "checkpoints" / "6") is None
    epochs = [r["epoch"] for r in ckpt.read_metrics(copy)]
    assert epochs == [1, 2]
    assert resumed.history.records[-1]["loss"] == run.result.history.records[-1]["loss"]


def test_non_finite_checkpoint_is_skipped(run, tmp_path):
    """A checkpoint holding NaN parameters (as older versions could save) is never used."""
    import orbax.checkpoint as ocp

    copy = run.copy(tmp_path)
    state = run.template
    nan_params = jax.tree_util.tree_map(lambda x: x * np.nan, state.params)
    poisoned = state._replace(params=nan_params)  # TrainState is a NamedTuple
    manager = ckpt._manager(copy, keep=1_000_000)
    manager.save(9, args=ocp.args.StandardSave(poisoned), force=True)
    manager.wait_until_finished()
    manager.close()
    with pytest.warns(ckpt.CheckpointWarning, match="step 9 .*parameters are not finite"):
        step, state = ckpt.restore_usable(copy, run.template)
    assert step == 6
    assert_same(leaves(state), run.states[6])


def test_save_refuses_a_non_finite_state(tmp_path):
    """`--lr nan --checkpoint-every 1`: the step guard stops at step 0 (its update is NaN), so
    nothing is saved; and the save guard itself refuses a non-finite state handed to it."""
    import optax

    run_dir = tmp_path / "nan"
    config = FitConfig(epochs=2, batch_size=16, checkpoint_every=1)
    with pytest.raises(TrainingError, match="updated parameters at step 0"):
        fit(
            SPEC,
            tiny_data(),
            config=config,
            optimizer=optax.sgd(float("nan")),
            run_dir=run_dir,
            progress=False,
        )
    saved = [p for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit()]
    assert saved == []
    assert not (run_dir / ckpt.LOCK_NAME).exists()
    good = fit(SPEC, tiny_data(), config=FitConfig(epochs=1, batch_size=16), progress=False)
    poisoned = good.state._replace(
        params=jax.tree_util.tree_map(lambda a: a * np.nan, good.state.params)
    )
    manager = ckpt._manager(tmp_path / "direct", keep=2)
    with pytest.raises(TrainingError, match="non-finite parameters after step 1: not saved"):
        ckpt.save(manager, 1, poisoned)
    manager.close()
    assert not [p for p in (tmp_path / "direct" / "checkpoints").iterdir() if p.name.isdigit()]


# ---------------------------------------------------------------------- config and metrics


@pytest.mark.parametrize(
    "text", ["", "{not json", "[1, 2]", '{"spec": {}}', "\x00\xff\xfe", '{"spec": 1, "fit": {}}']
)
def test_corrupt_config_is_one_clear_error_naming_the_file(run, tmp_path, text):
    copy = run.copy(tmp_path)
    (copy / "config.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(RunDirError, match=r"config\.json"):
        ckpt.read_config(copy)
    with pytest.raises(RunDirError, match=r"config\.json"):
        ckpt.open_run(copy, {}, run.template, resume=True, keep=3, steps_per_epoch=3)
    with pytest.raises(RunDirError, match=r"config\.json"):
        fit(SPEC, tiny_data(), config=CONFIG, run_dir=copy, resume=True, progress=False)
    assert not (copy / ckpt.LOCK_NAME).exists()


@pytest.mark.parametrize("text", ['{"epoch": 1}\n{garbage\n', "[]\n", '{"epoch": 0}\n', "\xff\n"])
def test_corrupt_metrics_is_one_clear_error_naming_the_file(run, tmp_path, text):
    copy = run.copy(tmp_path)
    (copy / "metrics.jsonl").write_bytes(text.encode("latin-1"))
    with pytest.raises(RunDirError, match=r"metrics\.jsonl"):
        ckpt.read_metrics(copy)


def test_resume_without_metrics_is_refused_not_half_recorded(run, tmp_path):
    copy = run.copy(tmp_path)
    (copy / "metrics.jsonl").unlink()
    config = FitConfig(epochs=3, batch_size=16)
    with pytest.raises(RunDirError, match=r"metrics\.jsonl is missing.*lose epochs"):
        fit(SPEC, tiny_data(), config=config, run_dir=copy, resume=True, progress=False)
    assert not (copy / "metrics.jsonl").exists()
    assert sorted(p.name for p in (copy / "checkpoints").iterdir()) == ["3", "6"]


def test_resume_with_metrics_missing_an_epoch_is_refused(run, tmp_path):
    copy = run.copy(tmp_path)
    lines = (copy / "metrics.jsonl").read_text().splitlines()
    (copy / "metrics.jsonl").write_text(lines[1] + "\n")  # epoch 2 only
    config = FitConfig(epochs=3, batch_size=16)
    with pytest.raises(RunDirError, match=r"holds epochs \[2\]"):
        fit(SPEC, tiny_data(), config=config, run_dir=copy, resume=True, progress=False)


@pytest.mark.parametrize("keep", [0, -1, 1.5, True])
def test_keep_below_one_is_refused_by_the_checkpoint_layer(tmp_path, keep):
    with pytest.raises(RunDirError, match="keep must be a whole number of checkpoints"):
        ckpt.open_run(tmp_path / "r", {}, {}, resume=False, keep=keep, steps_per_epoch=1)
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


# ---------------------------------------------------------------------------------- lock


def test_lock_refuses_a_second_writer_and_is_released(tmp_path):
    with ckpt.run_lock(tmp_path / "r") as lock:
        owner = ckpt.read_owner(tmp_path / "r")
        assert owner["pid"] == os.getpid() and owner["host"]
        with pytest.raises(RunDirError, match=rf"is in use by pid {os.getpid()}"):
            ckpt.run_lock(tmp_path / "r")
        assert lock.held
    assert not lock.held
    assert ckpt.read_owner(tmp_path / "r") is None
    ckpt.run_lock(tmp_path / "r").release()


def test_fit_refuses_a_locked_run_directory_and_releases_its_own(tmp_path):
    run_dir = tmp_path / "r"
    with ckpt.run_lock(run_dir), pytest.raises(RunDirError, match="in use by pid"):
        fit(SPEC, tiny_data(), config=CONFIG, run_dir=run_dir, progress=False)
    assert not (run_dir / "config.json").exists()
    fit(SPEC, tiny_data(), config=CONFIG, run_dir=run_dir, progress=False)
    assert not (run_dir / ckpt.LOCK_NAME).exists()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_lock_of_a_dead_process_is_taken_over_with_a_note(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    import socket

    pid = _dead_pid()
    stale = {"pid": pid, "host": socket.gethostname(), "token": "x"}
    (run_dir / ckpt.LOCK_NAME).write_text(json.dumps(stale))
    with pytest.warns(ckpt.RunLockWarning, match=rf"stale lock of pid {pid}") as caught:
        lock = ckpt.run_lock(run_dir)
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert ckpt.read_owner(run_dir)["pid"] == os.getpid()
    lock.release()


def test_lock_of_another_host_is_never_taken_over(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / ckpt.LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere.example"}))
    with pytest.raises(RunDirError, match=r"in use by pid 1 on host elsewhere\.example"):
        ckpt.run_lock(run_dir)


def test_lock_on_a_file_is_a_clear_error(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(RunDirError, match="is a file, not a run directory"):
        ckpt.run_lock(path)


def test_threads_racing_for_one_lock_one_wins(tmp_path):
    run_dir = tmp_path / "r"
    barrier = threading.Barrier(8)
    won, refused = [], []

    def contend() -> None:
        barrier.wait()
        try:
            won.append(ckpt.run_lock(run_dir))
        except RunDirError as e:
            refused.append(str(e))

    threads = [threading.Thread(target=contend) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(refused) == 7
    assert all("in use by pid" in m for m in refused)
    won[0].release()


_CONTENDER = """
import sys, time
from pathlib import Path
from cnnjax.errors import RunDirError
from cnnjax.run_lock import run_lock
go, run_dir = Path(sys.argv[1]), Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
try:
    lock = run_lock(run_dir)
except RunDirError as e:
    print("refused", e, flush=True)
    sys.exit(0)
print("won", flush=True)
while (go.parent / "hold").exists():
    time.sleep(0.01)
lock.release()
"""


def test_processes_racing_for_one_lock_one_wins(tmp_path):
    """Two (here four) `cnnjax train --out X` started at the same instant: exactly one writes."""
    go, hold, run_dir = tmp_path / "go", tmp_path / "hold", tmp_path / "r"
    hold.touch()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CONTENDER, str(go), str(run_dir)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    import time

    time.sleep(1.0)  # let every contender import and wait at the start line
    go.touch()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(p.poll() is not None for p in procs) < 3:
        time.sleep(0.05)
    hold.unlink()
    outputs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(o.split()[0] for o in outputs) == ["refused", "refused", "refused", "won"]
    assert all("in use by pid" in o for o in outputs if o.startswith("refused"))
    assert not (run_dir / ckpt.LOCK_NAME).exists()


def test_lock_is_released_when_the_lock_object_is_dropped(tmp_path):
    import gc

    ckpt.run_lock(tmp_path / "r")  # never released explicitly
    gc.collect()
    assert ckpt.read_owner(tmp_path / "r") is None


def test_warnings_are_single_lines(run, tmp_path):
    copy = run.copy(tmp_path)
    damage(run.data_file(copy, 6), "delete")
    damage(copy / "checkpoints" / "6" / "_CHECKPOINT_METADATA", "garbage")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ckpt.restore_usable(copy, run.template)
    notes = [w for w in caught if issubclass(w.category, ckpt.CheckpointWarning)]
    assert len(notes) == 1 and "\n" not in str(notes[0].message)


def test_write_atomic_keeps_the_old_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    ckpt.write_atomic(path, "old\n")

    def crash(fd):
        raise OSError(5, "I/O error")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError):
        ckpt.write_atomic(path, "new, half written\n")
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
