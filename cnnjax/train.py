"""Training engine: a pure jitted Optax step, `fit` / `evaluate`, k seeds at once, resume.

The whole training state is one pytree (`TrainState`). `train_step` and `eval_step` are pure
functions compiled with `jax.jit`; the state is donated. Small datasets live on the device and
batches are gathered there by index, so the hot loop is one dispatch per step and no host sync;
the host reads the running sums only to draw the progress bar and at the end of an epoch.
k seeds train together in one compiled program by `jax.vmap` over the state and the per-seed
index plans. A step whose loss or gradient is not finite leaves the state untouched and
records its step number; the host notices at the next sync and raises `TrainingError`.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cnnjax.data import ArrayDataset, DeviceDataset, batch_indices, num_batches
from cnnjax.models import SpecModel, build_model, has_batch_norm, init_variables
from cnnjax.spec import NetSpec


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, a mismatched resume): one clear message."""


# --------------------------------------------------------------------------- state


class TrainState(NamedTuple):
    """Everything that changes during training, as one checkpointable pytree."""

    step: jax.Array  # int32 scalar: optimizer steps taken
    params: Any
    batch_stats: Any  # {} without batch norm
    opt_state: Any
    rng: jax.Array  # uint32 raw key data (checkpointable); dropout keys fold in the step
    sums: jax.Array  # float32[3]: this epoch's loss sum, correct count, example count
    bad_step: jax.Array  # int32: first step with a non-finite loss or gradient, -1 if none


def make_optimizer(name: str = "adam", learning_rate: float = 1e-3) -> optax.GradientTransformation:
    """Keras-equivalent optimizers by name (Adam's epsilon is Keras's 1e-7)."""
    name = name.lower()
    if name == "adam":
        return optax.adam(learning_rate, eps=1e-7)
    if name == "adamw":
        return optax.adamw(learning_rate, eps=1e-7)
    if name == "sgd":
        return optax.sgd(learning_rate)
    if name == "momentum":
        return optax.sgd(learning_rate, momentum=0.9)
    if name == "rmsprop":
        return optax.rmsprop(learning_rate, decay=0.9, eps=1e-7)
    raise TrainingError(f"unknown optimizer {name!r}; choose adam, adamw, sgd, momentum or rmsprop")


def create_train_state(
    model: SpecModel, tx: optax.GradientTransformation, seed: int | jax.Array
) -> TrainState:
    """A fresh state from an integer seed (or a uint32 seed array, under vmap)."""
    key = jax.random.key(seed)
    init_key, rng_key = jax.random.split(key)
    variables = init_variables(model, init_key)
    params = variables.get("params", {})
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=tx.init(params),
        rng=jax.random.key_data(rng_key),
        sums=jnp.zeros((3,), jnp.float32),
        bad_step=jnp.full((), -1, jnp.int32),
    )


# --------------------------------------------------------------------------- loss and steps


