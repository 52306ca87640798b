"""The `cnnjax` command. Subcommands import JAX lazily, so `cnnjax summary` stays instant."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from cnnjax import zoo
from cnnjax.spec import SpecError, load_spec, parse_shape

# Subcommand modules that register themselves: module path -> attribute with register(sub).
_PLUGINS = (
    "cnnjax.data.cli",
    "cnnjax.train_cli",
    "cnnjax.inspect_cli",
    "cnnjax.experiments_cli",
)


class UserError(Exception):
    """A bad command line or input: printed as one `error: ...` line, exit status 2."""


def _summary(args: argparse.Namespace) -> int:
    from cnnjax.analysis import analyze
    from cnnjax.summary import render

    names = args.spec or list(zoo.SEED_MODELS)
    shape = parse_shape(args.input) if args.input else None
    outputs = []
    for name in names:
        spec = load_spec(name, shape)
        outputs.append(render(analyze(spec), args.format))
    if args.format == "json" and len(outputs) > 1:
        outputs = ["[" + ",\n".join(outputs) + "]"]
    print("\n\n".join(outputs))
    return 0


def _zoo(args: argparse.Namespace) -> int:
    from cnnjax.analysis import analyze

    width = max(len(n) for n in zoo.ZOO)
    for name in zoo.ZOO:
        report = analyze(zoo.get(name))
        print(f"{name.ljust(width)}  {report.total_params:>12,} params  {zoo.describe(name)}")
    return 0


def _spec(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec, parse_shape(args.input) if args.input else None)
    print(spec.to_json() if args.format == "json" else spec.to_text())
    return 0


def _demo(args: argparse.Namespace) -> int:
    """The main job. Runs the flagship experiment when it is available, else the seed summaries."""
    try:
        experiments = importlib.import_module("cnnjax.experiments")
    except ImportError:
        experiments = None
    if experiments is not None and hasattr(experiments, "run_demo"):
        return int(experiments.run_demo(out=args.out))
    ns = argparse.Namespace(spec=list(zoo.SEED_MODELS), input=None, format="text")
    return _summary(ns)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnjax",
        description="Answer the classic CNN questions by experiment: analytic numbers beside accuracy.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "summary",
        help="per-layer analytic report: shapes, params, values kept, receptive field, MACs",
        description="Print the analytic report of one or more specs (zoo names, text forms, "
        "JSON files or JSON strings). With no spec: the seed models.",
    )
    p.add_argument("spec", nargs="*", help="zoo name, text form, JSON file or JSON string")
    p.add_argument("--input", help="input shape HxWxC (overrides the spec's)")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    p.set_defaults(func=_summary)

    p = sub.add_parser("zoo", help="list the named architectures")
    p.set_defaults(func=_zoo)

    p = sub.add_parser("spec", help="print a spec in text or JSON form (convert between them)")
    p.add_argument("spec")
    p.add_argument("--input", help="input shape HxWxC")
    p.add_argument("--format", choices=("text", "json"), default="json")
    p.set_defaults(func=_spec)

    p = sub.add_parser("demo", help="the main job on the offline default data")
    p.add_argument("--out", default="runs/demo", help="run directory")
    p.set_defaults(func=_demo)

    for module_name in _PLUGINS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue
        module.register(sub)
    return parser


def _known_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [SpecError, UserError]
    for module_name, attr in (
        ("cnnjax.data", "DataError"),
        ("cnnjax.train", "TrainingError"),
        ("cnnjax.checkpoint", "RunDirError"),
    ):
        module = sys.modules.get(module_name)
        if module is not None and hasattr(module, attr):
            errors.append(getattr(module, attr))
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 1
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if isinstance(err, _known_errors()):
            print(f"error: {err}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
