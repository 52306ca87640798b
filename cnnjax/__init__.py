"""cnnjax: answer the classic questions about convolutional networks by experiment.

One architecture spec is read by the analytic report (pure Python) and by the Flax model, so
the numbers beside an accuracy describe the very network trained. Importing `cnnjax` is
cheap: JAX is imported only by the modules that need it (models, train, inspect, ...).
"""

from cnnjax.analysis import NetReport, analyze
from cnnjax.spec import (
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
