"""Seed 003: a 3x3 kernel with 64 filters or a 7x7 kernel with 32? And one 7x7 layer vs three
3x3 layers with the same receptive field 7."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cnnjax import markdown
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
from cnnjax.grammar import from_text
from cnnjax.summary import human

NAME = "kernel_vs_filters"
QUESTION = "A 3x3 kernel with 64 filters or a 7x7 kernel with 32 filters?"
MODES = {
    "quick": {"epochs": 1, "seeds": 2, "train_limit": 512, "test_limit": 256},
    "default": {"epochs": 3, "seeds": 3, "train_limit": 15_000, "test_limit": None},
    "full": {"epochs": 10, "seeds": 5, "train_limit": None, "test_limit": None},
}

HEAD = "pool2-conv64x3-pool2-flatten-dense64-dense10"
VARIANTS = {
    "first_3x3x64": f"conv64x3-{HEAD}",
    "first_7x7x32": f"conv32x7-{HEAD}",
    "block_7x7": f"conv32x3-conv32x7-{HEAD}",
    "block_3x3x3": f"conv32x3-conv32x3-conv32x3-conv32x3-{HEAD}",
}


def run(settings: Settings, out: Path) -> Path:
    record = Run(NAME, QUESTION, out, settings)
    train, test = load_data(settings)
    runs = [
        train_variant(name, from_text(text), train, test, settings, curves=False)
        for name, text in VARIANTS.items()
    ]
    by = {v.name: v for v in runs}

    def first_layer(v):
        return f"{v.report.layers[0].params:,}"

    def block(v):
        layers = v.report.layers[1:2] if v.name == "block_7x7" else v.report.layers[1:4]
        if not v.name.startswith("block"):
            return "-"
        return (
            f"{sum(r.params for r in layers):,} params, {human(sum(r.macs for r in layers))} MACs"
        )

    record.add(
        "## Measured\n\n"
        + comparison_table(runs, {"first layer params": first_layer, "7x7-field block": block})
    )
    rows = [
        (
            f"`{v.name}`",
            f"{r.name} {r.description}",
            "x".join(map(str, r.output_shape)),
            f"{r.params:,}",
            f"{r.receptive_field[0]}x{r.receptive_field[1]}",
            human(r.macs),
        )
        for v in runs
        for r in v.report.layers[:5]
        if r.type == "conv"
    ]
    header = ("network", "layer", "output", "params", "receptive field", "MACs")
    record.add("## Per layer (analytic)\n\n" + markdown.table(header, rows, "llrrrr"))
    a, b, c, d = by["first_3x3x64"], by["first_7x7x32"], by["block_7x7"], by["block_3x3x3"]
    c_block = c.report.layers[1]
    d_block = d.report.layers[1:4]
    answer = [
        f"First layer: Conv(64, 3x3) has {a.report.layers[0].params:,} parameters and "
        f"{human(a.report.layers[0].macs)} MACs per image; Conv(32, 7x7) has "
        f"{b.report.layers[0].params:,} parameters and {human(b.report.layers[0].macs)} MACs "
        "(M(K*K*D)+M, as the seed's answer says).",
        f"Measured test accuracy: 3x3x64 first {pm(a.accuracy)}; 7x7x32 first {pm(b.accuracy)}. "
        + verdict(a, b),
        f"A 7x7 field from one 7x7 layer (32->32 channels: {c_block.params:,} params, "
        f"{human(c_block.macs)} MACs) or from three 3x3 layers ({sum(r.params for r in d_block):,} params, "
        f"{human(sum(r.macs for r in d_block))} MACs): each block sees a 7x7 window of its input "
        f"(after the first 3x3 layer the network's field is {d_block[-1].receptive_field[0]}x"
        f"{d_block[-1].receptive_field[1]} either way); accuracy {pm(c.accuracy)} vs {pm(d.accuracy)}. "
        + verdict(d, c),
        "The stack of small kernels buys the same field with fewer parameters and two more "
        "non-linearities, which is why modern networks stack 3x3 convolutions.",
    ]
    erfs = _figures(record, a, b, test, settings)
    answer.append(
        f"What the first layers learned (figures): the effective receptive field of the centre "
        f"unit of the last pooled map covers {erfs[0].size95}x{erfs[0].size95} pixels (95% of "
        f"the gradient mass) with 3x3x64 first and {erfs[1].size95}x{erfs[1].size95} with "
        f"7x7x32 first, inside analytic fields of {erfs[0].analytic_rf[0]}x"
        f"{erfs[0].analytic_rf[1]} and {erfs[1].analytic_rf[0]}x{erfs[1].analytic_rf[1]}."
    )
    record.results = {
        "variants": [v.to_dict() for v in runs],
        "erf": {v.name: e.to_dict() for v, e in zip((a, b), erfs, strict=True)},
    }
    return record.finish(answer, command_for(NAME, settings))


def _figures(record: Run, a: Any, b: Any, test: Any, settings: Settings) -> list[Any]:
    """First-layer filters of both first-layer choices, and the ERF of each trained network."""
    from cnnjax import inspect, models, plots

    for v in (a, b):
        path = record.figure(
            f"filters_{v.name}.png", f"First-layer filters of `{v.name}` (trained, seed 0)"
        )
        plots.save_filters(v.fit.variables(0), inspect.first_conv(v.spec), path)
    images = np.asarray(test.images[: 16 if settings.mode == "quick" else 64], np.float32) / 255.0
    erfs = []
    for v in (a, b):
        last_pool = [r for r in v.report.layers if not r.is_global][-1]
        model = models.build_model(v.spec)
        erfs.append(
            inspect.effective_receptive_field(model, v.fit.variables(0), images, last_pool.name)
        )
    path = record.figure(
        "erf.png",
        "Effective receptive field of the centre unit of the last pooled map (trained), "
        "3x3x64 first vs 7x7x32 first; the square is the analytic field",
    )
    plots.plot_erf(erfs, path, a.spec.input_shape, titles=[a.name, b.name])
    return erfs
