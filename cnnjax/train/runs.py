"""Reading a run directory back: its spec or module, config, history and latest state.

Without the optimizer (a run trained with a custom optax one) `load_run` restores the
parameters and batch statistics from the checkpoint as saved, whatever optimizer state lies
beside them; with it (or for a named optimizer, rebuilt from config.json) the full state, ready
to train on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import numpy as np
import optax

from cnnjax import checkpoint as ckpt
from cnnjax.errors import RunDirError, TrainingError
from cnnjax.spec import NetSpec, from_dict
from cnnjax.train.fit import variables_of
from cnnjax.train.model import Model, as_model
from cnnjax.train.steps import OPTIMIZERS, TrainState, create_train_state, make_optimizer


@dataclass
class LoadedRun:
    """A trained run read back from its directory (``state.opt_state`` is None when the run's
    optimizer was not given and cannot be rebuilt by name)."""

    run_dir: Path
    spec: NetSpec | None
    config: dict[str, Any]
    history: list[dict[str, Any]]
    state: TrainState
    seeds: int
    model: Model | None = None

    @property
    def variables(self) -> dict[str, Any]:
        """Flax variables of seed 0."""
        return self.variables_of(0)

    def variables_of(self, seed_index: int = 0) -> dict[str, Any]:
        """Flax variables of one seed."""
        return variables_of(self.state, self.seeds, seed_index)


def _model(config: dict[str, Any], path: Path, model: Any, input_shape: Any) -> Model:
    if config.get("spec") is not None:
        return as_model(from_dict(config["spec"]))
    recorded = config.get("model", {})
    if model is None:
        raise TrainingError(
            f"{path} was trained with a Flax module ({recorded.get('module', '?')}); pass it: "
            "load_run(run_dir, model=MyModule())"
        )
    if isinstance(model, nn.Module) and input_shape is None:
        input_shape = tuple(recorded.get("input_shape", ())) or None
    return as_model(model, input_shape)


def load_run(
    run_dir: str | Path,
    model: NetSpec | nn.Module | Model | None = None,
    *,
    optimizer: optax.GradientTransformation | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> LoadedRun:
    """Read a run directory written by `fit`: model, config, history and the latest state.

    `model` is needed only for a run of a Flax module that is not a cnnjax spec (its input
    shape is read from config.json); `optimizer` only to restore the optimizer state of a run
    trained with a custom optax optimizer.
    """
    path = Path(run_dir)
    config = ckpt.read_config(path)
    m = _model(config, path, model, input_shape)
    fit_cfg = config["fit"]
    k = int(fit_cfg["seeds"])
    tx = optimizer
    if tx is None and fit_cfg.get("optimizer") in OPTIMIZERS:
        tx = make_optimizer(fit_cfg["optimizer"], fit_cfg["learning_rate"])
    if tx is not None:
        seeds = np.arange(k, dtype=np.uint32)
        template = (
            jax.eval_shape(jax.vmap(lambda s: create_train_state(m, tx, s)), seeds)
            if k > 1
            else jax.eval_shape(lambda: create_train_state(m, tx, 0))
        )
        try:
            state = ckpt.restore_latest(path, template)
        except ValueError as err:
            raise RunDirError(
                f"{path}: the checkpoint does not match this model and optimizer ({err})"
            ) from None
    else:
        saved = ckpt.restore_latest(path, ckpt.saved_structure(path))
        fields = {f: saved[f] for f in TrainState._fields if f != "opt_state"}
        state = TrainState(opt_state=None, **fields)
    return LoadedRun(path, m.spec, config, ckpt.read_metrics(path), state, k, m)
