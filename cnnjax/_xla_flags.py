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


def apply() -> None:
    """Append cnnjax's XLA:CPU flags to XLA_FLAGS unless the user set them or opted out."""
    if os.environ.get("CNNJAX_KEEP_XLA_FLAGS") == "1" or _jaxlib_version() < MIN_JAXLIB:
        return
    current = os.environ.get("XLA_FLAGS", "")
    extra = [f for f in FLAGS if f.split("=")[0] not in current]
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
