"""XLA:CPU settings cnnjax applies before JAX starts (no JAX import here).

The entry points apply them (the `cnnjax` command, experiments/*.py, tests/conftest.py, the
benchmarks), and library users may through `cnnjax.configure_xla()`; `import cnnjax` does not.

`--xla_cpu_experimental_ynn_fusion_type=` turns off XLA:CPU's YNNPACK fusions. Measured with
jaxlib 0.10.2 on a 2-core CPU (fashion_cnn, batch 32): one seed trains at the same speed with or
without them (~5,000 images/s), four vmapped seeds 2,200 -> 3,300 images/s without, and the
vmapped 224x224 no-pooling network of seed 004 fails inside YNNPACK ("YNNPACK operation failed")
with them. Set CNNJAX_KEEP_XLA_FLAGS=1 to leave XLA_FLAGS exactly as you set it.
"""

from __future__ import annotations

import importlib.metadata
import os

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
