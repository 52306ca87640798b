"""Run directories and Orbax checkpoints: save, keep the last K, resume exactly, fall back.

A run directory holds `config.json` (everything needed to rerun), `metrics.jsonl` (one line per
finished epoch) and `checkpoints/<step>/` (Orbax). Orbax writes each checkpoint into a temporary
directory and renames it when complete, so a run killed at any moment resumes from the last
whole checkpoint; files cnnjax writes itself are replaced atomically the same way.

Every checkpoint gets a checksum file (`cnnjax-checksums.json`, SHA-256 of each of its files).
A newest checkpoint that is truncated, partly deleted or corrupt is reported in one line
(`CheckpointWarning`) and the previous complete one is used instead; on resume the damaged one
is moved to `damaged-checkpoints/`, never deleted. A state with non-finite parameters is never
saved. A run being written is locked (`cnnjax.run_lock`): one writer per directory.

Multi-host runs share one run directory (a filesystem every process sees): every process takes
part in each Orbax save and restore (Orbax coordinates them and writes replicated arrays once),
while config.json, metrics.jsonl, the checksums and the lock are written by process 0 alone.

Over 500 lines on purpose: saving, verifying and falling back share one file layout and one
Orbax manager, and each guarantee in docs/guarantees.md is easier to check in one place.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.errors import RunDirError, TrainingError
from cnnjax.io import sha256_file
from cnnjax.metrics import History
from cnnjax.run_lock import LOCK_NAME, RunLock, RunLockWarning, read_owner, run_lock

__all__ = [
    "CHECKPOINTS",
    "CHECKSUMS",
    "CONFIG",
    "DAMAGED",
    "LOCK_NAME",
    "METRICS",
    "CheckpointWarning",
    "RunLock",
    "RunLockWarning",
    "RunManager",
    "append_metrics",
    "check_keep",
    "latest_step",
    "open_run",
    "read_config",
    "read_metrics",
    "read_owner",
    "restore",
    "restore_latest",
    "restore_usable",
    "run_lock",
    "save",
    "verify_checkpoint",
    "write_atomic",
]

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
CHECKSUMS = "cnnjax-checksums.json"
DAMAGED = "damaged-checkpoints"

# Settings that must match for a resumed run to continue the same training.
_RESUME_KEYS = ("batch_size", "optimizer", "learning_rate", "seed", "seeds", "dtype")


class CheckpointWarning(UserWarning):
    """A one-line note: a damaged checkpoint was skipped and an earlier one used."""


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


def check_keep(keep: object) -> int:
    """`keep` as a number of checkpoints to keep (at least 1), or RunDirError."""
    if isinstance(keep, bool) or not isinstance(keep, int | np.integer) or keep < 1:
        raise RunDirError(
            f"keep must be a whole number of checkpoints, at least 1, got {keep!r} "
            "(with 0 no checkpoint would survive the run)"
        )
    return int(keep)


def _manager(run_dir: Path, keep: int) -> Any:
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(
        max_to_keep=check_keep(keep), create=True, enable_async_checkpointing=False
    )
    return ocp.CheckpointManager((run_dir / CHECKPOINTS).absolute(), options=options)


class RunManager:
    """The Orbax CheckpointManager of an open run; `close()` also releases the run's lock.

    Everything else is the Orbax manager's own (`latest_step`, `directory`, ...), so code
    written for a plain CheckpointManager keeps working.
    """

    def __init__(self, manager: Any, lock: RunLock | None) -> None:
        self._manager = manager
        self.lock = lock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)

    def close(self) -> None:
        try:
            self._manager.close()
        finally:
            if self.lock is not None:
                self.lock.release()

    def __enter__(self) -> RunManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_run(
    run_dir: Path,
    config: dict[str, Any],
    state: Any,
    *,
    resume: bool,
    keep: int,
    steps_per_epoch: int,
) -> tuple[RunManager, Any, int, Any]:
    """Lock and prepare `run_dir`; with `resume`, restore the latest usable checkpoint.

    Returns (manager, state, start_step, history); closing the manager releases the lock. A
    directory that already holds a run is never overwritten without `resume`; one locked by a
    live process is refused. With several processes all of them look before process 0 writes
    anything, and all of them restore.
    """
    from cnnjax import parallel

    run_dir = Path(run_dir)
    keep = check_keep(keep)
    primary = parallel.is_primary()
    lock = _lock_on_primary(run_dir)
    try:
        config_path = run_dir / CONFIG
        has_run = config_path.exists() or (run_dir / CHECKPOINTS).exists()
        parallel.sync("cnnjax-open-run-looked")
        if has_run and not resume:
            raise RunDirError(
                f"{run_dir} already holds a run; pass --resume to continue it, "
                "or choose another --out"
            )
        start_step, history = 0, History()
        if resume and has_run:
            if config_path.exists():
                _check_resumable(read_config(run_dir), config, run_dir)
            step, restored, damaged = _restore_first_usable(run_dir, state)
            if step is not None:
                state, start_step = restored, step
            history.records = _resumable_metrics(run_dir, start_step, steps_per_epoch)
            # Every check passed: only now change anything in the directory.
            moved = _move_aside(run_dir, damaged) if primary and damaged else []
            if damaged:
                _warn_damaged(run_dir, damaged, step, moved)
            parallel.sync("cnnjax-open-run-restored")
            manager = _manager(run_dir, keep)
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
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return RunManager(manager, lock), state, start_step, history


def _lock_on_primary(run_dir: Path) -> RunLock | None:
    """Process 0 locks the run directory; every process learns whether it could."""
    from cnnjax import parallel

    lock, error = None, None
    if parallel.is_primary():
        try:
            lock = run_lock(run_dir)
        except RunDirError as e:
            error = e
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        ok = int(multihost_utils.broadcast_one_to_all(np.int32(error is None)))
        if not ok and error is None:
            raise RunDirError(f"run directory {run_dir} is in use (process 0 could not lock it)")
    if error is not None:
        raise error
    return lock


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


def _resumable_metrics(run_dir: Path, start_step: int, steps_per_epoch: int) -> list[dict]:
    """The records of the epochs finished before `start_step`, which must all be there.

    A metrics.jsonl that lost epochs (deleted, edited) is refused: resuming would write a
    history holding only the later epochs, silently.
    """
    done = start_step // steps_per_epoch
    records = [r for r in read_metrics(run_dir) if r["epoch"] <= done]
    epochs = [r["epoch"] for r in records]
    if epochs != list(range(1, done + 1)):
        path = run_dir / METRICS
        has = "is missing" if not path.exists() else f"holds epochs {epochs or 'none'}"
        raise RunDirError(
            f"cannot resume {run_dir}: its checkpoint at step {start_step} follows {done} "
            f"finished epoch(s) but {path} {has}, so the history would lose epochs; restore "
            f"{METRICS} or start a new run in another directory"
        )
    return records


# ------------------------------------------------------------------------- save and restore


def save(manager: Any, step: int, state: Any) -> None:
    """Save `state` as checkpoint `step` (synchronously; old ones beyond K are deleted).

    A state whose parameters or batch statistics are not finite, or whose optimizer state
    holds NaN, is refused with TrainingError: a saved checkpoint is always a good one.
    """
    import orbax.checkpoint as ocp

    from cnnjax import parallel

    bad = nonfinite_part(state)
    if bad is not None:
        latest = manager.latest_step()
        where = (
            f"the last good checkpoint is step {latest} in {manager.directory}"
            if latest is not None
            else "no checkpoint was saved"
        )
        raise TrainingError(
            f"non-finite {bad} after step {step}: not saved ({where}; nothing saved was "
            "overwritten). Lower the learning rate or check the data."
        )
    manager.save(step, args=ocp.args.StandardSave(state), force=True)
    manager.wait_until_finished()
    if parallel.is_primary():
        step_dir = Path(str(manager.directory)) / str(step)
        if step_dir.is_dir():
            write_atomic(step_dir / CHECKSUMS, json.dumps(_checksums(step_dir), indent=1) + "\n")


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


def restore_usable(run_dir: Path, template: Any) -> tuple[int, Any]:
    """(step, state) of the newest usable checkpoint of a run directory, or RunDirError.

    Damaged newer checkpoints are skipped with one CheckpointWarning and left in place.
    """
    run_dir = Path(run_dir)
    if not (run_dir / CHECKPOINTS).is_dir():
        raise RunDirError(f"{run_dir} has no checkpoints")
    step, state, damaged = _restore_first_usable(run_dir, template)
    if damaged:
        _warn_damaged(run_dir, damaged, step, [])
    if step is None:
        raise RunDirError(f"{run_dir} has no complete checkpoint")
    return step, state


def restore_latest(run_dir: Path, template: Any) -> Any:
    """The newest usable checkpoint of a run directory (see `restore_usable`), or RunDirError."""
    return restore_usable(run_dir, template)[1]


def latest_step(run_dir: Path) -> int | None:
    """The newest checkpoint step (whether usable or not), or None without checkpoints."""
    if not (run_dir / CHECKPOINTS).is_dir():
        return None
    manager = _manager(run_dir, keep=1_000_000)
    try:
        return manager.latest_step()
    finally:
        manager.close()


def _restore_first_usable(
    run_dir: Path, template: Any
) -> tuple[int | None, Any, list[tuple[int, str]]]:
    """Try the checkpoints newest first: (step used or None, state, [(damaged step, why)]).

    Raises RunDirError when checkpoints exist but none is usable (nothing is deleted).
    """
    with _quiet_orbax_log():  # damage is reported once, by us
        manager = _manager(run_dir, keep=1_000_000)
        steps = sorted(manager.all_steps(), reverse=True)
    damaged: list[tuple[int, str]] = []
    try:
        for step in steps:
            step_dir = run_dir / CHECKPOINTS / str(step)
            problem = verify_checkpoint(step_dir)
            if problem is None:
                try:
                    state = _restore_quietly(manager, step, template, step_dir)
                except Exception as e:  # Orbax/TensorStore raise many kinds for bad files
                    if (step_dir / CHECKSUMS).is_file():
                        raise  # intact files: the template does not match (not damage)
                    problem = f"unreadable: {_first_line(e)}"
                else:
                    bad = nonfinite_part(state)
                    if bad is None:
                        return step, state, damaged
                    problem = f"its {bad} are not finite"
            damaged.append((step, problem))
    finally:
        manager.close()
    if damaged:
        listed = "; ".join(f"step {s}: {why}" for s, why in damaged)
        raise RunDirError(
            f"{run_dir} has no usable checkpoint ({listed}); nothing was deleted. Start a new "
            "run in another directory, or restore the checkpoints from a backup"
        )
    return None, template, damaged


def _restore_quietly(manager: Any, step: int, template: Any, step_dir: Path) -> Any:
    """Restore, keeping the hundreds of lines Orbax/TensorStore print on a bad file quiet.

    A checkpoint whose checksums matched restores without noise; only an unverified one (no
    checksum file: written by an older cnnjax, or killed just before the checksums) is
    restored with stderr held back, and that output is dropped if the restore fails.
    """
    if (step_dir / CHECKSUMS).is_file():
        return restore(manager, step, template)
    with _held_stderr() as held, _quiet_orbax_log():
        try:
            return restore(manager, step, template)
        except Exception:
            time.sleep(0.3)  # Orbax's reader threads report after the exception
            held.drop = True
            raise


@contextlib.contextmanager
def _quiet_orbax_log() -> Iterator[None]:
    """Hold back Orbax's log lines about unreadable metadata while we judge a checkpoint."""
    logger = logging.getLogger("absl")

    def drop(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.CRITICAL

    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


class _Held(io.StringIO):
    drop = False


@contextlib.contextmanager
def _held_stderr() -> Iterator[_Held]:
    held = _Held()
    old_stderr, old_hook = sys.stderr, sys.unraisablehook
    sys.stderr, sys.unraisablehook = held, lambda unraisable: None
    try:
        yield held
    finally:
        sys.stderr, sys.unraisablehook = old_stderr, old_hook
        if not held.drop and held.getvalue():
            old_stderr.write(held.getvalue())


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    line = text[0] if text else ""
    line = f"{type(error).__name__}: {line}" if line else type(error).__name__
    return line if len(line) <= 160 else line[:157] + "..."


def _warn_damaged(
    run_dir: Path, damaged: list[tuple[int, str]], used: int | None, moved: list[Path]
) -> None:
    listed = "; ".join(f"step {s} ({why})" for s, why in damaged)
    using = f"using step {used} instead" if used is not None else "starting from scratch"
    where = f"; moved to {run_dir / DAMAGED}, nothing deleted" if moved else ""
    warnings.warn(
        f"{run_dir / CHECKPOINTS}: skipped damaged checkpoint {listed}; {using}{where}",
        CheckpointWarning,
        stacklevel=3,
    )


def _move_aside(run_dir: Path, damaged: list[tuple[int, str]]) -> list[Path]:
    """Move damaged step directories out of checkpoints/ (Orbax would keep them as newest)."""
    target_dir = run_dir / DAMAGED
    target_dir.mkdir(exist_ok=True)
    moved = []
    for step, _ in damaged:
        source = run_dir / CHECKPOINTS / str(step)
        target = target_dir / str(step)
        n = 1
        while target.exists():
            target = target_dir / f"{step}-{n}"
            n += 1
        source.rename(target)
        moved.append(target)
    return moved


# ----------------------------------------------------------------------------- integrity


def _checksums(step_dir: Path) -> dict[str, Any]:
    files = {}
    for path in sorted(step_dir.rglob("*")):
        rel = path.relative_to(step_dir).as_posix()
        if path.is_file() and not _is_ours(rel):
            files[rel] = sha256_file(path)
    return {"algorithm": "sha256", "files": files}


def _is_ours(rel: str) -> bool:
    return rel == CHECKSUMS or rel.startswith(f".{CHECKSUMS}.")


def verify_checkpoint(step_dir: Path) -> str | None:
    """Why the checkpoint in `step_dir` is damaged, or None if its files match their checksums.

    A checkpoint without a checksum file (an older cnnjax, or a run killed in the instant
    between Orbax's commit and the checksums) is not judged here: restoring it is the test.
    """
    path = step_dir / CHECKSUMS
    if not step_dir.is_dir():
        return "its directory is missing"
    if not path.exists():
        return None
    try:
        recorded = json.loads(path.read_text())
        files = recorded["files"]
        if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
            raise ValueError("no file table")
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"its checksum file {CHECKSUMS} is unreadable ({type(e).__name__})"
    missing, changed = [], []
    for rel, digest in files.items():
        file = step_dir / rel
        try:
            if sha256_file(file) != digest:
                changed.append(rel)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            missing.append(rel)
        except OSError:
            changed.append(rel)
    if missing:
        return f"{len(missing)} file(s) missing, e.g. {missing[0]}"
    if changed:
        return f"{len(changed)} file(s) changed or truncated, e.g. {changed[0]}"
    return None


_FINITE_FNS: dict[str, Any] = {}


def nonfinite_part(state: Any) -> str | None:
    """Which part of a train state is not finite ("parameters", ...), or None if all are.

    Parameters and batch statistics must be finite; the optimizer state must hold no NaN (some
    optimizers keep an infinite "best so far"). Other pytrees are checked whole for NaN.
    """
    parts: list[tuple[str, Any, bool]]
    if isinstance(state, Mapping) and "params" in state:
        state = SimpleNamespace(
            **{k: state[k] for k in ("params", "batch_stats", "opt_state") if k in state}
        )
    if hasattr(state, "params"):
        parts = [
            ("parameters", state.params, True),
            ("batch statistics", getattr(state, "batch_stats", {}), True),
            ("optimizer state", getattr(state, "opt_state", ()), False),
        ]
    else:
        parts = [("values", state, False)]
    for name, tree, strict in parts:
        leaves = [
            x
            for x in jax.tree_util.tree_leaves(tree)
            if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.inexact)
        ]
        if leaves and not _all_ok(leaves, strict):
            return name
    return None


