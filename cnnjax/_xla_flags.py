"""XLA:CPU settings cnnjax applies before JAX starts its backend (no JAX import here).

`import cnnjax` applies them when no JAX backend has started yet (XLA reads XLA_FLAGS when
the first backend starts, not at `import jax`); the entry points (the `cnnjax` command,
experiments/*.py, tests/conftest.py, the benchmarks) apply them too, and a program that
started JAX first can call `cnnjax.configure_xla()` before it does.

`--xla_cpu_experimental_ynn_fusion_type=` turns off XLA:CPU's YNNPACK fusions. Measured with
jaxlib 0.10.2 on a 2-core Intel Xeon (AVX-512), one training step of batch 32,
`CNNJAX_KEEP_XLA_FLAGS=1 python benchmarks/step_paths.py --one model=NAME --seconds 6`
against the same without the variable: chollet_mnist 4,918 -> 6,952 images/s (1.41x),
fashion_cnn 8,021 -> 9,797 (1.22x). On a 2-core AMD EPYC one seed of fashion_cnn trained at
the same speed either way (~5,000 images/s), four vmapped seeds at 2,200 -> 3,300 images/s,
and the vmapped 224x224 no-pooling network of seed 004 failed inside YNNPACK ("YNNPACK
operation failed") with them. Set CNNJAX_KEEP_XLA_FLAGS=1 to leave XLA_FLAGS exactly as you
set it.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys

FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=",)
MIN_JAXLIB = (0, 10)  # the flag exists from here on; older jaxlibs abort on unknown flags
CPU_DEVICES_FLAG = "--xla_force_host_platform_device_count"
CPU_DEVICES_VARIABLE = "CNNJAX_CPU_DEVICES"  # a count the command's split uses (1: no split)


def _jaxlib_version() -> tuple[int, ...]:
    try:
        version = importlib.metadata.version("jaxlib")
    except importlib.metadata.PackageNotFoundError:
        return ()
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_devices_wanted(cpu_devices: int | str | None) -> int | None:
    """The CPU device count for `apply`: an int as given; "cores": CNNJAX_CPU_DEVICES when
    set, else one device per usable core; None: no split."""
    if cpu_devices != "cores":
        return None if cpu_devices is None else int(cpu_devices)
    value = os.environ.get(CPU_DEVICES_VARIABLE, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{CPU_DEVICES_VARIABLE} must be a positive count, got {value!r}")
        return int(value)
    return usable_cores()


def apply(cpu_devices: int | str | None = None) -> None:
    """Append cnnjax's XLA:CPU flags to XLA_FLAGS unless the user set them or opted out.

    `cpu_devices` (an int, or "cores") also splits the host into that many JAX CPU devices,
    unless XLA_FLAGS or JAX_NUM_CPU_DEVICES already chose a count: `fit` then trains k seeds
    side by side on them (cnnjax/train/strategies.py, `SeedDevices`).
    """
    if os.environ.get("CNNJAX_KEEP_XLA_FLAGS") == "1":
        return
    current = os.environ.get("XLA_FLAGS", "")
    extra = []
    if _jaxlib_version() >= MIN_JAXLIB:
        extra = [f for f in FLAGS if f.split("=")[0] not in current]
    count = cpu_devices_wanted(cpu_devices)
    chosen = CPU_DEVICES_FLAG in current or os.environ.get("JAX_NUM_CPU_DEVICES")
    if count is not None and count > 1 and not chosen:
        extra.append(f"{CPU_DEVICES_FLAG}={count}")
    if extra:
        os.environ["XLA_FLAGS"] = " ".join([current, *extra]).strip()


def jax_started() -> bool:
    """Whether a JAX backend already runs in this process (then XLA_FLAGS changes nothing)."""
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except Exception:  # a JAX without this helper: assume it started, change nothing
        return True


def apply_if_not_started() -> None:
    """`apply()`, unless a JAX backend runs already (what `import cnnjax` does)."""
    if not jax_started():
        apply()
