"""cnnjax: answer the classic questions about convolutional networks by experiment.

One architecture spec is read by the analytic report (pure Python) and by the Flax model, so
the numbers beside an accuracy describe the very network trained. Importing `cnnjax` is
cheap: JAX is imported only by the modules that need it (models, train, inspect, ...).
"""

from cnnjax import _xla_flags

_xla_flags.apply()  # before JAX creates its CPU client

from cnnjax.analysis import NetReport, analyze  # noqa: E402
from cnnjax.spec import (  # noqa: E402
    AvgPool,
    BatchNorm,
    Conv,
    Dense,
    DepthwiseConv,
    Dropout,
    Flatten,
    GlobalAvgPool,
    MaxPool,
    NetSpec,
    SpecError,
    from_dict,
    from_json,
    from_text,
    load_spec,
    sequential,
)

__version__ = "0.1.0"

__all__ = [
    "AvgPool",
    "BatchNorm",
    "Conv",
    "Dense",
    "DepthwiseConv",
    "Dropout",
    "Flatten",
    "GlobalAvgPool",
    "MaxPool",
    "NetReport",
    "NetSpec",
    "SpecError",
    "analyze",
    "from_dict",
    "from_json",
    "from_text",
    "load_spec",
    "sequential",
]
