"""One convolution's three parts timed alone on XLA:CPU: forward, input gradient, kernel gradient,
beside what its arithmetic needs at the machine's matmul speed.

    python benchmarks/conv_ops.py               # the experiments' conv shapes, markdown table
    python benchmarks/conv_ops.py --small       # the 28x28 networks' shapes only
    python benchmarks/conv_ops.py --dtype bfloat16   # the same in bf16 (and a bf16 matmul)

Each part is its own jitted function (lax.conv_general_dilated and its VJP, 3x3 kernels,
VALID unless the shape says SAME, NHWC), timed as the median of 20 calls after a warm-up; the peak is a jitted 2048x2048
float32 matmul timed the same way (with --dtype bfloat16 the bf16 matmul is printed beside it,
and the shares stay against the float32 peak). "share of peak" is the part's FLOPs (2 x MACs) in that time
over the peak: how far XLA:CPU's convolution is from the machine's arithmetic limit.
"""

from __future__ import annotations

import argparse
import time

# (input NHWC, filters[, padding]): seed 000 at 32 and 64 filters, chollet_mnist's 3rd conv,
# erf_depth's 16-channel SAME conv, the 224x224 networks' first and second convs
SHAPES = [
    ((32, 28, 28, 1), 32),
    ((32, 13, 13, 32), 32),
    ((32, 13, 13, 64), 64),
    ((32, 5, 5, 64), 64),
    ((32, 28, 28, 16), 16, "SAME"),
    ((32, 224, 224, 3), 10),
    ((32, 111, 111, 10), 10),
    ((32, 222, 222, 10), 10),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="skip the 224x224 shapes")
    parser.add_argument("--dtype", default="float32", help="float32 (default) or bfloat16")
    args = parser.parse_args()

    import cnnjax

    cnnjax.configure_xla()
    import jax
    import jax.numpy as jnp
    import numpy as np

    def timed(f, *xs) -> float:
        jax.block_until_ready(f(*xs))
        ts = []
        for _ in range(20):
            t0 = time.perf_counter()
            jax.block_until_ready(f(*xs))
            ts.append(time.perf_counter() - t0)
        return float(np.median(ts))

    dtype = jnp.dtype(args.dtype)
    a = jnp.ones((2048, 2048), jnp.float32)
    peak = 2 * 2048**3 / timed(jax.jit(lambda a: a @ a), a)
    print(f"matmul peak: {peak / 1e9:,.0f} GFLOP/s")
    if dtype != jnp.float32:
        own = 2 * 2048**3 / timed(jax.jit(lambda a: a @ a), a.astype(dtype))
        print(f"{dtype.name} matmul: {own / 1e9:,.0f} GFLOP/s")
    print()
    print(
        "| input | filters | MFLOP | forward ms | input gradient ms | kernel gradient ms "
        "| share of peak (fwd / dx / dw) |\n|---|--:|--:|--:|--:|--:|--:|"
    )

    rng = np.random.default_rng(0)
    for shape, f, *padded in SHAPES:
        if args.small and shape[1] > 100:
            continue
        padding = str(padded[0]) if padded else "VALID"

        def conv(x, k, padding=padding):
            return jax.lax.conv_general_dilated(
                x, k, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
            )

        x = jnp.asarray(rng.random(shape, np.float32), dtype)
        k = jnp.asarray(rng.random((3, 3, shape[-1], f), np.float32), dtype)
        g = conv(x, k)
        flop = 2 * g.size * 9 * shape[-1]
        ms = [
            timed(jax.jit(conv), x, k),
            timed(jax.jit(lambda x, k, g: jax.vjp(conv, x, k)[1](g)[0]), x, k, g),
            timed(jax.jit(lambda x, k, g: jax.vjp(conv, x, k)[1](g)[1]), x, k, g),
        ]
        shares = " / ".join(f"{flop / t / peak:.0%}" for t in ms)
        print(
            f"| {list(shape)}{' SAME' if padded else ''} | {f} | {flop / 1e6:,.1f} | "
            + " | ".join(f"{1e3 * t:,.2f}" for t in ms)
            + f" | {shares} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