def _all_ok(leaves: list[Any], strict: bool) -> bool:
    key = "finite" if strict else "no_nan"
    fn = _FINITE_FNS.get(key)
    if fn is None:
        test = jnp.isfinite if strict else (lambda x: ~jnp.isnan(x))
        fn = jax.jit(lambda xs: jnp.all(jnp.stack([jnp.all(test(x)) for x in xs])))
        _FINITE_FNS[key] = fn
    result = fn(leaves)
    if isinstance(result, jax.Array) and not result.is_fully_addressable:
        result = result.addressable_data(0)
    return bool(np.asarray(result))


# ------------------------------------------------------------------------ config, metrics


def read_config(run_dir: Path) -> dict[str, Any]:
    """The run's config.json as a dict with "spec" and "fit", or RunDirError naming the file."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise RunDirError(f"{run_dir} is not a cnnjax run directory (no {CONFIG})")
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise RunDirError(f"{path} is unreadable or not JSON ({_first_line(e)})") from None
    if not isinstance(config, dict):
        raise RunDirError(f"{path} must hold a JSON object, not {type(config).__name__}")
    if not isinstance(config.get("fit"), dict):
        raise RunDirError(f"{path} has no 'fit' object; it is not a cnnjax run config")
    if not isinstance(config.get("spec"), dict | None):  # None: a Flax module, not a spec
        raise RunDirError(f"{path}: 'spec' must be a spec object or null")
    return config


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    """Append one epoch's record to metrics.jsonl (rewritten atomically)."""
    records = [r for r in read_metrics(run_dir) if r["epoch"] < record["epoch"]]
    _write_metrics(run_dir, [*records, record])


