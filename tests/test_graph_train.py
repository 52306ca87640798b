"""A graph spec (a residual block with batch norm and a concat block) through the whole engine:
k seeds, checkpoints and an exact resume, data parallelism, evaluation and inspection."""

from __future__ import annotations

import io

import jax
import numpy as np

from cnnjax import inspect
from cnnjax.grammar import from_text
from cnnjax.models import build_model
from cnnjax.train import FitConfig, evaluate, fit, load_run
from tests.test_train import leaves, synthetic

GRAPH = from_text(
    "in12x12x1-conv4x3p1-res(conv4x3p1-bn-relu-conv4x3p1:linear|):relu"
    "-cat(conv2x1|conv2x3p1)-pool2-flatten-dense3"
)


def _fit(**kw):
    config = kw.pop("config")
    return fit(
        GRAPH,
        synthetic(192),
        validation=synthetic(64, seed=1),
        config=config,
        progress=False,
        log=io.StringIO(),
        **kw,
    )


def test_graph_spec_trains_with_seeds_checkpoints_and_exact_resume(tmp_path):
    whole = _fit(config=FitConfig(epochs=2, batch_size=32, seeds=2))
    run = tmp_path / "run"
    _fit(config=FitConfig(epochs=1, batch_size=32, seeds=2), run_dir=run)
    resumed = _fit(config=FitConfig(epochs=2, batch_size=32, seeds=2), run_dir=run, resume=True)
    for a, b in zip(leaves(whole.state), leaves(resumed.state), strict=True):
        np.testing.assert_array_equal(a, b)  # bit-identical to the uninterrupted run
    loaded = load_run(run)
    assert loaded.seeds == 2 and len(loaded.history) == 2
    metrics = evaluate(GRAPH, loaded.variables_of(1), synthetic(64, seed=1))
    assert metrics["accuracy"] == resumed.history.records[-1]["val_accuracy"][1]


def test_graph_spec_on_two_devices_equals_one_device():
    runs = {n: _fit(config=FitConfig(epochs=1, batch_size=32, seed=3, devices=n)) for n in (1, 2)}
    # Batch sums are reduced in another order on two devices: equal within float rounding,
    # which batch norm and a deeper net amplify a little more than the chain tests see.
    # (Adam's moments of near-zero gradients differ more in relative terms: compare weights.)
    one, two = runs[1].state, runs[2].state
    for a, b in zip(
        leaves((one.params, one.batch_stats)), leaves((two.params, two.batch_stats)), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_graph_spec_inspection_reads_blocks_and_merges():
    result = _fit(config=FitConfig(epochs=1, batch_size=32))
    model, variables = build_model(GRAPH), result.variables_of(0)
    images = synthetic(8).images
    maps = inspect.feature_maps(model, variables, images, ["residual", "concat"])
    assert maps["residual"].shape == (8, 12, 12, 4) and maps["concat"].shape == (8, 12, 12, 4)
    erf = inspect.effective_receptive_field(model, variables, images, "residual")
    assert erf.analytic_rf == (7, 7) and erf.mass_in_window > 0.999
    assert jax.tree_util.tree_leaves(variables["batch_stats"])
