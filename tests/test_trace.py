"""Laws of the traced report: it equals the spec's report for cnnjax's own models, under every
implementation path, and its receptive fields equal the gradient support for plain Flax models."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

from cnnjax import zoo
from cnnjax.analysis import analyze
from cnnjax.models import CONV_IMPLS, build_model, count_params
from cnnjax.trace import TraceError, abstract_variables, analyze_module
from tests import flax_models as fm
from tests.strategies import graph_specs, valid_specs

CONV_PATHS = [impl for impl in CONV_IMPLS if impl != "auto"]

FIELDS = (
    "name",
    "output_shape",
    "params",
    "trainable_params",
    "non_trainable_params",
    "values",
    "receptive_field",
    "effective_stride",
    "effective_padding",
    "effective_padding_end",
    "is_global",
    "macs",
)
SMALL = [name for name in zoo.ZOO if zoo.get(name).input_shape[0] <= 64]
LARGE = [name for name in zoo.ZOO if name not in SMALL]


def _traced(spec, **impls):
    names = [r.name for r in analyze(spec).layers]
    return analyze_module(build_model(spec, **impls), spec.input_shape, row_names=names)


def _assert_same(traced, expected):
    assert traced.stopped is None
    assert len(traced.layers) == len(expected.layers)
    for got, want in zip(traced.layers, expected.layers, strict=True):
        for f in FIELDS:
            assert getattr(got, f) == getattr(want, f), (want.name, f)
    assert traced.total_params == expected.total_params
    assert traced.total_macs == expected.total_macs


@pytest.mark.parametrize("pool_impl", ["reshape", "reduce_window"])
@pytest.mark.parametrize("conv_impl", CONV_PATHS)
@pytest.mark.parametrize("name", SMALL)
def test_traced_zoo_model_equals_spec_report(name, pool_impl, conv_impl):
    spec = zoo.get(name)
    _assert_same(_traced(spec, pool_impl=pool_impl, conv_impl=conv_impl), analyze(spec))


@pytest.mark.parametrize("name", LARGE)
def test_traced_large_zoo_model_equals_spec_report(name):
    """The 224x224 and larger zoo networks (ResNets, Inception, VGG), on the default paths."""
    spec = zoo.get(name)
    _assert_same(_traced(spec), analyze(spec))


@given(valid_specs())
def test_traced_spec_model_equals_spec_report(spec):
    for pool_impl in ("reshape", "reduce_window", "argmax"):
        _assert_same(_traced(spec, pool_impl=pool_impl, conv_impl="patches"), analyze(spec))


@given(graph_specs())
def test_traced_graph_spec_model_equals_spec_report(spec):
    """Residual and concat blocks, nested: merges read from add/concatenate equations."""
    for conv_impl in ("lax", "matmul_grads"):
        _assert_same(_traced(spec, conv_impl=conv_impl), analyze(spec))


# --------------------------------------------------------------------------- plain Flax models


def _positive(variables):
    """Positive weights, unit batch-norm statistics: every unit of a ReLU net stays active."""

    def fix(path, leaf):
        name = str(getattr(path[-1], "key", path[-1]))
        if name == "var":
            return jnp.ones_like(leaf)
        if name in ("mean", "bias"):
            return jnp.zeros_like(leaf)
        return jnp.abs(leaf) + 0.01

    return jax.tree_util.tree_map_with_path(fix, variables)


def _support(module, shape, row, layout="NHWC"):
    """Rows and columns of the input pixels the centre unit of `row`'s output depends on."""
    x = jnp.ones((1, *shape))
    key = jax.random.key(0)
    variables = _positive(jax.jit(module.init)(key, x))
    variables = {k: v for k, v in variables.items() if k != "intermediates"}

    def row_output(inp):
        if row == "output":
            out = module.apply(variables, inp)
        else:
            _, state = module.apply(
                variables, inp, capture_intermediates=True, mutable=["intermediates"]
            )
            node = state["intermediates"]
            for part in row.split("/"):
                node = node[part]
            out = node["__call__"][0]
        return jnp.moveaxis(out, 1, -1) if layout == "NCHW" else out

    shape = jax.eval_shape(row_output, x).shape
    centre = (shape[1] // 2, shape[2] // 2)
    grad = jax.jit(jax.grad(lambda inp: row_output(inp)[0, centre[0], centre[1]].sum()))(x)
    g = np.abs(np.asarray(grad[0]))
    g = g.sum(0) if layout == "NCHW" else g.sum(-1)
    rows, cols = np.nonzero(g > 0)
    return (rows.min(), rows.max(), cols.min(), cols.max()), centre


def _window(report, row, centre):
    r = report.layer(row)
    (sh, sw), (ph, pw), (rh, rw) = r.effective_stride, r.effective_padding, r.receptive_field
    top, left = centre[0] * sh - ph, centre[1] * sw - pw
    return (top, top + rh - 1, left, left + rw - 1)


@pytest.mark.parametrize(
    ("module", "shape", "rows", "layout"),
    [
        (fm.CNN(), (28, 28, 1), ["Conv_0", "Conv_1"], "NHWC"),
        (fm.AvgCircular(), (24, 24, 2), ["Conv_0", "Conv_1", "output"], "NHWC"),
        (fm.NCHWNet(), (3, 32, 32), ["output"], "NCHW"),
    ],
    ids=["flax-mnist-cnn", "avg-pool-circular-jnp-pad", "nchw"],
)
def test_receptive_field_equals_gradient_support(module, shape, rows, layout):
    report = analyze_module(module, shape, layout=layout)
    assert report.stopped is None
    variables = abstract_variables(module, jax.ShapeDtypeStruct((1, *shape), jnp.float32))
    assert report.total_params == count_params(variables)
    for row in rows:
        support, centre = _support(module, shape, row, layout)
        assert support == _window(report, row, centre), row


def test_resnet18_written_in_flax():
    report = analyze_module(fm.ResNet18(), (224, 224, 3))
    assert report.stopped is None
    assert report.trainable_params == 11_689_512  # torchvision's resnet18 at 1000 classes
    last = report.layer("ResNetBlock_7")
    assert last.receptive_field == (435, 435)
    assert last.effective_stride == (32, 32)
    assert last.output_shape == (7, 7, 512)
    assert report.layer("ResNetBlock_6/proj").receptive_field == (211, 211)


def test_resnet18_support_lies_inside_the_field():
    """Max pooling routes the gradient to one input per window: the support lies within."""
    module, shape = fm.ResNet18(num_classes=10, stage_sizes=(1, 1)), (48, 48, 3)
    report = analyze_module(module, shape)
    for row in ("ResNetBlock_0", "ResNetBlock_1"):
        (top, bottom, left, right), centre = _support(module, shape, row)
        wtop, wbottom, wleft, wright = _window(report, row, centre)
        assert wtop <= top and bottom <= wbottom and wleft <= left and right <= wright


def test_unsupported_primitive_stops_with_its_name_and_path():
    report = analyze_module(fm.CumsumNet(), (16, 16, 1))
    assert report.stopped is not None
    assert report.stopped.startswith("cumsum")
    assert report.layer("before").receptive_field == (3, 3)
    after = report.layer("after")
    assert after.receptive_field is None and after.effective_stride is None
    assert report.total_params == 40 + 148


def test_untraceable_input_is_a_clear_error():
    with pytest.raises(TraceError, match="input of shape"):
        analyze_module(fm.CNN(), (2, 2, 1))
    with pytest.raises(TraceError, match="layout"):
        analyze_module(fm.CNN(), (28, 28, 1), layout="NWHC")


# --------------------------------------------------------------------------- command line


def _cli(capsys, *args):
    from cnnjax.cli import main

    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_summary_of_a_flax_file(capsys):
    code, out, _ = _cli(
        capsys,
        "summary",
        "tests/flax_models.py:ResNet18",
        "--input",
        "224x224x3",
        "--kwargs",
        '{"num_classes": 10}',
    )
    assert code == 0
    assert "ResNetBlock_7 (add)" in out and "435x435" in out
    assert "Total params: 11,191,242" in out


def test_cli_summary_of_a_package_module_in_json(capsys):
    import json

    code, out, _ = _cli(
        capsys, "summary", "tests.flax_models:CNN", "--input", "28x28x1", "--format", "json"
    )
    report = json.loads(out)
    assert code == 0 and report["stopped"] is None
    assert [r["name"] for r in report["layers"]][:2] == ["Conv_0", "avg_pool"]


def test_cli_summary_says_where_the_analysis_stopped(capsys):
    code, out, _ = _cli(capsys, "summary", "tests/flax_models.py:CumsumNet", "--input", "16x16x1")
    assert code == 0
    assert "Analysis stopped at cumsum" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tests/flax_models.py:CNN"], "pass --input"),
        (["tests/flax_models.py:Nope", "--input", "28x28x1"], "has no 'Nope'"),
        (["missing/file.py:CNN", "--input", "28x28x1"], "module file not found"),
        (["tests/flax_models.py:CNN", "--input", "28x28x1", "--kwargs", "{bad"], "--kwargs"),
        (["tests/flax_models.py:CNN", "--input", "28x28x1", "--kwargs", '{"x": 1}'], "CNN(x)"),
        (["tests/flax_models.py:CNN", "--input", "2x2x1"], "input of shape"),
    ],
)
def test_cli_summary_module_errors_are_one_line(capsys, args, message):
    code, _, err = _cli(capsys, "summary", *args)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_cnnjax_analyze_takes_a_spec_a_module_or_a_function():
    import cnnjax

    spec = zoo.get("fashion_cnn")
    from_spec = cnnjax.analyze(spec)
    from_model = cnnjax.analyze(build_model(spec))
    assert [r.receptive_field for r in from_model.layers] == [
        r.receptive_field for r in from_spec.layers
    ]
    module = fm.CNN()
    report = cnnjax.analyze(module, input_shape=(28, 28, 1))
    assert report.layer("avg_pool_1").receptive_field == (10, 10)
    variables = abstract_variables(module, jax.ShapeDtypeStruct((1, 28, 28, 1), jnp.float32))
    via_function = cnnjax.analyze(module.apply, (28, 28, 1), variables)
    assert via_function.total_params == report.total_params
    assert via_function.layers[-1].is_global
    with pytest.raises(TraceError, match="input_shape"):
        cnnjax.analyze(module)
    with pytest.raises(TraceError, match="variables"):
        cnnjax.analyze(module.apply, (28, 28, 1))


