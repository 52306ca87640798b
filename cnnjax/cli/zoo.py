"""`cnnjax zoo`: the named architectures with their parameter counts (no JAX)."""

from __future__ import annotations

import argparse
from typing import Any


def run(args: argparse.Namespace) -> int:
    """One line per zoo model: name, parameters, description."""
    from cnnjax import zoo
    from cnnjax.analysis import analyze

    width = max(len(n) for n in zoo.ZOO)
    for name in zoo.ZOO:
        report = analyze(zoo.get(name))
        print(f"{name.ljust(width)}  {report.total_params:>12,} params  {zoo.describe(name)}")
    return 0


def register(sub: Any) -> None:
    """Add `cnnjax zoo`."""
    p = sub.add_parser("zoo", help="list the named architectures")
    p.set_defaults(func=run)
