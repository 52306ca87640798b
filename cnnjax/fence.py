"""`materialize(x)`: the identity, as a value XLA:CPU writes to memory instead of recomputing.

XLA:CPU fuses cheap elementwise producers into each of their consumers, duplicating them. Down
a residual stream, out_k = relu(conv_k + b_k + out_{k-1}), so every fusion that reads out_k (the
next block's add, a kernel gradient's transposed input, a ReLU mask) recomputes the whole chain
of earlier blocks from their convolutions' outputs: in a 13-convolution residual stack one
transpose fusion read 5 convolution outputs and took 2.3 ms where a plain stack's took 0.45.
`lax.optimization_barrier` does not stop it (XLA removes barriers before fusing); a
`lax.cond` with a predicate read from the data does, since no fusion crosses a conditional.
Both branches are the identity, so the value is exact; the gradient passes through unchanged.
Meant for one device on a CPU: on GPUs a conditional's predicate goes to the host, and with
the batch sharded over devices the predicate's element is broadcast from one of them.
"""

from __future__ import annotations

import jax


@jax.custom_vjp
def materialize(x: jax.Array) -> jax.Array:
    """`x`, computed once into its own buffer (see the module docstring)."""
    first = x.reshape(-1)[0]
    # Both branches return x; `first == first` is False only for a NaN, which x + 0 keeps.
    return jax.lax.cond(first == first, lambda v: v, lambda v: v + 0, x)


def _forward(x: jax.Array) -> tuple[jax.Array, None]:
    return materialize(x), None


def _backward(_: None, g: jax.Array) -> tuple[jax.Array]:
    return (g,)


materialize.defvjp(_forward, _backward)
