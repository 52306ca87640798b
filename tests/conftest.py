"""Test configuration: strict JAX semantics, deterministic hypothesis profiles."""

from __future__ import annotations

import os

# Several fake CPU devices so sharded code is exercised without accelerators. Must be set
# before JAX initialises its backends, and before `import cnnjax` adds its own XLA:CPU flags.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

from cnnjax import configure_xla  # no JAX yet

configure_xla()  # cnnjax's XLA:CPU flags, as the `cnnjax` command sets them
os.environ.setdefault("JAX_PLATFORMS", "cpu")

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config):
    try:
        import jax

        jax.config.update("jax_numpy_rank_promotion", "raise")
    except ImportError:  # pragma: no cover
        pass
