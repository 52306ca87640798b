"""The package versions and backend a run records in its config.json (reruns can compare)."""

from __future__ import annotations

import contextlib
import importlib.metadata as md

import jax

_PACKAGES = ("cnnjax", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy")


def versions() -> dict[str, str]:
    """Installed versions of the packages a result depends on, and the JAX backend."""
    out = {}
    for name in _PACKAGES:
        with contextlib.suppress(md.PackageNotFoundError):
            out[name] = md.version(name)
    out["backend"] = jax.default_backend()
    return out
