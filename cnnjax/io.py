"""File-system helpers shared by the library and the command line (pure Python, no JAX)."""

from __future__ import annotations

import re

MAX_NAME = 80  # characters of a name kept in a path component


def safe_name(name: str, default: str = "model") -> str:
    """`name` as one safe path component: letters, digits, `_`, `.` and `-` only.

    Names come from spec files a user may not have written, and become default output paths
    (runs/NAME-...). Anything else becomes `_`; leading and trailing dots, dashes and underscores
    go, so the result can never be `..`, absolute, hidden or contain a separator.
    """
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._-")[:MAX_NAME].strip("._-")
    return cleaned or default
