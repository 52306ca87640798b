"""`cnnjax train` and `cnnjax evaluate`: the training engine from the command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def load_datasets(
    dataset: str,
    *,
    data_dir: str | None = None,
    limit: int | None = None,
    test_limit: int | None = None,
    classes: list[int] | None = None,
    seed: int = 0,
) -> tuple[Any, Any]:
    """(train, test) ArrayDatasets for a dataset name or a Keras-style .npz path, with views."""
    from cnnjax import data

    if dataset.endswith(".npz"):
        from cnnjax.data.npz import load_npz

        train, test = load_npz(dataset)
    else:
        train = data.load(dataset, "train", data_dir=data_dir)
        test = data.load(dataset, "test", data_dir=data_dir)
    if classes:
        train, test = data.subset_classes(train, classes), data.subset_classes(test, classes)
    if limit and limit < len(train):
        train = data.random_subset(train, limit, seed)
    if test_limit and test_limit < len(test):
        test = data.random_subset(test, test_limit, seed)
    return train, test


def start_processes(args: argparse.Namespace) -> None:
    """Join a multi-process run when asked (flags, or a Cloud TPU pod's environment).

    Must run before anything touches a JAX device; one process with no flags does nothing.
    """
    from cnnjax import parallel
    from cnnjax.train import TrainingError

    explicit = any(v is not None for v in (args.coordinator, args.num_processes, args.process_id))
    if not (explicit or args.distributed or parallel.cloud_tpu_pod_env()):
        return
    try:
        parallel.initialize(args.coordinator, args.num_processes, args.process_id)
    except parallel.ParallelError as err:
        raise TrainingError(str(err)) from None


def _devices_arg(value: str) -> str | int:
    """argparse type of --devices: 'all' or a positive count."""
    if value == "all":
        return value
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'all', got {value!r}")
    return int(value)


def _devices(value: str | int | None) -> int | None:
    """FitConfig.devices from --devices: None (automatic), 'all' (every device), or a count."""
    if value == "all":
        import jax

        return jax.device_count()
    return None if value is None else int(value)


def add_parallel_args(p: argparse.ArgumentParser) -> None:
    """The "devices and processes" options of `cnnjax train` and `cnnjax experiment`."""
    g = p.add_argument_group(
        "devices and processes",
        "data parallelism over several devices and hosts (docs/tpu.md)",
    )
    g.add_argument(
        "--devices",
        type=_devices_arg,
        metavar="N|all",
        help="split each batch over N devices (1: one device); default: every GPU/TPU device "
        "of every process, one device on a CPU",
    )
    g.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address")
    g.add_argument("--num-processes", type=int, help="processes in the run (with --coordinator)")
    g.add_argument("--process-id", type=int, help="this process, 0..N-1 (with --coordinator)")
    g.add_argument(
        "--distributed",
        action="store_true",
        help="join a multi-process run described by the environment (Cloud TPU pod slice, "
        "Slurm, Open MPI): jax.distributed.initialize() with no arguments",
    )


def _fit_from_args(args: argparse.Namespace) -> int:
    import jax

    from cnnjax import data, parallel
    from cnnjax.spec import load_spec, parse_shape
    from cnnjax.train import FitConfig, TrainingError, fit, mean_std_ci

    start_processes(args)
    primary = parallel.is_primary()
    if not args.out and jax.process_count() > 1:
        raise TrainingError(
            "with several processes pass --out: one run directory that every process sees"
        )
    spec = load_spec(args.model, parse_shape(args.input) if args.input else None)
    classes = [int(c) for c in args.classes.split(",")] if args.classes else None
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
    validation = test
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
        dtype=args.dtype,
        pool_impl=args.pool_impl,
        conv_impl=args.conv_impl,
        seed_mode=args.seed_mode,
        devices=_devices(args.devices),
    )
    out = Path(args.out) if args.out else _default_out(spec.name or "model", args.dataset)
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


def _default_out(model: str, dataset: str) -> Path:
    stem = Path(dataset).stem if dataset.endswith(".npz") else dataset
    return Path("runs") / f"{model}-{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def _evaluate(args: argparse.Namespace) -> int:
    from cnnjax.train import evaluate, load_run

    run = load_run(args.run_dir)
    dataset = args.dataset or run.config.get("dataset")
    if not dataset:
        print("error: the run does not record its dataset; pass --dataset", file=sys.stderr)
        return 2
    train, test = load_datasets(
        dataset,
        data_dir=args.data_dir,
        classes=run.config.get("classes"),
        test_limit=args.limit,
    )
    data = test if args.split == "test" else train
    out = []
    for i in range(run.seeds):
        out.append(evaluate(run.spec, run.variables_of(i), data))
    print(json.dumps(out[0] if len(out) == 1 else out, indent=2))
    return 0


def register(sub: Any) -> None:
    """Add the `train` and `evaluate` subcommands."""
    p = sub.add_parser(
        "train",
        help="train a model on a dataset (Keras-like fit with a run directory)",
        description="Train MODEL (zoo name, text form or JSON) on DATASET; writes config.json, "
        "metrics.jsonl, results.json and Orbax checkpoints into --out.",
    )
    p.add_argument("--model", required=True, help="zoo name, text form, JSON file or string")
    p.add_argument("--dataset", default="fashion_mnist", help="dataset name or a Keras-style .npz")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--optimizer", default="adam", help="adam, adamw, sgd, momentum, rmsprop")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    p.add_argument("--seed", type=int, default=0, help="first seed (seeds are seed..seed+k-1)")
    p.add_argument("--seeds", type=int, default=1, help="train k independent seeds")
    p.add_argument(
        "--seed-mode",
        choices=("auto", "vmap", "loop"),
        default="auto",
        help="k seeds in one vmapped program or a step per seed (auto: loop on one CPU device)",
    )
    p.add_argument("--out", help="run directory (default runs/MODEL-DATASET-TIME)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--checkpoint-every", type=int, default=0, help="also save every N steps")
    p.add_argument("--keep", type=int, default=3, help="checkpoints to keep")
    p.add_argument("--limit", type=int, help="use a random subset of N training examples")
    p.add_argument("--test-limit", type=int, help="use a random subset of N test examples")
    p.add_argument("--classes", help="comma-separated class subset, relabelled 0..k-1")
    p.add_argument(
        "--validation",
        default="test",
        help="'test' (the test split), 'none', or a fraction of train",
    )
    p.add_argument("--input", help="model input shape HxWxC (data are resized to it)")
    p.add_argument("--data-dir", help="TFDS data directory")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--pool-impl", choices=("auto", "reduce_window", "reshape"), default="auto")
    p.add_argument(
        "--conv-impl",
        choices=("auto", "lax", "matmul_bias", "patches"),  # cnnjax.models.CONV_IMPLS
        default="auto",
        help="convolution path (auto: bias gradient as a matmul on CPU, lax elsewhere)",
    )
    add_parallel_args(p)
    p.set_defaults(func=_fit_from_args)

    p = sub.add_parser("evaluate", help="evaluate a trained run directory on a dataset split")
    p.add_argument("run_dir")
    p.add_argument("--dataset", help="default: the run's dataset")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--limit", type=int, help="evaluate on a random subset of N examples")
    p.add_argument("--data-dir")
    p.set_defaults(func=_evaluate)
