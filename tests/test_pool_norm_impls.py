"""The fast max-pooling, batch-norm and residual-merge paths give the reference numbers.

`pool_grad.max_pool` (gradient to one arg-max, optionally with the ReLU inside) against the
reshape pooling JAX differentiates itself; `batch_norm.BatchNorm` (sums as matmuls) against
`flax.linen.BatchNorm`: variables, outputs, running statistics and gradients; `fence.materialize`
(a residual block's output computed once) against the plain merge; and whole training runs of
the default CPU paths against the reference paths.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnnjax import batch_norm, fence, pool_grad
from cnnjax.cli import build_parser
from cnnjax.grammar import from_text
from cnnjax.models import (
    MERGE_IMPLS,
    NORM_IMPLS,
    POOL_IMPLS,
    _resolve_merge_impl,
    _resolve_norm_impl,
    _resolve_pool_impl,
    build_model,
    max_pool,
)
from cnnjax.spec import MaxPool
from cnnjax.train import create_train_state, make_optimizer, make_train_step
from cnnjax.zoo import resnet_small


def _reference_pool(
    x: jax.Array, window: tuple[int, int], relu: bool, bias: jax.Array | None = None
) -> jax.Array:
    x = x if bias is None else x + bias.reshape(1, 1, 1, -1)
    return max_pool(jax.nn.relu(x) if relu else x, MaxPool(window=window), "reshape")


@st.composite
def pool_cases(draw):
    window = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    shape = (
        draw(st.integers(1, 3)),
        draw(st.integers(window[0], 9)),
        draw(st.integers(window[1], 9)),
        draw(st.integers(1, 4)),
    )
    return shape, window, draw(st.booleans()), draw(st.booleans()), draw(st.integers(0, 2**31 - 1))


@given(pool_cases())
def test_argmax_pool_matches_the_reference_without_ties(case):
    """Continuous random values (no ties): output and input gradient equal the reference's,
    with and without the ReLU inside, with and without a bias added on the pooled map, for
    any window and any leftover rows and columns; the bias gradient up to float rounding."""
    shape, window, relu, with_bias, seed = case
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=shape).astype(np.float32))
    b = jnp.asarray(rng.normal(size=shape[-1:]).astype(np.float32))

    def reference(x, b):
        return _reference_pool(x, window, relu, b if with_bias else None)

    def ours(x, b):
        return pool_grad.max_pool(x, window, relu=relu, bias=b if with_bias else None)

    @jax.jit  # one compile per example, not one per eager operation
    def outputs_and_grads(g):
        (ref, ref_vjp), (out, vjp) = jax.vjp(reference, x, b), jax.vjp(ours, x, b)
        return out, ref, vjp(g), ref_vjp(g)

    shape = jax.eval_shape(reference, x, b).shape
    g = jnp.asarray(rng.normal(size=shape).astype(np.float32))
    out, ref, grads, ref_grads = outputs_and_grads(g)
    np.testing.assert_array_equal(out, ref)  # max(x) + b == max(x + b): + is monotone
    np.testing.assert_array_equal(grads[0], ref_grads[0])
    if with_bias:
        np.testing.assert_allclose(grads[1], ref_grads[1], rtol=1e-5, atol=1e-5)


def test_ties_send_the_whole_gradient_to_the_first_maximum():
    """Tied maxima: JAX shares the gradient among them; the arg-max path gives all of it to the
    first (row-major in the window), as PyTorch and Keras do. Each window's sum is the same."""
    x = jnp.asarray([[1.0, 3.0], [3.0, 3.0]]).reshape(1, 2, 2, 1)
    g = jnp.full((1, 1, 1, 1), 6.0)
    ours = jax.vjp(lambda x: pool_grad.max_pool(x, (2, 2)), x)[1](g)[0]
    ref = jax.vjp(lambda x: _reference_pool(x, (2, 2), False), x)[1](g)[0]
    np.testing.assert_array_equal(ours.reshape(4), [0.0, 6.0, 0.0, 0.0])
    np.testing.assert_array_equal(ref.reshape(4), [0.0, 2.0, 2.0, 2.0])
    assert float(ours.sum()) == float(ref.sum())


def test_relu_inside_the_pool_passes_no_gradient_through_a_zero():
    """ReLU's gradient at 0 is 0 (jax.nn.relu): a window whose maximum is <= 0 passes none."""
    x = jnp.asarray([-1.0, -2.0, 5.0, 1.0, 0.0, -3.0, 2.0, 4.0]).reshape(1, 2, 4, 1)
    out, vjp = jax.vjp(lambda x: pool_grad.max_pool(x, (2, 2), relu=True), x)
    np.testing.assert_array_equal(out.reshape(2), [0.0, 5.0])
    grad = vjp(jnp.ones_like(out))[0].reshape(2, 4)
    np.testing.assert_array_equal(grad, [[0, 0, 1, 0], [0, 0, 0, 0]])


