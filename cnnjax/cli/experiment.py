"""`cnnjax experiment NAME|all [--quick | --full] [--seeds K] [--epochs N] [--out DIR]`."""

from __future__ import annotations

import argparse
from typing import Any

from cnnjax.cli.helpers import (
    UserError,
    add_parallel_args,
    devices,
    output_dir,
    positive_int,
    start_processes,
)


def run(args: argparse.Namespace) -> int:
    """Run one experiment (or all of them) and print the report's path."""
    from cnnjax import parallel
    from cnnjax.experiments import EXPERIMENTS, run_all, run_experiment

    if args.name != "all" and args.name not in EXPERIMENTS:
        raise UserError(
            f"unknown experiment {args.name!r}; choose one of {', '.join(EXPERIMENTS)}, all"
        )
    out = output_dir(args.out) if args.out else None
    start_processes(args)
    mode = "quick" if args.quick else "full" if args.full else "default"
    overrides = {
        "seeds": args.seeds,
        "epochs": args.epochs,
        "train_limit": args.limit,
        "dataset": args.dataset,
        "data_dir": args.data_dir,
        "devices": devices(args.devices),
    }
    if args.name == "all":
        path = run_all(mode, out, **overrides)
    else:
        path = run_experiment(args.name, mode, out, **overrides)
    if parallel.is_primary():
        print(f"report: {path}")
    return 0


def register(sub: Any) -> None:
    """Add `cnnjax experiment`."""
    from cnnjax.experiments import EXPERIMENTS

    p = sub.add_parser(
        "experiment",
        help="run a seed question's experiment and write its report",
        description="Experiments: " + ", ".join(EXPERIMENTS) + ", or all (with an index report).",
    )
    p.add_argument("name", help="experiment name or 'all'")
    speed = p.add_mutually_exclusive_group()
    speed.add_argument(
        "--quick", action="store_true", help="smoke run: tiny subset, 1 epoch, 2 seeds"
    )
    speed.add_argument(
        "--full", action="store_true", help="full data, more epochs and seeds (accelerator)"
    )
    p.add_argument("--seeds", type=positive_int, help="seeds trained together (override)")
    p.add_argument("--epochs", type=positive_int, help="epochs (override)")
    p.add_argument("--limit", type=positive_int, help="training examples (override)")
    p.add_argument("--dataset", help="dataset (override; default per experiment)")
    p.add_argument("--data-dir", help="TFDS data directory")
    p.add_argument("--out", help="run directory (default runs/NAME)")
    add_parallel_args(p)
    p.set_defaults(func=run)