def loss_and_correct(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-example loss and correctness: softmax cross-entropy from integer labels, or sigmoid
    cross-entropy for a one-unit binary head."""
    logits = logits.astype(jnp.float32)
    if logits.shape[-1] == 1:
        z = logits[:, 0]
        loss = optax.sigmoid_binary_cross_entropy(z, labels.astype(jnp.float32))
        correct = (z > 0).astype(jnp.int32) == labels
    else:
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        correct = jnp.argmax(logits, axis=-1) == labels
    return loss, correct.astype(jnp.float32)


def _tree_where(cond: jax.Array, a: Any, b: Any) -> Any:
    return jax.tree_util.tree_map(lambda x, y: jnp.where(cond, x, y), a, b)


def make_train_step(
    model: SpecModel, tx: optax.GradientTransformation
) -> Callable[[TrainState, jax.Array, jax.Array], TrainState]:
    """The pure step `(state, images, labels) -> state` (not yet jitted; vmap-able)."""
    use_bn = has_batch_norm(model.spec)

    def train_step(state: TrainState, images: jax.Array, labels: jax.Array) -> TrainState:
        dropout_key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)

        def loss_fn(params: Any) -> tuple[jax.Array, tuple[jax.Array, Any]]:
            variables = {"params": params}
            if use_bn:
                variables["batch_stats"] = state.batch_stats
                logits, updates = model.apply(
                    variables,
                    images,
                    train=True,
                    rngs={"dropout": dropout_key},
                    mutable=["batch_stats"],
                )
                new_stats = updates["batch_stats"]
            else:
                logits = model.apply(variables, images, train=True, rngs={"dropout": dropout_key})
                new_stats = state.batch_stats
            loss, correct = loss_and_correct(logits, labels)
            return loss.mean(), (correct.sum(), new_stats)

        (loss, (correct, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params
        )
        finite = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(grads))
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ok = finite & (state.bad_step < 0)
        n = jnp.asarray(labels.shape[0], jnp.float32)
        return TrainState(
            step=state.step + 1,
            params=_tree_where(ok, params, state.params),
            batch_stats=_tree_where(ok, new_stats, state.batch_stats),
            opt_state=_tree_where(ok, opt_state, state.opt_state),
            rng=state.rng,
            sums=jnp.where(ok, state.sums + jnp.stack([loss * n, correct, n]), state.sums),
            bad_step=jnp.where((state.bad_step < 0) & ~finite, state.step, state.bad_step),
        )

    return train_step


def make_eval_step(model: SpecModel) -> Callable[..., jax.Array]:
    """The pure step `(params, batch_stats, images, labels, mask) -> [loss sum, correct, count]`."""
    use_bn = has_batch_norm(model.spec)

    def eval_step(
        params: Any, batch_stats: Any, images: jax.Array, labels: jax.Array, mask: jax.Array
    ) -> jax.Array:
        variables = {"params": params, **({"batch_stats": batch_stats} if use_bn else {})}
        logits = model.apply(variables, images, train=False)
        loss, correct = loss_and_correct(logits, labels)
        m = mask.astype(jnp.float32)
        return jnp.stack([(loss * m).sum(), (correct * m).sum(), m.sum()])

    return eval_step


# --------------------------------------------------------------------------- history


@dataclass
class History:
    """Per-epoch metrics, as Keras's `History.history` but one dict per epoch.

    Each record has `epoch` (1-based), `loss`, `accuracy`, `val_loss`, `val_accuracy`,
    `seconds`, `images_per_second`; in a k-seed run every metric is a list of k floats.
    """

    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def history(self) -> dict[str, list[Any]]:
        """Keras layout: metric name -> list over epochs."""
        keys = [k for k in (self.records[0] if self.records else {}) if k != "epoch"]
        return {k: [r.get(k) for r in self.records] for k in keys}

    def last(self, key: str) -> Any:
        return self.records[-1][key] if self.records else None

    def __len__(self) -> int:
        return len(self.records)


def mean_std_ci(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation and the 95% confidence half-width (Student t)."""
    arr = np.asarray(values, dtype=np.float64)
    k = arr.size
    mean = float(arr.mean())
    if k < 2:
        return {"mean": mean, "std": 0.0, "ci95": float("nan"), "n": k}
    std = float(arr.std(ddof=1))
    return {"mean": mean, "std": std, "ci95": _t975(k - 1) * std / math.sqrt(k), "n": k}


def _t975(dof: int) -> float:
    """The 97.5% quantile of Student's t (two-sided 95%), tabulated; normal beyond 30."""
    table = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
             2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
             2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]  # fmt: skip
    return table[dof - 1] if dof <= len(table) else 1.960


# --------------------------------------------------------------------------- progress


