"""cnnjax.inspect and `cnnjax inspect`: shapes and files on small models and synthetic data,
the ERF-support law, and probes that recover a known linear structure. The ridge solver's
oracle tests (closed form, scikit-learn) are in tests/test_probe_oracle.py."""

from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnnjax import inspect, plots
from cnnjax.analysis import analyze, receptive_window
from cnnjax.grammar import from_text
from cnnjax.inspect.probes import _adaptive_matrix
from cnnjax.models import build_model, init_variables

TINY = "in12x12x1-conv4x3-pool2-conv4x3-flatten-dense4"


def _init(model, seed: int):
    """Initial variables, compiled as one program (eager Flax init compiles op by op)."""
    return jax.jit(lambda key: init_variables(model, key))(jax.random.key(seed))


@functools.cache
def _model(text: str, seed: int = 0):
    """(spec, model, variables), made once per test session (the tests never mutate them)."""
    spec = from_text(text)
    model = build_model(spec)
    return spec, model, _init(model, seed)


def _images(n: int, shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


# --------------------------------------------------------------------------- feature maps


def test_feature_maps_shapes_match_the_analytic_report(tmp_path):
    spec, model, variables = _model(TINY)
    maps = inspect.feature_maps(model, variables, _images(3, spec.input_shape))
    report = analyze(spec)
    assert list(maps) == [r.name for r in report.layers]
    for r in report.layers:
        assert maps[r.name].shape == (3, *r.output_shape)
    only = inspect.feature_maps(model, variables, _images(2, spec.input_shape), ["conv2d_1"])
    assert list(only) == ["conv2d_1"] and only["conv2d_1"].shape == (2, 3, 3, 4)


def test_feature_maps_accept_uint8_single_images_and_reject_wrong_shapes():
    _, model, variables = _model(TINY)
    u8 = (np.random.default_rng(0).random((12, 12)) * 255).astype(np.uint8)
    maps = inspect.feature_maps(model, variables, u8, "conv2d")
    assert maps["conv2d"].shape == (1, 10, 10, 4)
    with pytest.raises(ValueError, match="do not match"):
        inspect.feature_maps(model, variables, np.zeros((2, 10, 10, 1), np.float32))
    with pytest.raises(ValueError, match="unknown layer"):
        inspect.feature_maps(model, variables, u8, "conv9")


def test_feature_maps_batching_equals_one_batch():
    spec, model, variables = _model(TINY)
    x = _images(7, spec.input_shape)
    whole = inspect.feature_maps(model, variables, x, batch_size=64)
    pieces = inspect.feature_maps(model, variables, x, batch_size=3)
    for name in whole:
        np.testing.assert_allclose(whole[name], pieces[name], rtol=1e-5, atol=1e-6)


def test_feature_maps_and_filters_draw_as_pngs(tmp_path):
    from PIL import Image

    spec, model, variables = _model(TINY)
    x = _images(2, spec.input_shape)
    maps = inspect.feature_maps(model, variables, x)
    one = plots.save_feature_maps(maps, tmp_path / "maps.png", image=x[0])
    assert one == [tmp_path / "maps.png"]
    two = {k: maps[k] for k in ("conv2d", "dense")}
    per_layer = plots.save_feature_maps(two, tmp_path / "maps", image=x[0], index=1)
    assert [p.name for p in per_layer] == ["00_input.png", "01_conv2d.png", "02_dense.png"]
    first = inspect.first_conv(spec)
    assert first.name == "conv2d"
    filters = plots.save_filters(variables, first, tmp_path / "filters.png")
    for path in [*one, *per_layer, filters]:
        with Image.open(path) as im:
            assert im.format == "PNG" and np.asarray(im.convert("L")).std() > 5
    with pytest.raises(inspect.InspectError, match="no convolution"):
        inspect.first_conv(from_text("in4x4x1-flatten-dense2"))


# --------------------------------------------------------------------------- ERF


LAW_SPECS = [
    TINY,
    # SAME padding with stride, batch norm, dilation, SAME max pooling, average pooling
    "in24x24x1-conv3x3s2same-bn-conv3x3d2:tanh-pool3s2same-avgpool2-conv3x2s2",
    # non-square kernels and input, overlapping pooling, depthwise, 1x1 SAME
    "in15x13x2-conv3x5:linear-pool3s2-dw3-conv2x1same",
]


def _trained(model, variables, x, y, steps: int = 15):
    """A few Adam steps on (x, y): weights that are no longer the random init."""
    tx = optax.adam(1e-2)
    params = variables["params"]
    state = tx.init(params)
    rest = {k: v for k, v in variables.items() if k != "params"}

    @jax.jit
    def step(params, state):
        def loss(p):
            logits = model.apply({"params": p, **rest}, x, train=False)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        grads = jax.grad(loss)(params)
        updates, state = tx.update(grads, state)
        return optax.apply_updates(params, updates), state

    for _ in range(steps):
        params, state = step(params, state)
    return {"params": params, **rest}


@pytest.mark.parametrize(("text", "train"), [(t, i == 0) for i, t in enumerate(LAW_SPECS)])
def test_erf_support_never_leaves_the_analytic_window(text, train):
    spec = from_text(text + ("-flatten-dense3" if "dense" not in text else ""))
    model = build_model(spec)
    report = analyze(spec)
    x = _images(6, spec.input_shape, seed=1)
    y = jnp.asarray(np.arange(6) % 3)
    weights = [_init(model, 3)]
    if train:  # max pooling routes the gradient by the weights: check trained ones too
        weights.append(_trained(model, weights[0], jnp.asarray(x), y))
    spatial = [r for r in report.layers if not r.is_global]
    for variables in weights:
        for pick in (
            lambda h, w: (0, 0),
            lambda h, w: ((h - 1) // 2, (w - 1) // 2),
            lambda h, w: (h - 1, w - 1),
        ):
            units = {r.name: pick(*r.output_shape[:2]) for r in spatial}
            results = inspect.erf_per_layer(model, variables, x, units=units, batch_size=4)
            assert [res.layer for res in results] == [r.name for r in spatial]
            for r, res in zip(spatial, results, strict=True):
                top, bottom, left, right = receptive_window(r, *units[r.name])
                outside = res.map.copy()
                outside[max(top, 0) : bottom + 1, max(left, 0) : right + 1] = 0.0
                assert not outside.any(), (r.name, units[r.name])
                assert res.window == (top, bottom, left, right) and res.unit == units[r.name]
                if res.map.any():
                    assert res.size95 <= max(res.analytic_rf)
                    assert res.mass_in_window == pytest.approx(1.0, abs=1e-5)
                    assert float(res.map.sum()) == pytest.approx(1.0, abs=1e-5)
    if train:  # the one-program-per-network ERF equals the per-layer one
        last = spatial[-1]
        one = inspect.effective_receptive_field(model, weights[-1], x, last.name, unit=(0, 0))
        many = inspect.erf_per_layer(model, weights[-1], x, units={last.name: (0, 0)})[-1]
        np.testing.assert_allclose(one.map, many.map, rtol=1e-4, atol=1e-7)


def test_erf_of_a_positive_linear_net_fills_the_analytic_window():
    spec = from_text("in20x20x1-conv1x3:linear-avgpool2-conv1x3:linear")
    model = build_model(spec)
    variables = _init(model, 0)
    variables = jax.tree_util.tree_map(jnp.abs, variables)
    res = inspect.effective_receptive_field(model, variables, _images(2, spec.input_shape))
    assert res.layer == "conv2d_1" and res.analytic_rf == (8, 8)
    t, b, l, r = res.analytic_window
    support = np.argwhere(res.map > 0)
    assert (support.min(0) == (t, l)).all() and (support.max(0) == (b, r)).all()
    assert res.size95 <= 8 and res.size50 <= res.size95


def test_erf_global_layer_uses_the_class_logit_and_the_whole_image():
    spec, model, variables = _model(TINY)
    x = _images(5, spec.input_shape)
    pred = inspect.effective_receptive_field(model, variables, x, "flatten")
    assert pred.layer == "dense" and pred.unit == "predicted class logit"
    assert pred.analytic_window == (0, 11, 0, 11) and pred.analytic_rf == (12, 12)
    true = inspect.effective_receptive_field(model, variables, x, "dense", labels=[0, 1, 2, 0, 1])
    assert true.unit == "true class logit"
    unit = inspect.effective_receptive_field(model, variables, x, "dense", unit=2)
    assert unit.layer == "dense" and unit.unit == 2
    with pytest.raises(ValueError, match="outside"):
        inspect.effective_receptive_field(model, variables, x, "conv2d", unit=(10, 0))


def test_erf_padding_images_do_not_count():
    spec, model, variables = _model(TINY)
    x = _images(5, spec.input_shape)
    a = inspect.effective_receptive_field(model, variables, x, batch_size=4)
    b = inspect.effective_receptive_field(model, variables, x, batch_size=5)
    np.testing.assert_allclose(a.map, b.map, rtol=1e-5, atol=1e-7)
    assert a.num_images == 5


def test_centred_square_side():
    m = np.zeros((9, 9))
    m[4, 4] = 1.0
    assert inspect.centred_square_side(m, (8, 8)) == 1
    m[2:7, 2:7] = 1.0
    assert inspect.centred_square_side(m, (8, 8), 1.0) == 5
    assert inspect.centred_square_side(np.zeros((3, 3)), (2, 2)) == 0
    even = np.zeros((8, 8))
    even[2:6, 2:6] = 1.0
    assert inspect.centred_square_side(even, (7, 7), 1.0) == 4  # centre between pixels


def test_erf_results_draw_side_by_side(tmp_path):
    from PIL import Image

    spec, model, variables = _model(TINY)
    x = _images(4, spec.input_shape)
    results = [inspect.effective_receptive_field(model, variables, x) for _ in range(2)]
    path = plots.plot_erf(results, tmp_path / "erf.png", spec.input_shape, titles=["a", "b"])
    with Image.open(path) as im:
        assert im.size[0] > im.size[1] and np.asarray(im.convert("L")).std() > 5
    with pytest.raises(ValueError, match="titles"):
        plots.plot_erf(results, tmp_path / "x.png", spec.input_shape, titles=["a"])


# --------------------------------------------------------------------------- probes


def _templates(n: int, shape, classes: int, seed: int, noise: float = 0.6):
    """Images = class template + noise: a known linear structure of the input."""
    rng = np.random.default_rng(seed)
    templates = np.random.default_rng(99).random((classes, *shape), dtype=np.float32)
    labels = rng.integers(0, classes, n)
    x = templates[labels] + noise * rng.standard_normal((n, *shape)).astype(np.float32)
    return x.astype(np.float32), labels.astype(np.int32)


def test_probe_recovers_a_known_linear_structure():
    spec, model, variables = _model(TINY)
    xtr, ytr = _templates(600, spec.input_shape, 4, seed=0)
    xte, yte = _templates(300, spec.input_shape, 4, seed=1)
    probes = inspect.linear_probes(model, variables, xtr, ytr, xte, yte, layers=["input"])
    first = probes[0]
    assert first.values == 144 and first.values_fraction == 1.0 and first.reduction == "none"
    assert first.test_acc > 0.95
    # the same images with shuffled labels carry no information: near chance (0.25)
    rng = np.random.default_rng(5)
    noise = inspect.linear_probes(
        model, variables, xtr, rng.permutation(ytr), xte, yte, layers=["input"], ridge=1.0
    )
    assert noise[0].test_acc < 0.45
    assert json.dumps(first.__dict__) and first.ridge in inspect.RIDGE_GRID


def test_ridge_is_chosen_on_a_holdout_and_never_from_the_test_set():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 200)).astype(np.float32)  # d > n: the dual system
    y = (x[:, 0] > 0).astype(np.int32)
    tests = [rng.standard_normal((10, 200)).astype(np.float32) for _ in range(2)]
    runs = [inspect.fit_ridge_probe(x, y, t, np.zeros(10, np.int32)) for t in tests]
    assert runs[0][2] == runs[1][2] and runs[0][2] in inspect.RIDGE_GRID
    assert runs[0][0] == runs[1][0]  # same training fit whatever the test set
    assert inspect.fit_ridge_probe(x, y, x, y, ridge=0.5)[2] == 0.5
    with pytest.raises(ValueError, match="positive"):
        inspect.fit_ridge_probe(x, y, x, y, ridge=[0.0])


