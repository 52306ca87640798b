"""The one exception type of the data layer (defined in `cnnjax.errors`)."""

from __future__ import annotations

from cnnjax.errors import DataError

__all__ = ["DataError"]
