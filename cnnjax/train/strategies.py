"""How a run executes: one device, k seeds looped on one device, or data parallel.

Every strategy puts the data on its devices once and runs one compiled step per batch; `fit`
talks to them through the `Strategy` protocol only. The state a strategy holds may differ in
form (the looped strategy holds a tuple of per-seed states); `stacked` gives the one form that
checkpoints, callbacks and results see (a leading seed axis when k > 1), `unstacked` the way
back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cnnjax.analysis import analyze
from cnnjax.data import ArrayDataset, batch_indices
from cnnjax.data.device import DeviceDataset
from cnnjax.parallel import DataParallel
from cnnjax.train.evaluation import eval_sums_async
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

    def execution(self) -> dict[str, Any]:
        """How the run executes, for results.json: the strategy's name and its device count
        (speed depends on them; results do not, beyond float rounding for vmap and data
        parallel)."""
        ...


class Job(NamedTuple):
    """What every strategy runs: the model, its optimizer and step functions, the seeds, the data."""

    model: Model
    tx: optax.GradientTransformation
    step_fn: Callable[..., TrainState]
    eval_fn: Callable[..., jax.Array]
    seeds: np.ndarray
    train: ArrayDataset
    validation: ArrayDataset | None
    eval_batch_size: int

    def init_fn(self) -> Callable[[Any], TrainState]:
        """The initial `TrainState` of one seed."""
        return functools.partial(create_train_state, self.model, self.tx)


def _vmap_seeds(step_fn: Callable[..., Any], eval_fn: Callable[..., Any], k: int) -> tuple:
    """The step and eval functions over a leading seed axis (k > 1), else unchanged."""
    if k == 1:
        return step_fn, eval_fn
    return jax.vmap(step_fn, in_axes=(0, 0, 0)), jax.vmap(eval_fn, in_axes=(0, 0, None, None, None))


def _batch_step(
    step_fn: Callable[..., TrainState], rows: jax.sharding.Sharding | None = None
) -> Callable[..., TrainState]:
    """A step on batch `b` of a plan (``[..., steps, batch]`` indices), gathered on the device;
    `rows` constrains the batch's sharding (data parallel)."""

    def run_batch(
        state: TrainState, data: DeviceDataset, plan: jax.Array, b: jax.Array
    ) -> TrainState:
        idx = jax.lax.dynamic_index_in_dim(plan, b, axis=-2, keepdims=False)
        images, labels = data.gather(idx)
        if rows is not None:
            images = jax.lax.with_sharding_constraint(images, rows)
            labels = jax.lax.with_sharding_constraint(labels, rows)
        return step_fn(state, images, labels)

    return run_batch


def _on(device: Any) -> jax.sharding.Sharding | None:
    """A sharding that commits to `device` (None: leave it to the default device)."""
    return None if device is None else jax.sharding.SingleDeviceSharding(device)


def _zero_sums(state: TrainState) -> TrainState:
    """The state with its running [loss sum, correct, count] set to zero (a new epoch)."""
    return state._replace(sums=jnp.zeros_like(state.sums))


class _OneState:
    """For strategies that hold one `TrainState` (leading seed axis when k > 1): it is already
    the stacked form."""

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


class _OnDefaultDevice:
    """For the one-device strategies: the data on the default device, the compiled batch step
    and the compiled eval function."""

    def __init__(
        self,
        job: Job,
        step_fn: Callable[..., TrainState],
        eval_fn: Callable[..., jax.Array],
        devices: list[Any] | None = None,
    ):
        self.k, self.eval_batch_size = len(job.seeds), job.eval_batch_size
        self.devices = devices or [None]  # None: the default device, uncommitted
        self.train_copies = [DeviceDataset.put(job.train, sharding=_on(d)) for d in self.devices]
        self.val_copies = (
            [DeviceDataset.put(job.validation, sharding=_on(d)) for d in self.devices]
            if job.validation is not None
            else None
        )
        self.train_data = self.train_copies[0]
        self.val_data = self.val_copies[0] if self.val_copies is not None else None
        self.run_batch_jit = jax.jit(_batch_step(step_fn), donate_argnums=0)
        self.eval_jit = jax.jit(eval_fn)

    def _device(self, i: int) -> Any:
        """The device of seed `i` (None: the default device)."""
        return self.devices[i % len(self.devices)]

    def _eval_state_async(self, state: TrainState, i: int = 0) -> jax.Array:
        assert self.val_copies is not None
        return eval_sums_async(
            self.eval_jit,
            state.params,
            state.batch_stats,
            self.val_copies[i % len(self.devices)],
            self.eval_batch_size,
        )

    def _eval_state(self, state: TrainState) -> np.ndarray:
        return np.asarray(self._eval_state_async(state))


