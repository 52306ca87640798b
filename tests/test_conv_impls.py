"""Every convolution path gives the reference numbers: `nn.Conv`'s parameters at init, its
outputs, and its gradients (the fast paths differ only in float rounding)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnjax import conv_grad
from cnnjax.grammar import from_text
from cnnjax.models import _BIAS_INIT, _KERNEL_INIT, SpecConv, _resolve_conv_impl, build_model
from cnnjax.train import create_train_state, make_optimizer, make_train_step

IMPLS = ("lax", "matmul_bias", "matmul_grads", "patches")


@st.composite
def conv_cases(draw):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2))
    c = draw(st.integers(1, 4))
    groups = draw(st.sampled_from([1, c]))
    features = groups * draw(st.integers(1, 3))
    return dict(
        features=features,
        kernel_size=k,
        strides=s,
        padding=pads,
        kernel_dilation=d,
        feature_group_count=groups,
        use_bias=draw(st.booleans()),
    ), c


@given(conv_cases(), st.sampled_from(IMPLS))
def test_every_conv_path_matches_flax_conv(case, impl):
    kwargs, c = case
    x = jax.random.normal(jax.random.key(1), (3, 11, 10, c))
    ref = nn.Conv(
        kwargs["features"],
        kwargs["kernel_size"],
        strides=kwargs["strides"],
        padding=kwargs["padding"],
        kernel_dilation=kwargs["kernel_dilation"],
        feature_group_count=kwargs["feature_group_count"],
        use_bias=kwargs["use_bias"],
        kernel_init=_KERNEL_INIT,
        bias_init=_BIAS_INIT,
    )
    ours = SpecConv(**kwargs, impl=impl)

    def loss(module, variables):
        return (jnp.sin(module.apply(variables, x)) ** 2).sum()

    @jax.jit  # one compile per example, not one per eager operation
    def compare():
        v_ref, v_ours = ref.init(jax.random.key(0), x), ours.init(jax.random.key(0), x)
        v = jax.tree.map(lambda t: t + 0.05, v_ref)
        outs = ours.apply(v, x), ref.apply(v, x)
        grads = jax.grad(lambda v: loss(ref, v))(v), jax.grad(lambda v: loss(ours, v))(v)
        return v_ref, v_ours, outs, grads

    v_ref, v_ours, (y_ours, y_ref), (g_ref, g_ours) = compare()
    for a, b in zip(jax.tree.leaves(v_ref), jax.tree.leaves(v_ours), strict=True):
        np.testing.assert_array_equal(a, b)  # same names, shapes and initial values
    np.testing.assert_allclose(y_ours, y_ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves(g_ref), jax.tree.leaves(g_ours), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)


@settings(max_examples=10)  # eager ops, a new shape each example: ~1 s apiece
@given(conv_cases())
def test_matmul_kernel_grad_matches_lax(case):
    """`conv_grad.conv` on any strides, padding, dilation and channel count: the forward pass,
    the input gradient and the kernel gradient are lax's up to float rounding."""
    kwargs, c = case
    kh, kw = kwargs["kernel_size"]
    args = (kwargs["strides"], kwargs["padding"], kwargs["kernel_dilation"])
    x = jax.random.normal(jax.random.key(1), (3, 11, 10, c))
    kernel = jax.random.normal(jax.random.key(2), (kh, kw, c, kwargs["features"]))

    def ref(x, k):
        return jax.lax.conv_general_dilated(
            x, k, args[0], args[1], rhs_dilation=args[2], dimension_numbers=("NHWC", "HWIO", "NHWC")
        )

    def loss(f, x, k):
        return (jnp.sin(f(x, k)) ** 2).sum()

    ours = lambda x, k: conv_grad.conv(x, k, *args)  # noqa: E731
    np.testing.assert_allclose(ours(x, kernel), ref(x, kernel), rtol=1e-5, atol=1e-5)
    g_ref = jax.grad(lambda x, k: loss(ref, x, k), argnums=(0, 1))(x, kernel)
    g_ours = jax.grad(lambda x, k: loss(ours, x, k), argnums=(0, 1))(x, kernel)
    for a, b in zip(g_ref, g_ours, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)


def test_matmul_grads_uses_the_matmul_kernel_grad_only_on_few_channels():
    """The "matmul_grads" path's kernel gradient is a dot (no convolution) on a one-channel
    input, and lax's convolution above `conv_grad.MAX_IN_CHANNELS` channels."""

    def grad_jaxpr(channels: int) -> str:
        conv = SpecConv(
            4, (3, 3), (1, 1), ((0, 0), (0, 0)), (1, 1), use_bias=False, impl="matmul_grads"
        )
        x = jnp.ones((2, 8, 8, channels))
        v = conv.init(jax.random.key(0), x)
        grad = jax.grad(lambda k: conv.apply({"params": {**v["params"], "kernel": k}}, x).sum())
        return str(jax.make_jaxpr(grad)(v["params"]["kernel"]))

    one, many = grad_jaxpr(1), grad_jaxpr(conv_grad.MAX_IN_CHANNELS + 1)
    assert "dot_general" in one
    assert "dot_general" not in many


def test_auto_picks_the_matmul_grads_on_cpu_and_can_be_overridden():
    assert jax.default_backend() == "cpu"
    assert _resolve_conv_impl("auto") == "matmul_grads"
    assert _resolve_conv_impl("matmul_bias") == "matmul_bias"
    assert _resolve_conv_impl("lax") == "lax"
    with pytest.raises(ValueError, match="conv_impl must be one of"):
        _resolve_conv_impl("winograd")


def test_training_steps_agree_across_conv_paths():
    """Ten Adam steps of the seed 000 network: the default CPU path and the reference path end
    at the same parameters up to float rounding."""
    spec = from_text("in28x28x1-conv8x3-pool2-conv8x3-pool2-flatten-dense16-dense10")
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((16, 28, 28, 1), np.float32))
    y = jnp.asarray(rng.integers(0, 10, 16).astype(np.int32))
    ends = {}
    for impl in ("lax", "auto", "matmul_bias"):
        model, tx = build_model(spec, conv_impl=impl), make_optimizer()
        step = jax.jit(make_train_step(model, tx))
        state = create_train_state(model, tx, 0)
        for _ in range(10):
            state = step(state, x, y)
        ends[impl] = state.params
    for impl in ("auto", "matmul_bias"):
        for a, b in zip(jax.tree.leaves(ends["lax"]), jax.tree.leaves(ends[impl]), strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=2e-6)


def test_cli_offers_every_conv_impl():
    """`cnnjax train --conv-impl` lists exactly the implementations the model accepts."""
    from cnnjax.cli import build_parser
    from cnnjax.models import CONV_IMPLS

    parser = build_parser()
    args = parser.parse_args(["train", "--model", "fashion_cnn", "--conv-impl", "lax"])
    assert args.conv_impl == "lax" and args.seed_mode == "auto"
    sub = next(a for a in parser._actions if a.dest == "command")
    train = sub.choices["train"]
    action = next(a for a in train._actions if a.dest == "conv_impl")
    assert tuple(action.choices) == CONV_IMPLS
