"""Data parallelism over every device, and multi-host start-up: mesh, shardings, processes.

One 1-D `Mesh` with the axis ``"data"``: each global batch is split across its devices, while
parameters, optimizer state and the small device-resident dataset are replicated. The train
step is a `jax.jit` with explicit in/out shardings; XLA inserts the gradient all-reduce. No
`pmap`. The same code runs in one process (several GPUs, a TPU VM, fake CPU devices) and in
several (a TPU pod slice, CPU processes on loopback): every process builds the global arrays
from its own part with `jax.make_array_from_process_local_data`.

Which devices (`data_parallel`): a list of devices (or a Mesh) means those, "all" every
device of every process, N means N devices (N / process_count from each process), 1 the
single-device program unchanged, and ``None`` (automatic) every device of every process, except
in a lone CPU process, where it means one device. Several CPU devices in one process exist only
when forced (``--xla_force_host_platform_device_count``, ``jax_num_cpu_devices``, or the
``cnnjax`` command's one device per core, which `fit` uses to train k seeds side by side): they
split the same cores, so a split batch only adds all-reduces. Measured with jaxlib 0.10.2 on 2 cores,
fashion_cnn, batch 32: ~4,400 images/s on 1 device, ~4,500 on 2, ~2,800 on 8. And XLA:CPU can
deadlock in an all-reduce when the steps of several devices overlap (8 or 4 fake devices, a few
hundred steps, reproduced without cnnjax), so on CPU each data-parallel step is waited for
before the next.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from cnnjax.errors import ParallelError

DATA_AXIS = "data"


# --------------------------------------------------------------------------- processes


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    timeout_s: int = 300,
) -> None:
    """Join a multi-process run: call before anything touches a JAX device.

    With `coordinator` ("HOST:PORT"), `num_processes` and `process_id` the run is described
    explicitly (CPU or GPU processes); with none of them JAX reads the environment that Cloud
    TPU (or Slurm, Open MPI) sets. CPU collectives across processes use gloo.
    """
    if coordinator is not None and (num_processes is None or process_id is None):
        raise ParallelError("coordinator= needs num_processes= and process_id=")
    if coordinator is None and (num_processes is not None or process_id is not None):
        raise ParallelError('num_processes= and process_id= need coordinator="HOST:PORT"')
    if (
        num_processes is not None
        and process_id is not None
        and (num_processes < 1 or not 0 <= process_id < num_processes)
    ):
        raise ParallelError(f"bad process id {process_id} of {num_processes} processes")
    if coordinator is not None and process_id:
        wait_for_coordinator(coordinator, timeout_s)
    if getattr(jax.config, "jax_cpu_collectives_implementation", None) is None:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator,
        num_processes=num_processes,
        process_id=process_id,
        initialization_timeout=timeout_s,
    )


def wait_for_coordinator(coordinator: str, timeout_s: float) -> None:
    """Wait until process 0's coordinator accepts connections, or fail with one message.

    Without this, JAX's client waits out its own timeout and then aborts the process with a C++
    stack trace; here an unreachable coordinator is a `ParallelError` naming the address.
    """
    import socket
    import time

    host, sep, port_text = coordinator.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ParallelError(f"coordinator must be HOST:PORT, got {coordinator!r}")
    deadline = time.monotonic() + max(timeout_s, 0)
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port_text)), timeout=1.0):
                return
        except OSError as err:
            if time.monotonic() >= deadline:
                raise ParallelError(
                    f"cannot reach the coordinator {coordinator} within {timeout_s:g} s "
                    f"({err.strerror or err}): is process 0 running and reachable?"
                ) from None
            time.sleep(0.25)


def cloud_tpu_pod_env() -> bool:
    """True when the environment names several TPU workers (GKE, queued resources)."""
    hosts = os.environ.get("TPU_PROCESS_ADDRESSES") or os.environ.get("TPU_WORKER_HOSTNAMES")
    return bool(os.environ.get("MEGASCALE_COORDINATOR_ADDRESS")) or (
        hosts is not None and "," in hosts
    )


def is_primary() -> bool:
    """Process 0 alone logs and writes cnnjax's own files (config, metrics, results)."""
    return jax.process_index() == 0


