"""A convolution's kernel gradient alone: lax's (XLA's convolution) against `cnnjax.conv_grad`'s
stacked-window matmul, on the input shapes of the experiments' networks (3x3 kernels, VALID).

    python benchmarks/kernel_grad.py            # every shape, markdown table
    python benchmarks/kernel_grad.py --small    # the 28x28 networks' shapes only

Both paths run alternately in one process, five rounds; the figure is the median microseconds
per call. The windows path is what `conv_impl="matmul_grads"` uses up to
`conv_grad.MAX_IN_CHANNELS` input channels.
"""

from __future__ import annotations

import argparse
import time

# (input NHWC, filters): seed 000's two convs at 32 and 64 filters, pool224's first two convs
SHAPES = [
    ((32, 28, 28, 1), 32),
    ((32, 13, 13, 32), 32),
    ((32, 28, 28, 1), 64),
    ((32, 13, 13, 64), 64),
    ((32, 224, 224, 3), 10),
    ((32, 111, 111, 10), 10),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="skip the 224x224 shapes")
    args = parser.parse_args()

    import cnnjax

    cnnjax.configure_xla()
    import jax
    import jax.numpy as jnp
    import numpy as np

    from cnnjax.conv_grad import _conv, kernel_grad

    valid, one = ((0, 0), (0, 0)), (1, 1)

    def lax_grad(x, g, shape):
        _, vjp = jax.vjp(lambda k: _conv(x, k, one, valid, one), jnp.zeros(shape))
        return vjp(g)[0]

    print("| input | filters | lax µs | windows matmul µs | lax ÷ matmul |\n|---|--:|--:|--:|--:|")
    rng = np.random.default_rng(0)
    for shape, f in SHAPES:
        if args.small and shape[1] > 100:
            continue
        kshape = (3, 3, shape[-1], f)
        x = jnp.asarray(rng.random(shape, np.float32))
        g = jnp.asarray(rng.random((shape[0], shape[1] - 2, shape[2] - 2, f), np.float32))
        paths = {
            "lax": jax.jit(lambda x, g, s=kshape: lax_grad(x, g, s)),
            "matmul": jax.jit(lambda x, g, s=kshape: kernel_grad(x, g, s, one, valid, one)),
        }
        ref = paths["lax"](x, g)
        np.testing.assert_allclose(paths["matmul"](x, g), ref, rtol=2e-3, atol=2e-2)
        times: dict[str, list[float]] = {k: [] for k in paths}
        calls = 2 if shape[1] > 100 else 30
        for _ in range(5):
            for name, fn in paths.items():
                t0 = time.perf_counter()
                for _ in range(calls):
                    out = fn(x, g)
                out.block_until_ready()
                times[name].append((time.perf_counter() - t0) / calls * 1e6)
        lax_us, mm_us = (float(np.median(times[k])) for k in ("lax", "matmul"))
        print(
            f"| {list(shape)} | {f} | {lax_us:,.0f} | {mm_us:,.0f} | {lax_us / mm_us:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
