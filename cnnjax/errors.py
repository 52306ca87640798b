"""One base class for every error cnnjax raises on purpose (pure Python, no JAX).

Each error carries a message meant for the user: it names the input that was wrong and what
would be valid. The command line catches `CnnjaxError` once and prints it as one line with
exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class CnnjaxError(Exception):
    """A bad input or an impossible request, explained in one clear message."""


class SpecError(CnnjaxError, ValueError):
    """An invalid architecture: the message names the layer index, the layer and the shapes."""


class DataError(CnnjaxError):
    """A dataset is missing, corrupt, or asked for in a way that cannot work."""


class TrainingError(CnnjaxError, RuntimeError):
    """Training cannot go on (a non-finite loss, a mismatched resume): one clear message."""


class RunDirError(CnnjaxError, RuntimeError):
    """A run directory that cannot be used as asked (exists, mismatched config, missing)."""


class ParallelError(CnnjaxError, RuntimeError):
    """A device or multi-host layout that cannot run as asked."""


class InspectError(CnnjaxError, ValueError):
    """An inspection asked of a layer, unit or image that does not exist."""
