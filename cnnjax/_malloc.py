"""Run the process under tcmalloc, where it is installed: a restart with it preloaded.

XLA:CPU allocates each step's large buffers afresh (its temporaries, Eigen's convolution
scratch), from worker threads whose glibc arenas `mmap` every block over 64 MB and unmap it
on free, so every step of a 224x224 network faults ~680 MB of pages in again. tcmalloc keeps
freed blocks for reuse. Measured with jaxlib 0.10.2 on a 2-core Intel Xeon
(`python benchmarks/step_paths.py --one model=NAME --seconds 10`, fresh processes, A B B A,
with and without `LD_PRELOAD=libtcmalloc_minimal.so.4`): pool224 1.24x (47,470 -> 1,288 minor
page faults per step), nopool224 1.16x, chollet_mnist 1.06x, fashion_cnn 1.03-1.08x,
resnet_small 1.03x, fashion_cnn_nopool level; `cnnjax experiment pooling_224 --seeds 1`
202 -> 147 s with the same results to the last digit (docs/performance.md).

malloc cannot be swapped in a running process, so `restart_with_tcmalloc()` re-executes the
interpreter with the same arguments and `LD_PRELOAD` set, once, before anything else runs.
The `cnnjax` command and experiments/*.py call it first; a library user's script may too.
`CNNJAX_MALLOC=system` keeps the system's malloc; `CNNJAX_TCMALLOC=PATH` names the library.
No JAX import here.
"""

from __future__ import annotations

import glob
import os
import sys

OFF_VAR = "CNNJAX_MALLOC"  # "system": never restart
PATH_VAR = "CNNJAX_TCMALLOC"  # the library's path, where it is not in a standard place
_RESTARTED_VAR = "CNNJAX_MALLOC_RESTARTED"  # set across the restart: never loop
_SEARCH = (
    "/usr/lib/*-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib64/libtcmalloc_minimal.so.4",
    "/usr/lib/libtcmalloc_minimal.so.4",
    "/usr/lib/*-linux-gnu/libtcmalloc.so.4",
    "/usr/lib64/libtcmalloc.so.4",
)
# tcmalloc reports allocations over 1 GiB on stderr by default; a 224x224 dataset is larger.
_QUIET = {"TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": str(1 << 40)}


def tcmalloc_path() -> str | None:
    """The tcmalloc shared library to preload (Debian's `libtcmalloc-minimal4`), or None."""
    named = os.environ.get(PATH_VAR)
    if named:
        return named if os.path.isfile(named) else None
    for pattern in _SEARCH:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def active() -> str:
    """Which malloc this process runs on: "tcmalloc" or "system" (read from its mappings)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return "tcmalloc" if any("libtcmalloc" in line for line in maps) else "system"
    except OSError:
        return "system"


def restart_with_tcmalloc() -> None:
    """Re-execute this process with tcmalloc preloaded, if installed and not loaded yet.

    Returns (changing nothing) where it does not apply: not Linux, `CNNJAX_MALLOC=system`,
    no library found, tcmalloc already loaded, or a restart already tried. Call it first
    thing in a program's entry point: the restart runs the program again from the start.
    """
    if not sys.platform.startswith("linux") or os.environ.get(OFF_VAR) == "system":
        return
    if os.environ.get(_RESTARTED_VAR) or active() == "tcmalloc":
        return
    library = tcmalloc_path()
    if library is None:
        return
    env = dict(os.environ)
    env[_RESTARTED_VAR] = "1"
    env["LD_PRELOAD"] = " ".join(filter(None, [library, env.get("LD_PRELOAD", "")]))
    for key, value in _QUIET.items():
        env.setdefault(key, value)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    argv = list(getattr(sys, "orig_argv", [])) or [sys.executable, *sys.argv]
    os.execve(sys.executable, [sys.executable, *argv[1:]], env)