class Progress:
    """A Keras-like progress bar on a terminal; one plain line per epoch elsewhere (CI, logs)."""

    def __init__(
        self,
        epochs: int,
        steps: int,
        enabled: bool | None = None,
        stream: Any = None,
        silent: bool = False,
    ):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if enabled is None else enabled
        self.silent = silent  # processes other than 0 of a multi-host run print nothing
        self.tty = self.tty and not silent
        self.epochs, self.steps = epochs, steps
        self.start = time.perf_counter()

    def begin_epoch(self, epoch: int) -> None:
        self.start = time.perf_counter()
        if self.tty:
            print(f"Epoch {epoch + 1}/{self.epochs}", file=self.stream)

    def update(self, step: int, loss: float, acc: float) -> None:
        if not self.tty:
            return
        width = 30
        done = int(width * step / max(self.steps, 1))
        bar = "=" * max(done - 1, 0) + (">" if done < width else "=") + "." * (width - done)
        elapsed = time.perf_counter() - self.start
        print(
            f"\r{step}/{self.steps} [{bar}] {elapsed:.0f}s - loss: {loss:.4f} - accuracy: {acc:.4f}",
            end="",
            file=self.stream,
            flush=True,
        )

    def end_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        if self.silent:
            return
        parts = [
            f"{k}: {_fmt_metric(record[k])}"
            for k in ("loss", "accuracy", "val_loss", "val_accuracy")
            if record.get(k) is not None
        ]
        line = f"{record['seconds']:.1f}s {record['images_per_second']:,.0f} img/s - " + " - ".join(
            parts
        )
        if self.tty:
            print(f"\r{self.steps}/{self.steps} [{'=' * 30}] {line}", file=self.stream, flush=True)
        else:
            print(f"epoch {epoch + 1}/{self.epochs} {line}", file=self.stream, flush=True)


def _fmt_metric(value: Any) -> str:
    if isinstance(value, list):
        s = mean_std_ci(value)
        return f"{s['mean']:.4f}±{s['std']:.4f}"
    return f"{value:.4f}"


# --------------------------------------------------------------------------- evaluation


def _eval_sums(
    eval_fn: Callable[..., jax.Array],
    state: TrainState,
    data: DeviceDataset,
    batch: int,
    seeds: int | None,
) -> np.ndarray:
    idx, mask = batch_indices(
        len(data), batch, seed=0, epoch=0, shuffle=False, drop_remainder=False
    )
    total = None
    for b in range(idx.shape[0]):
        images, labels = data.gather(jnp.asarray(idx[b]))
        sums = eval_fn(state.params, state.batch_stats, images, labels, jnp.asarray(mask[b]))
        total = sums if total is None else total + sums
    return np.asarray(total)


def _metrics_from_sums(sums: np.ndarray) -> tuple[Any, Any]:
    """(loss, accuracy) from [..., 3] sums: floats for one seed, lists for k seeds."""
    loss, acc = sums[..., 0] / sums[..., 2], sums[..., 1] / sums[..., 2]
    if loss.ndim == 0:
        return float(loss), float(acc)
    return [float(v) for v in loss], [float(v) for v in acc]


# --------------------------------------------------------------------------- programs


class _SingleDevice:
    """The program on one device: the default device, no mesh (what a 1-device machine runs)."""

    def __init__(
        self,
        model: SpecModel,
        tx: optax.GradientTransformation,
        step_fn: Callable[..., TrainState],
        eval_fn: Callable[..., jax.Array],
        cfg: FitConfig,
        seeds: np.ndarray,
        train: ArrayDataset,
        validation: ArrayDataset | None,
    ):
        self._put_data(cfg, seeds, train, validation)
        step_fn, eval_fn = _vmap_seeds(step_fn, eval_fn, self.k)

        def run_batch(
            state: TrainState, data: DeviceDataset, plan: jax.Array, b: jax.Array
        ) -> TrainState:
            idx = jax.lax.dynamic_index_in_dim(plan, b, axis=-2, keepdims=False)
            images, labels = data.gather(idx)
            return step_fn(state, images, labels)

        self.run_batch_jit = jax.jit(run_batch, donate_argnums=0)
        self.eval_jit = jax.jit(eval_fn)
        init = jax.jit(lambda s: create_train_state(model, tx, s))
        self.state = (
            jax.vmap(lambda s: create_train_state(model, tx, s))(seeds)
            if self.k > 1
            else init(cfg.seed)
        )

    def _put_data(
        self,
        cfg: FitConfig,
        seeds: np.ndarray,
        train: ArrayDataset,
        validation: ArrayDataset | None,
    ) -> None:
        """Put the datasets on the default device once; batches are gathered there by index."""
        self.train_data = DeviceDataset.put(train)
        self.val_data = DeviceDataset.put(validation) if validation is not None else None
        self.eval_batch_size, self.k = cfg.eval_batch_size, len(seeds)

    def put_plan(self, plan: np.ndarray) -> jax.Array:
        return jnp.asarray(plan)

    def run_batch(self, state: TrainState, plan: jax.Array, b: int) -> TrainState:
        return self.run_batch_jit(state, self.train_data, plan, jnp.int32(b))

    def eval_sums(self, state: TrainState) -> np.ndarray:
        assert self.val_data is not None
        return _eval_sums(self.eval_jit, state, self.val_data, self.eval_batch_size, self.k)

    def reset_sums(self, state: TrainState) -> TrainState:
        return state._replace(sums=jnp.zeros_like(state.sums))

    # The state as fit holds it is the stacked TrainState itself.
    stacked = unstacked = staticmethod(lambda state: state)
    sums = staticmethod(lambda state: np.asarray(state.sums))
    bad_steps = staticmethod(lambda state: np.asarray(state.bad_step))


