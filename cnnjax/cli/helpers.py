"""What several subcommands share: the user-error type, argument parsers, output directories,
spec loading with one-line errors, and the devices-and-processes options. No JAX at import.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from cnnjax.errors import CnnjaxError


class UserError(CnnjaxError):
    """A bad command line or input: printed as one `error: ...` line, exit status 2."""


def log(message: str) -> None:
    """A progress line on stderr (stdout carries the results)."""
    print(message, file=sys.stderr, flush=True)


N = TypeVar("N", int, float)


# ------------------------------------------------------------------ argparse types


def _number(
    text: str, convert: Callable[[str], N], ok: Callable[[N], bool], kind: str, rule: str
) -> N:
    """`text` read by `convert` (int or float) and accepted by `ok`; else an argparse error that
    says what was expected (`kind`) or which `rule` the value breaks."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _number(text, int, lambda v: v >= 1, "a positive integer", "a positive integer")


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0 (0 switches the feature off)."""
    return _number(text, int, lambda v: v >= 0, "an integer >= 0", "an integer >= 0 (0: off)")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (a learning rate, a penalty)."""
    return _number(
        text,
        float,
        lambda v: math.isfinite(v) and v > 0,
        "a positive number",
        "a finite number > 0",
    )


def number_list(
    text: str, convert: Callable[[str], N], ok: Callable[[N], bool], unreadable: str, bad: str
) -> list[N]:
    """Comma-separated numbers read by `convert`, each accepted by `ok`; else an argparse error
    with the message `unreadable` (not numbers) or `bad` (a value `ok` rejects)."""
    try:
        values = [convert(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(unreadable) from None
    if not all(ok(v) for v in values):
        raise argparse.ArgumentTypeError(bad)
    return values


def class_list(text: str) -> list[int]:
    """argparse type of --classes: comma-separated class indices >= 0, e.g. 0,1,7."""
    return number_list(
        text,
        int,
        lambda c: c >= 0,
        f"expected comma-separated class indices such as 0,1,7, got {text!r}",
        f"class indices must be >= 0, got {text}",
    )


def validation_arg(text: str) -> str:
    """argparse type of --validation: 'test', 'none', or a fraction of train in (0, 1)."""
    if text in ("test", "none"):
        return text
    try:
        fraction = float(text)
    except ValueError:
        fraction = math.nan
    if not 0.0 < fraction < 1.0:
        raise argparse.ArgumentTypeError(
            f"expected 'test', 'none' or a fraction of train between 0 and 1, got {text!r}"
        )
    return text


def devices_arg(value: str) -> str | int:
    """argparse type of --devices: 'all' or a positive count."""
    if value == "all":
        return value
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'all', got {value!r}")
    return int(value)


# ------------------------------------------------------------------ inputs and outputs


def devices(value: str | int | None) -> int | None:
    """FitConfig.devices from --devices: None (automatic), 'all' (every device), or a count."""
    if value == "all":
        import jax

        return jax.device_count()
    return None if value is None else int(value)


def output_dir(path: str | Path, flag: str = "--out") -> Path:
    """`path` as a directory to write into: refused when it, or a parent, is not a directory."""
    out = Path(path)
    try:
        for candidate in (out, *out.parents):
            if candidate.exists():
                if not candidate.is_dir():
                    where = "is" if candidate == out else f"is under {candidate}, which is"
                    raise UserError(f"{flag} {out} {where} a file, not a directory")
                break
    except OSError as err:  # a name too long, a loop of links
        raise UserError(f"{flag} {_shorten(str(out))}: {err.strerror}") from None
    return out


def load_spec(source: str, input_shape: str | None = None) -> Any:
    """cnnjax.loading.load_spec for a command-line argument; unreadable files are one error line."""
    from cnnjax.loading import load_spec as _load
    from cnnjax.spec import parse_shape

    shape = parse_shape(input_shape) if input_shape else None
    try:
        return _load(source, shape)
    except RecursionError:
        raise UserError(
            f"spec {_shorten(source)} is nested too deeply to read; a spec is a flat JSON object "
            "with a list of layers"
        ) from None
    except UnicodeDecodeError:
        raise UserError(
            f"spec file {_shorten(source)} is not text; expected a JSON spec (UTF-8)"
        ) from None
    except OSError as err:
        raise UserError(f"cannot read spec file {_shorten(source)}: {err.strerror}") from None


def _shorten(text: str, limit: int = 80) -> str:
    text = str(text)
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


# ------------------------------------------------------------------ devices and processes


def add_parallel_args(p: argparse.ArgumentParser) -> None:
    """The "devices and processes" options of `cnnjax train` and `cnnjax experiment`."""
    g = p.add_argument_group(
        "devices and processes",
        "data parallelism over several devices and hosts (docs/tpu.md)",
    )
    g.add_argument(
        "--devices",
        type=devices_arg,
        metavar="N|all",
        help="split each batch over N devices (1: one device); default: every GPU/TPU device "
        "of every process, one device on a CPU",
    )
    g.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address")
    g.add_argument("--num-processes", type=int, help="processes in the run (with --coordinator)")
    g.add_argument("--process-id", type=int, help="this process, 0..N-1 (with --coordinator)")
    g.add_argument(
        "--coordinator-timeout",
        type=positive_int,
        default=300,
        metavar="SECONDS",
        help="how long to wait for the coordinator before giving up (default 300)",
    )
    g.add_argument(
        "--distributed",
        action="store_true",
        help="join a multi-process run described by the environment (Cloud TPU pod slice, "
        "Slurm, Open MPI): jax.distributed.initialize() with no arguments",
    )


def start_processes(args: argparse.Namespace) -> None:
    """Join a multi-process run when asked (flags, or a Cloud TPU pod's environment).

    Must run before anything touches a JAX device; one process with no flags does nothing.
    """
    from cnnjax import parallel

    explicit = any(v is not None for v in (args.coordinator, args.num_processes, args.process_id))
    if not (explicit or args.distributed or parallel.cloud_tpu_pod_env()):
        return
    parallel.initialize(
        args.coordinator,
        args.num_processes,
        args.process_id,
        timeout_s=getattr(args, "coordinator_timeout", 300),
    )