def test_nan_propagates_through_the_argmax_pool():
    x = jnp.asarray([1.0, jnp.nan, 2.0, 3.0]).reshape(1, 2, 2, 1)
    assert bool(jnp.isnan(pool_grad.max_pool(x, (2, 2))).all())


@st.composite
def norm_cases(draw):
    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    channels = draw(st.integers(1, 6))
    return (
        (*shape, channels),
        draw(st.sampled_from([0.9, 0.99])),
        draw(st.sampled_from([1e-5, 1e-3])),
        draw(st.integers(0, 2**31 - 1)),
    )


@given(norm_cases(), st.booleans())
def test_matmul_batch_norm_matches_flax(case, train):
    """Same variables at init; in training and eval mode the same outputs, running statistics
    and gradients (input, scale, offset) as flax.linen.BatchNorm up to float rounding."""
    shape, momentum, epsilon, seed = case
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(1.5, 2.0, size=shape).astype(np.float32))
    kwargs = dict(use_running_average=not train, momentum=momentum, epsilon=epsilon)
    ref, ours = nn.BatchNorm(**kwargs), batch_norm.BatchNorm(**kwargs)
    v_ref, v_ours = (
        jax.jit(ref.init)(jax.random.key(0), x),
        jax.jit(ours.init)(jax.random.key(0), x),
    )
    assert jax.tree.structure(v_ref) == jax.tree.structure(v_ours)
    for a, b in zip(jax.tree.leaves(v_ref), jax.tree.leaves(v_ours), strict=True):
        np.testing.assert_array_equal(a, b)
    c = shape[-1]
    params = {
        "scale": jnp.asarray(rng.normal(size=c), jnp.float32),
        "bias": jnp.asarray(rng.normal(size=c), jnp.float32),
    }
    stats = {
        "mean": jnp.asarray(rng.normal(size=c), jnp.float32),
        "var": jnp.asarray(rng.random(c) + 0.5, jnp.float32),
    }

    def run(module):
        def loss(params, x):
            y, new = module.apply(
                {"params": params, "batch_stats": stats}, x, mutable=["batch_stats"]
            )
            return jnp.sum(jnp.sin(y) * jnp.arange(y.size).reshape(y.shape)), (y, new)

        return jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))(params, x)  # one compile

    (g_ref, (y_ref, s_ref)), (g_ours, (y_ours, s_ours)) = run(ref), run(ours)
    np.testing.assert_allclose(y_ours, y_ref, rtol=1e-4, atol=1e-4)
    for a, b in zip(
        jax.tree.leaves((s_ref, g_ref)), jax.tree.leaves((s_ours, g_ours)), strict=True
    ):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-3)


def test_auto_picks_the_fast_paths_on_cpu_and_they_can_be_overridden():
    assert jax.default_backend() == "cpu"
    assert _resolve_pool_impl("auto") == "argmax"
    assert _resolve_norm_impl("auto") == "matmul"
    assert _resolve_pool_impl("reshape") == "reshape"
    assert _resolve_norm_impl("flax") == "flax"
    assert _resolve_merge_impl("auto") == "materialized"
    assert _resolve_merge_impl("fused") == "fused"
    with pytest.raises(ValueError, match="merge_impl must be one of"):
        _resolve_merge_impl("fast")
    with pytest.raises(ValueError, match="pool_impl must be one of"):
        _resolve_pool_impl("fast")
    with pytest.raises(ValueError, match="norm_impl must be one of"):
        _resolve_norm_impl("fast")


def test_cli_offers_every_pool_and_norm_impl():
    """`cnnjax train --pool-impl / --norm-impl` list exactly what the model accepts."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    train = sub.choices["train"]
    choices = {a.dest: tuple(a.choices) for a in train._actions if a.dest.endswith("_impl")}
    assert choices["pool_impl"] == POOL_IMPLS
    assert choices["norm_impl"] == NORM_IMPLS
    assert choices["merge_impl"] == MERGE_IMPLS


def _train(spec, steps: int, batch: int, **impls):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((batch, *spec.input_shape), np.float32))
    y = jnp.asarray(rng.integers(0, 10, batch).astype(np.int32))
    model, tx = build_model(spec, **impls), make_optimizer()
    step = jax.jit(make_train_step(model, tx))
    state = create_train_state(model, tx, 0)
    for _ in range(steps):
        state = step(state, x, y)
    return state


def test_training_steps_agree_across_pool_paths():
    """Ten Adam steps of a network with conv-ReLU-pool and conv-pool (the convolution's bias
    and ReLU added inside the arg-max pooling, on the pooled map): the default CPU path ends at
    the reference path's parameters up to float rounding."""
    spec = from_text("in28x28x1-conv8x3-pool2-conv8x3:linear-pool2-flatten-dense16-dense10")
    ref = _train(spec, 10, 16, pool_impl="reshape", conv_impl="lax")
    ours = _train(spec, 10, 16, pool_impl="auto", conv_impl="auto")
    for a, b in zip(jax.tree.leaves(ref.params), jax.tree.leaves(ours.params), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=2e-6)


