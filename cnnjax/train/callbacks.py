"""Callbacks: code `fit` calls at epoch ends (and, if asked, step ends), Keras-like but functional.

A callback sees the epoch's record and the state (stacked over seeds) and answers with a
`Control`: stop after this epoch, and/or new values for hyperparameters that
`optax.inject_hyperparams` exposes. Those live in the optimizer state, so a change needs no
recompilation. A plain function ``fn(record, state) -> Control | bool | None`` is an epoch-end
callback (True stops). On resume, `on_train_begin` replays the finished epochs' records so
counters (patience, best value) continue exactly where the interrupted run left them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnjax.errors import TrainingError
from cnnjax.train.optimizers import hyperparams
from cnnjax.train.steps import TrainState


@dataclass
class Control:
    """What a callback asks of training."""

    stop: bool = False  # stop after this epoch (asked at a step end: after the current epoch)
    hyperparams: dict[str, float] = field(default_factory=dict)  # injected ones to set now


class Callback:
    """Base class: override the hooks you need; each may return a `Control` or None."""

    def on_train_begin(
        self, history: Sequence[dict[str, Any]], state: TrainState
    ) -> Control | None:
        """Before the first epoch; `history` holds the records of epochs already done (resume)."""
        return None

    def on_step_end(self, step: int, state: TrainState) -> Control | None:
        """After optimizer step `step` (1-based, counted over the whole run)."""
        return None

    def on_epoch_end(self, record: dict[str, Any], state: TrainState) -> Control | None:
        """After each epoch, with its record (the metrics.jsonl line)."""
        return None

    def on_train_end(self, history: Sequence[dict[str, Any]], state: TrainState) -> None:
        """After the last epoch (also after an early stop)."""

    @property
    def wants_steps(self) -> bool:
        """Whether `on_step_end` is overridden (fit skips the per-step call otherwise)."""
        return type(self).on_step_end is not Callback.on_step_end


class FunctionCallback(Callback):
    """An epoch-end callback from a plain function ``fn(record, state)``."""

    def __init__(self, fn: Callable[[dict[str, Any], TrainState], Any]):
        self.fn = fn

    def on_epoch_end(self, record: dict[str, Any], state: TrainState) -> Control | None:
        out = self.fn(record, state)
        if out is None or isinstance(out, Control):
            return out
        return Control(stop=bool(out))


def as_callbacks(callbacks: Sequence[Callback | Callable[..., Any]] | None) -> list[Callback]:
    """Callbacks as `Callback` objects (functions are wrapped)."""
    out: list[Callback] = []
    for cb in callbacks or ():
        if isinstance(cb, Callback):
            out.append(cb)
        elif callable(cb):
            out.append(FunctionCallback(cb))
        else:
            raise TrainingError(
                f"callbacks must be Callback objects or functions, got {type(cb).__name__}"
            )
    return out


def metric_value(record: dict[str, Any], monitor: str) -> float:
    """The monitored metric of a record (the mean over seeds in a k-seed run)."""
    if record.get(monitor) is None:
        keys = ", ".join(k for k, v in record.items() if v is not None and k != "epoch")
        raise TrainingError(f"cannot monitor {monitor!r}: the epoch records hold {keys}")
    return float(np.mean(record[monitor]))


class _Plateau(Callback):
    """Shared bookkeeping: the best value so far and epochs since it improved."""

    def __init__(self, monitor: str, mode: str, min_delta: float):
        if mode not in ("auto", "min", "max"):
            raise TrainingError(f"mode must be auto, min or max, got {mode!r}")
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.monitor, self.sign, self.min_delta = monitor, 1.0 if mode == "min" else -1.0, min_delta
        self.best, self.wait = math.inf, 0

    def _improved(self, record: dict[str, Any]) -> bool:
        value = self.sign * metric_value(record, self.monitor)
        if value < self.best - self.min_delta:
            self.best, self.wait = value, 0
            return True
        self.wait += 1
        return False


class EarlyStopping(_Plateau):
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs."""

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 3,
        min_delta: float = 0.0,
        mode: str = "auto",
    ):
        super().__init__(monitor, mode, min_delta)
        self.patience = patience
        self.stopped_epoch: int | None = None

    def on_train_begin(
        self, history: Sequence[dict[str, Any]], state: TrainState
    ) -> Control | None:
        self.best, self.wait, self.stopped_epoch = math.inf, 0, None
        stop = None
        for record in history:
            stop = self.on_epoch_end(record, state)
        return stop

    def on_epoch_end(self, record: dict[str, Any], state: TrainState) -> Control | None:
        if not self._improved(record) and self.wait >= self.patience:
            self.stopped_epoch = int(record["epoch"])
            return Control(stop=True)
        return None


class ReduceLROnPlateau(_Plateau):
    """Multiply an injected hyperparameter (the learning rate) by `factor` on a plateau.

    The optimizer must expose it: ``optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)``.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 2,
        min_delta: float = 1e-4,
        min_value: float = 0.0,
        mode: str = "auto",
        hyperparam: str = "learning_rate",
    ):
        if not 0 < factor < 1:
            raise TrainingError(f"factor must lie in (0, 1), got {factor}")
        super().__init__(monitor, mode, min_delta)
        self.factor, self.patience, self.min_value, self.name = (
            factor,
            patience,
            min_value,
            hyperparam,
        )

    def on_train_begin(
        self, history: Sequence[dict[str, Any]], state: TrainState
    ) -> Control | None:
        if self.name not in hyperparams(state.opt_state):
            raise TrainingError(
                f"ReduceLROnPlateau changes {self.name!r}, which the optimizer does not expose; "
                f"build it with optax.inject_hyperparams(...)({self.name}=...)"
            )
        self.best, self.wait = math.inf, 0
        for record in history:  # the values it set are in the restored state already
            if not self._improved(record) and self.wait >= self.patience:
                self.wait = 0
        return None

    def on_epoch_end(self, record: dict[str, Any], state: TrainState) -> Control | None:
        if self._improved(record) or self.wait < self.patience:
            return None
        self.wait = 0
        current = hyperparams(state.opt_state)[self.name]
        new = max(current * self.factor, self.min_value)
        return Control(hyperparams={self.name: new}) if new < current else None