class SingleDevice(_OnDefaultDevice, _OneState):
    """The program on one device: the default device, no mesh (what a 1-device machine runs).

    k seeds run vmapped in one compiled program.
    """

    def __init__(self, job: Job):
        super().__init__(job, *_vmap_seeds(job.step_fn, job.eval_fn, len(job.seeds)))
        init = job.init_fn()
        self.state: Any = (
            jax.vmap(init)(job.seeds) if self.k > 1 else jax.jit(init)(int(job.seeds[0]))
        )

    def put_plan(self, plans: np.ndarray) -> jax.Array:
        return jnp.asarray(plans if self.k > 1 else plans[0])

    def run_batch(self, state: TrainState, plan: jax.Array, b: int) -> TrainState:
        return self.run_batch_jit(state, self.train_data, plan, jnp.int32(b))

    def eval_sums(self, state: TrainState) -> np.ndarray:
        return self._eval_state(state)

    def reset_sums(self, state: TrainState) -> TrainState:
        return _zero_sums(state)

    def execution(self) -> dict[str, Any]:
        return {"strategy": "seeds vmapped" if self.k > 1 else "one device", "devices": 1}


class SeedLoop(_OnDefaultDevice):
    """k seeds on one CPU device, one compiled step called once per seed per batch.

    On XLA:CPU a vmapped step is slower than k separate ones (its convolutions become grouped
    convolutions): 8 seeds of fashion_cnn train at 1,935 images/s in all vmapped and at about
    the one-seed rate, 6,488, looped (`benchmarks/step_paths.py`, a 2-core AMD EPYC). The
    strategy holds a tuple of per-seed states; checkpoints and results see them stacked,
    exactly as the vmapped program's.
    """

    def __init__(self, job: Job):
        super().__init__(job, job.step_fn, job.eval_fn)
        init = jax.jit(job.init_fn())
        self.state: Any = tuple(init(s) for s in job.seeds)

    def put_plan(self, plans: np.ndarray) -> tuple[jax.Array, ...]:
        return tuple(jnp.asarray(p) for p in plans)

    def run_batch(self, state: Any, plan: Any, b: int) -> Any:
        i, n = np.int32(b), len(self.train_copies)  # host scalar: no copy between devices
        return tuple(
            self.run_batch_jit(s, self.train_copies[j % n], p, i)
            for j, (s, p) in enumerate(zip(state, plan, strict=True))
        )

    def eval_sums(self, state: Any) -> np.ndarray:
        return np.stack([self._eval_state(s) for s in state])

    def reset_sums(self, state: Any) -> Any:
        return tuple(_zero_sums(s) for s in state)

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

    def execution(self) -> dict[str, Any]:
        return {"strategy": "seeds looped", "devices": 1}


class SeedDevices(SeedLoop):
    """k seeds side by side on several CPU devices of one host: seed i on device i mod n.

    XLA:CPU splits each operation of a small network over every core, which keeps 2 cores
    only partly busy; the steps of seeds on different devices run at the same time and fill
    them. Three seeds of fashion_cnn on the two CPU devices of a 2-core machine trained at
    1.22x the images/s of the loop on one, resnet_small at 1.16x (`benchmarks/seed_devices.py`,
    docs/performance.md "Seeds side by side on CPU devices"). Each device
    holds its own copy of the data; a seed runs the same program as alone on one device, so
    its results are those of a separate run.
    """

    def __init__(self, job: Job, devices: list[Any]):
        _OnDefaultDevice.__init__(self, job, job.step_fn, job.eval_fn, devices=devices)
        init = jax.jit(job.init_fn())
        self.state = tuple(
            jax.device_put(init(s), self._device(i)) for i, s in enumerate(job.seeds)
        )

    def put_plan(self, plans: np.ndarray) -> tuple[jax.Array, ...]:
        return tuple(jax.device_put(p, self._device(i)) for i, p in enumerate(plans))

    def eval_sums(self, state: Any) -> np.ndarray:
        pending = [self._eval_state_async(s, i) for i, s in enumerate(state)]  # all at once
        return np.stack([np.asarray(t) for t in pending])

    def stacked(self, state: Any) -> TrainState:
        first = self.devices[0]
        return jax.tree_util.tree_map(
            lambda *a: jnp.stack([jax.device_put(x, first) for x in a]), *state
        )

    def unstacked(self, state: TrainState) -> tuple[TrainState, ...]:
        return tuple(
            jax.device_put(s, self._device(i)) for i, s in enumerate(super().unstacked(state))
        )

    def each(self, state: Any, fn: Callable[[TrainState], TrainState]) -> Any:
        return tuple(jax.device_put(fn(s), self._device(i)) for i, s in enumerate(state))

    def execution(self) -> dict[str, Any]:
        return {"strategy": "seeds side by side", "devices": len(self.devices)}


