"""benchmarks/side_by_side.py in quick mode: the cnnjax worker on synthetic data, peers absent."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "side_by_side.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("side_by_side", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["side_by_side"] = module  # dataclasses look their module up by name
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("side_by_side", None)


def test_time_to_target(bench) -> None:
    assert bench._time_to_target([2.0, 1.0, 1.0], [0.85, 0.92, 0.93]) == 3.0
    assert bench._time_to_target([2.0, 1.0], [0.85, 0.90]) is None


def test_quick_mode_writes_the_table(bench, tmp_path: Path, monkeypatch) -> None:
    # The peers count as not installed whether or not this machine has them (CI has not).
    real = bench._missing_modules
    monkeypatch.setattr(
        bench, "_missing_modules", lambda fw: real(fw) if fw == "cnnjax" else ["(test)"]
    )
    # The worker is a CPU process of its own: not the fake devices of conftest.py.
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    argv = [
        "--quick",
        "--synthetic",
        "--train-limit", "256",
        "--test-limit", "128",
        "--models", "fashion_cnn",
        "--timeout", "120",
        "--out", str(tmp_path),
    ]  # fmt: skip
    assert bench.main(argv) == 0

    report = json.loads((tmp_path / "side_by_side.json").read_text())
    assert report["quick"] and report["settings"]["epochs"] == 2
    assert report["data"]["train_examples"] == 256
    results = report["models"]["fashion_cnn"]["results"]
    assert set(results) == {"cnnjax", "torch", "keras-tf", "keras-jax"}
    for peer in ("torch", "keras-tf", "keras-jax"):
        assert results[peer]["status"] == "unavailable"
    r = results["cnnjax"]
    assert r["status"] == "ok", r
    assert r["params"] == 113_386
    assert r["images_per_second_median"] > 0 and r["first_epoch_seconds"] > 0
    assert 0.0 <= r["final_test_accuracy"] <= 1.0
    assert len(r["per_epoch_median"]["test_accuracy"]) == 2
    assert r["peak_rss_mib"] > 0
    assert r["versions"]["cnnjax"] and r["versions"]["jax"]

    md = (tmp_path / "side_by_side.md").read_text()
    assert "## fashion_cnn (113,386 parameters)" in md
    assert md.count("not installed") == 3
    assert "| cnnjax (JAX/Flax) | cnnjax " in md
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries


def _layer_list_params(layers, shape) -> int:
    """Trainable parameters of a side-by-side layer list, counted as the peers build it."""
    h, w, c = shape
    total = 0

    def conv(cin, f, k, st, pad, bias):
        nonlocal total
        total += k * k * cin * f + (f if bias else 0)

    for layer in layers:
        kind = layer[0]
        if kind == "conv":
            _, f, k, st, pad, bias, _act = layer
            conv(c, f, k, st, pad, bias)
            h, w, c = (h + 2 * pad - k) // st + 1, (w + 2 * pad - k) // st + 1, f
        elif kind == "block":
            _, f, st, project = layer
            conv(c, f, 3, st, 1, False)
            conv(f, f, 3, 1, 1, False)
            total += 2 * 2 * f  # two batch norms: scale and offset
            if project:
                conv(c, f, 1, st, 0, False)
                total += 2 * f
            h, w, c = (h - 1) // st + 1, (w - 1) // st + 1, f
        elif kind == "res":
            conv(c, c, 3, 1, 1, True)
            conv(c, c, 3, 1, 1, True)
        elif kind == "pool":
            h, w = h // layer[1], w // layer[1]
        elif kind == "bn":
            total += 2 * c
        elif kind == "flatten":
            h, w, c = 1, 1, h * w * c
        elif kind == "gap":
            h, w = 1, 1
        elif kind == "dense":
            total += h * w * c * layer[1] + layer[1]
            h, w, c = 1, 1, layer[1]
    return total


def test_every_row_is_the_cnnjax_network(bench) -> None:
    """The peers' layer list of every row has the parameters of its cnnjax spec, and the spec
    reads the row's data set's image shape."""
    from cnnjax.analysis import analyze
    from cnnjax.loading import load_spec

    assert {"chollet_mnist", "fashion_cnn_nopool", "pool224", "nopool224", "resnet_small"} <= set(
        bench.MODELS
    )
    from cnnjax.experiments import erf_depth

    for name, build in (("plain13", erf_depth.plain), ("residual13", erf_depth.residual)):
        same = dataclasses.replace(load_spec(bench.MODELS[name].spec), name=build(13).name)
        assert same == build(13), f"{name} is not erf_depth's network"
    for name, model in bench.MODELS.items():
        spec = load_spec(model.spec)
        shape = bench.DATASETS[model.data][0]
        assert tuple(spec.input_shape) == shape, name
        report = analyze(spec)
        assert report.trainable_params == model.params, name
        assert _layer_list_params(model.layers, shape) == model.params, name
