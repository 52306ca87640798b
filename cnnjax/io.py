"""File-system and process helpers shared by the library and the command line (pure Python,
no JAX)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

MAX_NAME = 80  # characters of a name kept in a path component


def safe_name(name: str, default: str = "model") -> str:
    """`name` as one safe path component: letters, digits, `_`, `.` and `-` only.

    Names come from spec files a user may not have written, and become default output paths
    (runs/NAME-...). Anything else becomes `_`; leading and trailing dots, dashes and underscores
    go, so the result can never be `..`, absolute, hidden or contain a separator.
    """
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._-")[:MAX_NAME].strip("._-")
    return cleaned or default


def sha256_file(path: Path) -> str:
    """The SHA-256 hex digest of a file, read in 1 MiB blocks (checksums of data and checkpoints)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pid_alive(pid: int) -> bool:
    """Whether `pid` is a live (not zombie) process on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] != "Z"
    except (OSError, ValueError, IndexError):
        return True
