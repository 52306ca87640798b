"""`cnnjax demo`: the main job, the flagship experiment on the offline default data."""

from __future__ import annotations

import argparse
from typing import Any

from cnnjax.cli.helpers import output_dir


def run(args: argparse.Namespace) -> int:
    """Run the flagship experiment and print its report."""
    from cnnjax.experiments import run_demo

    return int(run_demo(out=output_dir(args.out)))


def register(sub: Any) -> None:
    """Add `cnnjax demo`."""
    p = sub.add_parser("demo", help="the main job on the offline default data")
    p.add_argument("--out", default="runs/demo", help="run directory")
    p.set_defaults(func=run)