def test_probe_caps_the_features_and_says_how():
    spec, model, variables = _model("in16x16x1-conv8x3-flatten-dense40-dense2")
    x, y = _templates(60, spec.input_shape, 2, seed=0)
    probes = inspect.linear_probes(
        model, variables, x, y, x, y, max_features=300, pool_to=12, ridge=1e-3
    )
    by = {p.layer: p for p in probes}
    assert by["input"].reduction == "avg-pool 16x16 -> 12x12" and by["input"].features == 144
    assert by["conv2d"].values == 14 * 14 * 8 and by["conv2d"].features <= 300
    assert by["conv2d"].reduction == "avg-pool 14x14 -> 6x6" and by["conv2d"].features == 288
    assert by["flatten"].features == by["conv2d"].features  # pooled as its HxWxC input
    assert by["dense"].reduction == "none" and by["dense"].features == 40
    wide = inspect.linear_probes(model, variables, x, y, x, y, layers=["dense"], max_features=16)
    assert wide[0].reduction == "random projection 40 -> 16" and wide[0].features == 16
    table = inspect.probe_table(probes, analyze(spec))
    assert "| conv2d | 14x14x8 | 1,568 (6.12x) | 3x3 |" in table


def test_adaptive_pool_matrix_averages_every_cell():
    a = _adaptive_matrix(7, 3)
    np.testing.assert_allclose(a.sum(axis=1), 1.0)
    assert (a > 0).any(axis=0).all()


