"""Every experiment in --quick mode: its run directory, analytic numbers and figures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from cnnjax.experiments import run_experiment

FMNIST = Path("/usr/share/datasets/fashion-mnist")
pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(
        not FMNIST.is_dir() and not os.environ.get("CNNJAX_DATA_DIR"),
        reason="needs Fashion-MNIST: apt-get install dataset-fashion-mnist",
    ),
]


def _run(name, tmp_path):
    report = run_experiment(name, "quick", tmp_path / name)
    out = report.parent
    for f in ("config.json", "results.json", "report.md"):
        assert (out / f).is_file(), f
    results = json.loads((out / "results.json").read_text())
    text = report.read_text()
    assert "## Answer" in text and "95% CI" in text
    figures = sorted((out / "figures").glob("*.png"))
    for fig in figures:
        with Image.open(fig) as im:
            assert im.size[0] > 100 and im.size[1] > 100
    return results, text, {f.name for f in figures}


def _variant(results, name):
    return next(v for v in results["variants"] if v["name"] == name)


def test_pooling_information(tmp_path):
    results, _, figures = _run("pooling_information", tmp_path)
    assert _variant(results, "fashion_cnn")["analysis"]["total_params"] == 113_386
    assert _variant(results, "fashion_dense")["analysis"]["total_params"] == 101_770
    probes = {p["layer"]: p for p in results["probes"]["fashion_cnn"]}
    assert probes["input"]["values"] == 784 and probes["max_pooling2d_1"]["values"] == 800
    assert 0.0 <= probes["max_pooling2d_1"]["test_acc"] <= 1.0
    assert {"values_vs_probe.png", "curves.png"} <= figures


def test_small_feature_maps(tmp_path):
    results, text, figures = _run("small_feature_maps", tmp_path)
    layer = next(r for r in results["variant"]["analysis"]["layers"] if r["name"] == "conv2d_2")
    assert layer["output_shape"] == [3, 3, 64] and layer["params"] == 36_928
    assert layer["receptive_field"] == [18, 18]
    assert len(results["windows"]) == 9
    assert "18x18" in text
    assert {"windows.png", "feature_maps.png", "erf.png", "curves.png"} <= figures


def test_no_pooling(tmp_path):
    results, _, figures = _run("no_pooling", tmp_path)
    nopool = _variant(results, "chollet_nopool")["analysis"]
    conv = next(r for r in nopool["layers"] if r["name"] == "conv2d_2")
    assert conv["receptive_field"] == [7, 7] and conv["values"] == 30_976
    dense = next(r for r in nopool["layers"] if r["name"] == "dense")
    assert dense["params"] == 15_860_224
    assert "erf.png" in figures


def test_kernel_vs_filters(tmp_path):
    results, _, figures = _run("kernel_vs_filters", tmp_path)
    assert {"filters_first_3x3x64.png", "filters_first_7x7x32.png", "erf.png"} <= figures
    assert results["erf"]["first_3x3x64"]["analytic_rf"] == [10, 10]
    assert _variant(results, "first_3x3x64")["analysis"]["layers"][0]["params"] == 640
    assert _variant(results, "first_7x7x32")["analysis"]["layers"][0]["params"] == 1_600
    block = _variant(results, "block_3x3x3")["analysis"]["layers"]
    assert block[3]["receptive_field"] == [9, 9]  # first 3x3 + a block with a 7x7 field


@pytest.mark.slow  # 224x224x3 networks: ~40 s; make test-slow
def test_pooling_224(tmp_path):
    results, _, figures = _run("pooling_224", tmp_path)
    assert _variant(results, "pool224")["analysis"]["total_params"] == 8_861
    assert _variant(results, "nopool224")["analysis"]["total_params"] == 477_341
    assert "curves.png" in figures
    assert "stand-in" in results["data"]


def test_erf_depth(tmp_path):
    results, text, figures = _run("erf_depth", tmp_path)
    rows = {r["network"]: r for r in results["rows"]}
    assert set(rows) == {"plain3", "residual3", "plain7", "residual7"}
    for r in rows.values():
        assert r["theoretical_rf"] == 1 + 2 * r["depth"]  # 3x3 convs, stride 1
        assert 1 <= r["erf95_init"] <= r["theoretical_rf"]
        assert 1 <= r["erf95_trained"] <= r["theoretical_rf"]
    assert rows["plain7"]["params"] == rows["residual7"]["params"]  # the same convolutions
    assert "15x15" in text
    assert {"erf_depth.png", "erf_maps.png"} <= figures
