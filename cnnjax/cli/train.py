"""`cnnjax train`: train a model on a dataset into a run directory (Keras-like fit)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from cnnjax.cli.helpers import (
    UserError,
    add_parallel_args,
    class_list,
    devices,
    load_spec,
    nonnegative_int,
    output_dir,
    positive_float,
    positive_int,
    start_processes,
    validation_arg,
)
from cnnjax.io import safe_name

RUN_FILES = ("config.json", "checkpoints")  # what makes a directory a run (cnnjax.checkpoint)


def run(args: argparse.Namespace) -> int:
    """Train, print the validation accuracy, write results.json beside the checkpoints."""
    import jax

    from cnnjax import data, parallel
    from cnnjax.data.dataset import ArrayDataset
    from cnnjax.data.loading import load_datasets
    from cnnjax.train import FitConfig, fit, mean_std_ci

    start_processes(args)
    primary = parallel.is_primary()
    if not args.out and jax.process_count() > 1:
        raise UserError(
            "with several processes pass --out: one run directory that every process sees"
        )
    out = output_dir(args.out) if args.out else None
    if args.resume:
        if out is None:
            raise UserError("--resume needs --out: the run directory to continue")
        if not any((out / name).exists() for name in RUN_FILES):
            raise UserError(
                f"--resume: {out} holds no run to continue (no config.json or checkpoints/); "
                "drop --resume to start a new run there"
            )
    spec = load_spec(args.model, args.input)
    spec.require_size("training")  # refused before any data is read
    classes = args.classes
    train, test = load_datasets(
        args.dataset,
        data_dir=args.data_dir,
        limit=args.limit,
        test_limit=args.test_limit,
        classes=classes,
        seed=args.seed,
    )
    if tuple(train.image_shape) != spec.input_shape:
        h, w, c = spec.input_shape
        if train.image_shape[:2] != (h, w):
            train, test = data.resize(train, (h, w)), data.resize(test, (h, w))
        if train.image_shape[2] != c:
            train, test = data.to_channels(train, c), data.to_channels(test, c)
    validation: ArrayDataset | None = test
    if args.validation not in ("test", "none"):
        train, validation = data.split_validation(train, float(args.validation), seed=args.seed)
    elif args.validation == "none":
        validation = None
    config = FitConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        learning_rate=args.lr,
        seed=args.seed,
        seeds=args.seeds,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep,
        eval_every=args.eval_every,
        dtype=args.dtype,
        pool_impl=args.pool_impl,
        conv_impl=args.conv_impl,
        norm_impl=args.norm_impl,
        merge_impl=args.merge_impl,
        seed_mode=args.seed_mode,
        devices=devices(args.devices),
    )
    if out is None:
        out = default_out(spec.name or "model", args.dataset)
    extra = {
        "dataset": args.dataset,
        "classes": classes,
        "limit": args.limit,
        "test_limit": args.test_limit,
        "validation": args.validation,
        "command": "cnnjax " + " ".join(sys.argv[1:]),
    }
    if primary:
        print(f"run directory: {out}", file=sys.stderr)
    result = fit(
        spec,
        train,
        validation=validation,
        config=config,
        run_dir=out,
        resume=args.resume,
        extra_config=extra,
        progress=None,
    )
    results: dict[str, Any] = {"history": result.history.records}
    if validation is not None and result.history.records:
        last = result.history.records[-1]
        acc = last["val_accuracy"]
        results["val_accuracy"] = mean_std_ci(acc if isinstance(acc, list) else [acc])
        results["val_loss"] = mean_std_ci(
            last["val_loss"] if isinstance(acc, list) else [last["val_loss"]]
        )
        summary = results["val_accuracy"]
        line = f"{args.validation} accuracy: {summary['mean']:.4f}"
        if args.seeds > 1:
            line += f" ± {summary['std']:.4f} (95% CI ± {summary['ci95']:.4f}, {args.seeds} seeds)"
        if primary:
            print(line)
    from cnnjax.checkpoint import write_atomic

    if primary:
        write_atomic(out / "results.json", json.dumps(results, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


def default_out(model: str, dataset: str) -> Path:
    """runs/MODEL-DATASET-TIME, each name reduced to a safe file name (specs choose names)."""
    stem = Path(dataset).stem if dataset.endswith(".npz") else dataset
    name = f"{safe_name(model)}-{safe_name(stem, 'data')}-{time.strftime('%Y%m%d-%H%M%S')}"
    return Path("runs") / name


def register(sub: Any) -> None:
    """Add `cnnjax train`."""
    p = sub.add_parser(
        "train",
        help="train a model on a dataset (Keras-like fit with a run directory)",
        description="Train MODEL (zoo name, text form or JSON) on DATASET; writes config.json, "
        "metrics.jsonl, results.json and Orbax checkpoints into --out.",
    )
    p.add_argument("--model", required=True, help="zoo name, text form, JSON file or string")
    p.add_argument("--dataset", default="fashion_mnist", help="dataset name or a Keras-style .npz")
    p.add_argument("--epochs", type=positive_int, default=5)
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--optimizer", default="adam", help="adam, adamw, sgd, momentum, rmsprop")
    p.add_argument("--lr", type=positive_float, default=1e-3, help="learning rate")
    p.add_argument(
        "--seed", type=nonnegative_int, default=0, help="first seed (seeds are seed..seed+k-1)"
    )
    p.add_argument("--seeds", type=positive_int, default=1, help="train k independent seeds")
    p.add_argument(
        "--seed-mode",
        choices=("auto", "vmap", "loop", "devices"),
        default="auto",
        help="k seeds in one vmapped program, a step per seed on one device, or side by side "
        "on the CPU's devices (auto: devices on CPU for runs of 500+ steps per seed, else loop; "
        "vmap elsewhere)",
    )
    p.add_argument("--out", help="run directory (default runs/MODEL-DATASET-TIME)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument(
        "--checkpoint-every", type=nonnegative_int, default=0, help="also save every N steps"
    )
    p.add_argument("--keep", type=positive_int, default=3, help="checkpoints to keep")
    p.add_argument(
        "--eval-every",
        type=positive_int,
        default=1,
        help="validate after every N-th epoch and after the last (default: every epoch)",
    )
    p.add_argument("--limit", type=positive_int, help="use a random subset of N training examples")
    p.add_argument("--test-limit", type=positive_int, help="use a random subset of N test examples")
    p.add_argument(
        "--classes", type=class_list, help="comma-separated class subset, relabelled 0..k-1"
    )
    p.add_argument(
        "--validation",
        type=validation_arg,
        default="test",
        help="'test' (the test split), 'none', or a fraction of train",
    )
    p.add_argument("--input", help="model input shape HxWxC (data are resized to it)")
    p.add_argument("--data-dir", help="TFDS data directory")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument(
        "--pool-impl",
        choices=("auto", "reduce_window", "reshape", "argmax"),  # cnnjax.models.POOL_IMPLS
        default="auto",
        help="max pooling path (auto: argmax on CPU, reduce_window elsewhere)",
    )
    p.add_argument(
        "--conv-impl",
        # cnnjax.models.CONV_IMPLS
        choices=("auto", "lax", "matmul_bias", "matmul_grads", "patches"),
        default="auto",
        help="convolution path (auto: matmul_grads on CPU, lax elsewhere)",
    )
    p.add_argument(
        "--norm-impl",
        choices=("auto", "flax", "matmul"),  # cnnjax.models.NORM_IMPLS
        default="auto",
        help="batch norm path (auto: matmul on CPU, flax elsewhere)",
    )
    p.add_argument(
        "--merge-impl",
        choices=("auto", "fused", "materialized"),  # cnnjax.models.MERGE_IMPLS
        default="auto",
        help="residual outputs in training (auto: materialized on CPU, fused elsewhere)",
    )
    add_parallel_args(p)
    p.set_defaults(func=run)
