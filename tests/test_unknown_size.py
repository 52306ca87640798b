"""Unknown input resolution (`--input ?x?x3`, `"input_shape": [null, null, 3]`): receptive
field and effective stride as at any known size, None where a number needs the size, and one
clear error where a layer or the Flax model cannot do without it."""

from __future__ import annotations

import json

import pytest

from cnnjax import zoo
from cnnjax.analysis import analyze
from cnnjax.cli import main
from cnnjax.grammar import from_text
from cnnjax.spec import (
    Conv,
    Dense,
    Flatten,
    GlobalAvgPool,
    NetSpec,
    Residual,
    SpecError,
    from_dict,
    from_json,
    parse_shape,
    sequential,
)

UNKNOWN = (None, None, 3)


def _summary_json(capsys, *args: str) -> dict:
    assert main(["summary", *args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name", ["resnet50", "resnet_v1_50", "inception_v3"])
def test_cli_unknown_size_keeps_field_and_stride_of_every_row(capsys, name):
    known = analyze(zoo.get(name).with_input((224, 224, 3)))
    data = _summary_json(capsys, name, "--input", "?x?x3")
    assert data["input_shape"] == [None, None, 3] and data["input_values"] is None
    assert len(data["layers"]) == len(known.layers)
    for row, ref in zip(data["layers"], known.layers, strict=True):
        assert row["name"] == ref.name and row["params"] == ref.params
        if ref.is_global:
            assert row["effective_stride"] is None
            continue
        assert row["receptive_field"] == list(ref.receptive_field), ref.name
        assert row["effective_stride"] == list(ref.effective_stride), ref.name
        assert row["output_shape"][:2] == [None, None]
        assert row["output_shape"][2] == ref.output_shape[2]
        assert row["values"] is None
        assert row["macs"] == (None if ref.macs else 0)  # a layer without MACs has none
        assert row["effective_padding_end"] is None
    assert data["total_params"] == known.total_params
    assert data["non_trainable_params"] == known.non_trainable_params
    assert data["total_macs"] is None and data["total_flops"] is None


def test_resnet_v1_50_last_block_and_unknown_same_padding():
    report = analyze(zoo.get("resnet_v1_50").with_input(UNKNOWN))
    last = [r for r in report.layers if not r.is_global][-1]
    assert last.receptive_field == (483, 483) and last.effective_stride == (32, 32)
    assert last.effective_padding is None  # 239 at 224x224: SAME with stride 2 on the way


def test_text_table_prints_question_marks(capsys):
    assert main(["summary", "resnet_v1_50", "--input", "?x?x3"]) == 0
    out = capsys.readouterr().out
    assert "input (None, ?, ?, 3), size unknown" in out
    assert "(None, ?, ?, 64)" in out
    assert "each sees a 483x483 window of the ?x? input" in out
    assert "Total params: 25,610,152" in out
    assert main(["summary", "resnet_v1_50", "--input", "?x?x3", "--format", "markdown"]) == 0
    md = capsys.readouterr().out
    assert "| conv2d (Conv(64, 7x7)) | (None, ?, ?, 64) | 9,408 | ? | 7x7 | 2x2 | 3,3 | ? |" in md


def _conv_stack(padding: str, stride: int, shape=UNKNOWN) -> NetSpec:
    return sequential(
        shape,
        Conv(8, 3, strides=stride, padding=padding),
        Conv(8, 5, strides=stride, padding=padding),
        Conv(8, 3, padding=padding),
    )


@pytest.mark.parametrize("padding", ["same", "valid", ((1, 1), (2, 2))])
@pytest.mark.parametrize("stride", [1, 2])
def test_effective_padding_is_none_only_where_it_depends_on_the_size(padding, stride):
    unknown = analyze(_conv_stack(padding, stride))
    at_sizes = [analyze(_conv_stack(padding, stride, (n, n, 3))) for n in (31, 32, 57)]
    for i, row in enumerate(unknown.layers):
        known = {r.layers[i].effective_padding for r in at_sizes}
        assert row.receptive_field == at_sizes[0].layers[i].receptive_field
        assert row.effective_stride == at_sizes[0].layers[i].effective_stride
        depends = padding == "same" and stride > 1
        if depends:
            assert row.effective_padding is None
        else:  # the same at every size, and reported
            assert known == {row.effective_padding}
    if padding == "same" and stride > 1:
        assert len({r.layers[-1].effective_padding for r in at_sizes}) > 1  # it does depend


def test_same_stride_one_pads_half_the_kernel():
    report = analyze(_conv_stack("same", 1))
    assert [r.effective_padding for r in report.layers] == [(1, 1), (3, 3), (4, 4)]


def test_one_unknown_axis_keeps_the_other():
    report = analyze(_conv_stack("valid", 2, (None, 40, 3)))
    ref = analyze(_conv_stack("valid", 2, (40, 40, 3)))
    for row, known in zip(report.layers, ref.layers, strict=True):
        assert row.output_shape == (None, known.output_shape[1], 8)
        assert row.values is None


def test_dense_after_flatten_is_refused_naming_it(capsys):
    with pytest.raises(SpecError, match=r"layer 3 \(Dense\(10\)\).*input size"):
        from_text("in?x?x1-conv8x3-pool2-flatten-dense10")
    assert main(["summary", "in28x28x1-conv8x3-pool2-flatten-dense10", "--input", "?x?x1"]) == 2
    err = capsys.readouterr().err
    assert "Dense(10)" in err and "give the input size" in err


def test_batch_norm_after_flatten_is_refused_too():
    with pytest.raises(SpecError, match=r"layer 2 \(BatchNorm\)"):
        from_text("in?x?x1-conv8x3-flatten-bn")


def test_flatten_alone_and_dense_after_gap_are_fine():
    flat = from_text("in?x?x1-conv8x3-flatten")
    assert flat.output_shape == (None,)
    assert analyze(flat).layers[-1].values is None
    gap = from_text("in?x?x1-conv8x3s2same-conv8x3-gap-dense10")
    report = analyze(gap)
    assert report.output_shape == (10,)
    assert report.total_params == analyze(gap.with_input((28, 28, 1))).total_params
    dense = report.layers[-1]
    assert dense.values == 10 and dense.values_fraction is None and dense.macs == 80


def test_json_null_sizes_round_trip():
    spec = from_json(
        '{"input_shape": [null, null, 3], "layers": ['
        '{"type": "conv", "filters": 4, "kernel": 3}, {"type": "global_avg_pool"}, '
        '{"type": "dense", "units": 2}]}'
    )
    assert spec.input_shape == UNKNOWN and not spec.size_known
    assert json.loads(spec.to_json())["input_shape"] == [None, None, 3]
    assert from_json(spec.to_json()) == spec == from_dict(spec.to_dict())
    assert spec.to_text().startswith("in?x?x3-")
    assert from_text(spec.to_text()) == spec


@pytest.mark.parametrize("bad", [[None, None, None], [0, None, 3], [None, 2]])
def test_channels_must_be_known_and_sizes_positive(bad):
    with pytest.raises(SpecError, match="input_shape"):
        from_dict({"input_shape": bad, "layers": []})


def test_parse_shape_reads_question_marks():
    assert parse_shape("?x?x3") == UNKNOWN
    assert parse_shape("224x?x3") == (224, None, 3)
    with pytest.raises(SpecError, match=r"H and W may be \?"):
        parse_shape("?x?x?")


def test_merge_of_different_strides_is_refused_without_the_size():
    block = Residual(main=[Conv(3, 3, strides=2, padding="same")])  # identity shortcut
    with pytest.raises(SpecError, match=r"stride 2x2.*stride 1x1"):
        sequential(UNKNOWN, block)


def test_the_model_needs_the_size():
    from cnnjax.models import build_model

    spec = sequential(UNKNOWN, Conv(4, 3), GlobalAvgPool(), Dense(2))
    with pytest.raises(SpecError, match=r"the Flax model needs the input size.*--input"):
        build_model(spec)
    build_model(spec.with_input((8, 8, 3)))  # the same layers at a known size build


def test_fit_and_trace_need_the_size():
    import numpy as np

    from cnnjax.trace import TraceError, analyze_module
    from cnnjax.train import fit

    spec = sequential(UNKNOWN, Conv(4, 3), Flatten())
    images = np.zeros((4, 8, 8, 3), np.float32)
    with pytest.raises(SpecError, match="input size"):
        fit(spec, (images, np.zeros(4, np.int32)))
    import flax.linen as nn

    with pytest.raises(TraceError, match="needs the input size, got \\?x\\?x3"):
        analyze_module(nn.Dense(2), UNKNOWN)


def test_cli_train_and_inspect_refuse_before_reading_data(capsys):
    assert main(["train", "--model", "in?x?x1-conv8x3-gap-dense10", "--epochs", "1"]) == 2
    assert "training needs the input size" in capsys.readouterr().err
    assert main(["inspect", "maps", "chollet_gap", "--input", "?x?x1"]) == 2
    assert "inspection needs the input size" in capsys.readouterr().err
