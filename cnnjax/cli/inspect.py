"""`cnnjax inspect maps|erf|probe|curves|all MODEL_OR_RUN_DIR`: the figures and tables of
`cnnjax.inspect` and `cnnjax.plots` for a zoo model, a spec, or a trained run directory.

A spec is inspected with random-init weights (seed --seed); a run directory with its trained
weights, beside the run's own initial weights where a comparison teaches something (ERF).
Everything is written into --out (default runs/inspect/<name>) and each path is printed.
"""

from __future__ import annotations

import argparse
import functools
import math
import time
from pathlib import Path
from typing import Any

from cnnjax.cli.helpers import (
    UserError,
    log,
    nonnegative_int,
    number_list,
    output_dir,
    positive_int,
)
from cnnjax.cli.inspect_sections import do_curves, do_erf, do_maps, do_probe, write_report
from cnnjax.cli.inspect_target import Session, resolve_target
from cnnjax.io import safe_name

ACTIONS = {
    "maps": "feature maps of every layer for test images, and the first layer's filters",
    "erf": "effective receptive fields (random init vs trained) beside the analytic ones",
    "probe": "linear probes per layer: test accuracy beside the values each layer keeps",
    "curves": "training curves of a run directory (train vs validation, seeds as a band)",
    "all": "everything above plus inspect.md, a report that links it all",
}


def run(what: str, args: argparse.Namespace) -> int:
    """Run one `cnnjax inspect` action; print each path written."""
    if what not in ACTIONS:
        raise UserError(f"unknown inspect action {what!r}; choose {', '.join(ACTIONS)}")
    chosen = output_dir(args.out) if args.out else None
    target = resolve_target(
        args.model, seed=args.seed, seed_index=args.seed_index, input_shape=args.input
    )
    if args.layer:
        from cnnjax.analysis import layer_names

        names = layer_names(target.spec)
        if args.layer not in names:
            raise UserError(
                f"--layer {args.layer!r} is not a layer of {target.name}; layers: {', '.join(names)}"
            )
    out = chosen or Path("runs") / "inspect" / safe_name(target.name)
    out.mkdir(parents=True, exist_ok=True)
    s = Session(target, args, out)
    t0 = time.perf_counter()
    if what in ("curves", "all"):
        do_curves(s, required=what == "curves")
    if what in ("probe", "all"):
        do_probe(s)
    if what in ("maps", "all"):
        do_maps(s)
    if what in ("erf", "all"):
        do_erf(s)
    if what == "all":
        write_report(s)
    log(f"inspect {what}: {len(s.written)} files in {out} ({time.perf_counter() - t0:.1f} s)")
    return 0


def _ridges(text: str) -> list[float]:
    return number_list(
        text,
        float,
        lambda v: math.isfinite(v) and v > 0,
        f"not a number or a comma-separated list: {text}",
        f"ridge penalties must be positive, got {text}",
    )


def _add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model",
        metavar="MODEL_OR_RUN_DIR",
        help="a trained run directory, or a zoo name, text form, JSON file or JSON string",
    )
    p.add_argument(
        "--dataset",
        help="dataset name or Keras-style .npz (default: the run's dataset, else fashion_mnist); "
        "'noise' for uniform random images (maps and erf only)",
    )
    p.add_argument("--data-dir", help="TFDS data directory")
    p.add_argument(
        "--limit",
        type=positive_int,
        default=5000,
        help="training images for the probes (default 5000)",
    )
    p.add_argument(
        "--test-limit",
        type=positive_int,
        default=2000,
        help="test images for the probes (default 2000)",
    )
    p.add_argument("--images", type=positive_int, default=64, help="images the ERF averages (64)")
    p.add_argument("--map-images", type=positive_int, default=1, help="images to draw maps of (1)")
    p.add_argument("--out", help="output directory (default runs/inspect/<name>)")
    p.add_argument(
        "--seed", type=nonnegative_int, default=0, help="init seed of a spec; subset seed"
    )
    p.add_argument(
        "--seed-index", type=nonnegative_int, default=0, help="which seed of a k-seed run (0)"
    )
    p.add_argument("--layer", help="ERF layer (default: the last spatial layer)")
    p.add_argument("--input", help="model input shape HxWxC (specs only)")
    p.add_argument(
        "--pool-to", type=positive_int, help="average-pool maps to at most NxN for probes"
    )
    p.add_argument(
        "--max-features", type=positive_int, default=8192, help="probe feature cap (8192)"
    )
    p.add_argument(
        "--ridge",
        type=_ridges,
        default=None,
        help="probe ridge penalty, or comma-separated penalties to choose from on a hold-out "
        "(default 1e-4,1e-3,1e-2,1e-1,1,10)",
    )


def register(sub: Any) -> None:
    """Add `cnnjax inspect maps|erf|probe|curves|all`."""
    p = sub.add_parser(
        "inspect",
        help="feature maps, effective receptive fields, linear probes and training curves",
        description="Write the figures and tables that show what a network's layers hold and "
        "see, for a zoo model or spec (random-init weights) or a trained run directory.",
    )
    actions = p.add_subparsers(dest="inspect_action", metavar="WHAT", required=True)
    for what, help_text in ACTIONS.items():
        q = actions.add_parser(what, help=help_text, description=help_text)
        _add_options(q)
        q.set_defaults(func=functools.partial(run, what))
