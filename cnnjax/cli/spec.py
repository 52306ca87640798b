"""`cnnjax spec`: print a spec in text or JSON form, converting between them (no JAX)."""

from __future__ import annotations

import argparse
from typing import Any

from cnnjax.cli.helpers import load_spec


def run(args: argparse.Namespace) -> int:
    """Print the spec in the requested form."""
    spec = load_spec(args.spec, args.input)
    print(spec.to_json() if args.format == "json" else spec.to_text())
    return 0


def register(sub: Any) -> None:
    """Add `cnnjax spec`."""
    p = sub.add_parser("spec", help="print a spec in text or JSON form (convert between them)")
    p.add_argument("spec")
    p.add_argument("--input", help="input shape HxWxC")
    p.add_argument("--format", choices=("text", "json"), default="json")
    p.set_defaults(func=run)
