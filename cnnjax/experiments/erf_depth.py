"""Why is the effective receptive field so much smaller than the theoretical one, and what do
skip connections do to it? (Luo, Li, Urtasun & Zemel, "Understanding the Effective Receptive
Field in Deep Convolutional Neural Networks", NeurIPS 2016.)

Plain stacks and residual stacks of 3x3 convolutions (SAME padding, stride 1) at several depths
share one theoretical field, 1 + 2 x depth. The effective field - the side of the centred square
that holds 95% of the gradient mass of the centre unit of the last convolution - is measured at
initialisation and after training, beside the test accuracy over seeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

from cnnjax import markdown
from cnnjax.experiments.harness import Run, Settings, command_for, load_data, pm, train_variant
from cnnjax.spec import Conv, Dense, GlobalAvgPool, Layer, NetSpec, Residual, sequential

NAME = "erf_depth"
QUESTION = (
    "Why is the effective receptive field so much smaller than the theoretical one, "
    "and what do skip connections do to it?"
)
MODES = {
    "quick": {"epochs": 1, "seeds": 2, "train_limit": 256, "test_limit": 128},
    "default": {"epochs": 2, "seeds": 3, "train_limit": 10_000, "test_limit": None},
    "full": {"epochs": 5, "seeds": 5, "train_limit": None, "test_limit": None},
}
DEPTHS = {"quick": (3, 7), "default": (3, 7, 13), "full": (3, 7, 13)}
WIDTH = 16


def plain(depth: int) -> NetSpec:
    """`depth` 3x3 ReLU convolutions, then global average pooling and a 10-way head."""
    layers: list[Layer] = [
        Conv(WIDTH, (3, 3), padding="same", activation="relu") for _ in range(depth)
    ]
    return sequential(
        (28, 28, 1), *layers, GlobalAvgPool(), Dense(10, "softmax"), name=f"plain{depth}"
    )


def residual(depth: int) -> NetSpec:
    """A stem convolution, then (depth - 1) / 2 identity-shortcut blocks of two 3x3 convs (one
    more plain conv when depth is even): the same `depth` convolutions as `plain(depth)`."""
    layers: list[Layer] = [Conv(WIDTH, (3, 3), padding="same", activation="relu")]
    remaining = depth - 1
    while remaining >= 2:
        main = [
            Conv(WIDTH, (3, 3), padding="same", activation="relu"),
            Conv(WIDTH, (3, 3), padding="same"),
        ]
        layers.append(Residual(main=tuple(main), shortcut=(), activation="relu"))
        remaining -= 2
    layers += [Conv(WIDTH, (3, 3), padding="same", activation="relu") for _ in range(remaining)]
    return sequential(
        (28, 28, 1), *layers, GlobalAvgPool(), Dense(10, "softmax"), name=f"residual{depth}"
    )


def _last_spatial(spec: NetSpec) -> str:
    from cnnjax.analysis import analyze

    return [r for r in analyze(spec).layers if not r.is_global][-1].name


def _erf(spec: NetSpec, variables: Any, images: np.ndarray) -> Any:
    from cnnjax import inspect, models

    model = models.build_model(spec)
    return inspect.effective_receptive_field(model, variables, images, _last_spatial(spec))


def run(settings: Settings, out: Path) -> Path:
    from cnnjax import models, plots

    record = Run(NAME, QUESTION, out, settings)
    train, test = load_data(settings)
    images = np.asarray(test.images[: 16 if settings.mode == "quick" else 64], np.float32) / 255.0
    rows: list[dict[str, Any]] = []
    erfs = []
    for depth in DEPTHS[settings.mode]:
        for build in (plain, residual):
            spec = build(depth)
            v = train_variant(spec.name, spec, train, test, settings, curves=False)
            init = models.init_variables(models.build_model(spec), jax.random.key(settings.seed))
            at_init, trained = _erf(spec, init, images), _erf(spec, v.fit.variables(0), images)
            erfs.append((spec.name, at_init, trained))
            theory = v.report.layer(_last_spatial(spec)).receptive_field[0]
            rows.append(
                {
                    "network": spec.name,
                    "kind": build.__name__,
                    "depth": depth,
                    "theoretical_rf": theory,
                    "erf95_init": at_init.size95,
                    "erf95_trained": trained.size95,
                    "erf50_init": at_init.size50,
                    "erf50_trained": trained.size50,
                    "params": v.report.total_params,
                    "test_accuracy": v.accuracy,
                }
            )
    header = (
        "network",
        "depth",
        "theoretical RF",
        "ERF 95% at init",
        "ERF 95% trained",
        "ERF 50% trained",
        "params",
        "test accuracy",
    )
    table = markdown.table(
        header,
        (
            (
                f"`{r['network']}`",
                r["depth"],
                r["theoretical_rf"],
                r["erf95_init"],
                r["erf95_trained"],
                r["erf50_trained"],
                f"{r['params']:,}",
                pm(r["test_accuracy"]),
            )
            for r in rows
        ),
    )
    record.add("## Theoretical and effective receptive fields\n\n" + table)
    path = record.figure(
        "erf_depth.png",
        "Side of the 95%-mass square of the effective receptive field vs depth, "
        "beside the theoretical field (dashed)",
    )
    plots.plot_erf_vs_depth(rows, path)
    path = record.figure(
        "erf_maps.png", "Effective receptive fields of the deepest networks, at init and trained"
    )
    deepest = max(r["depth"] for r in rows)
    chosen = [e for e in erfs if e[0].endswith(str(deepest))]
    plots.plot_erf(
        [erf for _, a, t in chosen for erf in (a, t)],
        path,
        (28, 28, 1),
        titles=[f"{name} {when}" for name, _, _ in chosen for when in ("init", "trained")],
    )
    record.results = {"rows": rows}
    return record.finish(_answer(rows), command_for(NAME, settings))


def _answer(rows: list[dict[str, Any]]) -> list[str]:
    """Sentences computed from the measured rows."""
    deepest = max(r["depth"] for r in rows)
    p = next(r for r in rows if r["kind"] == "plain" and r["depth"] == deepest)
    q = next(r for r in rows if r["kind"] == "residual" and r["depth"] == deepest)
    shallow = min(r["depth"] for r in rows)
    s = next(r for r in rows if r["kind"] == "plain" and r["depth"] == shallow)
    ratio_deep = p["erf95_init"] / p["theoretical_rf"]
    ratio_shallow = s["erf95_init"] / s["theoretical_rf"]
    growth = "grows more slowly than" if ratio_deep < ratio_shallow else "keeps pace with"
    compare = (
        "smaller than"
        if q["erf95_init"] < p["erf95_init"]
        else ("larger than" if q["erf95_init"] > p["erf95_init"] else "the same as")
    )
    return [
        f"With {deepest} 3x3 convolutions the theoretical field is {p['theoretical_rf']}x"
        f"{p['theoretical_rf']}, but 95% of the gradient mass of the centre unit sits in a "
        f"{p['erf95_init']}x{p['erf95_init']} square at initialisation "
        f"({ratio_deep:.0%} of the side; {ratio_shallow:.0%} at depth {shallow}): the effective "
        f"field {growth} the theoretical one, since the gradient through a stack of convolutions "
        "is a sum over paths that concentrates on the centre like a Gaussian.",
        f"With identity shortcuts the same {deepest} convolutions give an effective field "
        f"{compare} the plain stack's at initialisation ({q['erf95_init']} vs {p['erf95_init']}): "
        "the shortcut adds short paths, which weigh the centre more.",
        f"Training moves it to {p['erf95_trained']} (plain) and {q['erf95_trained']} "
        f"(residual); test accuracy {pm(p['test_accuracy'])} plain vs "
        f"{pm(q['test_accuracy'])} residual at depth {deepest}.",
    ]