def test_drawing_helpers_that_moved_to_plots_say_where():
    with pytest.raises(AttributeError, match=r"moved to cnnjax.plots: use cnnjax.plots.plot_erf"):
        inspect.save_erf  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        inspect.nothing  # noqa: B018


# --------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    """A Keras-style .npz of 12x12 template images in 3 classes."""
    path = tmp_path_factory.mktemp("data") / "toy.npz"
    xtr, ytr = _templates(600, (12, 12), 4, seed=0, noise=0.3)  # the shapes of the probe test,
    xte, yte = _templates(300, (12, 12), 4, seed=1, noise=0.3)  # so compiled code is reused
    np.savez(
        path,
        x_train=np.clip(xtr, 0, 1),
        y_train=ytr,
        x_test=np.clip(xte, 0, 1),
        y_test=yte,
    )
    return path


def test_cli_all_on_a_spec(tmp_path, npz, capsys):
    from cnnjax.cli import main

    out = tmp_path / "out"
    args = ["--dataset", str(npz), "--out", str(out), "--images", "8", "--ridge", "0.01,1"]
    rc = main(["inspect", "all", TINY, *args])
    assert rc == 0
    printed = capsys.readouterr().out.split()
    names = {p.split("/")[-1] for p in printed}
    assert {
        "probes.md",
        "probes.json",
        "values_vs_probe.png",
        "feature_maps.png",
        "filters.png",
        "erf.png",
        "erf_layers.png",
        "rf_growth.png",
        "windows.png",
        "erf.json",
        "inspect.md",
    } <= names
    assert "curves.png" not in names  # a spec has no history
    probes = json.loads((out / "probes.json").read_text())
    layers = [p["layer"] for p in probes["probes"]]
    assert layers == ["input", *(r.name for r in analyze(from_text(TINY)).layers)]
    assert probes["weights"] == "random init" and probes["probes"][0]["test_acc"] > 0.9
    assert all(0.0 <= p["test_acc"] <= 1.0 for p in probes["probes"])
    erf = json.loads((out / "erf.json").read_text())
    assert list(erf["main"]) == ["random init"] and erf["main"]["random init"]["size95"] <= 8
    report = (out / "inspect.md").read_text()
    assert "## Linear probes" in report and "![ERF](erf.png)" in report


