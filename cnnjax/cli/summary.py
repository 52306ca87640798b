"""`cnnjax summary`: the per-layer analytic report of specs (no JAX) or of a user's Flax module
(`file.py:Name` or `package.module:Name`, traced with JAX)."""

from __future__ import annotations

import argparse
from typing import Any

from cnnjax.cli.helpers import UserError, load_spec
from cnnjax.user_module import is_module_ref


def _module_report(ref: str, args: argparse.Namespace) -> str:
    """The report of a user's Flax module, read from its traced program."""
    import json

    from cnnjax.spec import parse_shape
    from cnnjax.summary import render
    from cnnjax.trace import analyze_any
    from cnnjax.user_module import load_module

    if not args.input:
        raise UserError(f"{ref} is a Flax module: pass --input HxWxC (CxHxW with --layout NCHW)")
    try:
        kwargs = json.loads(args.kwargs) if args.kwargs else {}
    except json.JSONDecodeError as err:
        raise UserError(
            f"--kwargs must be a JSON object, e.g. '{{\"num_classes\": 10}}': {err}"
        ) from None
    if not isinstance(kwargs, dict):
        raise UserError(f"--kwargs must be a JSON object, got {args.kwargs!r}")
    report = analyze_any(load_module(ref, kwargs), parse_shape(args.input), layout=args.layout)
    text = render(report, args.format)
    stopped = getattr(report, "stopped", None)
    if stopped and args.format != "json":
        text += f"\nAnalysis stopped at {stopped}: later rows have no receptive field."
    return text


def run(args: argparse.Namespace) -> int:
    """Print the report of each spec (the seed models when none is given)."""
    from cnnjax import zoo
    from cnnjax.analysis import analyze
    from cnnjax.summary import render

    names = args.spec or list(zoo.SEED_MODELS)
    outputs = []
    for name in names:
        if is_module_ref(name):
            outputs.append(_module_report(name, args))
        else:
            outputs.append(render(analyze(load_spec(name, args.input)), args.format))
    if args.format == "json" and len(outputs) > 1:
        outputs = ["[" + ",\n".join(outputs) + "]"]
    print("\n\n".join(outputs))
    return 0


def register(sub: Any) -> None:
    """Add `cnnjax summary`."""
    p = sub.add_parser(
        "summary",
        help="per-layer analytic report: shapes, params, values kept, receptive field, MACs",
        description="Print the analytic report of one or more specs (zoo names, text forms, "
        "JSON files or JSON strings). With no spec: the seed models.",
    )
    p.add_argument(
        "spec",
        nargs="*",
        help="zoo name, text form, JSON file or JSON string; or a Flax module as "
        "path/to/file.py:Name or package.module:Name (with --input)",
    )
    p.add_argument("--input", help="input shape HxWxC (overrides the spec's)")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    p.add_argument("--kwargs", help="for file.py:Name: constructor arguments as a JSON object")
    p.add_argument(
        "--layout", choices=("NHWC", "NCHW"), default="NHWC", help="for file.py:Name: input layout"
    )
    p.set_defaults(func=run)