# --------------------------------------------------------------------------- inspection


def test_inspection_tools_take_a_plain_flax_module():
    """Feature maps, ERF (inside the traced analytic window) and probes of a user's module."""
    from cnnjax import inspect
    from cnnjax.errors import InspectError

    module = fm.ResNet18(num_classes=4, stage_sizes=(1, 1))
    rng = np.random.default_rng(0)
    x = rng.random((24, 32, 32, 3), dtype=np.float32)
    labels = rng.integers(0, 4, 24)
    variables = jax.jit(module.init)(jax.random.key(0), jnp.asarray(x[:1]))
    maps = inspect.feature_maps(module, variables, x[:4], ["conv_init", "ResNetBlock_1"])
    assert maps["conv_init"].shape == (4, 16, 16, 64)
    assert maps["ResNetBlock_1"].shape == (4, 4, 4, 128)
    erf = inspect.effective_receptive_field(module, variables, x[:4], "ResNetBlock_1")
    assert (
        erf.analytic_rf
        == analyze_module(module, (32, 32, 3)).layer("ResNetBlock_1").receptive_field
    )
    assert erf.mass_in_window == pytest.approx(1.0)
    probes = inspect.linear_probes(
        module,
        variables,
        x[:16],
        labels[:16],
        x[16:],
        labels[16:],
        layers=["input", "ResNetBlock_0"],
    )
    assert [p.layer for p in probes] == ["input", "ResNetBlock_0"]
    assert all(0.0 <= p.test_acc <= 1.0 for p in probes)
    with pytest.raises(InspectError, match="sow its output"):
        inspect.feature_maps(module, variables, x[:2], ["max_pool"])
