"""`fit`: train a model on data, k seeds at once, with a run directory, resume and callbacks.

fit is a short sequence of named steps: check the settings, read the model and data, choose
the execution strategy, open the run directory (restoring on resume), run the epochs, write
the results. Small datasets live on the device and batches are gathered there by index, so the
hot loop is one dispatch per step; the host reads the running sums and the non-finite-step flag
every `NAN_CHECK_EVERY` steps and at each epoch end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from cnnjax import parallel
from cnnjax.data import ArrayDataset, batch_indices, num_batches
from cnnjax.errors import ParallelError, TrainingError
from cnnjax.metrics import History
from cnnjax.spec import NetSpec
from cnnjax.train import memory, rundir, strategies
from cnnjax.train.callbacks import Callback, Control, as_callbacks
from cnnjax.train.evaluation import metrics_from_sums
from cnnjax.train.inputs import as_dataset, check_data_fits, classes_for
from cnnjax.train.model import Model, as_model
from cnnjax.train.optimizers import hyperparams, set_hyperparams
from cnnjax.train.progress import Progress
from cnnjax.train.steps import LossFn, TrainState, make_eval_step, make_optimizer, make_train_step

NAN_CHECK_EVERY = 50  # steps between host checks for a non-finite loss (and bar updates)


@dataclass(frozen=True)
class FitConfig:
    """Everything `fit` needs besides the data (saved as config.json in the run directory)."""

    epochs: int = 5
    batch_size: int = 32
    optimizer: str = "adam"  # a name (make_optimizer); fit(optimizer=tx) takes any optax one
    learning_rate: float = 1e-3
    seed: int = 0
    seeds: int = 1
    checkpoint_every: int = 0  # steps; 0: at epoch ends only
    keep_checkpoints: int = 3
    eval_batch_size: int = 1000  # at most the validation set's size (rounded up to the devices)
    eval_every: int = 1  # validate after every N-th epoch and after the last (Keras's
    # validation_freq); the other epochs' records have no val_ metrics
    pool_impl: str = "auto"
    conv_impl: str = "auto"  # cnnjax.models.CONV_IMPLS; auto: the fastest per backend
    norm_impl: str = "auto"  # cnnjax.models.NORM_IMPLS: batch norm's path
    merge_impl: str = "auto"  # cnnjax.models.MERGE_IMPLS: residual outputs (cnnjax.fence)
    seed_mode: str = "auto"  # k seeds: "vmap" (one program), "loop" (a step per seed on one
    # device), "devices" (side by side on several CPU devices, else loop); auto: devices on a
    # CPU split into several (strategies.spreads_seeds: small activations, 500+ steps per
    # seed), else loop on a CPU, vmap elsewhere
    dtype: str = "float32"
    devices: int | str | Sequence[Any] | None = None  # data parallel over N devices, "all",
    # or a list of devices (or a Mesh); None: automatic (cnnjax.parallel)

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        if self.devices is not None and not isinstance(self.devices, (int, str)):
            out["devices"] = [getattr(d, "id", str(d)) for d in parallel.device_list(self.devices)]
        return out


@dataclass
class FitResult:
    """What `fit` returns: the history, the final state (leading seed axis if k > 1)."""

    history: History
    state: TrainState
    spec: NetSpec | None
    seeds: int
    run_dir: Path | None = None
    test: dict[str, Any] | None = None
    model: Model | None = None
    execution: dict[str, Any] | None = None  # how it ran: strategy and device count

    def variables_of(self, seed_index: int = 0) -> dict[str, Any]:
        """Flax variables of one seed (for `model.apply` and the inspection tools)."""
        return variables_of(self.state, self.seeds, seed_index)

    def variables(self, seed_index: int = 0) -> dict[str, Any]:
        """The same as `variables_of` (kept for existing code)."""
        return self.variables_of(seed_index)


def variables_of(state: TrainState, seeds: int, seed_index: int) -> dict[str, Any]:
    """Flax variables of seed `seed_index` of a (stacked) state."""
    if not -seeds <= seed_index < seeds:
        raise TrainingError(f"seed index {seed_index} is out of range for {seeds} seed(s)")
    if seeds > 1:
        state = jax.tree_util.tree_map(lambda x: x[seed_index], state)
    out = {"params": state.params}
    if state.batch_stats:
        out["batch_stats"] = state.batch_stats
    return out


def fit(
    model: NetSpec | nn.Module | Model,
    train: ArrayDataset | tuple[Any, Any],
    *,
    validation: ArrayDataset | tuple[Any, Any] | None = None,
    config: FitConfig | None = None,
    optimizer: optax.GradientTransformation | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    extra_config: dict[str, Any] | None = None,
    progress: bool | None = None,
    log: Any = None,
    input_shape: tuple[int, ...] | None = None,
    loss: LossFn | None = None,
    callbacks: Sequence[Callback | Callable[..., Any]] | None = None,
) -> FitResult:
    """Train `model` on `train` (Keras `model.fit`), evaluating on `validation` each epoch
    (every `config.eval_every` epochs, and after the last).

    `model` is a cnnjax spec or any Flax Linen module (its input shape defaults to the data's);
    `train` and `validation` are `ArrayDataset`s or `(images, labels)` pairs of arrays.
    `optimizer` is any optax transformation (default: `config.optimizer` by name); `loss` a
    per-example loss ``(logits, labels) -> [batch]`` (default: softmax cross-entropy, sigmoid
    for one output unit); `callbacks` see `cnnjax.train.callbacks`.

    With `run_dir`, writes config.json, metrics.jsonl, results.json and Orbax checkpoints
    there, and with `resume=True` continues from the latest checkpoint exactly as if never
    interrupted. `progress`: None picks by the log stream, False prints nothing.

    `config.devices` picks data parallelism (`cnnjax.parallel`). On one device a run is
    bit-identical run to run; across device counts it agrees within float rounding.
    """
    cfg = config or FitConfig()
    _check_config(cfg)
    m, train_ds, val_ds = _read_inputs(model, train, validation, cfg, input_shape)
    steps_per_epoch = num_batches(len(train_ds), cfg.batch_size)
    spread = strategies.spreads_seeds(
        cfg.seed_mode, cfg.devices is not None, m, cfg.batch_size, cfg.epochs * steps_per_epoch
    )
    copies = max(1, len(strategies.seed_devices(cfg.seeds))) if spread else 1  # data per device
    data_bytes = sum(ds.images.nbytes for ds in (train_ds, val_ds) if ds is not None)
    memory.check_fits(m, cfg.batch_size, cfg.seeds, data_bytes * copies)
    layout = _layout(cfg)
    tx = optimizer or make_optimizer(cfg.optimizer, cfg.learning_rate)
    seeds = np.arange(cfg.seed, cfg.seed + cfg.seeds, dtype=np.uint32)
    job = strategies.Job(
        m,
        tx,
        make_train_step(m, tx, loss),
        make_eval_step(m, loss),
        seeds,
        train_ds,
        val_ds,
        cfg.eval_batch_size,
    )
    prog = strategies.choose(layout, cfg.seed_mode, job, spread=spread)
    run = rundir.RunFiles.none()
    state = prog.state
    if run_dir is not None:
        full_config = rundir.run_config(
            m, cfg, optimizer, prog.stacked(state), train_ds, val_ds, layout, loss, extra_config
        )
        run = rundir.open_run_dir(
            Path(run_dir), full_config, prog.stacked(state), resume, cfg, steps_per_epoch
        )
    bar = None
    try:  # from here on the run directory (and its lock) is released whatever happens
        if run_dir is not None:
            state = prog.unstacked(run.state)
        cbs = as_callbacks(callbacks)
        _check_monitors(cbs, cfg, val_ds is not None)
        bar = Progress(
            cfg.epochs, steps_per_epoch, progress, stream=log, silent=not parallel.is_primary()
        )
        state = _run_epochs(prog, state, run, cbs, bar, cfg, train_ds, seeds, steps_per_epoch)
    finally:
        if bar is not None:
            bar.close()
        run.close()
    stacked = prog.stacked(state)
    for cb in cbs:
        cb.on_train_end(run.history.records, stacked)
    execution = prog.execution()
    if run.path is not None and parallel.is_primary():
        rundir.write_results(run.path, run.history, execution)
    if layout is not None:
        # The replicated state as this process's own copy, so the caller can apply the model
        # to local arrays (inspection, probes) in every process of a multi-host run.
        stacked = jax.tree_util.tree_map(
            lambda a: a.addressable_data(0) if isinstance(a, jax.Array) else a, stacked
        )
    return FitResult(
        run.history,
        stacked,
        m.spec,
        cfg.seeds,
        run.path,
        model=m,
        execution=execution,
    )


def _check_config(cfg: FitConfig) -> None:
    """Refuse settings that cannot train, naming the argument."""
    for name in ("epochs", "batch_size", "seeds", "eval_batch_size", "eval_every"):
        if getattr(cfg, name) < 1:
            raise TrainingError(f"FitConfig.{name} must be positive, got {getattr(cfg, name)}")
    if cfg.seed_mode not in ("auto", "vmap", "loop", "devices"):
        raise TrainingError(f"seed_mode must be auto, vmap, loop or devices, got {cfg.seed_mode!r}")
    if cfg.dtype not in ("float32", "bfloat16"):
        raise TrainingError(f"dtype must be float32 or bfloat16, got {cfg.dtype!r}")


def _check_monitors(cbs: list[Callback], cfg: FitConfig, validates: bool) -> None:
    """Refuse a callback watching a validation metric that some epochs will not compute."""
    for cb in cbs:
        monitor = getattr(cb, "monitor", None)
        if not (isinstance(monitor, str) and monitor.startswith("val_")):
            continue
        if not validates:
            raise TrainingError(
                f"{type(cb).__name__} monitors {monitor!r}, but fit has no validation data: "
                "pass validation=... or monitor a training metric ('loss', 'accuracy')"
            )
        if cfg.eval_every > 1:
            raise TrainingError(
                f"{type(cb).__name__} monitors {monitor!r}, which FitConfig.eval_every="
                f"{cfg.eval_every} computes only every {cfg.eval_every} epochs: use eval_every=1 "
                "or monitor a training metric ('loss', 'accuracy')"
            )


def _read_inputs(
    model: NetSpec | nn.Module | Model,
    train: ArrayDataset | tuple[Any, Any],
    validation: ArrayDataset | tuple[Any, Any] | None,
    cfg: FitConfig,
    input_shape: tuple[int, ...] | None,
) -> tuple[Model, ArrayDataset, ArrayDataset | None]:
    """The model as the engine applies it, and the data as datasets that fit it."""
    dtype = jnp.bfloat16 if cfg.dtype == "bfloat16" else jnp.float32
    shape = input_shape
    if shape is None and not isinstance(model, (NetSpec, Model, nn.Module)):
        raise TrainingError(
            f"model must be a cnnjax NetSpec or a Flax Linen module, got {type(model).__name__}"
        )
    if shape is None and not isinstance(model, (NetSpec, Model)):
        shape = as_dataset(train, "train").image_shape  # a plain module: the data's shape
    m = as_model(
        model,
        shape,
        dtype=dtype,
        pool_impl=cfg.pool_impl,
        conv_impl=cfg.conv_impl,
        norm_impl=cfg.norm_impl,
        merge_impl=cfg.merge_impl,
    )
    classes = classes_for(m)
    train_ds = as_dataset(train, "train", num_classes=classes)
    val_ds = (
        as_dataset(validation, "validation", num_classes=train_ds.num_classes)
        if validation is not None
        else None
    )
    check_data_fits(m, train_ds)
    if val_ds is not None:
        check_data_fits(m, val_ds)
    if len(train_ds) < cfg.batch_size:
        raise TrainingError(
            f"batch size {cfg.batch_size} exceeds the {len(train_ds)} training examples"
        )
    return m, train_ds, val_ds


def _layout(cfg: FitConfig) -> parallel.DataParallel | None:
    """The data-parallel layout for `cfg.devices`, or None for one device."""
    try:
        layout = parallel.data_parallel(cfg.devices)
        if layout is not None:
            layout.check_batch(cfg.batch_size)
    except ParallelError as err:
        raise TrainingError(str(err)) from None
    return layout


def _apply(prog: strategies.Strategy, state: Any, control: Control | None) -> tuple[Any, bool]:
    """Set the hyperparameters a callback asked for; whether it asked to stop."""
    if control is None:
        return state, False
    if control.hyperparams:
        values = control.hyperparams
        state = prog.each(
            state, lambda s: s._replace(opt_state=set_hyperparams(s.opt_state, values))
        )
    return state, control.stop


def _run_epochs(
    prog: strategies.Strategy,
    state: Any,
    run: rundir.RunFiles,
    cbs: list[Callback],
    bar: Progress,
    cfg: FitConfig,
    train: ArrayDataset,
    seeds: np.ndarray,
    steps_per_epoch: int,
) -> Any:
    """The epoch loop: steps, checks, records, callbacks, checkpoints. Returns the state."""
    stop = False
    for cb in cbs:
        state, asked = _apply(
            prog, state, cb.on_train_begin(run.history.records, prog.stacked(state))
        )
        stop |= asked
    step_cbs = [cb for cb in cbs if cb.wants_steps]
    shard = {"process_index": jax.process_index(), "process_count": jax.process_count()}
    step, k = run.start_step, len(seeds)
    for epoch in range(step // steps_per_epoch, cfg.epochs):
        if stop:
            break
        plans = np.stack(
            [
                batch_indices(len(train), cfg.batch_size, seed=int(s), epoch=epoch, **shard)
                for s in seeds
            ]
        )  # [k, steps, batch / processes]: this process's part of each global batch
        plan = prog.put_plan(plans)
        bar.begin_epoch(epoch)
        t0 = time.perf_counter()
        first = step % steps_per_epoch
        for b in range(first, steps_per_epoch):
            state = prog.run_batch(state, plan, b)
            step += 1
            if (b + 1) % NAN_CHECK_EVERY == 0:
                if jax.process_count() == 1:  # a lone raise would strand the others
                    run.check_finite(prog.bad_steps(state))
                if bar.bar:
                    loss, acc = metrics_from_sums(prog.sums(state))
                    bar.update(b + 1, float(np.mean(loss)), float(np.mean(acc)))
            for cb in step_cbs:
                state, asked = _apply(prog, state, cb.on_step_end(step, prog.stacked(state)))
                stop |= asked
            if run.checkpoint_due(step, cfg.checkpoint_every) and b + 1 < steps_per_epoch:
                run.check_finite(prog.bad_steps(state))
                run.save(step, prog.stacked(state))
        run.check_finite(prog.bad_steps(state))
        validate = stop or epoch + 1 == cfg.epochs or (epoch + 1) % cfg.eval_every == 0
        record = _epoch_record(
            prog, state, epoch, time.perf_counter() - t0, cfg, k, steps_per_epoch - first, validate
        )
        run.history.records.append(record)
        bar.end_epoch(epoch, record)
        state = prog.reset_sums(state)
        if cbs:
            stacked = prog.stacked(state)
            for cb in cbs:
                state, asked = _apply(prog, state, cb.on_epoch_end(record, stacked))
                stop |= asked
        if stop and not validate:  # a callback ended the run here: the last record validates
            record.update(_validation(prog, state))
        run.end_epoch(step, record, prog.stacked(state))
    return state


def _epoch_record(
    prog: strategies.Strategy,
    state: Any,
    epoch: int,
    seconds: float,
    cfg: FitConfig,
    k: int,
    steps: int,
    validate: bool = True,
) -> dict[str, Any]:
    """One epoch's metrics (the metrics.jsonl line), with any injected hyperparameters."""
    loss, acc = metrics_from_sums(prog.sums(state))
    record: dict[str, Any] = {"epoch": epoch + 1, "loss": loss, "accuracy": acc}
    if validate:
        record.update(_validation(prog, state))
    record["seconds"] = seconds
    record["images_per_second"] = steps * cfg.batch_size * k / seconds
    exposed = hyperparams(state)  # the first seed's values
    record.update({name: v for name, v in exposed.items() if name not in record})
    return record


def _validation(prog: strategies.Strategy, state: Any) -> dict[str, Any]:
    """val_loss and val_accuracy on the validation data (nothing without it)."""
    if prog.val_data is None:
        return {}
    val_loss, val_acc = metrics_from_sums(prog.eval_sums(state))
    return {"val_loss": val_loss, "val_accuracy": val_acc}
