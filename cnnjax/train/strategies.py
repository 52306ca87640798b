"""How a run executes: one device, k seeds looped on one device, or data parallel.

Every strategy puts the data on its devices once and runs one compiled step per batch; `fit`
talks to them through the `Strategy` protocol only. The state a strategy holds may differ in
form (the looped strategy holds a tuple of per-seed states); `stacked` gives the one form that
checkpoints, callbacks and results see (a leading seed axis when k > 1), `unstacked` the way
back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cnnjax.data import ArrayDataset, DeviceDataset, batch_indices
from cnnjax.parallel import DataParallel
from cnnjax.train.evaluation import eval_sums
from cnnjax.train.model import Model
from cnnjax.train.steps import TrainState, create_train_state


class Strategy(Protocol):
    """What `fit` needs of an execution strategy."""

    state: Any  # the initial state, in the strategy's own form
    val_data: DeviceDataset | None

    def put_plan(self, plans: np.ndarray) -> Any:
        """One epoch's batch plan, ``[k, steps, batch]`` indices, placed on the devices."""
        ...

    def run_batch(self, state: Any, plan: Any, b: int) -> Any:
        """The state after training on batch `b` of `plan`."""
        ...

    def eval_sums(self, state: Any) -> np.ndarray:
        """[loss sum, correct, count] on the validation data (``[k, 3]`` for k seeds)."""
        ...

    def reset_sums(self, state: Any) -> Any:
        """The state with the epoch's running sums set to zero."""
        ...

    def stacked(self, state: Any) -> TrainState:
        """The state as one `TrainState` (leading seed axis when k > 1)."""
        ...

    def unstacked(self, state: TrainState) -> Any:
        """The strategy's own form of a stacked state."""
        ...

    def sums(self, state: Any) -> np.ndarray:
        """The running [loss sum, correct, count] of this epoch, on the host."""
        ...

    def bad_steps(self, state: Any) -> np.ndarray:
        """The first non-finite step of each seed (-1: none), on the host."""
        ...

    def each(self, state: Any, fn: Callable[[TrainState], TrainState]) -> Any:
        """`fn` applied to every `TrainState` the strategy holds (e.g. to set hyperparameters)."""
        ...


def _vmap_seeds(step_fn: Callable[..., Any], eval_fn: Callable[..., Any], k: int) -> tuple:
    """The step and eval functions over a leading seed axis (k > 1), else unchanged."""
    if k == 1:
        return step_fn, eval_fn
    return jax.vmap(step_fn, in_axes=(0, 0, 0)), jax.vmap(eval_fn, in_axes=(0, 0, None, None, None))


class SingleDevice:
    """The program on one device: the default device, no mesh (what a 1-device machine runs).

    k seeds run vmapped in one compiled program.
    """

    def __init__(
        self,
        model: Model,
        tx: optax.GradientTransformation,
        step_fn: Callable[..., TrainState],
        eval_fn: Callable[..., jax.Array],
        seeds: np.ndarray,
        train: ArrayDataset,
        validation: ArrayDataset | None,
        eval_batch_size: int,
    ):
        self.k, self.eval_batch_size = len(seeds), eval_batch_size
        self.train_data = DeviceDataset.put(train)
        self.val_data = DeviceDataset.put(validation) if validation is not None else None
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
        self.state: Any = (
            jax.vmap(lambda s: create_train_state(model, tx, s))(seeds)
            if self.k > 1
            else init(int(seeds[0]))
        )

    def put_plan(self, plans: np.ndarray) -> jax.Array:
        return jnp.asarray(plans if self.k > 1 else plans[0])

    def run_batch(self, state: TrainState, plan: jax.Array, b: int) -> TrainState:
        return self.run_batch_jit(state, self.train_data, plan, jnp.int32(b))

    def eval_sums(self, state: TrainState) -> np.ndarray:
        assert self.val_data is not None
        return eval_sums(
            self.eval_jit, state.params, state.batch_stats, self.val_data, self.eval_batch_size
        )

    def reset_sums(self, state: TrainState) -> TrainState:
        return state._replace(sums=jnp.zeros_like(state.sums))

    def stacked(self, state: TrainState) -> TrainState:
        return state

    def unstacked(self, state: TrainState) -> TrainState:
        return state

    def sums(self, state: TrainState) -> np.ndarray:
        return np.asarray(state.sums)

    def bad_steps(self, state: TrainState) -> np.ndarray:
        return np.asarray(state.bad_step)

    def each(self, state: TrainState, fn: Callable[[TrainState], TrainState]) -> TrainState:
        return fn(state)


