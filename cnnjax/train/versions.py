"""The package versions, backend and malloc a run records in its config.json (reruns can compare)."""

from __future__ import annotations

import contextlib
import importlib.metadata as md

import jax

from cnnjax import _malloc

_PACKAGES = ("cnnjax", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy")


def versions() -> dict[str, str]:
    """Installed versions of the packages a result depends on, the JAX backend, and the malloc
    the process runs on ("tcmalloc" or "system": speed, not results, depends on it)."""
    out = {}
    for name in _PACKAGES:
        with contextlib.suppress(md.PackageNotFoundError):
            out[name] = md.version(name)
    out["backend"] = jax.default_backend()
    out["malloc"] = _malloc.active()
    return out
