"""The zoo reproduces the seeds' published Keras numbers exactly."""

from __future__ import annotations

import pytest

from cnnjax import zoo
from cnnjax.analysis import analyze

PINNED = {
    "fashion_cnn": 113_386,
    "chollet_mnist": 93_322,
    "chollet_nopool_base": 55_744,
    "first_conv3x3x64": 640,
    "first_conv7x7x32": 1_600,
    "pool224": 8_861,
    "nopool224": 477_341,
    "vgg16": 138_357_544,
    "alexnet": 62_378_344,
}


@pytest.mark.parametrize(("name", "params"), PINNED.items())
def test_total_params_pinned(name, params):
    assert analyze(zoo.get(name)).total_params == params


def test_seed001_last_conv_is_3x3x64_with_36928_params_and_sees_18x18():
    report = analyze(zoo.chollet_mnist())
    last_conv = report.layer("conv2d_2")
    assert last_conv.output_shape == (3, 3, 64)
    assert last_conv.params == 36_928
    assert last_conv.receptive_field == (18, 18)
    assert last_conv.effective_stride == (4, 4)


def test_seed002_no_pooling_receptive_field_7_and_head_explodes():
    base = analyze(zoo.chollet_nopool_base())
    assert base.layers[-1].receptive_field == (7, 7)
    assert base.layers[-1].output_shape == (22, 22, 64)
    assert base.layers[-1].values == 30_976
    full = analyze(zoo.chollet_nopool())
    assert full.layer("dense").params == 30_976 * 512 + 512 == 15_860_224


def test_seed004_shapes_match_the_published_summary():
    report = analyze(zoo.nopool224())
    assert [r.output_shape for r in report.layers] == [
        (222, 222, 10),
        (220, 220, 10),
        (218, 218, 10),
        (475_240,),
        (1,),
    ]
    assert [r.params for r in report.layers] == [280, 910, 910, 0, 475_241]


def test_vgg16_receptive_field_is_212():
    report = analyze(zoo.vgg16())
    assert report.layers[-5].receptive_field == (212, 212)  # the last pooling layer
    assert report.layers[-5].effective_stride == (32, 32)


def test_every_zoo_entry_builds_and_describes_itself():
    for name in zoo.ZOO:
        spec = zoo.get(name)
        assert spec.name == name
        assert zoo.describe(name)


# --------------------------------------------------------------------------- graphs


def _last_spatial(report):
    return [r for r in report.layers if not r.is_global][-1]


def test_resnet50_as_keras_applications():
    report = analyze(zoo.resnet50())
    assert report.total_params == 25_636_712
    assert report.non_trainable_params == 53_120


def test_resnet_v1_50_receptive_field_as_published():
    """google-research/receptive_field's table: ResNet-50 v1, 483 / 32 / 239 at 224x224."""
    last = _last_spatial(analyze(zoo.resnet_v1_50()))
    assert last.type == "add" and last.output_shape == (7, 7, 2048)
    assert last.receptive_field == (483, 483)
    assert last.effective_stride == (32, 32)
    assert last.effective_padding == (239, 239)


def test_resnet18_as_torchvision():
    """torchvision counts parameters only (BN running statistics are buffers)."""
    assert analyze(zoo.resnet18()).trainable_params == 11_689_512


def test_inception_v3_receptive_field_as_published():
    last = analyze(zoo.inception_v3()).layer("mixed_7c")
    assert last.type == "concatenate" and last.output_shape == (8, 8, 2048)
    assert last.receptive_field == (1311, 1311)
    assert last.effective_stride == (32, 32)
    assert last.effective_padding == (618, 618)


def test_resnet_small_fits_fashion_mnist():
    report = analyze(zoo.resnet_small())
    assert report.input_shape == (28, 28, 1) and report.output_shape == (10,)
    assert sum(r.type == "add" for r in report.layers) == 3
