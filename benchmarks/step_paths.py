"""Which training-step path is fastest on this machine: one measurement per setting, each in a
fresh process (XLA flags are read once per process).

    python benchmarks/step_paths.py                       # the default grid, markdown table
    python benchmarks/step_paths.py --one conv=patches,pool=reshape,batch=32,filters=64
    python benchmarks/step_paths.py --ab conv=matmul_bias conv=matmul_grads --seconds 20

A setting is conv (auto | lax | matmul_bias | matmul_grads | patches), pool (reshape |
reduce_window | argmax), norm (auto | flax | matmul), merge (auto | fused | materialized: residual
outputs), model (a zoo name or spec text; default the seed 000 network with
`filters` filters per conv), dtype (the compute dtype: float32 | bfloat16), batch, filters, steps
(train steps per dispatch, unrolled in one jit), seeds (vmapped), malloc (tcmalloc where installed, as the `cnnjax` command runs, | system;
fresh processes only), and xla (extra XLA flags, `;`-separated). The step is cnnjax's own
`make_train_step` gathering its batch by index from a device-resident dataset, as `fit` does;
the figure is the median images/s (x seeds) of several timed windows after a warm-up; a
fresh-process run (--one, --grid) adds the minor page faults and the kernel and user CPU time
per step over those windows.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import subprocess
import sys
import time

DEFAULTS = {
    "conv": "auto",
    "pool": "auto",
    "batch": 32,
    "filters": 32,
    "steps": 1,
    "seeds": 1,
    "seedmode": "vmap",
    "xla": "",
    "model": "",
    "norm": "auto",
    "merge": "auto",
    "dtype": "float32",
    "malloc": "tcmalloc",
}


def parse(text: str) -> dict[str, object]:
    setting = dict(DEFAULTS)
    for part in filter(None, re.split(r",(?=\w+=)", text)):
        key, value = part.split("=", 1)
        if key not in DEFAULTS:
            raise SystemExit(f"unknown key {key!r}; keys: {', '.join(DEFAULTS)}")
        setting[key] = type(DEFAULTS[key])(value)
    return setting


def build(setting: dict[str, object]):
    """Compile the setting's step in this process (flags already set); return `window()`, which
    runs one timed window of steps and returns its images/s."""
    import cnnjax

    cnnjax.configure_xla()  # cnnjax's XLA:CPU flags, as the `cnnjax` command sets them
    import jax
    import jax.numpy as jnp
    import numpy as np

    from cnnjax.data import ArrayDataset, DeviceDataset, batch_indices
    from cnnjax.grammar import from_text
    from cnnjax.models import build_model
    from cnnjax.train import create_train_state, make_optimizer, make_train_step

    f, batch, k, seeds = (int(setting[x]) for x in ("filters", "batch", "steps", "seeds"))
    if setting["model"]:
        from cnnjax.loading import load_spec

        spec = load_spec(str(setting["model"]))
    else:
        spec = from_text(f"in28x28x1-conv{f}x3-pool2-conv{f}x3-pool2-flatten-dense128-dense10")
    classes = max(2, getattr(spec.layers[-1], "units", 10))
    model = build_model(
        spec,
        pool_impl=str(setting["pool"]),
        conv_impl=str(setting["conv"]),
        norm_impl=str(setting["norm"]),
        merge_impl=str(setting["merge"]),
        dtype=jnp.dtype(str(setting["dtype"])),
    )
    tx = make_optimizer()
    step = make_train_step(model, tx)
    rng = np.random.default_rng(0)
    n = 8192 if math.prod(spec.input_shape) < 10_000 else 512
    data = DeviceDataset.put(
        ArrayDataset(
            rng.random((n, *spec.input_shape), np.float32),
            rng.integers(0, classes, n).astype(np.int32),
            classes,
            tuple(map(str, range(classes))),
            "noise",
        )
    )
    plans = np.stack([batch_indices(n, batch, seed=s, epoch=0) for s in range(seeds)])
    plan = jnp.asarray(plans if seeds > 1 else plans[0])
    if seeds > 1 and setting["seedmode"] == "unroll":
        one = step

        def step(states, images, labels):  # k independent steps in one program, no vmap
            return [one(st, images[i], labels[i]) for i, st in enumerate(states)]

        state = [create_train_state(model, tx, s) for s in range(seeds)]
    elif seeds > 1:
        step = jax.vmap(step)
        state = jax.vmap(lambda s: create_train_state(model, tx, s))(jnp.arange(seeds))
    else:
        state = create_train_state(model, tx, 0)

    def run(state, data, plan, b):
        for i in range(k):  # k steps unrolled in one program: one dispatch per k steps
            idx = jax.lax.dynamic_index_in_dim(plan, b * k + i, axis=-2, keepdims=False)
            images, labels = data.gather(idx)
            state = step(state, images, labels)
        return state

    run = jax.jit(run, donate_argnums=0)
    windows = plans.shape[1] // k
    box = {"state": jax.block_until_ready(run(state, data, plan, 0)), "b": 1}  # compile

    def window() -> float:
        t0 = time.perf_counter()
        reps = max(1, 64 // k) if n > 1000 else 4
        for _ in range(reps):
            box["state"] = run(box["state"], data, plan, box["b"] % windows)
            box["b"] += 1
        jax.block_until_ready(box["state"])
        box["steps"] = box.get("steps", 0) + reps * k
        return reps * k * batch * seeds / (time.perf_counter() - t0)

    window.box = box  # type: ignore[attr-defined]  # steps run, for measure()'s fault counts
    return window


def measure(setting: dict[str, object], seconds: float) -> dict[str, object]:
    """Run in this process (flags already set): images/s of the setting."""
    import jax
    import numpy as np

    from cnnjax import _malloc

    window = build(setting)
    window.box["steps"] = 0  # type: ignore[attr-defined]
    before = resource.getrusage(resource.RUSAGE_SELF)
    rates, deadline = [], time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(rates) < 3:
        rates.append(window())
    after, steps = resource.getrusage(resource.RUSAGE_SELF), window.box["steps"]  # type: ignore[attr-defined]
    return {
        **setting,
        "images_per_s": float(np.median(rates)),
        # Page faults and kernel CPU time per step: large buffers mapped afresh every step
        # show here (docs/performance.md, "Tried and dropped").
        "minor_faults_per_step": (after.ru_minflt - before.ru_minflt) / steps,
        "kernel_ms_per_step": 1e3 * (after.ru_stime - before.ru_stime) / steps,
        "user_ms_per_step": 1e3 * (after.ru_utime - before.ru_utime) / steps,
        "jax": jax.__version__,
        "malloc_active": _malloc.active(),
    }


def measure_ab(texts: list[str], seconds: float) -> list[float]:
    """Settings compiled in one process, their windows interleaved for `seconds` in all: the
    median images/s of each. On a loaded machine this compares them under the same load."""
    import cnnjax

    cnnjax.configure_xla()
    import numpy as np

    windows = [build(parse(t)) for t in texts]
    rates: list[list[float]] = [[] for _ in texts]
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(rates[-1]) < 3:
        for w, r in zip(windows, rates, strict=True):
            r.append(w())
    return [float(np.median(r)) for r in rates]


def run_one(setting: dict[str, object], seconds: float) -> dict[str, object]:
    """Measure `setting` in a fresh process."""
    env = dict(os.environ)
    if setting["malloc"] == "system":
        env["CNNJAX_MALLOC"] = "system"
        env.pop("LD_PRELOAD", None)
    if setting["xla"]:
        env["XLA_FLAGS"] = (
            env.get("XLA_FLAGS", "") + " " + " ".join(str(setting["xla"]).split(";"))
        ).strip()
    text = ",".join(f"{k}={v}" for k, v in setting.items() if k != "xla")
    cmd = [sys.executable, __file__, "--worker", text, "--seconds", str(seconds)]
    if setting["xla"]:
        cmd += [f"--xla={setting['xla']}"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        return {**setting, "images_per_s": None, "error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


YNN = "--xla_cpu_experimental_ynn_fusion_type="
GRID = [
    "",
    "conv=lax",
    "conv=matmul_bias",
    "pool=reduce_window",
    "conv=patches",
    f"xla={YNN}individual_convolution",
    "steps=4",
    "batch=64",
    "filters=64",
    "filters=64,conv=lax",
    "filters=64,conv=matmul_bias",
    "filters=64,conv=patches",
    "seeds=8",
    "seeds=8,conv=lax",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--one", help="one setting, e.g. conv=patches,batch=64")
    parser.add_argument("--grid", nargs="*", help="settings to compare (default: a built-in grid)")
    parser.add_argument("--seconds", type=float, default=6.0, help="timed seconds per setting")
    parser.add_argument(
        "--ab",
        nargs="+",
        help="settings (no xla=) compared in ONE process, windows interleaved for --seconds in "
        "all; prints each one's images/s and its ratio to the first",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--xla", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        setting = parse(args.worker)
        if setting["malloc"] == "tcmalloc":
            import cnnjax

            cnnjax.restart_with_tcmalloc()  # as the `cnnjax` command does: this worker again
        setting["xla"] = args.xla
        print(json.dumps(measure(setting, args.seconds)))
        return
    if args.ab:
        rates = measure_ab([t if t else "" for t in args.ab], args.seconds)
        print("| setting | images/s | ÷ first |\n|---|---:|---:|")
        for text, rate in zip(args.ab, rates, strict=True):
            print(f"| {text or 'default'} | {rate:,.0f} | {rate / rates[0]:.2f} |")
        return
    texts = [args.one] if args.one else (args.grid if args.grid else GRID)
    print(
        "| setting | images/s | minor page faults / step | kernel CPU ms / step "
        "| user CPU ms / step | malloc |\n|---|---:|---:|---:|---:|---|",
        flush=True,
    )
    for text in texts:
        r = run_one(parse(text), args.seconds)
        if not r["images_per_s"]:
            print(f"| {text or 'default'} | failed: {r.get('error')} | | | | |", flush=True)
            continue
        print(
            f"| {text or 'default'} | {r['images_per_s']:,.0f} | "
            f"{r['minor_faults_per_step']:,.0f} | {r['kernel_ms_per_step']:.1f} | "
            f"{r['user_ms_per_step']:.1f} | {r['malloc_active']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
