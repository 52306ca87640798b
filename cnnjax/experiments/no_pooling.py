"""Seed 002: what goes wrong without pooling? A tiny receptive field and an exploding Dense layer;
stride-2 convolutions and a global-average-pool head as the alternatives."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnjax import markdown, zoo
from cnnjax.experiments.harness import (
    Run,
    Settings,
    command_for,
    comparison_table,
    last_spatial,
    load_data,
    pm,
    train_variant,
)

NAME = "no_pooling"
QUESTION = "What goes wrong without pooling (a tiny receptive field, an exploding Dense layer)?"
MODES = {
    "quick": {"epochs": 1, "seeds": 2, "train_limit": 512, "test_limit": 256},
    "default": {"epochs": 3, "seeds": 3, "train_limit": 6_000, "test_limit": 5_000},
    "full": {"epochs": 10, "seeds": 5, "train_limit": None, "test_limit": None},
}
VARIANTS = ("chollet_mnist", "chollet_nopool", "chollet_strided", "chollet_gap")


def _head_params(v) -> int:
    return sum(r.params for r in v.report.layers if r.is_global)


def run(settings: Settings, out: Path) -> Path:
    from cnnjax import inspect, models, plots

    record = Run(NAME, QUESTION, out, settings)
    train, test = load_data(settings)
    runs = [
        train_variant(name, zoo.get(name), train, test, settings, curves=False) for name in VARIANTS
    ]
    by = {v.name: v for v in runs}
    record.add(
        "## Measured\n\n"
        + comparison_table(runs, {"head params": lambda v: f"{_head_params(v):,}"})
    )
    images = np.asarray(test.images[: min(64, len(test))], np.float32) / 255.0
    erfs = {}
    for v in runs:
        model = models.build_model(v.spec)
        layer = last_spatial(v.report).name
        trained = inspect.effective_receptive_field(model, v.fit.variables(0), images, layer)
        erfs[v.name] = trained
    path = record.figure(
        "erf.png",
        "Effective receptive field of the centre unit of the last spatial layer (trained, seed 0); the square is the analytic receptive field",
    )
    plots.plot_erf(list(erfs.values()), path, v.spec.input_shape, titles=list(erfs))
    rows = []
    for name, erf in erfs.items():
        ls = last_spatial(by[name].report)
        rows.append(
            (
                f"`{name}`",
                f"{ls.name} {'x'.join(map(str, ls.output_shape))}",
                f"{ls.receptive_field[0]}x{ls.receptive_field[1]}",
                f"{erf.size95}x{erf.size95}",
            )
        )
    header = (
        "network",
        "last spatial layer",
        "analytic receptive field",
        "ERF (95% of gradient mass)",
    )
    record.add("## How far the last map sees\n\n" + markdown.table(header, rows, "llrr"))
    base, nopool, strided, gap = (by[n] for n in VARIANTS)
    ls_nopool = last_spatial(nopool.report)
    answer = [
        f"Without pooling the last 3x3 convolution's units see only "
        f"{ls_nopool.receptive_field[0]}x{ls_nopool.receptive_field[1]} pixels of the 28x28 input "
        f"(with pooling: {last_spatial(base.report).receptive_field[0]}x"
        f"{last_spatial(base.report).receptive_field[1]}); the measured effective field is "
        f"{erfs['chollet_nopool'].size95} vs {erfs['chollet_mnist'].size95} pixels wide.",
        f"The map left without pooling has {ls_nopool.values:,} values, so Dense(512) on it needs "
        f"{_head_params(nopool):,} head parameters ({nopool.report.total_params:,} in all vs "
        f"{base.report.total_params:,} with pooling) and "
        f"{nopool.seconds_per_epoch / base.seconds_per_epoch:.1f}x the time per epoch.",
        f"Test accuracy: with pooling {pm(base.accuracy)}; without {pm(nopool.accuracy)}; stride-2 "
        f"convolutions instead of pooling {pm(strided.accuracy)}; no pooling with a global-average-"
        f"pool head ({gap.report.total_params:,} params) {pm(gap.accuracy)}.",
        "Pooling and strides grow the receptive field geometrically and shrink the map the classifier "
        "reads; a global average pool removes the exploding head but leaves each unit's small field.",
    ]
    record.results = {
        "variants": [v.to_dict() for v in runs],
        "erf_size95": {k: e.size95 for k, e in erfs.items()},
    }
    return record.finish(answer, command_for(NAME, settings))
