"""Laws for graphs (residual and concat blocks, nested): the analytic report and the Flax model
agree on params, on the shape of every layer and merge, and on the receptive field of every
merge output; misaligned merges get one clear error.

Example counts come from the hypothesis profile (tests/conftest.py: ci 25, thorough 300).
Shapes and parameter trees are read with `jax.eval_shape` (tracing, no compile) to stay fast.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given

from cnnjax import zoo
from cnnjax.analysis import analyze, layer_names, receptive_window
from cnnjax.models import build_model, count_params, intermediates
from cnnjax.spec import SpecError
from tests.receptive import inside_unit, positive_params
from tests.strategies import graph_specs, misaligned_specs


def _abstract_report(spec):
    """Parameter trees and every sown output, traced abstractly (no compile, no FLOPs)."""
    model = build_model(spec)
    x = jnp.zeros((2, *spec.input_shape))

    def run(key):
        variables = model.init({"params": key, "dropout": key}, x)
        _, state = model.apply(
            {k: v for k, v in variables.items() if k != "intermediates"},
            x,
            mutable=["intermediates"],
        )
        return variables, state["intermediates"]["layer_outputs"]

    return jax.eval_shape(run, jax.random.key(0))


@given(graph_specs())
def test_graph_params_and_shapes_match_flax(spec):
    """Params sum over every path; every layer's and merge's analytic shape is the real one."""
    report = analyze(spec)
    variables, outputs = _abstract_report(spec)
    assert count_params(variables.get("params", {})) == report.trainable_params
    assert count_params(variables.get("batch_stats", {})) == report.non_trainable_params
    assert layer_names(spec) == [r.name for r in report.layers]
    assert len(outputs) == len(report.layers)
    for r, out in zip(report.layers, outputs, strict=True):
        assert out.shape == (2, *r.output_shape), r.path


@pytest.mark.parametrize(
    "name", ["resnet_small", "resnet18", "resnet50", "resnet_v1_50", "inception_v3"]
)
def test_big_zoo_graphs_match_flax(name):
    spec = zoo.get(name)
    report = analyze(spec)
    variables, outputs = _abstract_report(spec)
    assert count_params(variables["params"]) == report.trainable_params
    assert count_params(variables["batch_stats"]) == report.non_trainable_params
    assert [o.shape[1:] for o in outputs] == [r.output_shape for r in report.layers]


@given(misaligned_specs())
def test_misaligned_merges_get_one_clear_error(spec):
    with pytest.raises(SpecError) as info:
        analyze(spec)
    msg = str(info.value)
    merge = next(n for n in spec.nodes() if n.is_merge)
    assert f"{merge.path!r} merges misaligned paths" in msg
    for path in merge.inputs:
        assert path in msg
    assert "stride" in msg and "offset" in msg
    # The same spec is still a valid network: only its receptive field is undefined.
    assert analyze(spec, allow_misaligned=True).layers[-1].is_merge


@given(graph_specs(linear=True, head=False))
def test_merge_receptive_field_equals_gradient_support(spec):
    """At every merge output (linear paths, positive weights) the gradient support of a unit
    whose field lies inside the input is the analytic field (that of the widest path); the
    unit sums its channels, since a concat channel sees only its own branch."""
    report = analyze(spec)
    h, w = spec.input_shape[:2]
    targets = [
        (r, unit)
        for r in report.layers
        if r.is_merge and not r.is_global and (unit := inside_unit(r, h, w)) is not None
    ]
    assume(targets)
    model = build_model(spec, pool_impl="reduce_window")
    x = jax.random.uniform(jax.random.key(2), (1, *spec.input_shape), minval=0.5, maxval=1.0)
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)  # no eager init: fast
    variables = positive_params(shapes, jax.random.key(1))

    def units(inp):
        acts = intermediates(model, variables, inp)[1]
        return jnp.stack([acts[r.name][0, i, j, :].sum() for r, (i, j) in targets])

    jac = np.asarray(jax.jit(jax.jacrev(units))(x))  # (targets, 1, h, w, c)
    for k, (r, (i, j)) in enumerate(targets):
        rows, cols = np.nonzero(np.abs(jac[k, 0]).sum(-1) > 0)
        assert rows.size, r.path
        measured = (rows.min(), rows.max(), cols.min(), cols.max())
        assert measured == receptive_window(r, i, j), r.path
