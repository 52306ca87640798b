"""The `cnnjax` command: one module per subcommand, shared argument helpers in `helpers`.

Subcommands import JAX lazily (inside the function that runs them), so `cnnjax summary` stays
instant. `main` is the one place that turns a `CnnjaxError` into `error: ...` and exit status 2,
and it sets cnnjax's XLA flags before anything can import JAX. `run` is the installed
command's entry point: it first restarts a training subcommand under tcmalloc (`cnnjax._malloc`).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import NoReturn

from cnnjax import _malloc, _xla_flags
from cnnjax.cli import (
    data,
    demo,
    evaluate,
    experiment,
    inspect,
    spec,
    summary,
    train,
    zoo,
)
from cnnjax.cli.helpers import UserError
from cnnjax.errors import CnnjaxError

__all__ = ["UserError", "build_parser", "main", "run"]

# In the order `cnnjax --help` lists them.
SUBCOMMANDS = (summary, zoo, spec, demo, data, train, evaluate, inspect, experiment)
# The subcommands that run JAX programs: `run` restarts them under tcmalloc where installed
# (1.0-1.3x faster training steps, cnnjax/_malloc.py); the instant ones are not restarted.
RUNS_JAX = frozenset({"demo", "train", "evaluate", "inspect", "experiment"})


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors as one `error:` line (exit 2), like every other error;
    subcommand parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The `cnnjax` parser with every subcommand registered."""
    parser = _Parser(
        prog="cnnjax",
        description="Answer the classic CNN questions by experiment: analytic numbers beside accuracy.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(sub)
    return parser


def run() -> int:
    """The `cnnjax` command (and `python -m cnnjax.cli`): `main()` on the process's arguments,
    after restarting a subcommand that runs JAX under tcmalloc where it is installed."""
    if sys.argv[1:2] and sys.argv[1] in RUNS_JAX:
        _malloc.restart_with_tcmalloc()
    return main()


def main(argv: Sequence[str] | None = None) -> int:
    """Run `cnnjax ARGV`; return the exit status (2 for a bad input, with one `error:` line)."""
    try:
        _xla_flags.apply("cores")  # before JAX creates its CPU client: seeds side by side
    except ValueError as err:  # a bad CNNJAX_CPU_DEVICES
        print(f"error: {err}", file=sys.stderr)
        return 2
    warnings.formatwarning = _one_line_warning
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
        if func is None:
            parser.print_help()
            status = 1
        else:
            status = int(func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return status
    except SystemExit:  # --help or a usage error: flush now, a closed pipe is no traceback
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _silence_stdout()
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 141  # 128 + SIGPIPE, as a program killed by the closed pipe
    except CnnjaxError as err:
        print(f"error: {as_flags(str(err))}", file=sys.stderr)
        return 2


# The library's errors name its arguments; on the command line the same advice names flags.
_ARGUMENT_FLAGS = (
    ("resume=True", "--resume"),
    ("another run_dir=", "another --out"),
    ("run_dir=", "--out"),
    ("devices=", "--devices "),
    ("batch_size=", "--batch-size "),
    ("learning_rate=", "--lr "),
    ("keep_checkpoints=", "--keep "),
    ("checkpoint_every=", "--checkpoint-every "),
)


def as_flags(message: str) -> str:
    """A library error message with argument spellings replaced by the command's flags."""
    for argument, flag in _ARGUMENT_FLAGS:
        message = message.replace(argument, flag)
    return message.replace("  ", " ")


_default_formatwarning = warnings.formatwarning


def _one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    line: str | None = None,
) -> str:
    """cnnjax's own warnings (a damaged checkpoint skipped, a stale lock taken over) as one
    `warning: ...` line; other libraries' warnings as Python prints them."""
    if category.__module__.startswith("cnnjax"):
        return f"warning: {message}\n"
    return _default_formatwarning(message, category, filename, lineno, line)


def _silence_stdout() -> None:
    """The reader went away (`cnnjax ... | head`): drop what is left instead of a traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (captured in tests)
        pass
