"""Graph specs (residual and concat blocks): the three ways in, names, clear errors, the report
and its summary rows; and the import direction of the spec room (no cycles)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from hypothesis import given

from cnnjax import zoo
from cnnjax.analysis import analyze, layer_names
from cnnjax.grammar import from_text
from cnnjax.loading import load_spec
from cnnjax.spec import (
    Activation,
    BatchNorm,
    Concat,
    Conv,
    Dense,
    Flatten,
    GlobalAvgPool,
    Residual,
    SpecError,
    from_dict,
    from_json,
    sequential,
)
from cnnjax.summary import render
from tests.spec_laws import assert_json_round_trip, assert_text_round_trip
from tests.strategies import graph_specs

BASIC = "in16x16x4-res(conv8x3s2p1-conv8x3p1:linear|conv8x1s2:linear)-gap-dense10"


def _error(fn, *args, **kwargs) -> str:
    with pytest.raises(SpecError) as info:
        fn(*args, **kwargs)
    return str(info.value)


def test_python_text_and_json_agree_on_a_basic_block():
    python = sequential(
        (16, 16, 4),
        Residual(
            [
                Conv(8, 3, 2, ((1, 1), (1, 1)), activation="relu"),
                Conv(8, 3, 1, ((1, 1), (1, 1))),
            ],
            [Conv(8, 1, 2)],
            "relu",
        ),
        GlobalAvgPool(),
        Dense(10, "softmax"),
    )
    assert from_text(BASIC) == python
    assert from_json(python.to_json()) == python
    assert python.to_text() == BASIC
    block = python.to_dict()["layers"][0]
    assert block["type"] == "residual" and block["activation"] == "relu"
    assert [x["type"] for x in block["main"]] == ["conv", "conv"]


@given(graph_specs())
def test_graph_json_round_trip(spec):
    assert_json_round_trip(spec)


@given(graph_specs())
def test_graph_text_round_trip(spec):
    assert_text_round_trip(spec)


def test_identity_shortcut_and_concat_in_text():
    spec = from_text("in8x8x2-conv2x3same-res(conv2x3same-conv2x3same:linear)-cat(conv3x1|)")
    res, cat = spec.layers[1], spec.layers[2]
    assert isinstance(res, Residual) and res.shortcut == () and res.activation == "relu"
    assert isinstance(cat, Concat) and cat.branches[1] == ()
    assert spec.output_shape == (8, 8, 5)


def test_names_are_given_or_keras_style_and_unique():
    spec = from_text("in8x8x1-conv4x3same@stem-res(conv4x3same-conv4x3same)@block-conv4x1")
    assert layer_names(spec) == ["stem", "conv2d", "conv2d_1", "block", "conv2d_2"]
    paths = [r.path for r in analyze(spec).layers]
    assert paths == ["stem", "block/main/conv2d", "block/main/conv2d_1", "block", "conv2d_2"]
    assert spec.to_text().endswith("@stem-res(conv4x3same-conv4x3same)@block-conv4x1")
    msg = _error(sequential, (8, 8, 1), Conv(2, name="a"), Conv(2, name="a"))
    assert "'a' is used twice" in msg and "unique" in msg


def test_a_given_name_is_not_generated_again():
    spec = sequential((8, 8, 1), Conv(2, name="conv2d_1"), Conv(2), Conv(2))
    assert layer_names(spec) == ["conv2d_1", "conv2d", "conv2d_2"]


def test_add_of_different_shapes_names_block_and_both_paths():
    msg = _error(sequential, (8, 8, 2), Residual([Conv(4, 3)], name="r1"))
    assert "residual 'r1'" in msg
    assert "r1/main (6x6x4)" in msg and "r1/shortcut (8x8x2)" in msg


def test_concat_of_different_sizes():
    msg = _error(sequential, (8, 8, 2), Concat([Conv(4, 3)], [Conv(4, 1)]))
    assert "cannot concatenate concat/branch0 (6x6x4) and concat/branch1 (8x8x4)" in msg


def test_empty_main_path():
    msg = _error(sequential, (8, 8, 2), Residual([], [Conv(2, 1)]))
    assert "main path is empty" in msg


def test_flatten_in_one_branch_only():
    msg = _error(sequential, (8, 8, 2), Concat([Flatten(), Dense(4)], [Conv(2, 1)]))
    assert "concat/branch0 (4) is a vector but concat/branch1 (8x8x2) stays spatial" in msg


def test_unknown_key_inside_a_block_names_its_place():
    bad = {
        "input_shape": [8, 8, 1],
        "layers": [{"type": "residual", "main": [{"type": "conv", "filterz": 2}]}],
    }
    assert _error(from_dict, bad).startswith("layer 0/main/0 (conv): unknown key(s) filterz")


def test_text_errors_inside_blocks_name_the_path():
    msg = _error(load_spec, "in8x8x1-res(conv2x3same-conv2x9q)")
    assert "res/main/1" in msg and "not a layer token" in msg


def test_misaligned_merge_is_refused_by_the_report():
    # TensorFlow SAME at stride 2 on an even input pads (0, 1): offset 1 beside a 1x1 path's 0.
    spec = from_text("in16x16x4-res(conv8x3s2same-conv8x3same:linear|conv8x1s2:linear)")
    msg = _error(analyze, spec)
    assert "residual/main (stride 2x2, offset 1x1)" in msg
    assert "residual/shortcut (stride 2x2, offset 0x0)" in msg


def test_merge_takes_the_widest_path_and_sums_costs():
    spec = from_text("in16x16x1-cat(conv2x5same:linear|conv3x1:linear|)")
    report = analyze(spec)
    merge = report.layer("concat")
    assert merge.receptive_field == (5, 5) and merge.effective_padding == (2, 2)
    assert merge.output_shape == (16, 16, 6) and merge.params == 0
    assert report.total_params == (25 * 2 + 2) + (3 + 3)
    assert report.total_macs == 16 * 16 * (2 * 25 + 3)


def test_summary_rows_show_paths_and_merges():
    text = render(analyze(from_text(BASIC)))
    assert "residual/main/conv2d (Conv(8, 3x3))" in text
    assert "residual/shortcut/conv2d_2 (Conv(8, 1x1))" in text
    assert "residual (Add+relu)" in text
    md = render(analyze(from_text(BASIC)), "markdown")
    assert "| residual (Add+relu) |" in md
    rows = json.loads(render(analyze(from_text(BASIC)), "json"))["layers"]
    assert [(r["name"], r["path"], r["type"]) for r in rows] == [
        ("conv2d", "residual/main/conv2d", "conv"),
        ("conv2d_1", "residual/main/conv2d_1", "conv"),
        ("conv2d_2", "residual/shortcut/conv2d_2", "conv"),
        ("residual", "residual", "add"),
        ("global_average_pooling2d", "global_average_pooling2d", "global_avg_pool"),
        ("dense", "dense", "dense"),
    ]
    assert rows[3]["inputs"] == ["residual/main", "residual/shortcut"]


def test_chain_json_has_no_graph_keys():
    rows = json.loads(render(analyze(zoo.fashion_cnn()), "json"))["layers"]
    assert all("path" not in r and "inputs" not in r for r in rows)


def test_activation_layer_and_batch_norm_inside_blocks():
    spec = sequential(
        (8, 8, 2), Residual([Conv(2, 3, padding="same"), BatchNorm(), Activation("relu")])
    )
    report = analyze(spec)
    assert report.non_trainable_params == 4
    assert [r.type for r in report.layers] == ["conv", "batch_norm", "activation", "add"]


def test_spec_module_imports_neither_grammar_nor_zoo_nor_loading():
    """The spec room points one way: grammar, zoo and loading import spec, never back."""
    root = Path(__file__).resolve().parents[1] / "cnnjax"

    def imports(name: str) -> set[str]:
        tree = ast.parse((root / f"{name}.py").read_text())
        found = set()
        for node in ast.walk(tree):  # every import, at module level or inside a function
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        return found

    spec = imports("spec")
    for above in ("grammar", "zoo", "loading", "analysis", "summary"):
        assert f"cnnjax.{above}" not in spec
    assert not {"cnnjax.loading", "cnnjax.grammar"} & imports("zoo")
    assert "cnnjax.loading" not in imports("grammar")
