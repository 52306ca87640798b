"""The run directory of one `fit` call: config, metrics, checkpoints, results.

`run_config` says what config.json records (the spec or the module, the settings, the
optimizer, the data sizes, devices and versions); `open_run_dir` refuses a mismatched resume
with a message naming the argument, then lets `cnnjax.checkpoint` restore; `RunFiles` saves
each epoch's record and checkpoint, and `write_results` writes results.json at the end.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optax

from cnnjax import checkpoint as ckpt
from cnnjax import parallel
from cnnjax.data import ArrayDataset
from cnnjax.errors import RunDirError, TrainingError
from cnnjax.metrics import History, mean_std_ci
from cnnjax.train import optimizers
from cnnjax.train.model import Model
from cnnjax.train.steps import LossFn, TrainState
from cnnjax.train.versions import versions

RESULTS = "results.json"


@dataclass
class RunFiles:
    """An open run directory (or none): its checkpoint manager and the restored progress."""

    path: Path | None
    manager: Any
    state: Any
    start_step: int = 0
    history: History = field(default_factory=History)

    @classmethod
    def none(cls) -> RunFiles:
        """No run directory: nothing is written."""
        return cls(None, None, None)

    def check_finite(self, bad_steps: np.ndarray) -> None:
        """Raise `TrainingError` if a seed hit a non-finite loss, gradient or updated state."""
        bad = np.asarray(bad_steps)
        if not (bad >= 0).any():
            return
        first = int(bad[bad >= 0].min())
        latest = self.manager.latest_step() if self.manager is not None else None
        where = (
            f"the last good checkpoint is step {latest} in {self.manager.directory}"
            if latest is not None
            else "no checkpoint was saved"
        )
        raise TrainingError(
            f"non-finite loss, gradient or updated parameters at step {first}: training "
            f"stopped ({where}; "
            "nothing saved was overwritten). Lower the learning rate or check the data."
        )

    def checkpoint_due(self, step: int, every: int) -> bool:
        """Whether a mid-epoch checkpoint is due after `step` (every `every` steps; 0: never)."""
        return self.manager is not None and every > 0 and step % every == 0

    def save(self, step: int, state: TrainState) -> None:
        if self.manager is not None:
            ckpt.save(self.manager, step, state)

    def end_epoch(self, step: int, record: dict[str, Any], state: TrainState) -> None:
        """Append the epoch's record to metrics.jsonl and checkpoint the state."""
        if self.manager is None or self.path is None:
            return
        if parallel.is_primary():
            ckpt.append_metrics(self.path, record)
        ckpt.save(self.manager, step, state)

    def close(self) -> None:
        if self.manager is not None:
            try:
                self.manager.wait_until_finished()
            finally:
                self.manager.close()  # also releases the run directory's lock


def run_config(
    model: Model,
    cfg: Any,
    optimizer: optax.GradientTransformation | None,
    state: TrainState,
    train: ArrayDataset,
    validation: ArrayDataset | None,
    layout: parallel.DataParallel | None,
    loss: LossFn | None,
    extra: dict[str, Any] | None,
) -> dict[str, Any]:
    """What config.json records: enough to rerun, and what a resume must match."""
    fit_cfg = cfg.to_dict()
    opt = optimizers.describe(optimizer, state.opt_state, cfg.optimizer, cfg.learning_rate)
    if optimizer is not None:  # the named settings did not apply: record what did
        fit_cfg["optimizer"] = "custom"
        fit_cfg["learning_rate"] = opt["hyperparams"].get("learning_rate")
    out: dict[str, Any] = {
        "spec": model.spec.to_dict() if model.spec is not None else None,
        "fit": fit_cfg,
        "optimizer": opt,
        "train_examples": len(train),
        "validation_examples": len(validation) if validation is not None else 0,
    }
    if model.spec is None:
        out["model"] = model.describe()
    if loss is not None:
        out["loss"] = (
            f"{getattr(loss, '__module__', '?')}.{getattr(loss, '__qualname__', repr(loss))}"
        )
    return {**out, **(extra or {}), "parallel": parallel.describe(layout), "versions": versions()}


def _check_resume(run_dir: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Refuse a resume with another module or optimizer (checkpoint checks the rest)."""
    custom = "custom" in (old.get("optimizer", {}).get("name"), new["optimizer"].get("name"))
    for key, what in (("model", "model"), ("optimizer", "optimizer"), ("loss", "loss function")):
        if key == "optimizer" and not custom:
            continue  # named optimizers: checkpoint compares fit.optimizer and learning_rate
        if (key in old or key in new) and old.get(key) != new.get(key):
            raise RunDirError(
                f"cannot resume {run_dir}: it was trained with another {what} "
                f"({old.get(key)!r}, now {new.get(key)!r}); pass the same one, or another run_dir="
            )


def open_run_dir(
    path: Path,
    config: dict[str, Any],
    state: TrainState,
    resume: bool,
    cfg: Any,
    steps_per_epoch: int,
) -> RunFiles:
    """Open `path` for a run (restoring its latest checkpoint with `resume`)."""
    config_path = path / ckpt.CONFIG
    has_run = config_path.exists() or (path / ckpt.CHECKPOINTS).exists()
    # Every process looks here, before process 0 writes anything (in ckpt.open_run).
    if has_run and not resume:
        raise RunDirError(
            f"{path} already holds a run; pass resume=True to continue it, or another run_dir="
        )
    if has_run and config_path.exists():
        _check_resume(path, ckpt.read_config(path), config)
    manager, state, start_step, history = ckpt.open_run(
        path,
        config,
        state,
        resume=resume,
        keep=cfg.keep_checkpoints,
        steps_per_epoch=steps_per_epoch,
    )
    return RunFiles(path, manager, state, start_step, history)


def results(history: History, execution: dict[str, Any] | None = None) -> dict[str, Any]:
    """What results.json holds: the history, the last epoch's validation mean ± CI, and how the
    run executed (`Strategy.execution`)."""
    out: dict[str, Any] = {"history": history.records}
    if execution is not None:
        out["execution"] = execution
    if history.records and history.records[-1].get("val_accuracy") is not None:
        last = history.records[-1]
        for key in ("val_accuracy", "val_loss"):
            value = last[key]
            out[key] = mean_std_ci(value if isinstance(value, list) else [value])
    return out


def write_results(path: Path, history: History, execution: dict[str, Any] | None = None) -> None:
    """Write results.json into the run directory."""
    ckpt.write_atomic(path / RESULTS, json.dumps(results(history, execution), indent=2) + "\n")
