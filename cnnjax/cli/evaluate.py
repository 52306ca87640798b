"""`cnnjax evaluate`: score a trained run directory on a dataset split."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cnnjax.cli.helpers import UserError, positive_int


def run(args: argparse.Namespace) -> int:
    """Print loss and accuracy of each seed of the run as JSON."""
    from cnnjax.data.loading import load_datasets
    from cnnjax.train import evaluate, load_run

    run_ = load_run(args.run_dir)
    if run_.spec is None:  # load_run refuses such a run without its module; kept for types
        raise UserError(f"{args.run_dir} was not trained from a cnnjax spec")
    dataset = args.dataset or run_.config.get("dataset")
    if not dataset:
        raise UserError("the run does not record its dataset; pass --dataset")
    train, test = load_datasets(
        dataset,
        data_dir=args.data_dir,
        classes=run_.config.get("classes"),
        test_limit=args.limit,
    )
    data = test if args.split == "test" else train
    out = [evaluate(run_.spec, run_.variables_of(i), data) for i in range(run_.seeds)]
    print(json.dumps(out[0] if len(out) == 1 else out, indent=2))
    return 0


def register(sub: Any) -> None:
    """Add `cnnjax evaluate`."""
    p = sub.add_parser("evaluate", help="evaluate a trained run directory on a dataset split")
    p.add_argument("run_dir")
    p.add_argument("--dataset", help="default: the run's dataset")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--limit", type=positive_int, help="evaluate on a random subset of N examples")
    p.add_argument("--data-dir")
    p.set_defaults(func=run)
