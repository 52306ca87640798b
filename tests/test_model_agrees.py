"""Laws: the analytic report and the real Flax model agree (params, shapes, receptive field),
for chains (graphs: tests/test_graph_laws.py).

Example counts come from the hypothesis profile (tests/conftest.py: ci 25, thorough 300)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given

from cnnjax import zoo
from cnnjax.analysis import analyze, receptive_window
from cnnjax.models import build_model, count_params, init_variables, intermediates, max_pool
from cnnjax.spec import MaxPool
from tests.receptive import inside_unit, positive_params
from tests.strategies import linear_rf_specs, valid_specs


def _check_params_and_shapes(spec, run=True):
    """The report's parameter counts and output shapes are Flax's. `run=False` traces the model
    with `jax.eval_shape` instead of running it: the same shapes, without executing anything."""
    report = analyze(spec)
    model = build_model(spec)
    if run:
        variables = init_variables(model, jax.random.key(0))
    else:
        variables = jax.eval_shape(lambda k: init_variables(model, k), jax.random.key(0))
    assert count_params(variables.get("params", {})) == report.trainable_params
    assert count_params(variables.get("batch_stats", {})) == report.non_trainable_params
    x = jnp.ones((2, *spec.input_shape))
    if run:
        out, inter = intermediates(model, variables, x)
    else:
        out, inter = jax.eval_shape(lambda v, x: intermediates(model, v, x), variables, x)
    names = [r.name for r in report.layers]
    assert (list(inter) if run else sorted(inter)) == (
        names if run else sorted(names)
    )  # eval_shape sorts keys
    for r in report.layers:
        assert inter[r.name].shape == (2, *r.output_shape), r.name
    assert out.shape == (2, *report.output_shape)


@given(valid_specs())
def test_params_and_shapes_match_flax(spec):
    _check_params_and_shapes(spec, run=False)  # the zoo's networks below run for real


@pytest.mark.parametrize(
    "name", ["fashion_cnn", "chollet_mnist", "chollet_nopool", "pool224", "nopool224"]
)
def test_zoo_params_and_shapes_match_flax(name):
    _check_params_and_shapes(zoo.get(name))


def _gradient_support(spec, seed=0):
    """Bounding box of the input pixels that reach one unit of the last layer (via jax.vjp),
    the analytic window of that unit clipped to the input, and whether it lies inside."""
    model = build_model(spec, pool_impl="reduce_window")
    last = analyze(spec).layers[-1]
    h, w = spec.input_shape[:2]
    unit = inside_unit(last, h, w)
    inside = unit is not None
    ci, cj = unit if inside else (last.output_shape[0] // 2, last.output_shape[1] // 2)
    x = jax.random.uniform(jax.random.key(seed + 2), (1, *spec.input_shape), minval=0.5, maxval=1.0)
    shapes = jax.eval_shape(model.init, jax.random.key(seed), x)  # no eager init: fast
    variables = positive_params(shapes, jax.random.key(seed + 1))

    @jax.jit
    def input_gradient(variables, inp):
        _, vjp = jax.vjp(lambda v: model.apply(variables, v)[0, ci, cj, 0], inp)
        return vjp(jnp.ones(()))[0]

    grad = input_gradient(variables, x)
    support = np.abs(np.asarray(grad[0])).sum(-1) > 0
    rows, cols = np.nonzero(support)
    top, bottom, left, right = receptive_window(last, ci, cj)
    analytic = (max(top, 0), min(bottom, h - 1), max(left, 0), min(right, w - 1))
    measured = (rows.min(), rows.max(), cols.min(), cols.max()) if rows.size else None
    return measured, analytic, inside


@given(linear_rf_specs())
def test_receptive_field_equals_gradient_support(spec):
    """Linear convs and average pools with positive weights: the gradient support of a unit whose
    window lies inside the input IS the analytic field; where padding cuts it, it lies within."""
    measured, analytic, inside = _gradient_support(spec)
    if inside:
        assert measured == analytic
    else:
        assume(measured is not None)  # a unit over padding alone may see no input at all
        _assert_within(measured, analytic)


def _assert_within(measured, analytic):
    top, bottom, left, right = measured
    assert analytic[0] <= top and bottom <= analytic[1]
    assert analytic[2] <= left and right <= analytic[3]


@given(linear_rf_specs(with_max_pool=True))
def test_gradient_support_lies_inside_the_field_with_max_pooling(spec):
    """Max pooling routes the gradient to one input per window: support within the field."""
    measured, analytic, inside = _gradient_support(spec)
    assert measured is not None or not inside
    if measured is not None:
        _assert_within(measured, analytic)


def test_seed001_last_map_cells_see_18x18():
    spec = zoo.chollet_mnist()
    base = spec.__class__(spec.input_shape, spec.layers[:5])
    measured, analytic, inside = _gradient_support(
        spec.__class__(spec.input_shape, tuple(_linearised(base.layers)))
    )
    assert inside and analytic == measured
    assert measured[1] - measured[0] + 1 == 18


def _linearised(layers):
    """Replace max pools by average pools and drop activations: same geometry, full support."""
    from dataclasses import replace

    from cnnjax.spec import AvgPool, Conv

    for layer in layers:
        if isinstance(layer, MaxPool):
            yield AvgPool(layer.window, layer.strides, layer.padding)
        elif isinstance(layer, Conv):
            yield replace(layer, activation="linear")
        else:
            yield layer


def test_reshape_max_pool_equals_reduce_window():
    x = jax.random.normal(jax.random.key(3), (4, 13, 11, 5))
    layer = MaxPool(2)
    a = max_pool(x, layer, "reshape")
    b = max_pool(x, layer, "reduce_window")
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    def loss(impl):
        return lambda v: jnp.sum(max_pool(v, layer, impl) ** 2)

    ga = jax.grad(loss("reshape"))(x)
    gb = jax.grad(loss("reduce_window"))(x)
    np.testing.assert_allclose(np.asarray(ga), np.asarray(gb))


def test_logits_leave_out_the_final_softmax():
    spec = zoo.fashion_cnn()
    model = build_model(spec)
    variables = init_variables(model, jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (3, 28, 28, 1))
    logits = model.apply(variables, x)
    probs = model.apply(variables, x, logits=False)
    np.testing.assert_allclose(
        np.asarray(jax.nn.softmax(logits)), np.asarray(probs), rtol=1e-5, atol=1e-6
    )


def test_wrong_input_shape_is_a_clear_error():
    model = build_model(zoo.fashion_cnn())
    variables = init_variables(model, jax.random.key(0))
    with pytest.raises(ValueError, match=r"does not match the spec's \(batch, 28, 28, 1\)"):
        model.apply(variables, jnp.zeros((1, 32, 32, 3)))


def test_bfloat16_compute():
    model = build_model(zoo.fashion_cnn(), dtype=jnp.bfloat16)
    variables = init_variables(model, jax.random.key(0))
    out = model.apply(variables, jnp.ones((2, 28, 28, 1)))
    assert out.dtype == jnp.bfloat16
    assert jax.tree_util.tree_leaves(variables)[0].dtype == jnp.float32
