"""The run-directory lock: one writer per run directory, stale locks of dead writers taken over.

A run being written holds `<run_dir>/.cnnjax-lock`, a small JSON file naming its owner (pid,
host, a random token). The file is created atomically (a hard link of a fully written temporary
file, or O_CREAT|O_EXCL where links are not supported), so of two processes starting at the same
instant exactly one wins; the other gets "run directory X is in use by pid N". A lock whose
owner is a dead process on this host (SIGKILL, power loss) is stale: the next writer takes it
over, under an flock of the directory so that two takers cannot both win, and says so in one
line. Locks of other hosts cannot be checked and are never taken over.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import threading
import time
import uuid
import warnings
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cnnjax.errors import RunDirError
from cnnjax.io import pid_alive

LOCK_NAME = ".cnnjax-lock"
_UNREADABLE_GRACE_S = 10.0  # a lock file still being written (O_EXCL fallback) is this young

_mutex = threading.Lock()  # serialises this process's lock operations (threads race too)
_held: set[str] = set()  # tokens of the locks this process holds now


class RunLockWarning(UserWarning):
    """A one-line note about a run-directory lock (a stale lock taken over)."""


class RunLock:
    """A held run-directory lock; `release()` (or leaving a `with` block) gives it back.

    Released at garbage collection and at interpreter exit too, so a forgotten lock never
    outlives its process; a killed process leaves a stale lock that the next writer takes over.
    """

    def __init__(self, run_dir: Path, path: Path, token: str) -> None:
        self.run_dir = run_dir
        self.path = path
        self.token = token
        self._finalizer = weakref.finalize(self, _release, path, token)

    @property
    def held(self) -> bool:
        return self._finalizer.alive

    def release(self) -> None:
        """Remove the lock file (only if it is still ours); idempotent."""
        self._finalizer()

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"RunLock({str(self.run_dir)!r}, held={self.held})"


def run_lock(run_dir: str | os.PathLike[str]) -> RunLock:
    """Lock `run_dir` for writing (creating it if needed), or raise RunDirError.

    Use as `with run_lock(d): ...` or keep the returned lock and call `release()`.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir} is a file, not a run directory; choose another directory")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(f"cannot create run directory {run_dir}: {e.strerror or e}") from None
    path = run_dir / LOCK_NAME
    token = uuid.uuid4().hex
    content = json.dumps(
        {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "token": token,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    )
    with _mutex:
        for _ in range(5):
            if _create(path, content):
                _held.add(token)
                return RunLock(run_dir, path, token)
            raw = _read(path)
            if raw is None:
                continue  # released between our attempt and our look: try again
            owner = _parse(raw)
            why = _stale_reason(owner, path)
            if why is None:
                raise RunDirError(_in_use_message(run_dir, owner, path))
            if _take_over(run_dir, path, raw, content):
                warnings.warn(
                    f"run directory {run_dir}: took over the stale lock of {why}",
                    RunLockWarning,
                    stacklevel=2,
                )
                _held.add(token)
                return RunLock(run_dir, path, token)
        raise RunDirError(f"cannot lock {run_dir}: its lock file {path} keeps changing")


def read_owner(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The owner recorded in `run_dir`'s lock file ({pid, host, ...}), or None if unlocked."""
    raw = _read(Path(run_dir) / LOCK_NAME)
    return None if raw is None else _parse(raw)


# --------------------------------------------------------------------------- internals


def _create(path: Path, content: str) -> bool:
    """Create `path` holding `content` atomically; False if it already exists."""
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}")
    try:
        tmp.write_text(content)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV):
                raise RunDirError(f"cannot lock {path.parent}: {e.strerror or e}") from None
        # A filesystem without hard links: O_CREAT|O_EXCL, then write (readers allow for it).
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        return True
    except OSError as e:
        raise RunDirError(f"cannot lock {path.parent}: {e.strerror or e}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise RunDirError(f"cannot read the lock file {path}: {e.strerror or e}") from None


def _parse(raw: str) -> dict[str, Any]:
    try:
        owner = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(owner, dict):
        return {}
    pid = owner.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return {}
    return owner


def _stale_reason(owner: dict[str, Any], path: Path) -> str | None:
    """Why the lock of `owner` is stale ("pid N on host H, which is gone"), or None if live."""
    if not owner:  # unreadable: being written right now, or garbage left by a crash
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            return None
        return "an unreadable lock file" if age > _UNREADABLE_GRACE_S else None
    pid, host = owner["pid"], owner.get("host")
    if host != socket.gethostname():
        return None
    if pid == os.getpid():
        # Our own pid: live if one of our locks holds it, else left by an earlier process
        # that had the same pid (a restarted container) or by a lock object never released.
        return None if owner.get("token") in _held else f"pid {pid} (this process, not held)"
    return None if pid_alive(pid) else f"pid {pid} on {host}, which is no longer running"


def _in_use_message(run_dir: Path, owner: dict[str, Any], path: Path) -> str:
    if not owner:
        return f"run directory {run_dir} is being locked by another process right now ({path})"
    host = owner.get("host")
    where = "" if host == socket.gethostname() else f" on host {host}"
    return (
        f"run directory {run_dir} is in use by pid {owner['pid']}{where}; wait for that run to "
        f"end or choose another directory (if no run is using it, delete {path})"
    )


@contextlib.contextmanager
def _dir_flock(run_dir: Path) -> Iterator[None]:
    """An exclusive flock of the directory itself: serialises stale-lock takeovers."""
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):  # no flock (some network filesystems): best effort
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _take_over(run_dir: Path, path: Path, stale_raw: str, content: str) -> bool:
    """Replace the stale lock `stale_raw` by ours, unless someone changed it meanwhile."""
    with _dir_flock(run_dir):
        if _read(path) != stale_raw:
            return False
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return _create(path, content)


def _release(path: Path, token: str) -> None:
    with _mutex:
        _held.discard(token)
        raw = _read_quietly(path)
        if raw is not None and _parse(raw).get("token") == token:
            with contextlib.suppress(OSError):
                path.unlink()


def _read_quietly(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None
