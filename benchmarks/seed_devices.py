"""k seeds in one `fit`: looped on one CPU device, or side by side on the CPU split into several
devices (what the `cnnjax` command does), on real Fashion-MNIST.

    python benchmarks/seed_devices.py --model fashion_cnn --limit 24000
    python benchmarks/seed_devices.py --model resnet_small --limit 12000 --order 1,2,2,1

Each setting is a fresh process (the CPU's device count is fixed when JAX starts), run under
tcmalloc as the `cnnjax` command runs; the settings alternate in `--order` (device counts; 1 is
the loop on one device). The figures are the last epoch's wall time (compilation excluded) and
the whole `fit` (compiling on every device included: `--epochs 1` for short runs); the driver
checks that every setting ends with the same parameters, bit for bit, per seed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def worker(args: argparse.Namespace) -> None:
    """One setting in this process: train, print a JSON line, save the parameters."""
    import cnnjax

    cnnjax.restart_with_tcmalloc()
    cnnjax.configure_xla(cpu_devices=args.devices)
    import jax
    import numpy as np

    from cnnjax.data import load
    from cnnjax.loading import load_spec
    from cnnjax.train import FitConfig, fit

    train, test = load("fashion_mnist", "train"), load("fashion_mnist", "test")
    mode = "devices" if args.devices > 1 else "loop"  # asked, whatever the run's length
    config = FitConfig(epochs=args.epochs, seeds=args.seeds, seed_mode=mode)
    t0 = time.perf_counter()
    result = fit(
        load_spec(args.model),
        (train.images[: args.limit], train.labels[: args.limit]),
        validation=(test.images[:2000], test.labels[:2000]),
        config=config,
        progress=False,
    )
    total = time.perf_counter() - t0
    params = np.concatenate(
        [np.asarray(x).reshape(args.seeds, -1) for x in jax.tree_util.tree_leaves(result.state)],
        axis=1,
    )
    np.save(args.save, params)
    last = result.history.records[-1]
    print(
        json.dumps(
            {
                "devices": jax.device_count(),
                "epoch_seconds": last["seconds"],
                "total_seconds": total,
                "val_accuracy": last["val_accuracy"],
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="fashion_cnn", help="a zoo name or spec text")
    parser.add_argument("--limit", type=int, default=24_000, help="training images")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--order", default="1,2,2,1", help="device counts, one process each")
    parser.add_argument("--devices", type=int, help=argparse.SUPPRESS)  # worker
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.devices is not None:
        worker(args)
        return
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "CNNJAX_CPU_DEVICES")}
    rows, reference = [], None
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        for i, count in enumerate(int(c) for c in args.order.split(",")):
            save = str(Path(tmp) / f"{i}.npy")
            command = [sys.executable, __file__, "--devices", str(count), "--save", save]
            for name in ("model", "limit", "epochs", "seeds"):
                command += [f"--{name}", str(getattr(args, name))]
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            params = np.load(save)
            reference = params if reference is None else reference
            row["same_as_first"] = bool(np.array_equal(params, reference))
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{args.model}, {args.seeds} seeds, {args.limit} images, epoch {args.epochs}:\n")
    print("| CPU devices | epoch s | images/s | whole fit s | parameters equal to the first run |")
    print("|--:|--:|--:|--:|---|")
    for row in rows:
        rate = args.limit * args.seeds / row["epoch_seconds"]
        print(
            f"| {row['devices']} | {row['epoch_seconds']:.2f} | {rate:,.0f} | "
            f"{row['total_seconds']:.2f} | {'yes' if row['same_as_first'] else 'NO'} |"
        )


if __name__ == "__main__":
    main()