def _vmap_seeds(step_fn: Callable[..., Any], eval_fn: Callable[..., Any], k: int) -> tuple:
    """The step and eval functions over a leading seed axis (k > 1), else unchanged."""
    if k == 1:
        return step_fn, eval_fn
    return jax.vmap(step_fn, in_axes=(0, 0, 0)), jax.vmap(eval_fn, in_axes=(0, 0, None, None, None))


class _SeedLoop(_SingleDevice):
    """k seeds on one CPU device, one compiled step called once per seed per batch.

    On XLA:CPU a vmapped step is slower than k separate ones (its convolutions become grouped
    convolutions): 8 seeds of fashion_cnn train at 1,935 images/s in all vmapped and at about
    the one-seed rate, 6,488, looped (`benchmarks/step_paths.py`, a 2-core AMD EPYC). fit holds a tuple of per-seed
    states; checkpoints and results see them stacked, exactly as the vmapped program's.
    """

    def __init__(
        self,
        model: SpecModel,
        tx: optax.GradientTransformation,
        step_fn: Callable[..., TrainState],
        eval_fn: Callable[..., jax.Array],
        cfg: FitConfig,
        seeds: np.ndarray,
        train: ArrayDataset,
        validation: ArrayDataset | None,
    ):
        self._put_data(cfg, seeds, train, validation)

        def run_batch(
            state: TrainState, data: DeviceDataset, plan: jax.Array, b: jax.Array
        ) -> TrainState:
            images, labels = data.gather(plan[b])
            return step_fn(state, images, labels)

        self.run_batch_jit = jax.jit(run_batch, donate_argnums=0)
        self.eval_jit = jax.jit(eval_fn)
        init = jax.jit(lambda s: create_train_state(model, tx, s))
        self.state = tuple(init(s) for s in seeds)

    def put_plan(self, plan: np.ndarray) -> tuple[jax.Array, ...]:  # type: ignore[override]
        return tuple(jnp.asarray(p) for p in plan)

    def run_batch(self, state: Any, plan: Any, b: int) -> Any:
        i = jnp.int32(b)
        return tuple(
            self.run_batch_jit(s, self.train_data, p, i) for s, p in zip(state, plan, strict=True)
        )

    def eval_sums(self, state: Any) -> np.ndarray:
        assert self.val_data is not None
        return np.stack(
            [_eval_sums(self.eval_jit, s, self.val_data, self.eval_batch_size, 1) for s in state]
        )

    def reset_sums(self, state: Any) -> Any:
        return tuple(s._replace(sums=jnp.zeros_like(s.sums)) for s in state)

    @staticmethod
    def stacked(state: Any) -> TrainState:
        return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *state)

    def unstacked(self, state: TrainState) -> tuple[TrainState, ...]:
        return tuple(jax.tree_util.tree_map(lambda a, i=i: a[i], state) for i in range(self.k))

    @staticmethod
    def sums(state: Any) -> np.ndarray:
        return np.stack([np.asarray(s.sums) for s in state])

    @staticmethod
    def bad_steps(state: Any) -> np.ndarray:
        return np.stack([np.asarray(s.bad_step) for s in state])


