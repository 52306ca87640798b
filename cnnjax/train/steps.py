"""The training state and the pure steps: one Optax update, one evaluation batch.

`TrainState` is one checkpointable pytree. `make_train_step` returns the pure function
`(state, images, labels) -> state` (not yet jitted; vmap-able over seeds). A step whose loss or
gradient is not finite leaves the state untouched, and one whose new parameters or batch
statistics are not finite stops every later update; either records its step number in
`bad_step`, the host notices at its next check and raises `TrainingError`, and the checkpoint
layer never saves such a state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from cnnjax.errors import TrainingError
from cnnjax.spec import NetSpec
from cnnjax.train.model import Model, as_model

# A per-example loss: (logits [batch, ...], labels [batch]) -> losses [batch].
LossFn = Callable[[jax.Array, jax.Array], jax.Array]


class TrainState(NamedTuple):
    """Everything that changes during training, as one checkpointable pytree."""

    step: jax.Array  # int32 scalar: optimizer steps taken
    params: Any
    batch_stats: Any  # {} without batch norm
    opt_state: Any  # None in a run loaded without its optimizer
    rng: jax.Array  # uint32 raw key data (checkpointable); dropout keys fold in the step
    sums: jax.Array  # float32[3]: this epoch's loss sum, correct count, example count
    bad_step: jax.Array  # int32: first step with a non-finite loss/gradient/update, -1 if none


OPTIMIZERS = ("adam", "adamw", "sgd", "momentum", "rmsprop")


def make_optimizer(name: str = "adam", learning_rate: float = 1e-3) -> optax.GradientTransformation:
    """Keras-equivalent optimizers by name (Adam's epsilon is Keras's 1e-7)."""
    name = name.lower()
    if name == "adam":
        return optax.adam(learning_rate, eps=1e-7)
    if name == "adamw":
        return optax.adamw(learning_rate, eps=1e-7)
    if name == "sgd":
        return optax.sgd(learning_rate)
    if name == "momentum":
        return optax.sgd(learning_rate, momentum=0.9)
    if name == "rmsprop":
        return optax.rmsprop(learning_rate, decay=0.9, eps=1e-7)
    raise TrainingError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def create_train_state(
    model: Model | NetSpec | nn.Module, tx: optax.GradientTransformation, seed: int | jax.Array
) -> TrainState:
    """A fresh state from an integer seed (or a uint32 seed array, under vmap)."""
    model = as_model(model)
    key = jax.random.key(seed)
    init_key, rng_key = jax.random.split(key)
    variables = model.init(init_key)
    params = variables.get("params", {})
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=tx.init(params),
        rng=jax.random.key_data(rng_key),
        sums=jnp.zeros((3,), jnp.float32),
        bad_step=jnp.full((), -1, jnp.int32),
    )


def loss_and_correct(
    logits: jax.Array, labels: jax.Array, loss: LossFn | None = None
) -> tuple[jax.Array, jax.Array]:
    """Per-example loss and correctness.

    The default loss is softmax cross-entropy from integer labels, or sigmoid cross-entropy for
    a one-unit binary head; `loss` replaces it (accuracy keeps the argmax / sign rule).
    """
    logits = logits.astype(jnp.float32)
    if logits.shape[-1] == 1:
        z = logits[:, 0]
        default = optax.sigmoid_binary_cross_entropy(z, labels.astype(jnp.float32))
        correct = (z > 0).astype(jnp.int32) == labels
    else:
        default = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        correct = jnp.argmax(logits, axis=-1) == labels
    if loss is None:
        return default, correct.astype(jnp.float32)
    per_example = jnp.asarray(loss(logits, labels), jnp.float32)
    if per_example.shape != labels.shape:
        raise TrainingError(
            f"the loss function must return one loss per example, shape {labels.shape}; "
            f"got shape {per_example.shape}"
        )
    return per_example, correct.astype(jnp.float32)


def _all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.isfinite(x).all() for x in jax.tree_util.tree_leaves(tree) if _inexact(x)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def _inexact(x: Any) -> bool:
    return jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)


def make_train_step(
    model: Model | NetSpec | nn.Module,
    tx: optax.GradientTransformation,
    loss: LossFn | None = None,
) -> Callable[[TrainState, jax.Array, jax.Array], TrainState]:
    """The pure step `(state, images, labels) -> state` (not yet jitted; vmap-able)."""
    m = as_model(model)

    def train_step(state: TrainState, images: jax.Array, labels: jax.Array) -> TrainState:
        dropout_key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)

        def loss_fn(params: Any) -> tuple[jax.Array, tuple[jax.Array, Any]]:
            logits, new_stats = m.apply_train(params, state.batch_stats, images, dropout_key)
            losses, correct = loss_and_correct(logits, labels, loss)
            return losses.mean(), (correct.sum(), new_stats)

        (value, (correct, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params
        )
        # The guard costs one read of the gradient and of the new parameters: the update is
        # applied only when the loss and the gradient are finite (one branch, so XLA:CPU
        # computes it once; a select per element after it halved the speed of a network
        # with 2.4M parameters), and new parameters or statistics that are not finite (an
        # update that overflowed, a NaN learning rate) mark the step bad.
        grads_ok = jnp.isfinite(value) & _all_finite(grads)

        def apply(_: None) -> tuple[Any, Any, Any]:
            updates, opt_state = tx.update(grads, state.opt_state, state.params)
            return optax.apply_updates(state.params, updates), new_stats, opt_state

        def keep(_: None) -> tuple[Any, Any, Any]:
            return state.params, state.batch_stats, state.opt_state

        params, stats, opt_state = jax.lax.cond(grads_ok & (state.bad_step < 0), apply, keep, None)
        finite = grads_ok & _all_finite(params) & _all_finite(stats)
        ok = finite & (state.bad_step < 0)
        n = jnp.asarray(labels.shape[0], jnp.float32)
        return TrainState(
            step=state.step + 1,
            params=params,
            batch_stats=stats,
            opt_state=opt_state,
            rng=state.rng,
            sums=jnp.where(ok, state.sums + jnp.stack([value * n, correct, n]), state.sums),
            bad_step=jnp.where((state.bad_step < 0) & ~finite, state.step, state.bad_step),
        )

    return train_step


def make_eval_step(
    model: Model | NetSpec | nn.Module, loss: LossFn | None = None
) -> Callable[..., jax.Array]:
    """The pure step `(params, batch_stats, images, labels, mask) -> [loss sum, correct, count]`."""
    m = as_model(model)

    def eval_step(
        params: Any, batch_stats: Any, images: jax.Array, labels: jax.Array, mask: jax.Array
    ) -> jax.Array:
        logits = m.apply_eval(params, batch_stats, images)
        losses, correct = loss_and_correct(logits, labels, loss)
        w = mask.astype(jnp.float32)
        return jnp.stack([(losses * w).sum(), (correct * w).sum(), w.sum()])

    return eval_step