def _write_metrics(run_dir: Path, records: list[dict[str, Any]]) -> None:
    write_atomic(run_dir / METRICS, "".join(json.dumps(r) + "\n" for r in records))


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The records of metrics.jsonl ([] if there is none), or RunDirError naming the bad line."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise RunDirError(f"{path} is unreadable ({_first_line(e)})") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        epoch = record.get("epoch") if isinstance(record, dict) else None
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
            raise RunDirError(
                f"{path}, line {number}: not a metrics record (a JSON object with an epoch "
                "number >= 1); the file is corrupt"
            )
        records.append(record)
    return records


def saved_structure(run_dir: Path) -> Any:
    """The latest checkpoint's tree as saved, with shape/dtype leaves: a restore template for a
    reader that does not know what wrote it (e.g. which optimizer)."""
    if not (run_dir / CHECKPOINTS).is_dir():
        raise RunDirError(f"{run_dir} has no checkpoints")
    import orbax.checkpoint as ocp

    manager = ocp.CheckpointManager(  # a handler, so that item_metadata can read the tree
        (run_dir / CHECKPOINTS).absolute(),
        options=ocp.CheckpointManagerOptions(create=False, enable_async_checkpointing=False),
        item_handlers=ocp.StandardCheckpointHandler(),
    )
    meta, damaged = None, []
    try:
        for step in sorted(manager.all_steps(), reverse=True):  # newest readable one
            problem = verify_checkpoint(run_dir / CHECKPOINTS / str(step))
            if problem is None:
                try:
                    with _held_stderr():
                        meta = manager.item_metadata(step)
                    break
                except Exception as e:  # damaged metadata: Orbax raises many kinds
                    problem = f"unreadable: {_first_line(e)}"
            damaged.append(f"step {step}: {problem}")
    finally:
        manager.close()
    if meta is None:
        why = f" ({'; '.join(damaged)})" if damaged else ""
        raise RunDirError(f"{run_dir} has no complete checkpoint{why}")
    return jax.tree_util.tree_map(
        lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), getattr(meta, "tree", meta)
    )