def _loss_and_grads(model, variables, x):
    def loss(v):
        return (model.apply(v, x) ** 2).sum()

    return jax.value_and_grad(loss)(variables)


@pytest.mark.parametrize(
    "text", ["in9x9x2-conv4x2-pool2-flatten-dense3", "in9x9x2-conv4x2-pool3s2-flatten-dense3"]
)
def test_the_bias_waits_for_the_pooling_with_the_same_variables_and_numbers(text):
    """The deferred bias is a training-speed path: the variables are the same as without it,
    and loss and gradients equal the reference's, for a pooling that tiles the map (the bias
    added on the pooled map) and one that does not (added before it, as usual)."""
    spec = from_text(text)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(3, 9, 9, 2)).astype(np.float32))
    ref, ours = build_model(spec, pool_impl="reshape"), build_model(spec, pool_impl="argmax")
    variables = ref.init(jax.random.PRNGKey(0), x)
    shapes = jax.tree.map(jnp.shape, ours.init(jax.random.PRNGKey(0), x))
    assert shapes == jax.tree.map(jnp.shape, variables)
    (l_ref, g_ref), (l_ours, g_ours) = (
        _loss_and_grads(ref, variables, x),
        _loss_and_grads(ours, variables, x),
    )
    np.testing.assert_allclose(l_ours, l_ref, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(g_ref), jax.tree.leaves(g_ours), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


def test_training_steps_agree_across_norm_paths():
    """Five Adam steps of the small ResNet (batch norm everywhere): the default CPU path ends at
    flax.linen.BatchNorm's parameters and running statistics up to float rounding."""
    spec = resnet_small()
    ref = _train(spec, 5, 8, norm_impl="flax", conv_impl="lax")
    ours = _train(spec, 5, 8, norm_impl="auto", conv_impl="lax")
    for a, b in zip(
        jax.tree.leaves((ref.params, ref.batch_stats)),
        jax.tree.leaves((ours.params, ours.batch_stats)),
        strict=True,
    ):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-4)


def test_materialize_is_the_identity_in_value_and_gradient():
    x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 5, 5, 3)).astype(np.float32))
    x = x.at[0, 0, 0, 0].set(jnp.nan)  # the predicate's element: the other branch, same value
    for v in (x, jnp.nan_to_num(x)):
        out, pull = jax.vjp(jax.jit(fence.materialize), v)
        np.testing.assert_array_equal(out, v)
        np.testing.assert_array_equal(pull(2 * v)[0], 2 * v)
    np.testing.assert_array_equal(jax.vmap(fence.materialize)(x), x)  # vmapped seeds


RESIDUAL = "in12x12x1-conv6x3same-res(conv6x3same-conv6x3same:linear)-res(conv6x3same-conv6x3same:linear)-gap-dense10"


def test_training_steps_agree_across_merge_paths():
    """Five Adam steps of a residual stack: materializing each block's output (the default on a
    CPU) changes which buffers XLA writes, not a number; and it is there in the compiled step,
    a conditional per block, only in training (the traced report sees the plain merge)."""
    spec = from_text(RESIDUAL)
    ref = _train(spec, 5, 8, merge_impl="fused")
    ours = _train(spec, 5, 8, merge_impl="auto")
    for a, b in zip(jax.tree.leaves(ref.params), jax.tree.leaves(ours.params), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)

    def conditionals(merge_impl: str, train: bool) -> int:
        model = build_model(spec, merge_impl=merge_impl)
        x = jnp.zeros((2, *spec.input_shape))
        variables = model.init(jax.random.PRNGKey(0), x)
        hlo = jax.jit(lambda v: model.apply(v, x, train=train)).lower(variables).as_text()
        return hlo.count("stablehlo.case") + hlo.count("stablehlo.if")

    assert conditionals("fused", True) == 0
    assert conditionals("materialized", True) == 2
    assert conditionals("materialized", False) == 0