def sync(name: str) -> None:
    """Wait until every process reaches the point `name` (nothing to wait for in one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


# --------------------------------------------------------------------------- devices


Devices = int | str | Sequence[Any] | Mesh | None


def device_list(devices: Sequence[Any] | Mesh) -> list[Any]:
    """The devices of an explicit list or of a Mesh, in order."""
    if isinstance(devices, Mesh):
        return list(devices.devices.flat)
    return list(devices)


def select_devices(requested: Devices = None) -> list[Any]:
    """The devices a run uses, grouped by process so each process owns a contiguous block.

    ``None`` or ``"all"``: every device of every process. ``N``: ``N / process_count`` devices
    of each process (the first ones), so every process takes an equal part of each batch. A
    list of devices (or a `Mesh`): those devices.
    """
    by_process = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
    count = jax.process_count()
    if requested is None or requested == "all":
        return by_process
    if isinstance(requested, str):
        raise ParallelError(f"devices={requested!r}: expected a count, 'all' or a list of devices")
    if not isinstance(requested, int):
        listed = device_list(requested)
        known = set(by_process)
        if not listed or any(d not in known for d in listed):
            raise ParallelError(
                f"devices={listed!r}: expected a non-empty list of this run's devices "
                "(jax.devices())"
            )
        return sorted(listed, key=lambda d: (d.process_index, d.id))
    if requested < 1 or requested > len(by_process):
        raise ParallelError(
            f"devices={requested}: this run has {len(by_process)} {jax.default_backend()} device(s)"
        )
    if requested % count:
        raise ParallelError(
            f"devices={requested} is not divisible by the {count} processes; "
            "every process must take the same number of devices"
        )
    per = requested // count
    chosen: list[Any] = []
    for p in range(count):
        chosen += [d for d in by_process if d.process_index == p][:per]
    return chosen


@dataclass(frozen=True)
class DataParallel:
    """A 1-D mesh over the data-parallel devices and the shardings a run needs."""

    mesh: Mesh

    @property
    def size(self) -> int:
        """Number of data shards (devices) each global batch is split into."""
        return int(self.mesh.devices.size)

    @property
    def on_cpu(self) -> bool:
        """CPU devices: each step must finish before the next is sent (module docstring)."""
        return bool(self.mesh.devices.flat[0].platform == "cpu")

    @property
    def replicated(self) -> NamedSharding:
        """Every device holds the whole value (params, optimizer state, the dataset)."""
        return NamedSharding(self.mesh, PartitionSpec())

    def sharded(self, axis: int) -> NamedSharding:
        """Split along `axis` (the batch axis) over the data axis; other axes replicated."""
        return NamedSharding(self.mesh, PartitionSpec(*([None] * axis), DATA_AXIS))

    def check_batch(self, batch_size: int) -> None:
        """A global batch must split evenly over the devices."""
        if batch_size % self.size:
            raise ParallelError(
                f"batch size {batch_size} is not divisible by the {self.size} devices of data "
                f"parallelism; use a multiple of {self.size}, or fewer devices "
                "(FitConfig(devices=N); 1 trains on one device)"
            )

    def global_array(self, local: np.ndarray, axis: int) -> jax.Array:
        """The global array whose `axis` is sharded, from this process's contiguous part of it.

        In one process `local` is the whole array; with P processes it is the p-th of P equal
        slices along `axis` (what `batch_indices(..., process_index=p, process_count=P)` gives).
        """
        shape = list(local.shape)
        shape[axis] *= jax.process_count()
        return jax.make_array_from_process_local_data(self.sharded(axis), local, tuple(shape))

    def put_replicated(self, tree: Any) -> Any:
        """Copy the same host value to every device of the mesh (all processes pass the same)."""
        sharding = self.replicated

        def put(x: Any) -> jax.Array:
            x = np.asarray(x)
            return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

        return jax.tree_util.tree_map(put, tree)


def data_parallel(devices: Devices = None) -> DataParallel | None:
    """The data-parallel layout for `devices` (see the module docstring), or None for the
    single-device program: an int, "all", a list of devices or a `Mesh`; None is automatic."""
    if devices is None and jax.process_count() == 1 and jax.default_backend() == "cpu":
        return None
    chosen = select_devices(devices)
    if len(chosen) == 1:
        return None
    return DataParallel(Mesh(np.asarray(chosen), (DATA_AXIS,)))


def describe(layout: DataParallel | None) -> dict[str, Any]:
    """What config.json records about the devices a run used."""
    devices: Sequence[Any] = list(layout.mesh.devices.flat) if layout else [jax.devices()[0]]
    return {
        "backend": jax.default_backend(),
        "devices": len(devices),
        "processes": jax.process_count(),
        "device_kind": devices[0].device_kind,
    }