class DataParallelStrategy(_OneState):
    """The program over a data-parallel mesh: each global batch split over the devices.

    State and dataset are replicated; each step gathers the batch by a plan sharded on its batch
    axis, so every device takes its rows and XLA all-reduces the gradient (and the batch-norm
    statistics: they stay those of the whole global batch). With k seeds the seed axis is
    replicated too: each device runs all k seeds on its part of the batch, the same work per
    device as a seeds x data mesh would give, without tying k to the device count.
    """

    def __init__(self, layout: DataParallel, job: Job):
        self.layout, self.k = layout, len(job.seeds)
        step_fn, eval_fn = _vmap_seeds(job.step_fn, job.eval_fn, self.k)
        repl = layout.replicated
        self.train_data = DeviceDataset.put(job.train, sharding=repl)
        self.val_data = (
            DeviceDataset.put(job.validation, sharding=repl) if job.validation is not None else None
        )
        # eval pads its last batch anyway: round its size up to split evenly over the devices,
        # from at most the validation set's size (no batch of mostly padding)
        wanted = job.eval_batch_size
        if job.validation is not None:
            wanted = min(wanted, len(job.validation))
        self.eval_batch_size = -(-wanted // layout.size) * layout.size
        batch_axis = 1 if self.k > 1 else 0  # images [k, batch, ...] or [batch, ...]
        self.plan_axis = batch_axis + 1  # plans [k, steps, batch] or [steps, batch]
        self.run_batch_jit = jax.jit(
            _batch_step(step_fn, rows=layout.sharded(batch_axis)),
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
            _zero_sums, in_shardings=(repl,), out_shardings=repl, donate_argnums=0
        )
        init = job.init_fn()
        init_fn = jax.vmap(init) if self.k > 1 else init
        first = job.seeds if self.k > 1 else int(job.seeds[0])
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

    def execution(self) -> dict[str, Any]:
        return {"strategy": "data parallel", "devices": self.layout.size}


def seed_devices(k: int) -> list[Any]:
    """The CPU devices k looped seeds spread over: this process's first min(k, n) of them, when
    it is a lone process on a CPU backend with several (a CPU is split into several devices by
    `cnnjax.configure_xla(cpu_devices=...)`, as the `cnnjax` command does); else none."""
    if k < 2 or jax.default_backend() != "cpu" or jax.process_count() != 1:
        return []
    devices = jax.local_devices()
    return list(devices[: min(k, len(devices))]) if len(devices) > 1 else []


# Side by side, each seed's step keeps its own activations in memory at the same time. Up to
# resnet_small's 23 MiB per batch of 32 the seeds gained 1.1-1.25x per epoch; the 224x224
# networks (98 and 235 MiB) trained 3-6% slower per epoch and the experiments' peak memory went
# from 6.8 to 15.2 GB (docs/performance.md, "Seeds side by side on CPU devices").
SPREAD_MAX_ACTIVATION_BYTES = 64 * 2**20
# Each extra device compiles the step and the evaluation again (XLA:CPU binds an executable to
# its device; compiling in threads does not overlap). Whole fits of 3 seeds side by side against
# the loop: fashion_cnn 0.83x over 64 steps per seed, 0.91x over 313, level over 626;
# chollet_mnist 0.94x and resnet_small 1.03x over 313 (same page of docs/performance.md).
SPREAD_MIN_STEPS = 500


def spreads_seeds(
    seed_mode: str,
    devices_chosen: bool,
    model: Model | None = None,
    batch_size: int = 0,
    steps: int = SPREAD_MIN_STEPS,
) -> bool:
    """Whether k seeds may go side by side on CPU devices: asked for (``"devices"``), or
    ``"auto"`` while the user left the devices to cnnjax (``FitConfig.devices`` None), each seed
    trains at least `SPREAD_MIN_STEPS` `steps` (a shorter run loses more to compiling on every
    device than it gains) and one batch's activations (a cnnjax spec's analytic count) stay
    within `SPREAD_MAX_ACTIVATION_BYTES`. A module of one's own, whose activations are not
    counted, stays in the loop unless asked."""
    if seed_mode == "devices":
        return True
    if seed_mode != "auto" or devices_chosen or model is None or model.spec is None:
        return False
    if steps < SPREAD_MIN_STEPS:
        return False
    values = sum(r.values for r in analyze(model.spec).layers)
    return values * batch_size * 4 <= SPREAD_MAX_ACTIVATION_BYTES


def choose(
    layout: DataParallel | None, seed_mode: str, job: Job, spread: bool | None = None
) -> Strategy:
    """The strategy for a layout and seed mode: data parallel on a mesh; else k seeds side by
    side on several CPU devices (where the CPU is split into several and `spread`, by default
    ``seed_mode in ("auto", "devices")``, allows), looped on one (``"loop"``, or "auto" on one
    CPU device) or vmapped on one device."""
    if layout is not None:
        return DataParallelStrategy(layout, job)
    k = len(job.seeds)
    cpu = jax.default_backend() == "cpu"
    if spread is None:
        spread = seed_mode in ("auto", "devices")
    if k > 1 and spread:
        devices = seed_devices(k)
        if devices:
            return SeedDevices(job, devices)
    loop = k > 1 and (seed_mode in ("loop", "devices") or (seed_mode == "auto" and cpu))
    return SeedLoop(job) if loop else SingleDevice(job)
