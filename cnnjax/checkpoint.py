"""Run directories and Orbax checkpoints: save, keep the last K, resume exactly.

A run directory holds `config.json` (everything needed to rerun), `metrics.jsonl` (one line per
finished epoch) and `checkpoints/<step>/` (Orbax). Orbax writes each checkpoint into a temporary
directory and renames it when complete, so a run killed at any moment resumes from the last
whole checkpoint; files cnnjax writes itself are replaced atomically the same way.

Multi-host runs share one run directory (a filesystem every process sees): every process takes
part in each Orbax save and restore (Orbax coordinates them and writes replicated arrays once),
while config.json and metrics.jsonl are written by process 0 alone.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import jax

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"

# Settings that must match for a resumed run to continue the same training.
_RESUME_KEYS = ("batch_size", "optimizer", "learning_rate", "seed", "seeds", "dtype")


class RunDirError(RuntimeError):
    """A run directory that cannot be used as asked (exists, mismatched config, missing)."""


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` via a temporary file and a rename: never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _manager(run_dir: Path, keep: int) -> Any:
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=True, enable_async_checkpointing=False
    )
    return ocp.CheckpointManager((run_dir / CHECKPOINTS).absolute(), options=options)


def open_run(
    run_dir: Path,
    config: dict[str, Any],
    state: Any,
    *,
    resume: bool,
    keep: int,
    steps_per_epoch: int,
) -> tuple[Any, Any, int, Any]:
    """Prepare `run_dir`; with `resume`, restore the latest checkpoint.

    Returns (manager, state, start_step, history). A directory that already holds a run is
    never overwritten without `resume`. With several processes all of them look before process 0
    writes anything, and all of them restore.
    """
    from cnnjax import parallel
    from cnnjax.train import History

    primary = parallel.is_primary()
    config_path = run_dir / CONFIG
    has_run = config_path.exists() or (run_dir / CHECKPOINTS).exists()
    parallel.sync("cnnjax-open-run-looked")
    if has_run and not resume:
        raise RunDirError(
            f"{run_dir} already holds a run; pass --resume to continue it, or choose another --out"
        )
    start_step, history = 0, History()
    if resume and has_run:
        if config_path.exists():
            old = json.loads(config_path.read_text())
            _check_resumable(old, config, run_dir)
        manager = _manager(run_dir, keep)
        latest = manager.latest_step()
        if latest is not None:
            state = restore(manager, latest, state)
            start_step = int(latest)
        done_epochs = start_step // steps_per_epoch
        history.records = [r for r in read_metrics(run_dir) if r["epoch"] <= done_epochs]
        if primary:
            _write_metrics(run_dir, history.records)
    else:
        if primary:
            run_dir.mkdir(parents=True, exist_ok=True)
        parallel.sync("cnnjax-open-run-made")
        manager = _manager(run_dir, keep)
        if primary:
            _write_metrics(run_dir, [])
    if primary:
        write_atomic(config_path, json.dumps(config, indent=2) + "\n")
    parallel.sync("cnnjax-open-run-written")
    return manager, state, start_step, history


def _check_resumable(old: dict[str, Any], new: dict[str, Any], run_dir: Path) -> None:
    if old.get("spec") != new.get("spec"):
        raise RunDirError(f"cannot resume {run_dir}: it was trained with a different model spec")
    for key in _RESUME_KEYS:
        a, b = old.get("fit", {}).get(key), new.get("fit", {}).get(key)
        if a != b:
            raise RunDirError(f"cannot resume {run_dir}: {key} was {a!r}, now {b!r}")
    for key in ("dataset", "train_examples"):
        if key in old and key in new and old[key] != new[key]:
            raise RunDirError(f"cannot resume {run_dir}: {key} was {old[key]!r}, now {new[key]!r}")


def save(manager: Any, step: int, state: Any) -> None:
    """Save `state` as checkpoint `step` (synchronously; old ones beyond K are deleted)."""
    import orbax.checkpoint as ocp

    manager.save(step, args=ocp.args.StandardSave(state), force=True)
    manager.wait_until_finished()


def restore(manager: Any, step: int, template: Any) -> Any:
    """Restore checkpoint `step` into the structure (shapes, dtypes, shardings) of `template`.

    Leaves without a sharding (an `eval_shape` template) land on this process's first device,
    whatever devices or processes wrote the checkpoint.
    """
    import orbax.checkpoint as ocp

    here = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def target(leaf: Any) -> Any:
        spec = ocp.utils.to_shape_dtype_struct(leaf)
        if getattr(spec, "sharding", None) is None:
            spec = jax.ShapeDtypeStruct(spec.shape, spec.dtype, sharding=here)
        return spec

    abstract = jax.tree_util.tree_map(target, template)
    return manager.restore(step, args=ocp.args.StandardRestore(abstract))


def restore_latest(run_dir: Path, template: Any) -> Any:
    """The latest checkpoint of a run directory, or RunDirError."""
    if not (run_dir / CHECKPOINTS).is_dir():
        raise RunDirError(f"{run_dir} has no checkpoints")
    manager = _manager(run_dir, keep=1_000_000)
    try:
        latest = manager.latest_step()
        if latest is None:
            raise RunDirError(f"{run_dir} has no complete checkpoint")
        return restore(manager, latest, template)
    finally:
        manager.close()


def latest_step(run_dir: Path) -> int | None:
    if not (run_dir / CHECKPOINTS).is_dir():
        return None
    manager = _manager(run_dir, keep=1_000_000)
    try:
        return manager.latest_step()
    finally:
        manager.close()


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    """Append one epoch's record to metrics.jsonl (rewritten atomically)."""
    records = [r for r in read_metrics(run_dir) if r["epoch"] < record["epoch"]]
    _write_metrics(run_dir, [*records, record])


def _write_metrics(run_dir: Path, records: list[dict[str, Any]]) -> None:
    write_atomic(run_dir / METRICS, "".join(json.dumps(r) + "\n" for r in records))


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / METRICS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