class _DataParallel:
    """The program over a data-parallel mesh: each global batch split over the devices.

    State and dataset are replicated; each step gathers the batch by a plan sharded on its batch
    axis, so every device takes its rows and XLA all-reduces the gradient (and the batch-norm
    statistics: they stay those of the whole global batch). With k seeds the seed axis is
    replicated too: each device runs all k seeds on its part of the batch, the same work per
    device as a seeds x data mesh would give, without tying k to the device count.
    """

    def __init__(
        self,
        layout: Any,
        model: SpecModel,
        tx: optax.GradientTransformation,
        step_fn: Callable[..., TrainState],
        eval_fn: Callable[..., jax.Array],
        cfg: FitConfig,
        seeds: np.ndarray,
        train: ArrayDataset,
        validation: ArrayDataset | None,
    ):
        self.layout, self.k = layout, len(seeds)
        step_fn, eval_fn = _vmap_seeds(step_fn, eval_fn, self.k)
        repl = layout.replicated
        self.train_data = DeviceDataset.put(train, sharding=repl)
        self.val_data = (
            DeviceDataset.put(validation, sharding=repl) if validation is not None else None
        )
        # eval pads its last batch anyway: round its size up to split evenly over the devices
        self.eval_batch_size = -(-cfg.eval_batch_size // layout.size) * layout.size
        batch_axis = 1 if self.k > 1 else 0  # images [k, batch, ...] or [batch, ...]
        rows = layout.sharded(batch_axis)
        self.plan_axis = batch_axis + 1  # plans [k, steps, batch] or [steps, batch]

        def run_batch(
            state: TrainState, data: DeviceDataset, plan: jax.Array, b: jax.Array
        ) -> TrainState:
            idx = jax.lax.dynamic_index_in_dim(plan, b, axis=-2, keepdims=False)
            images, labels = data.gather(idx)
            images = jax.lax.with_sharding_constraint(images, rows)
            labels = jax.lax.with_sharding_constraint(labels, rows)
            return step_fn(state, images, labels)

        self.run_batch_jit = jax.jit(
            run_batch,
            in_shardings=(repl, repl, layout.sharded(self.plan_axis), repl),
            out_shardings=repl,
            donate_argnums=0,
        )

        def eval_batch(
            params: Any, batch_stats: Any, data: DeviceDataset, idx: jax.Array, mask: jax.Array
        ) -> jax.Array:
            images, labels = data.gather(idx)
            images = jax.lax.with_sharding_constraint(images, layout.sharded(0))
            return eval_fn(params, batch_stats, images, labels, mask)

        shard0 = layout.sharded(0)
        self.eval_jit = jax.jit(
            eval_batch, in_shardings=(repl, repl, repl, shard0, shard0), out_shardings=repl
        )
        self.reset_jit = jax.jit(
            lambda st: st._replace(sums=jnp.zeros_like(st.sums)),
            in_shardings=(repl,),
            out_shardings=repl,
            donate_argnums=0,
        )

        def init(s: Any) -> TrainState:
            return create_train_state(model, tx, s)

        init_fn = jax.vmap(init) if self.k > 1 else init
        self.state = jax.jit(init_fn, out_shardings=repl)(seeds if self.k > 1 else cfg.seed)

    def put_plan(self, plan: np.ndarray) -> jax.Array:
        """The global plan from this process's columns of it."""
        return self.layout.global_array(plan, self.plan_axis)

    def run_batch(self, state: TrainState, plan: jax.Array, b: int) -> TrainState:
        state = self.run_batch_jit(state, self.train_data, plan, np.int32(b))
        return jax.block_until_ready(state) if self.layout.on_cpu else state

    def eval_sums(self, state: TrainState) -> np.ndarray:
        assert self.val_data is not None
        idx, mask = batch_indices(
            len(self.val_data),
            self.eval_batch_size,
            seed=0,
            epoch=0,
            shuffle=False,
            drop_remainder=False,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )
        total = None
        for b in range(idx.shape[0]):
            sums = self.eval_jit(
                state.params,
                state.batch_stats,
                self.val_data,
                self.layout.global_array(idx[b], 0),
                self.layout.global_array(mask[b], 0),
            )
            total = sums if total is None else total + sums
            if self.layout.on_cpu:
                jax.block_until_ready(total)
        return np.asarray(total)

    def reset_sums(self, state: TrainState) -> TrainState:
        return self.reset_jit(state)

    stacked = unstacked = staticmethod(lambda state: state)
    sums = staticmethod(lambda state: np.asarray(state.sums))
    bad_steps = staticmethod(lambda state: np.asarray(state.bad_step))


# --------------------------------------------------------------------------- fit


@dataclass
class FitResult:
    """What `fit` returns: the history, the final state (leading seed axis if k > 1)."""

    history: History
    state: TrainState
    spec: NetSpec
    seeds: int
    run_dir: Path | None = None
    test: dict[str, Any] | None = None

    def variables(self, seed_index: int = 0) -> dict[str, Any]:
        """Flax variables of one seed (for `model.apply` and the inspection tools)."""
        state = self.state
        if self.seeds > 1:
            state = jax.tree_util.tree_map(lambda x: x[seed_index], state)
        out = {"params": state.params}
        if has_batch_norm(self.spec):
            out["batch_stats"] = state.batch_stats
        return out


@dataclass(frozen=True)
class FitConfig:
    """Everything `fit` needs besides the data (saved as config.json in the run directory)."""

    epochs: int = 5
    batch_size: int = 32
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    seed: int = 0
    seeds: int = 1
    checkpoint_every: int = 0  # steps; 0: at epoch ends only
    keep_checkpoints: int = 3
    eval_batch_size: int = 1000
    pool_impl: str = "auto"
    conv_impl: str = "auto"  # cnnjax.models.CONV_IMPLS; auto: the fastest per backend
    seed_mode: str = "auto"  # k seeds: "vmap" (one program), "loop" (a step per seed); auto:
    # loop on a lone CPU device, where it is faster, vmap elsewhere
    dtype: str = "float32"
    devices: int | None = None  # data parallel over N devices; None: automatic (cnnjax.parallel)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def fit(
    spec: NetSpec,
    train: ArrayDataset,
    *,
    validation: ArrayDataset | None = None,
    config: FitConfig | None = None,
    optimizer: optax.GradientTransformation | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    extra_config: dict[str, Any] | None = None,
    progress: bool | None = None,
    log: Any = None,
) -> FitResult:
    """Train `spec` on `train` (Keras `model.fit`), evaluating on `validation` each epoch.

    With `run_dir`, writes config.json, metrics.jsonl and Orbax checkpoints there, and with
    `resume=True` continues from the latest checkpoint exactly as if never interrupted.

    `config.devices` picks data parallelism (`cnnjax.parallel`): N splits each batch over N
    devices, 1 keeps the single-device program, None (automatic) uses every GPU/TPU device of
    every process, and one device in a lone CPU process. On one device a run is bit-identical
    run to run; across device counts it agrees within float rounding (the batch sums are reduced
    in another order), not bit for bit.
    """
    from cnnjax import checkpoint as ckpt
    from cnnjax import parallel

    cfg = config or FitConfig()
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.seeds < 1:
        raise TrainingError(f"epochs, batch_size and seeds must be positive: {cfg}")
    if tuple(train.image_shape) != spec.input_shape:
        raise TrainingError(
            f"the data's images are {'x'.join(map(str, train.image_shape))} but the model "
            f"{spec.name or ''} expects {'x'.join(map(str, spec.input_shape))}; "
            "pass --input or resize the data"
        )
    out_units = spec.output_shape
    if out_units != (1,) and out_units != (train.num_classes,):
        raise TrainingError(
            f"the model's output has shape {out_units} but the data has {train.num_classes} classes"
        )
    if len(train) < cfg.batch_size:
        raise TrainingError(
            f"batch size {cfg.batch_size} exceeds the {len(train)} training examples"
        )
    try:
        layout = parallel.data_parallel(cfg.devices)
        if layout is not None:
            layout.check_batch(cfg.batch_size)
    except parallel.ParallelError as err:
        raise TrainingError(str(err)) from None

    dtype = jnp.bfloat16 if cfg.dtype == "bfloat16" else jnp.float32
    model = build_model(spec, dtype=dtype, pool_impl=cfg.pool_impl, conv_impl=cfg.conv_impl)
    tx = optimizer or make_optimizer(cfg.optimizer, cfg.learning_rate)
    k = cfg.seeds
    step_fn = make_train_step(model, tx)
    eval_fn = make_eval_step(model)
    if cfg.seed_mode not in ("auto", "vmap", "loop"):
        raise TrainingError(f"seed_mode must be auto, vmap or loop, got {cfg.seed_mode!r}")
    loop = k > 1 and (
        cfg.seed_mode == "loop" or (cfg.seed_mode == "auto" and jax.default_backend() == "cpu")
    )

    steps_per_epoch = num_batches(len(train), cfg.batch_size)
    seeds = np.arange(cfg.seed, cfg.seed + k, dtype=np.uint32)
    if layout is None:
        program = _SeedLoop if loop else _SingleDevice
        prog: _SingleDevice | _DataParallel = program(
            model, tx, step_fn, eval_fn, cfg, seeds, train, validation
        )
    else:
        prog = _DataParallel(layout, model, tx, step_fn, eval_fn, cfg, seeds, train, validation)
    state = prog.state
    primary = parallel.is_primary()
    history = History()
    manager = None
    run_path = Path(run_dir) if run_dir is not None else None
    start_step = 0
    if run_path is not None:
        full_config = {
            "spec": spec.to_dict(),
            "fit": cfg.to_dict(),
            "train_examples": len(train),
            "validation_examples": len(validation) if validation is not None else 0,
            **(extra_config or {}),
            "parallel": parallel.describe(layout),
            "versions": _versions(),
        }
        manager, state, start_step, history = ckpt.open_run(
            run_path,
            full_config,
            prog.stacked(state),
            resume=resume,
            keep=cfg.keep_checkpoints,
            steps_per_epoch=steps_per_epoch,
        )
        state = prog.unstacked(state)

    bar = Progress(cfg.epochs, steps_per_epoch, progress, stream=log, silent=not primary)
    shard = {"process_index": jax.process_index(), "process_count": jax.process_count()}
    step = start_step
    try:
        for epoch in range(step // steps_per_epoch, cfg.epochs):
            plans = np.stack(
                [
                    batch_indices(len(train), cfg.batch_size, seed=int(s), epoch=epoch, **shard)
                    for s in seeds
                ]
            )  # [k, steps, batch / processes]: this process's part of each global batch
            plan = prog.put_plan(plans if k > 1 else plans[0])
            bar.begin_epoch(epoch)
            t0 = time.perf_counter()
            first = step % steps_per_epoch
            for b in range(first, steps_per_epoch):
                state = prog.run_batch(state, plan, b)
                step += 1
                if bar.tty and (b + 1) % 50 == 0:
                    if jax.process_count() == 1:  # a lone raise would strand the others
                        _check_finite(prog.bad_steps(state), manager)
                    loss, acc = _metrics_from_sums(prog.sums(state))
                    bar.update(b + 1, float(np.mean(loss)), float(np.mean(acc)))
                if (
                    manager is not None
                    and cfg.checkpoint_every
                    and step % cfg.checkpoint_every == 0
                    and b + 1 < steps_per_epoch
                ):
                    _check_finite(prog.bad_steps(state), manager)
                    ckpt.save(manager, step, prog.stacked(state))
            _check_finite(prog.bad_steps(state), manager)
            seconds = time.perf_counter() - t0
            loss, acc = _metrics_from_sums(prog.sums(state))
            record: dict[str, Any] = {"epoch": epoch + 1, "loss": loss, "accuracy": acc}
            if prog.val_data is not None:
                val_loss, val_acc = _metrics_from_sums(prog.eval_sums(state))
                record.update(val_loss=val_loss, val_accuracy=val_acc)
            record["seconds"] = seconds
            record["images_per_second"] = (steps_per_epoch - first) * cfg.batch_size * k / seconds
            history.records.append(record)
            bar.end_epoch(epoch, record)
            state = prog.reset_sums(state)
            if manager is not None:
                if primary:
                    ckpt.append_metrics(run_path, record)
                ckpt.save(manager, step, prog.stacked(state))
    finally:
        if manager is not None:
            manager.wait_until_finished()
            manager.close()
    state = prog.stacked(state)
    if layout is not None:
        # The replicated state as this process's own copy, so the caller can apply the model
        # to local arrays (inspection, probes) in every process of a multi-host run.
        state = jax.tree_util.tree_map(
            lambda a: a.addressable_data(0) if isinstance(a, jax.Array) else a, state
        )
    return FitResult(history, state, spec, k, run_path)


def _check_finite(bad_steps: np.ndarray, manager: Any) -> None:
    bad = np.asarray(bad_steps)
    if (bad >= 0).any():
        first = int(bad[bad >= 0].min())
        latest = manager.latest_step() if manager is not None else None
        where = (
            f"the last good checkpoint is step {latest} in {manager.directory}"
            if latest is not None
            else "no checkpoint was saved"
        )
        raise TrainingError(
            f"non-finite loss or gradient at step {first}: training stopped ({where}; "
            "nothing saved was overwritten). Lower the learning rate or check the data."
        )


def evaluate(
    spec: NetSpec,
    variables: dict[str, Any],
    data: ArrayDataset,
    *,
    batch_size: int = 1000,
    pool_impl: str = "auto",
) -> dict[str, float]:
    """Loss and accuracy of one set of variables on a dataset (Keras `model.evaluate`)."""
    if tuple(data.image_shape) != spec.input_shape:
        raise TrainingError(
            f"the data's images are {'x'.join(map(str, data.image_shape))} but the model expects "
            f"{'x'.join(map(str, spec.input_shape))}"
        )
    model = build_model(spec, pool_impl=pool_impl)
    eval_jit = jax.jit(make_eval_step(model))
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        params=variables.get("params", {}),
        batch_stats=variables.get("batch_stats", {}),
        opt_state=(),
        rng=jnp.zeros((2,), jnp.uint32),
        sums=jnp.zeros((3,), jnp.float32),
        bad_step=jnp.full((), -1, jnp.int32),
    )
    sums = _eval_sums(eval_jit, state, DeviceDataset.put(data), batch_size, None)
    loss, acc = _metrics_from_sums(sums)
    return {"loss": loss, "accuracy": acc, "examples": int(sums[2])}


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for name in ("cnnjax", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[name] = md.version(name)
    out["backend"] = jax.default_backend()
    return out


# --------------------------------------------------------------------------- run directories


@dataclass
class LoadedRun:
    """A trained run read back from its directory."""

    run_dir: Path
    spec: NetSpec
    config: dict[str, Any]
    history: list[dict[str, Any]]
    state: TrainState
    seeds: int

    @property
    def variables(self) -> dict[str, Any]:
        """Flax variables of seed 0."""
        return self.variables_of(0)

    def variables_of(self, seed_index: int) -> dict[str, Any]:
        state = self.state
        if self.seeds > 1:
            state = jax.tree_util.tree_map(lambda x: x[seed_index], state)
        out = {"params": state.params}
        if has_batch_norm(self.spec):
            out["batch_stats"] = state.batch_stats
        return out


def load_run(run_dir: str | Path) -> LoadedRun:
    """Read a run directory written by `fit`: spec, config, history and the latest state."""
    from cnnjax import checkpoint as ckpt
    from cnnjax.spec import from_dict

    path = Path(run_dir)
    config_path = path / "config.json"
    if not config_path.is_file():
        raise TrainingError(f"{path} is not a cnnjax run directory (no config.json)")
    config = json.loads(config_path.read_text())
    spec = from_dict(config["spec"])
    fit_cfg = config["fit"]
    k = int(fit_cfg["seeds"])
    model = build_model(spec)
    tx = make_optimizer(fit_cfg["optimizer"], fit_cfg["learning_rate"])
    seeds = np.arange(k, dtype=np.uint32)
    template = (
        jax.eval_shape(jax.vmap(lambda s: create_train_state(model, tx, s)), seeds)
        if k > 1
        else jax.eval_shape(lambda: create_train_state(model, tx, 0))
    )
    state = ckpt.restore_latest(path, template)
    history = ckpt.read_metrics(path)
    return LoadedRun(path, spec, config, history, state, k)
