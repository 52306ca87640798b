"""Where one training step's time goes: XLA operations' time summed over a profiled run.

    python benchmarks/profile_step.py --model fashion_cnn
    python benchmarks/profile_step.py --model pool224 --steps 5 --conv-impl lax

Runs cnnjax's own `make_train_step` (batch 32, Adam, random data of the spec's input shape)
under `jax.profiler.trace`, reads the Perfetto trace it writes, and prints a markdown table of
the operations with the most time: milliseconds per step summed over XLA:CPU's threads, the
share of all operations' time, and what the operation is (its shape and the JAX operation
it came from, read from the compiled HLO's metadata).
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import re
import tempfile
import time
from pathlib import Path

# HLO instruction lines: `%name = f32[32,26,26,32]{...} op(...), ..., metadata={op_name="..."}`
_HLO_LINE = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = (\S+?)(?:\{[^}]*\})? (\w[\w-]*)\(")
_OP_NAME = re.compile(r'op_name="([^"]*)"')


def hlo_index(text: str) -> dict[str, str]:
    """HLO instruction name -> "shape op: jax op" for every instruction of a compiled module."""
    out = {}
    for line in text.splitlines():
        m = _HLO_LINE.match(line)
        if not m:
            continue
        name, shape, op = m.groups()
        meta = _OP_NAME.search(line)
        where = meta.group(1).split("/")[-1] if meta else ""
        out[name] = f"{shape} {op}" + (f": {where}" if where else "")
    return out


def op_times(trace_dir: Path) -> collections.Counter[str]:
    """Microseconds per event name over the Perfetto trace under `trace_dir`."""
    files = sorted(trace_dir.rglob("*perfetto_trace.json.gz"))
    if not files:
        raise SystemExit(f"no perfetto trace under {trace_dir}")
    with gzip.open(files[-1]) as fh:
        data = json.load(fh)
    events = data["traceEvents"] if isinstance(data, dict) else data
    totals: collections.Counter[str] = collections.Counter()
    for e in events:
        if e.get("ph") == "X":
            totals[str(e.get("name"))] += float(e.get("dur", 0))
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="fashion_cnn", help="a zoo name or spec text")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="profiled steps")
    parser.add_argument("--conv-impl", default="auto")
    parser.add_argument("--pool-impl", default="auto")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()

    import cnnjax

    cnnjax.configure_xla()  # cnnjax's XLA:CPU flags, as the `cnnjax` command sets them
    import jax
    import jax.numpy as jnp
    import numpy as np

    from cnnjax.loading import load_spec
    from cnnjax.models import build_model
    from cnnjax.train import create_train_state, make_optimizer, make_train_step

    spec = load_spec(args.model)
    model = build_model(spec, conv_impl=args.conv_impl, pool_impl=args.pool_impl)
    tx = make_optimizer()
    step = jax.jit(make_train_step(model, tx), donate_argnums=0)
    state = create_train_state(model, tx, 0)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((args.batch, *spec.input_shape), np.float32))
    classes = max(2, int(spec.layers[-1].units)) if hasattr(spec.layers[-1], "units") else 10
    y = jnp.asarray(rng.integers(0, classes, args.batch).astype(np.int32))
    hlo = hlo_index(step.lower(state, x, y).compile().as_text())
    for _ in range(3):  # compile and warm up
        state = step(state, x, y)
    jax.block_until_ready(state)
    with tempfile.TemporaryDirectory(prefix="cnnjax-profile-") as tmp:
        jax.profiler.start_trace(tmp, create_perfetto_trace=True)
        t0 = time.perf_counter()
        for _ in range(args.steps):
            state = step(state, x, y)
        jax.block_until_ready(state)
        wall = (time.perf_counter() - t0) / args.steps
        jax.profiler.stop_trace()
        totals = op_times(Path(tmp))
    ops = {name: us for name, us in totals.items() if name in hlo}
    total = sum(ops.values())
    print(
        f"{args.model}, batch {args.batch}, conv_impl {args.conv_impl}: {wall * 1e3:.2f} ms per "
        f"profiled step (wall), {total / args.steps / 1e3:.2f} ms of XLA operations per step "
        f"summed over threads, jax {jax.__version__}\n"
    )
    print("| operation | ms / step | share | what |\n|---|--:|--:|---|")
    for name, us in sorted(ops.items(), key=lambda kv: -kv[1])[: args.top]:
        what = hlo[name].replace("|", "/")
        print(f"| {name} | {us / args.steps / 1e3:.3f} | {us / total:.0%} | {what} |")


if __name__ == "__main__":
    main()
