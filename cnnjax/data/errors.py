"""The one exception type of the data layer."""

from __future__ import annotations


class DataError(Exception):
    """A dataset is missing, corrupt, or asked for in a way that cannot work.

    The message is a single line meant for the user: it names the file or dataset
    and says what is wrong and, where possible, how to fix it.
    """