class SeedLoop:
    """k seeds on one CPU device, one compiled step called once per seed per batch.

    On XLA:CPU a vmapped step is slower than k separate ones (its convolutions become grouped
    convolutions): 8 seeds of fashion_cnn train at 1,935 images/s in all vmapped and at about
    the one-seed rate, 6,488, looped (`benchmarks/step_paths.py`, a 2-core AMD EPYC). The
    strategy holds a tuple of per-seed states; checkpoints and results see them stacked,
    exactly as the vmapped program's.
    """

    def __init__(
        self,
        model: Model,
        tx: optax.GradientTransformation,
        step_fn: Callable[..., TrainState],
        eval_fn: Callable[..., jax.Array],
        seeds: np.ndarray,
        train: ArrayDataset,
        validation: ArrayDataset | None,
        eval_batch_size: int,
    ):
        self.k, self.eval_batch_size = len(seeds), eval_batch_size
        self.train_data = DeviceDataset.put(train)
        self.val_data = DeviceDataset.put(validation) if validation is not None else None

        def run_batch(
            state: TrainState, data: DeviceDataset, plan: jax.Array, b: jax.Array
        ) -> TrainState:
            images, labels = data.gather(plan[b])
            return step_fn(state, images, labels)

        self.run_batch_jit = jax.jit(run_batch, donate_argnums=0)
        self.eval_jit = jax.jit(eval_fn)
        init = jax.jit(lambda s: create_train_state(model, tx, s))
        self.state: Any = tuple(init(s) for s in seeds)

    def put_plan(self, plans: np.ndarray) -> tuple[jax.Array, ...]:
        return tuple(jnp.asarray(p) for p in plans)

    def run_batch(self, state: Any, plan: Any, b: int) -> Any:
        i = jnp.int32(b)
        return tuple(
            self.run_batch_jit(s, self.train_data, p, i) for s, p in zip(state, plan, strict=True)
        )

    def eval_sums(self, state: Any) -> np.ndarray:
        assert self.val_data is not None
        return np.stack(
            [
                eval_sums(
                    self.eval_jit, s.params, s.batch_stats, self.val_data, self.eval_batch_size
                )
                for s in state
            ]
        )

    def reset_sums(self, state: Any) -> Any:
        return tuple(s._replace(sums=jnp.zeros_like(s.sums)) for s in state)

    def stacked(self, state: Any) -> TrainState:
        return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *state)

    def unstacked(self, state: TrainState) -> tuple[TrainState, ...]:
        return tuple(jax.tree_util.tree_map(lambda a, i=i: a[i], state) for i in range(self.k))

    def sums(self, state: Any) -> np.ndarray:
        return np.stack([np.asarray(s.sums) for s in state])

    def bad_steps(self, state: Any) -> np.ndarray:
        return np.stack([np.asarray(s.bad_step) for s in state])

    def each(self, state: Any, fn: Callable[[TrainState], TrainState]) -> Any:
        return tuple(fn(s) for s in state)


class DataParallelStrategy:
    """The program over a data-parallel mesh: each global batch split over the devices.

    State and dataset are replicated; each step gathers the batch by a plan sharded on its batch
    axis, so every device takes its rows and XLA all-reduces the gradient (and the batch-norm
    statistics: they stay those of the whole global batch). With k seeds the seed axis is
    replicated too: each device runs all k seeds on its part of the batch, the same work per
    device as a seeds x data mesh would give, without tying k to the device count.
    """

    def __init__(
        self,
        layout: DataParallel,
        model: Model,
        tx: optax.GradientTransformation,
        step_fn: Callable[..., TrainState],
        eval_fn: Callable[..., jax.Array],
        seeds: np.ndarray,
        train: ArrayDataset,
        validation: ArrayDataset | None,
        eval_batch_size: int,
    ):
        self.layout, self.k = layout, len(seeds)
        step_fn, eval_fn = _vmap_seeds(step_fn, eval_fn, self.k)
        repl = layout.replicated
        self.train_data = DeviceDataset.put(train, sharding=repl)
        self.val_data = (
            DeviceDataset.put(validation, sharding=repl) if validation is not None else None
        )
        # eval pads its last batch anyway: round its size up to split evenly over the devices
        self.eval_batch_size = -(-eval_batch_size // layout.size) * layout.size
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
        first = seeds if self.k > 1 else int(seeds[0])
        self.state: Any = jax.jit(init_fn, out_shardings=repl)(first)

    def put_plan(self, plans: np.ndarray) -> jax.Array:
        """The global plan from this process's columns of it."""
        return self.layout.global_array(plans if self.k > 1 else plans[0], self.plan_axis)

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

    def stacked(self, state: TrainState) -> TrainState:
        return state

    def unstacked(self, state: TrainState) -> TrainState:
        return state

    def sums(self, state: TrainState) -> np.ndarray:
        return np.asarray(state.sums)

    def bad_steps(self, state: TrainState) -> np.ndarray:
        return np.asarray(state.bad_step)

    def each(self, state: TrainState, fn: Callable[[TrainState], TrainState]) -> TrainState:
        return fn(state)


def choose(
    layout: DataParallel | None,
    seed_mode: str,
    model: Model,
    tx: optax.GradientTransformation,
    step_fn: Callable[..., TrainState],
    eval_fn: Callable[..., jax.Array],
    seeds: np.ndarray,
    train: ArrayDataset,
    validation: ArrayDataset | None,
    eval_batch_size: int,
) -> Strategy:
    """The strategy for a layout and seed mode: data parallel on a mesh; else k seeds looped
    (``seed_mode="loop"``, or "auto" on a CPU backend) or vmapped on one device."""
    args = (model, tx, step_fn, eval_fn, seeds, train, validation, eval_batch_size)
    if layout is not None:
        return DataParallelStrategy(layout, *args)
    loop = len(seeds) > 1 and (
        seed_mode == "loop" or (seed_mode == "auto" and jax.default_backend() == "cpu")
    )
    return SeedLoop(*args) if loop else SingleDevice(*args)