def test_cli_errors_are_one_line(tmp_path, npz, capsys):
    from cnnjax.cli import main

    assert main(["inspect", "curves", TINY, "--out", str(tmp_path)]) == 2
    assert "trained run directory" in capsys.readouterr().err
    assert main(["inspect", "probe", TINY, "--dataset", "noise", "--out", str(tmp_path)]) == 2
    assert "labelled data" in capsys.readouterr().err
    assert main(["inspect", "erf", TINY, "--layer", "conv9", "--out", str(tmp_path)]) == 2
    assert "not a layer" in capsys.readouterr().err
    (tmp_path / "notrun").mkdir()
    assert main(["inspect", "maps", str(tmp_path / "notrun")]) == 2
    assert "not a cnnjax run directory" in capsys.readouterr().err


def test_cli_maps_and_erf_on_noise(tmp_path, capsys):
    from cnnjax.cli import main

    rc = main(
        [
            "inspect",
            "erf",
            "in10x10x3-conv2x3-pool2-flatten-dense2",
            "--dataset",
            "noise",
            "--images",
            "4",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    assert (tmp_path / "erf.png").is_file() and (tmp_path / "windows.png").is_file()


def test_cli_on_a_trained_run_directory(tmp_path, npz, capsys):
    from cnnjax.cli import main
    from cnnjax.data.npz import load_npz
    from cnnjax.train import FitConfig, fit

    train, test = load_npz(npz)
    run_dir = tmp_path / "run"
    fit(
        from_text(TINY),
        train,
        validation=test,
        config=FitConfig(epochs=2, batch_size=40),  # a multiple of the 8 test devices
        run_dir=run_dir,
        extra_config={"dataset": str(npz)},
        progress=False,
    )
    out = tmp_path / "inspect"
    for what in ("curves", "erf"):  # `all` on a spec is tested above; here: what a run adds
        assert main(["inspect", what, str(run_dir), "--out", str(out), "--images", "8"]) == 0
    assert (out / "curves.png").is_file()
    erf = json.loads((out / "erf.json").read_text())
    assert list(erf["main"]) == ["random init", "trained"] and erf["dataset"] == str(npz)
    assert "curves.png" in capsys.readouterr().out
