"""cnnjax.plots: every figure is a readable, non-blank PNG; the inputs they accept."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from cnnjax import plots, zoo
from cnnjax.analysis import analyze
from cnnjax.inspect import ErfResult, ProbeResult
from cnnjax.plots.receptive import _sample_units


def _check_png(path, min_size=(300, 200)) -> np.ndarray:
    """Readable by PIL, big enough, and not blank (pixel variance)."""
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size[0] >= min_size[0] and im.size[1] >= min_size[1], im.size
        grey = np.asarray(im.convert("L"), np.float32)
    assert grey.std() > 10.0, "figure looks blank"
    return grey


def _history(epochs: int, seeds: int, val: bool = True) -> list[dict]:
    def metric(base: float, slope: float, e: int):
        values = [base + slope * e + 0.01 * s for s in range(seeds)]
        return values if seeds > 1 else values[0]

    records = []
    for e in range(1, epochs + 1):
        r = {
            "epoch": e,
            "loss": metric(1.0, -0.1, e),
            "accuracy": metric(0.6, 0.05, e),
            "seconds": 1.0,
            "images_per_second": 100.0,
        }
        if val:
            r.update(val_loss=metric(1.1, -0.08, e), val_accuracy=metric(0.58, 0.04, e))
        records.append(r)
    return records


@pytest.mark.parametrize(
    "history",
    [
        _history(5, 3),  # k seeds: mean and band
        _history(1, 1),  # one epoch: points with error bars
        _history(4, 1, val=False),  # no validation
        {"a": _history(3, 2), "b": _history(3, 2)},  # named runs
        [_history(3, 1), _history(3, 1)],  # a list of runs
    ],
)
def test_plot_history(tmp_path, history):
    path = plots.plot_history(history, tmp_path / "curves.png", title="toy")
    assert path == tmp_path / "curves.png"
    _check_png(path)


def test_plot_history_accepts_a_history_object(tmp_path):
    class History:  # the shape of cnnjax.train.History
        records = _history(2, 1)

    _check_png(plots.plot_history(History(), tmp_path / "c.png"))
    with pytest.raises(ValueError, match="no history"):
        plots.plot_history([], tmp_path / "empty.png")


def test_plot_values_vs_probe(tmp_path):
    report = analyze(zoo.fashion_cnn())
    probes = [ProbeResult("input", (28, 28, 1), 784, 1.0, 784, "none", 0.9, 0.84, 1e-3, 0.1)]
    for i, r in enumerate(report.layers):
        probes.append(
            ProbeResult(
                r.name,
                r.output_shape,
                r.values,
                r.values_fraction,
                min(r.values, 8192),
                "none" if r.values <= 8192 else "avg-pool 26x26 -> 13x13",
                0.9 + i / 100,
                0.85 + i / 100,
                1e-2,
                0.1,
            )
        )
    _check_png(plots.plot_values_vs_probe(probes, tmp_path / "vp.png", chance=0.1))
    with pytest.raises(ValueError):
        plots.plot_values_vs_probe([], tmp_path / "none.png")


def test_plot_receptive_field_growth(tmp_path):
    report = analyze(zoo.chollet_mnist())
    measured = {
        "95% of mass, trained": {"conv2d": 3, "conv2d_1": 7, "conv2d_2": 12},
        "50% of mass, trained": {"conv2d": 2, "conv2d_1": 4, "conv2d_2": 7},
    }
    _check_png(plots.plot_receptive_field_growth(report, tmp_path / "rf.png", measured=measured))
    several = {"pool": report, "no pool": analyze(zoo.chollet_nopool())}
    _check_png(plots.plot_receptive_field_growth(several, tmp_path / "rf2.png"))


def test_draw_receptive_windows(tmp_path):
    report = analyze(zoo.chollet_mnist())
    image = np.random.default_rng(0).random((28, 28, 1)).astype(np.float32)
    _check_png(plots.draw_receptive_windows(image, report.layer("conv2d_2"), tmp_path / "w.png"))
    # a large map is sampled (3 x 3 units); SAME padding makes windows pass the border
    same = analyze(zoo.avgpool_example())
    _check_png(
        plots.draw_receptive_windows(image[..., 0], same.layer("conv2d"), tmp_path / "s.png")
    )
    with pytest.raises(ValueError, match="global"):
        plots.draw_receptive_windows(image, report.layer("flatten"), tmp_path / "g.png")


def test_sample_units():
    assert len(_sample_units(3, 3)) == 9
    assert _sample_units(26, 26) == [(i, j) for i in (0, 12, 25) for j in (0, 12, 25)]


def _erf(shape=(28, 28), size=9) -> ErfResult:
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    m = np.exp(-((yy - 13) ** 2 + (xx - 13) ** 2) / 8.0)
    m[np.abs(yy - 13) > 8] = 0
    m[np.abs(xx - 13) > 8] = 0
    m = (m / m.sum()).astype(np.float32)
    return ErfResult(
        m, "conv2d_2", (1, 1), (18, 18), (4, 21, 4, 21), (4, 21, 4, 21), size, 4, 1.0, 8
    )


def test_plot_erf(tmp_path):
    grey = _check_png(plots.plot_erf(_erf(), tmp_path / "one.png", (28, 28, 1)))
    two = _check_png(
        plots.plot_erf([_erf(), _erf()], tmp_path / "two.png", (28, 28, 1), titles=["a", "b"])
    )
    assert two.shape[1] > grey.shape[1]  # side by side
    for unit in (2, "predicted class logit"):  # a vector unit, a class logit
        _check_png(plots.plot_erf(replace(_erf(), unit=unit), tmp_path / "u.png", (28, 28, 1)))
    with pytest.raises(ValueError, match="does not match"):
        plots.plot_erf(_erf(), tmp_path / "bad.png", (20, 20, 1))


def test_plot_feature_maps_and_filters(tmp_path):
    rng = np.random.default_rng(0)
    maps = {
        "conv2d": rng.random((2, 10, 10, 70)).astype(np.float32),  # > max_channels
        "dense": rng.standard_normal((2, 12)).astype(np.float32),
        "flatten": rng.random((2, 300)).astype(np.float32),
    }
    _check_png(
        plots.plot_feature_maps(maps, tmp_path / "fm.png", image=rng.random((10, 10, 3)), index=1)
    )
    _check_png(plots.plot_filters(rng.standard_normal((3, 3, 1, 20)), tmp_path / "f1.png"))
    _check_png(plots.plot_filters(rng.standard_normal((5, 5, 3, 8)), tmp_path / "f3.png"))
    with pytest.raises(ValueError, match="nothing"):
        plots.plot_feature_maps({}, tmp_path / "x.png")


def test_pyplot_jax_and_inspect_are_never_imported():
    """The figures use the Agg canvas directly, so a user's pyplot backend is left alone; and
    plots sit at the side: drawing loads neither JAX nor cnnjax.inspect."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from cnnjax import plots\n"
        "plots.plot_filters(np.ones((3, 3, 1, 2)), sys.argv[1])\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "assert 'jax' not in sys.modules and 'cnnjax.inspect' not in sys.modules\n"
    )
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-c", code, f"{tmp}/f.png"], check=True)
