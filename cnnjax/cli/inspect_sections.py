"""The sections of `cnnjax inspect`: feature maps, ERF, linear probes, training curves and the
inspect.md report that links them. Each writes its files into the session's output directory.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from cnnjax import markdown
from cnnjax.cli.helpers import UserError, log
from cnnjax.cli.inspect_target import Data, Session


def _class_name(data: Data, label: Any) -> str:
    if label is None or not data.class_names:
        return "?"
    return data.class_names[int(label)]


def do_maps(s: Session) -> None:
    """Feature maps of the first --map-images test images, and the first layer's filters."""
    import numpy as np

    from cnnjax import inspect, plots
    from cnnjax.analysis import analyze

    t, d = s.target, s.data
    n = min(s.args.map_images, len(d.test_x))
    images = d.test_x[:n]
    maps = inspect.feature_maps(s.model, t.variables, images)
    last = analyze(t.spec).layers[-1].name
    predicted = np.argmax(maps[last], axis=-1) if maps[last].ndim == 2 else [None] * n
    for i in range(n):
        label = d.test_y[i] if d.test_y is not None else None
        title = (
            f"{t.name} ({t.weights_label}): feature maps of test image {i}, class "
            f"'{_class_name(d, label)}', predicted '{_class_name(d, predicted[i])}'"
            if label is not None
            else f"{t.name} ({t.weights_label}): feature maps of image {i}"
        )
        name = "feature_maps.png" if n == 1 else f"feature_maps_{i}.png"
        s.add(
            plots.plot_feature_maps(
                maps,
                s.out / name,
                image=images[i],
                index=i,
                title=title,
                class_names=d.class_names or None,
            )
        )
    try:
        s.add(plots.save_filters(t.variables, inspect.first_conv(t.spec), s.out / "filters.png"))
    except ValueError as err:
        log(f"filters: skipped ({err})")
    s.sections["maps"] = (
        "## Feature maps\n\nOne tile per channel, each scaled to its own range; the title of each "
        "panel gives the layer and its shape.\n\n"
        + "\n".join(f"![feature maps]({p.name})" for p in s.written if "feature_maps" in p.name)
        + ("\n\n![first-layer filters](filters.png)" if (s.out / "filters.png").exists() else "")
    )


def do_erf(s: Session) -> None:
    """ERF of the last spatial layer (random init vs trained), of every spatial layer, the
    receptive-field growth plot and the windows of the last spatial layer on a test image."""
    from cnnjax import inspect, plots
    from cnnjax.analysis import analyze

    t = s.target
    report = analyze(t.spec)
    layer = s.args.layer or inspect.default_erf_layer(report).name  # checked in `run`
    d = s.data
    images = d.test_x[: s.args.images]
    model = s.model
    weights = [("random init", t.initial)]
    if t.trained is not None:
        weights.append(("trained", t.trained))
    main = [inspect.effective_receptive_field(model, v, images, layer) for _, v in weights]
    s.add(
        plots.plot_erf(
            main,
            s.out / "erf.png",
            t.spec.input_shape,
            titles=[f"{t.name}, {w}" for w, _ in weights],
        )
    )
    per_layer = {w: inspect.erf_per_layer(model, v, images) for w, v in weights}
    shown = per_layer[weights[-1][0]]
    if shown:
        s.add(
            plots.plot_erf(
                shown,
                s.out / "erf_layers.png",
                t.spec.input_shape,
                titles=[f"{weights[-1][0]}: {e.layer}" for e in shown],
                columns=min(len(shown), 5),
            )
        )
    measured = {
        f"{share}% of mass, {w}": {
            e.layer: (e.size95 if share == 95 else e.size50) for e in results
        }
        for share in (95, 50)
        for w, results in per_layer.items()
    }
    s.add(plots.plot_receptive_field_growth(report, s.out / "rf_growth.png", measured=measured))
    spatial = [r for r in report.layers if not r.is_global]
    if spatial:
        lr = report.layer(layer) if not report.layer(layer).is_global else spatial[-1]
        s.add(plots.draw_receptive_windows(d.test_x[0], lr, s.out / "windows.png"))
    record = {
        "images": len(images),
        "dataset": d.name,
        "main": {w: e.to_dict() for (w, _), e in zip(weights, main, strict=True)},
        "per_layer": {w: [e.to_dict() for e in results] for w, results in per_layer.items()},
    }
    s.add(_write(s.out / "erf.json", json.dumps(record, indent=2) + "\n"))
    header = (
        "layer",
        "analytic receptive field",
        *(f"ERF 95% / 50% ({w})" for w, _ in weights),
        "mass inside the analytic square",
    )
    rows = []
    for i, e in enumerate(per_layer[weights[0][0]]):
        cells = [f"{per_layer[w][i].size95} / {per_layer[w][i].size50} px" for w, _ in weights]
        inside = min(per_layer[w][i].mass_in_window for w, _ in weights)
        rows.append((e.layer, f"{e.analytic_rf[0]}x{e.analytic_rf[1]}", *cells, f"{inside:.1%}"))
    if per_layer[weights[-1][0]]:
        e = per_layer[weights[-1][0]][-1]
        core = (
            ": the effective field is concentrated in the middle of the analytic one"
            if e.size50 <= 0.7 * max(e.analytic_rf)
            else ""
        )
        s.facts.append(
            f"Each unit of {e.layer} sees a {e.analytic_rf[0]}x{e.analytic_rf[1]} window of the "
            f"input (analytic); measured with {weights[-1][0]} weights, 95% of its gradient lies "
            f"in the central {e.size95}x{e.size95} square and 50% in {e.size50}x{e.size50}{core}."
        )
    s.sections["erf"] = (
        f"## Effective receptive fields\n\nMean |∂ unit / ∂ input| of each spatial layer's centre "
        f"unit over {len(images)} {d.name} test images (Luo et al. 2016); the side of the centred "
        "square holding 95% (50%) of the gradient mass, beside the analytic receptive field.\n\n"
        + markdown.table(header, rows)
        + "\n\n![ERF](erf.png)\n\n"
        + ("![ERF per layer](erf_layers.png)\n\n" if shown else "")
        + "![receptive field growth](rf_growth.png)"
        + ("\n\n![windows](windows.png)" if spatial else "")
    )


