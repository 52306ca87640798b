"""How much of a training epoch the data path costs: gather-by-index on the device vs a batch
that is already there (same compiled step, same model).

    python benchmarks/data_share.py [--model fashion_cnn] [--steps 600]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

import cnnjax
from cnnjax.data import DeviceDataset, batch_indices, load
from cnnjax.loading import load_spec
from cnnjax.models import build_model
from cnnjax.train import create_train_state, make_optimizer, make_train_step


def main() -> None:
    cnnjax.configure_xla()  # before the first device use: cnnjax's XLA:CPU flags
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="fashion_cnn")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    spec = load_spec(args.model)
    train = load("fashion_mnist", "train")
    model, tx = build_model(spec), make_optimizer()
    step = make_train_step(model, tx)
    data = DeviceDataset.put(train)
    plan = jnp.asarray(batch_indices(len(train), args.batch_size, seed=0, epoch=0)[: args.steps])

    @jax.jit
    def gathered(state, data, plan, b):
        images, labels = data.gather(plan[b])
        return step(state, images, labels)

    fixed = jax.jit(step)
    images, labels = data.gather(plan[0])

    def timed(fn, extra):
        state = create_train_state(model, tx, 0)
        state = fn(state, *extra(0))  # compile
        jax.block_until_ready(state)
        t = time.perf_counter()
        for b in range(args.steps):
            state = fn(state, *extra(b))
        jax.block_until_ready(state)
        return (time.perf_counter() - t) / args.steps

    t_gather = timed(gathered, lambda b: (data, plan, jnp.int32(b)))
    t_fixed = timed(fixed, lambda b: (images, labels))
    start = time.perf_counter()
    batch_indices(len(train), args.batch_size, seed=0, epoch=1)  # once per epoch, on the host
    t_plan = time.perf_counter() - start
    print(
        f"model {args.model}, batch {args.batch_size}, {args.steps} steps, backend {jax.default_backend()}"
    )
    print(
        f"step with on-device gather: {t_gather * 1e3:.3f} ms ({args.batch_size / t_gather:,.0f} images/s)"
    )
    print(
        f"step on a resident batch:   {t_fixed * 1e3:.3f} ms ({args.batch_size / t_fixed:,.0f} images/s)"
    )
    print(
        f"data path share of an epoch: {max(t_gather - t_fixed, 0) / t_gather:.1%} (+ {t_plan * 1e3:.1f} ms per epoch for the shuffled index plan)"
    )


if __name__ == "__main__":
    main()
