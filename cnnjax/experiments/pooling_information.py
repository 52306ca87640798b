"""Seed 000: why does accuracy go *up* when convolution and max pooling throw data away?

Measured answer: per layer, the values kept fall while the class information that a linear
classifier can read off the layer (a linear probe) rises."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnjax import markdown, zoo
from cnnjax.experiments.harness import (
    Run,
    Settings,
    command_for,
    comparison_table,
    load_data,
    pm,
    train_variant,
    verdict,
)

NAME = "pooling_information"
QUESTION = "Why does accuracy go up when convolution and max pooling throw data away?"
MODES = {
    "quick": {"epochs": 1, "seeds": 2, "train_limit": 512, "test_limit": 256},
    "default": {"epochs": 3, "seeds": 3, "train_limit": 20_000, "test_limit": None},
    "full": {"epochs": 10, "seeds": 5, "train_limit": None, "test_limit": None},
}
VARIANTS = {
    "dense only": "fashion_dense",
    "conv + pool": "fashion_cnn",
    "conv, no pool": "fashion_cnn_nopool",
}
PROBE_TRAIN, PROBE_TEST = 5_000, 2_000


def run(settings: Settings, out: Path) -> Path:
    from cnnjax import inspect, models, plots

    record = Run(NAME, QUESTION, out, settings)
    train, test = load_data(settings)
    runs = [train_variant(name, zoo.get(name), train, test, settings) for name in VARIANTS.values()]
    by = {v.name: v for v in runs}
    record.add("## Measured\n\n" + comparison_table(runs))

    def scaled(ds, n):
        return np.asarray(ds.images[:n], np.float32) / 255.0, np.asarray(ds.labels[:n])

    xtr, ytr = scaled(train, PROBE_TRAIN)
    xte, yte = scaled(test, PROBE_TEST)
    probes = {}
    for v in runs:
        model = models.build_model(v.spec)
        probes[v.name] = inspect.linear_probes(model, v.fit.variables(0), xtr, ytr, xte, yte)
    rows = []
    for name, results in probes.items():
        report = by[name].report
        for p in results:
            r = next((x for x in report.layers if x.name == p.layer), None)
            shape = "x".join(map(str, r.output_shape)) if r else "28x28x1"
            rf = (
                ("global" if r.is_global else f"{r.receptive_field[0]}x{r.receptive_field[1]}")
                if r
                else "1x1"
            )
            params = f"{r.params:,}" if r else "0"
            rows.append(
                (
                    f"`{name}`",
                    p.layer,
                    shape,
                    f"{p.values:,} ({p.values_fraction:.3g}x)",
                    params,
                    rf,
                    f"{p.test_acc:.4f}",
                )
            )
    header = (
        "network",
        "layer",
        "output",
        "values kept (of 784)",
        "params",
        "receptive field",
        "linear-probe test accuracy",
    )
    record.add(
        f"## Values kept vs information kept, layer by layer\n\nA linear probe is a ridge-regression "
        f"classifier fitted on a frozen layer's activations of {len(xtr):,} training images and "
        f"scored on {len(xte):,} test images (trained network, seed 0).\n\n"
        + markdown.table(header, rows, "llrrrrr")
    )
    path = record.figure(
        "values_vs_probe.png",
        "Values kept per layer (bars, log scale) vs linear-probe test accuracy (line)",
    )
    plots.plot_values_vs_probe(probes["fashion_cnn"], path)
    path = record.figure("curves.png", "Training curves (band: ± std over seeds)")
    plots.plot_history(
        {v.name: v.history for v in runs},
        path,
        title="Fashion-MNIST: dense vs conv+pool vs conv without pool",
    )
    cnn = {p.layer: p for p in probes["fashion_cnn"]}
    first, last_pool = cnn["input"], cnn["max_pooling2d_1"]
    dense, cnnv, nopool = by["fashion_dense"], by["fashion_cnn"], by["fashion_cnn_nopool"]
    answer = [
        f"The conv + pool network keeps {last_pool.values:,} values after its last pooling layer "
        f"({last_pool.values_fraction:.0%} of the 784 input values, down from "
        f"{cnn['conv2d'].values:,} after its first convolution); a linear classifier reads "
        f"{last_pool.test_acc:.1%} test accuracy off those values, vs {first.test_acc:.1%} off the raw "
        "pixels. "
        + (
            "Fewer values, more linearly readable class information: what was thrown away was "
            "mostly redundant or irrelevant to the class."
            if last_pool.test_acc > first.test_acc
            else "With this little training the pooled values are not yet more informative than the "
            "pixels; run the default mode for the trained answer."
        ),
        f"End to end (test accuracy, {settings.seeds} seeds): dense only {pm(dense.accuracy)}; "
        f"conv + pool {pm(cnnv.accuracy)}; the same convolutions without pooling {pm(nopool.accuracy)}. "
        f"Conv + pool vs dense only: {verdict(cnnv, dense)} No pooling vs conv + pool: "
        f"{verdict(nopool, cnnv)} Keeping every value costs "
        f"{nopool.report.total_params / cnnv.report.total_params:.0f}x the parameters and "
        f"{nopool.seconds_per_epoch / max(cnnv.seconds_per_epoch, 1e-9):.1f}x the time per epoch: "
        + (
            "the accuracy comes from the convolutions; pooling buys a small classifier and a wide "
            "receptive field, not accuracy."
            if nopool.accuracy["mean"] >= cnnv.accuracy["mean"]
            else "here pooling buys accuracy as well as a small classifier and a wide receptive field."
        ),
        f"Pooling also shrinks the classifier: Dense(128) reads {cnnv.report.layer('flatten').values:,} "
        f"values with pooling ({cnnv.report.total_params:,} params) and "
        f"{nopool.report.layer('flatten').values:,} without ({nopool.report.total_params:,} params), "
        f"while each unit of the last pooled map sees a "
        f"{cnnv.report.layer('max_pooling2d_1').receptive_field[0]}x"
        f"{cnnv.report.layer('max_pooling2d_1').receptive_field[1]} window of the image.",
    ]
    record.results = {
        "variants": [v.to_dict() for v in runs],
        "probes": {k: [p.__dict__ for p in ps] for k, ps in probes.items()},
    }
    return record.finish(answer, command_for(NAME, settings))