def do_probe(s: Session) -> None:
    """Linear probes of every layer; a Markdown table, JSON and the values-vs-probe figure."""
    from cnnjax import inspect, plots
    from cnnjax.analysis import analyze

    t, d = s.target, s.data
    if d.train_x is None:
        raise UserError("linear probes need labelled data; --dataset noise has none")
    a = s.args
    if a.ridge is None:
        a.ridge = list(inspect.RIDGE_GRID)
    t0 = time.perf_counter()
    probes = inspect.linear_probes(
        s.model,
        t.variables,
        d.train_x,
        d.train_y,
        d.test_x,
        d.test_y,
        pool_to=a.pool_to,
        ridge=a.ridge,
        max_features=a.max_features,
    )
    seconds = time.perf_counter() - t0
    log(f"probes: {len(probes)} layers in {seconds:.1f} s")
    report = analyze(t.spec)
    table = inspect.probe_table(probes, report)
    n_select = min(len(d.train_x), 4000)
    how = (
        f"penalty {a.ridge[0]:g}"
        if len(a.ridge) == 1
        else f"penalty chosen from {', '.join(f'{r:g}' for r in a.ridge)} by fitting "
        f"{n_select - round(n_select * 0.5):,} training images and scoring "
        f"{round(n_select * 0.5):,} others"
    )
    intro = (
        f"Ridge classifiers (closed form, one-hot targets, {how}) fitted on each frozen layer's "
        f"activations ({t.weights_label} weights) of {len(d.train_x):,} {d.name} training images, "
        f"scored on {len(d.test_x):,} test images; chance is {1 / max(d.num_classes, 1):.3f}."
    )
    s.add(_write(s.out / "probes.md", f"# Linear probes: {t.name}\n\n{intro}\n\n{table}\n"))
    s.add(
        _write(
            s.out / "probes.json",
            json.dumps(
                {
                    "model": t.name,
                    "weights": t.weights_label,
                    "dataset": d.name,
                    "train_images": len(d.train_x),
                    "test_images": len(d.test_x),
                    "ridge": a.ridge,
                    "probes": [p.__dict__ for p in probes],
                },
                indent=2,
            )
            + "\n",
        )
    )
    s.add(
        plots.plot_values_vs_probe(
            probes,
            s.out / "values_vs_probe.png",
            title=f"{t.name} ({t.weights_label}) on {d.name}: values kept per layer vs "
            "linear-probe accuracy",
            chance=1 / max(d.num_classes, 1),
        )
    )
    first, last = probes[0], probes[-1]
    best = max(probes, key=lambda p: p.test_acc)
    if last.test_acc <= first.test_acc:
        verdict = "here the last layer does not beat the raw pixels"
    elif last.values < first.values:
        verdict = "fewer numbers, more linearly readable class information"
    else:
        verdict = "more linearly readable class information, in more numbers"
    s.facts.append(
        f"Values per image go from {first.values:,} ({first.layer}) to {last.values:,} "
        f"({last.layer}) while a linear classifier's test accuracy goes from "
        f"{first.test_acc:.3f} to {last.test_acc:.3f} (best: {best.layer}, {best.test_acc:.3f}): "
        f"{verdict}."
    )
    s.sections["probe"] = (
        f"## Linear probes\n\n{intro}\n\n{table}\n\n![values vs probe](values_vs_probe.png)"
    )


def do_curves(s: Session, *, required: bool = True) -> None:
    """Training curves of a run directory."""
    import numpy as np

    from cnnjax import plots

    t = s.target
    if not t.history:
        message = (
            f"{t.name} has no training history: curves need a trained run directory "
            "(made by `cnnjax train --out DIR`)"
        )
        if required:
            raise UserError(message)
        log(f"curves: skipped ({message})")
        return
    title = f"{t.name}: {t.config.get('dataset', '')}".rstrip(": ")
    s.add(plots.plot_history({t.name: t.history}, s.out / "curves.png", title=title))
    last = t.history[-1]
    if last.get("val_accuracy") is not None:
        acc = np.mean(np.asarray(last["val_accuracy"], float))
        s.facts.append(
            f"After {last.get('epoch', len(t.history))} epoch(s) the network's validation "
            f"accuracy is {acc:.4f}."
        )
    s.sections["curves"] = "## Training curves\n\n![training curves](curves.png)"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_report(s: Session) -> None:
    """inspect.md: the analytic table, then every section written, in reading order."""
    from cnnjax.analysis import analyze
    from cnnjax.summary import to_markdown

    t = s.target
    source = f"run directory `{t.run_dir}`" if t.run_dir else "spec (random-init weights)"
    command = f"cnnjax inspect all {s.args.model} --out {s.out}"
    if s.args.dataset:
        command += f" --dataset {s.args.dataset}"
    parts = [
        f"# Inspection of {t.name}",
        f"Source: {source}. Command: `{command}`",
    ]
    if s.facts:
        parts.append("## In short\n\n" + "\n".join(f"- {f}" for f in s.facts))
    parts.append("## The network (analytic)\n\n" + to_markdown(analyze(t.spec)))
    parts += [s.sections[k] for k in ("curves", "probe", "maps", "erf") if k in s.sections]
    s.add(_write(s.out / "inspect.md", "\n\n".join(parts) + "\n"))
