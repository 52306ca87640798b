"""cnnjax: answer the classic questions about convolutional networks by experiment.

One architecture spec is read by the analytic report (pure Python) and by the Flax model, so
the numbers beside an accuracy describe the very network trained. Importing `cnnjax` is
cheap: JAX is imported only by the modules that need it (models, train, inspect, ...).
"""

from typing import Any

from cnnjax import _malloc, _xla_flags, analysis
from cnnjax.analysis import NetReport
from cnnjax.grammar import from_text, to_text
from cnnjax.loading import load_spec
from cnnjax.spec import (
    Activation,
    AvgPool,
    BatchNorm,
    Concat,
    Conv,
    Dense,
    DepthwiseConv,
    Dropout,
    Flatten,
    GlobalAvgPool,
    MaxPool,
    NetSpec,
    Residual,
    SpecError,
    from_dict,
    from_json,
    sequential,
)

__version__ = "0.1.0"

# cnnjax's XLA:CPU flags (YNNPACK fusions off: 1.2-1.4x faster training steps, measured in
# cnnjax/_xla_flags.py), while they can still take effect: before JAX starts a backend.
_xla_flags.apply_if_not_started()


def analyze(
    model: Any,
    input_shape: Any = None,
    variables: Any = None,
    *,
    layout: str = "NHWC",
) -> NetReport:
    """The per-layer report of a network: shapes, params, values kept, receptive field, MACs.

    `model` is a spec (a `NetSpec`, a zoo name, a text form, JSON), read analytically without
    JAX; or a Flax Linen module (`input_shape=(H, W, C)`, `variables=` optional) or a function
    `f(variables, x)` (`variables=` and `input_shape=`), read from its traced program
    (`cnnjax.trace`). Both give the same report type; for cnnjax's own models the two agree.
    """
    if isinstance(model, (NetSpec, str, dict)):
        return analysis.analyze(load_spec(model, input_shape))
    from cnnjax.trace import analyze_any

    return analyze_any(model, input_shape, variables, layout=layout)


def configure_xla(cpu_devices: int | str | None = None) -> None:
    """Add cnnjax's XLA:CPU flags to the XLA_FLAGS environment variable; call before JAX starts.

    `import cnnjax` does this itself when no JAX backend has started yet (XLA reads XLA_FLAGS
    when its first backend starts). A program that ran JAX before importing cnnjax gets them
    only in processes it starts after this call. It turns off XLA:CPU's YNNPACK fusions:
    1.2-1.4x faster training steps on a 2-core Intel Xeon, and vmapped networks that fail
    inside YNNPACK run (cnnjax/_xla_flags.py has the measurements). Flags already in
    XLA_FLAGS are kept; with CNNJAX_KEEP_XLA_FLAGS=1 nothing is changed (with a jaxlib older
    than 0.10, the YNNPACK flag is left out).

    `cpu_devices` ("cores", or a count) also splits the CPU into that many JAX devices, one
    per core for "cores" (or `CNNJAX_CPU_DEVICES`), unless a count was chosen already: `fit`
    then trains k seeds side by side, 1.1-1.25x the images/s of the loop on one device on 2
    cores, each seed's results identical to a separate run (docs/performance.md). The
    `cnnjax` command and experiments/*.py do this; `import cnnjax` does not, since it changes
    what `jax.devices()` lists.
    """
    _xla_flags.apply(cpu_devices)


def restart_with_tcmalloc() -> None:
    """Re-execute this Python process with tcmalloc preloaded, where it is installed.

    Call it first thing in a script that trains: the process starts again from the top with
    the same arguments (once). XLA:CPU then reuses its large per-step buffers instead of
    mapping them afresh: 1.16-1.24x faster training steps on the 224x224 networks, up to 1.08x
    on the small ones, identical results (cnnjax/_malloc.py has the measurements). It does
    nothing off Linux, without the library (Debian: `apt-get install libtcmalloc-minimal4`),
    with `CNNJAX_MALLOC=system`, or when tcmalloc is loaded already. The `cnnjax` command and
    experiments/*.py call it.
    """
    _malloc.restart_with_tcmalloc()


__all__ = [
    "Activation",
    "AvgPool",
    "BatchNorm",
    "Concat",
    "Conv",
    "Dense",
    "DepthwiseConv",
    "Dropout",
    "Flatten",
    "GlobalAvgPool",
    "MaxPool",
    "NetReport",
    "NetSpec",
    "Residual",
    "SpecError",
    "analyze",
    "configure_xla",
    "from_dict",
    "from_json",
    "from_text",
    "load_spec",
    "restart_with_tcmalloc",
    "sequential",
    "to_text",
]
