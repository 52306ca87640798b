"""Spec construction, the three ways in (Python, text, JSON), and clear errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnnjax import zoo
from cnnjax.grammar import from_text
from cnnjax.loading import load_spec
from cnnjax.spec import (
    AvgPool,
    Conv,
    Dense,
    Flatten,
    MaxPool,
    NetSpec,
    SpecError,
    from_dict,
    same_padding,
    sequential,
)
from tests.spec_laws import assert_json_round_trip, assert_text_round_trip
from tests.strategies import valid_specs


def test_keras_defaults():
    conv = Conv(32)
    assert conv.kernel == (3, 3) and conv.strides == (1, 1) and conv.padding == "valid"
    assert conv.activation == "linear" and conv.use_bias
    pool = MaxPool(2)
    assert pool.window == (2, 2) and pool.strides == (2, 2) and pool.padding == "valid"
    assert MaxPool(3, strides=1).strides == (1, 1)


@pytest.mark.parametrize(
    ("n", "k", "s", "expected"),
    [
        (28, 3, 1, (1, 1)),
        (28, 2, 2, (0, 0)),
        (5, 2, 2, (0, 1)),
        (7, 3, 2, (1, 1)),
        (8, 4, 2, (1, 1)),
        (224, 7, 2, (2, 3)),
    ],
)
def test_tensorflow_same_rule(n, k, s, expected):
    assert same_padding(n, k, s) == expected
    # Equivalent closed form: total = max(k - s, 0) if n % s == 0 else max(k - n % s, 0).
    total = max(k - s, 0) if n % s == 0 else max(k - n % s, 0)
    assert sum(expected) == total


def test_text_form_of_seed000():
    spec = from_text("conv32x3-pool2-conv32x3-pool2-flatten-dense128-dense10")
    assert spec == zoo.fashion_cnn()
    assert spec.layers[-1].activation == "softmax"
    assert spec.layers[0].activation == "relu"


def test_text_form_options():
    spec = from_text(
        "in32x32x3-conv16x5x3s2same:linear-dw3m2nb-avgpool3s1same-bn-drop0.25-gap-dense1"
    )
    conv, dw, pool, *_ = spec.layers
    assert spec.input_shape == (32, 32, 3)
    assert conv.kernel == (5, 3) and conv.strides == (2, 2) and conv.padding == "same"
    assert conv.activation == "linear"
    assert dw.depth_multiplier == 2 and not dw.use_bias
    assert isinstance(pool, AvgPool) and pool.strides == (1, 1)
    assert spec.layers[-1].activation == "sigmoid"


@given(valid_specs())
def test_json_round_trip(spec):
    assert_json_round_trip(spec)


@given(valid_specs())
def test_text_round_trip_where_a_text_form_exists(spec):
    assert_text_round_trip(spec)


def test_json_missing_keys_take_keras_defaults():
    spec = from_dict(
        {
            "input_shape": [28, 28, 1],
            "layers": [{"type": "conv", "filters": 8}, {"type": "max_pool"}],
        }
    )
    assert spec.layers[0] == Conv(8)
    assert spec.layers[1] == MaxPool((2, 2))


def test_json_explicit_padding():
    spec = from_dict(
        {
            "input_shape": [10, 10, 1],
            "layers": [
                {"type": "conv", "filters": 2, "kernel": [3, 3], "padding": [[0, 2], [1, 0]]}
            ],
        }
    )
    assert spec.output_shape == (10, 9, 2)


def test_load_spec_accepts_names_files_json_and_text(tmp_path):
    path = tmp_path / "net.json"
    path.write_text(zoo.pool224().to_json())
    assert load_spec("pool224") == zoo.pool224()
    assert load_spec(str(path)) == zoo.pool224()
    assert load_spec(zoo.pool224().to_json()) == zoo.pool224()
    assert load_spec("conv8x3-flatten-dense2").output_shape == (2,)
    assert load_spec("fashion_cnn", (32, 32, 3)).input_shape == (32, 32, 3)


# --------------------------------------------------------------------------- errors


def _error(fn, *args, **kwargs) -> str:
    with pytest.raises(SpecError) as info:
        fn(*args, **kwargs)
    return str(info.value)


def test_kernel_larger_than_input_names_layer_and_shapes():
    msg = _error(sequential, (5, 5, 1), Conv(4, 3), Conv(4, 3), Conv(4, 3))
    assert msg == "layer 2 (Conv(4, 3x3)): kernel 3x3 is larger than its input 1x1x4"


def test_window_larger_than_input():
    msg = _error(
        sequential, (28, 28, 1), Conv(32, 3), MaxPool(2), MaxPool(2), MaxPool(2), MaxPool(4)
    )
    assert msg.startswith("layer 4 (MaxPool(4x4)): window 4x4 is larger than its input 3x3x32")


def test_dense_before_flatten():
    msg = _error(sequential, (28, 28, 1), Conv(8, 3), Dense(10))
    assert "layer 1 (Dense(10))" in msg and "26x26x8" in msg and "Flatten" in msg


def test_conv_after_flatten():
    msg = _error(sequential, (28, 28, 1), Flatten(), Conv(8, 3))
    assert "layer 1 (Conv(8, 3x3))" in msg and "784" in msg


@pytest.mark.parametrize(
    ("layer", "fragment"),
    [
        ({"type": "conv", "filters": 0}, "filters must be a positive integer"),
        ({"type": "conv", "filters": 8, "kernel": [0, 3]}, "kernel must be positive"),
        ({"type": "conv", "filters": 8, "strides": -1}, "strides must be positive"),
        ({"type": "conv", "filters": 8, "padding": "full"}, "padding must be"),
        ({"type": "conv", "filters": 8, "activation": "relu6"}, "unknown activation"),
        ({"type": "conv", "filters": 8, "kernal": 3}, "unknown key(s) kernal"),
        ({"type": "convolution"}, "unknown layer type 'convolution'"),
        ({"type": "dense"}, "missing 1 required positional argument: 'units'"),
        ({"type": "dropout", "rate": 1.5}, "rate must be in [0, 1)"),
        ({"type": "max_pool", "window": [2, 2, 2]}, "window must be an integer or a pair"),
    ],
)
def test_invalid_layer_objects_get_one_clear_error(layer, fragment):
    msg = _error(from_dict, {"input_shape": [28, 28, 1], "layers": [{"type": "flatten"}, layer]})
    assert msg.startswith("layer 1 (")
    assert fragment in msg


@pytest.mark.parametrize(
    ("shape", "fragment"),
    [
        ([28, 28], "three positive integers"),
        ([28, 0, 1], "three positive integers"),
        ("28x28", "three"),
    ],
)
def test_invalid_input_shapes(shape, fragment):
    assert fragment in _error(from_dict, {"input_shape": shape, "layers": []})


@pytest.mark.parametrize(
    "text", ["conv32x3--dense10", "conv32-dense10", "conv32x3-pool2-fltten", "dense10:relu7"]
)
def test_invalid_text(text):
    msg = _error(load_spec, text)
    assert "layer" in msg or "empty layer token" in msg


def test_missing_spec_file():
    assert "spec file not found: /nope/net.json" in _error(load_spec, "/nope/net.json")


def test_collapse_to_zero_is_refused():
    msg = _error(sequential, (4, 4, 1), Conv(2, 3, strides=2), Conv(2, 2))
    assert "layer 1" in msg and "larger than its input 1x1x2" in msg


@given(
    st.integers(1, 6),
    st.integers(1, 6),
    st.integers(1, 3),
    st.sampled_from(["conv", "max_pool", "avg_pool", "depthwise_conv"]),
)
def test_oversized_windows_always_get_the_clear_error(size, extra, index_pad, kind):
    """Any window larger than its input is refused with the layer index and both shapes."""
    k = size + extra
    layers: list = [{"type": "dropout", "rate": 0.0}] * index_pad
    key = "window" if "pool" in kind else "kernel"
    layer = {"type": kind, key: [k, k]}
    if kind == "conv":
        layer["filters"] = 2
    msg = _error(from_dict, {"input_shape": [size, size, 2], "layers": [*layers, layer]})
    assert msg.startswith(f"layer {index_pad} (")
    assert f"{k}x{k} is larger than its input {size}x{size}x2" in msg


def test_specs_are_immutable_and_hashable():
    spec = zoo.fashion_cnn()
    with pytest.raises(AttributeError):
        spec.layers = ()  # type: ignore[misc]
    assert hash(spec) == hash(zoo.fashion_cnn())
    assert isinstance(spec, NetSpec)
    assert Flatten() == Flatten()


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ({"type": "batch_norm", "momentum": "abc"}, "momentum must be a number"),
        ({"type": "batch_norm", "epsilon": float("inf")}, "epsilon must be positive and finite"),
        ({"type": "batch_norm", "momentum": float("nan")}, "momentum must be in"),
        ({"type": "conv", "filters": 4, "padding": [[1.7, 0], [0, 0]]}, "non-negative integers"),
        ({"type": "conv", "filters": 4, "padding": [[True, 0], [0, 0]]}, "non-negative integers"),
    ],
    ids=["momentum-abc", "epsilon-infinity", "momentum-nan", "padding-float", "padding-bool"],
)
def test_audit_bad_layer_values_are_spec_errors_not_silent(layer, message):
    """Regressions from the input audit: a traceback (momentum "abc") and silent acceptance
    (epsilon Infinity; padding 1.7 truncated to 1)."""
    spec = {"input_shape": [8, 8, 1], "layers": [{"type": "conv", "filters": 2}, layer]}
    if layer["type"] == "conv":
        spec["layers"] = [layer]
    with pytest.raises(SpecError, match=message):
        from_dict(spec)
