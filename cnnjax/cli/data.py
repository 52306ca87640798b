"""`cnnjax data prepare|info|list`: prepare datasets and show what is prepared."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from cnnjax.data.registry import DATASETS


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="data directory (default: $CNNJAX_DATA_DIR, $TFDS_DATA_DIR, ~/tensorflow_datasets)",
    )
    parser.add_argument(
        "--offline", action="store_true", help="never download; fail with instructions instead"
    )


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``data`` command (prepare / info / list) to an argparse subparsers object."""
    names = sorted(DATASETS)
    data = subparsers.add_parser(
        "data",
        help="prepare and inspect datasets",
        description="Prepare datasets into TFDS array_record files (no TensorFlow needed).",
    )
    commands = data.add_subparsers(dest="data_command", metavar="{prepare,info,list}")
    data.set_defaults(func=lambda args: _usage(data))

    prepare = commands.add_parser("prepare", help="prepare a dataset once")
    prepare.add_argument("name", choices=names, metavar="NAME", help=", ".join(names))
    prepare.add_argument(
        "--from", dest="source_dir", metavar="DIR", help="prepare from the source files in DIR"
    )
    prepare.add_argument("--force", action="store_true", help="rebuild even if prepared")
    _common(prepare)
    prepare.set_defaults(func=_prepare)

    info = commands.add_parser("info", help="print a dataset's splits, shape and classes as JSON")
    info.add_argument("name", choices=names, metavar="NAME", help=", ".join(names))
    _common(info)
    info.set_defaults(func=_info)

    listing = commands.add_parser("list", help="list the known datasets and whether prepared")
    listing.add_argument("--data-dir", metavar="DIR", help="data directory")
    listing.set_defaults(func=_list)
    return data


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 1


def _prepare(args: argparse.Namespace) -> int:
    from cnnjax.data.registry import default_data_dir
    from cnnjax.data.store import dataset_dir, is_prepared, prepare

    spec = DATASETS[args.name]
    existing = dataset_dir(spec, default_data_dir(args.data_dir))
    if is_prepared(existing) and not args.force:
        print(f"{args.name}: already prepared at {existing} (--force rebuilds)")
        return 0
    start = time.perf_counter()
    path = prepare(
        args.name,
        data_dir=args.data_dir,
        source_dir=args.source_dir,
        download=False if args.offline else None,
        force=args.force,
    )
    print(f"{args.name}: prepared at {path} in {time.perf_counter() - start:.1f} s")
    return 0


def _info(args: argparse.Namespace) -> int:
    from cnnjax.data.store import info

    facts = info(args.name, data_dir=args.data_dir, download=False if args.offline else None)
    print(json.dumps(facts, indent=2))
    return 0


def _list(args: argparse.Namespace) -> int:
    from cnnjax.data.store import status

    for name in sorted(DATASETS):
        s = status(name, data_dir=args.data_dir)
        state = "prepared" if s["prepared"] else "offline source" if s["offline_source"] else "-"
        print(f"{name:15s} {s['kind']:8s} {state:15s} {s['path']}")
    return 0
