"""`cnnjax inspect maps|erf|probe|curves|all MODEL_OR_RUN_DIR`: the figures and tables of
`cnnjax.inspect` and `cnnjax.plots` for a zoo model, a spec, or a trained run directory.

A spec is inspected with random-init weights (seed --seed); a run directory with its trained
weights, beside the run's own initial weights where a comparison teaches something (ERF).
Everything is written into --out (default runs/inspect/<name>) and each path is printed.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACTIONS = {
    "maps": "feature maps of every layer for test images, and the first layer's filters",
    "erf": "effective receptive fields (random init vs trained) beside the analytic ones",
    "probe": "linear probes per layer: test accuracy beside the values each layer keeps",
    "curves": "training curves of a run directory (train vs validation, seeds as a band)",
    "all": "everything above plus inspect.md, a report that links it all",
}
NOISE = "noise"  # --dataset noise: uniform random images (maps and ERF only)


def _error(message: str) -> Exception:
    """A one-line user error (exit status 2) from the main CLI's error type."""
    from cnnjax.cli import UserError

    return UserError(message)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Target:
    """What is inspected: a spec with random-init weights, or a trained run."""

    name: str
    spec: Any
    init_seed: int  # the seed of the random-init weights (a run's own initial weights)
    trained: dict[str, Any] | None = None
    history: list[dict[str, Any]] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None
    _initial: dict[str, Any] | None = None

    @property
    def initial(self) -> dict[str, Any]:
        """Random-init weights, made on first use (the spec's, or the run's starting point)."""
        if self._initial is None:
            self._initial = _initial_weights(self.spec, self.init_seed)
        return self._initial

    @property
    def variables(self) -> dict[str, Any]:
        """The weights to inspect: trained when there are, else the random init."""
        return self.trained if self.trained is not None else self.initial

    @property
    def weights_label(self) -> str:
        return "trained" if self.trained is not None else "random init"


def _initial_weights(spec: Any, seed: int) -> dict[str, Any]:
    """The initial weights `cnnjax.train` starts seed `seed` from (its own init recipe)."""

    return _initial_weights_program()(spec, seed)


@functools.cache
def _initial_weights_program() -> Any:
    """One jitted init per (spec, seed), cached across calls (compiling it costs seconds)."""
    import jax
    import optax

    from cnnjax.models import build_model, has_batch_norm
    from cnnjax.train import create_train_state

    def init(spec: Any, seed: int) -> dict[str, Any]:
        state = create_train_state(build_model(spec), optax.identity(), seed)
        out = {"params": state.params}
        if has_batch_norm(spec):
            out["batch_stats"] = state.batch_stats
        return out

    return jax.jit(init, static_argnums=(0, 1))


def resolve_target(
    source: str, *, seed: int = 0, seed_index: int = 0, input_shape: Any = None
) -> Target:
    """A run directory (has config.json) or a spec (zoo name, text form, JSON file or string)."""
    from cnnjax.spec import load_spec, parse_shape

    path = Path(source)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise _error(f"{path} is a directory but not a cnnjax run directory (no config.json)")
        try:
            from cnnjax.train import load_run
        except ImportError as err:
            raise _error(f"reading run directories needs cnnjax.train.load_run ({err})") from None
        run = load_run(path)
        k = int(getattr(run, "seeds", 1))
        if not 0 <= seed_index < k:
            raise _error(f"--seed-index {seed_index} is outside the run's {k} seed(s)")
        trained = run.variables_of(seed_index) if hasattr(run, "variables_of") else run.variables
        first_seed = int(run.config.get("fit", {}).get("seed", 0))
        return Target(
            name=path.resolve().name,
            spec=run.spec,
            init_seed=first_seed + seed_index,
            trained=trained,
            history=list(run.history),
            config=dict(run.config),
            run_dir=path,
        )
    spec = load_spec(source, parse_shape(input_shape) if input_shape else None)
    name = spec.name or re.sub(r"[^A-Za-z0-9_.-]+", "_", source)[:60] or "model"
    return Target(name=name, spec=spec, init_seed=seed)


@dataclass
class Data:
    """Float images in [0, 1] and labels, sized to the model's input."""

    name: str
    train_x: Any
    train_y: Any
    test_x: Any
    test_y: Any
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def load_data(
    target: Target,
    dataset: str | None,
    *,
    data_dir: str | None = None,
    limit: int | None = None,
    test_limit: int | None = None,
    seed: int = 0,
) -> Data:
    """The run's dataset (or --dataset), subsets of it, resized to the model's input shape."""
    import numpy as np

    spec = target.spec
    name = dataset or target.config.get("dataset") or "fashion_mnist"
    if name == NOISE:
        rng = np.random.default_rng(seed)
        n = test_limit or 64
        x = rng.random((n, *spec.input_shape), dtype=np.float32)
        return Data(NOISE, None, None, x, None, ())
    from cnnjax import data
    from cnnjax.train_cli import load_datasets

    train, test = load_datasets(
        name,
        data_dir=data_dir,
        limit=limit,
        test_limit=test_limit,
        classes=target.config.get("classes"),
        seed=seed,
    )
    if tuple(train.image_shape) != tuple(spec.input_shape):
        h, w, c = spec.input_shape
        if train.image_shape[:2] != (h, w):
            train, test = data.resize(train, (h, w)), data.resize(test, (h, w))
        if train.image_shape[2] != c:
            train, test = data.to_channels(train, c), data.to_channels(test, c)
    return Data(
        name,
        data.scale_images(train.images),
        np.asarray(train.labels),
        data.scale_images(test.images),
        np.asarray(test.labels),
        tuple(train.class_names),
    )


@dataclass
class Session:
    """One `cnnjax inspect` invocation: the target, the options, the data, what was written."""

    target: Target
    args: argparse.Namespace
    out: Path
    written: list[Path] = field(default_factory=list)
    sections: dict[str, str] = field(default_factory=dict)
    facts: list[str] = field(default_factory=list)  # one-sentence findings for inspect.md
    _data: Data | None = None

    @property
    def data(self) -> Data:
        if self._data is None:
            a = self.args
            t0 = time.perf_counter()
            self._data = load_data(
                self.target,
                a.dataset,
                data_dir=a.data_dir,
                limit=a.limit,
                test_limit=max(a.test_limit or 0, a.images, a.map_images) or None,
                seed=a.seed,
            )
            _log(f"data: {self._data.name} ({time.perf_counter() - t0:.1f} s)")
        return self._data

    @property
    def model(self) -> Any:
        from cnnjax.models import build_model

        return build_model(self.target.spec)

    def add(self, path: Path) -> Path:
        self.written.append(path)
        print(path, flush=True)
        return path


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
        s.add(inspect.save_filters(t.variables, t.spec, s.out / "filters.png"))
    except ValueError as err:
        _log(f"filters: skipped ({err})")
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
        inspect.save_erf(
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
            inspect.save_erf(
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
    rows = [
        "| layer | analytic receptive field | "
        + " | ".join(f"ERF 95% / 50% ({w})" for w, _ in weights)
        + " | mass inside the analytic square |",
        "|---|---:|" + "---:|" * len(weights) + "---:|",
    ]
    for i, e in enumerate(per_layer[weights[0][0]]):
        cells = [f"{per_layer[w][i].size95} / {per_layer[w][i].size50} px" for w, _ in weights]
        inside = min(per_layer[w][i].mass_in_window for w, _ in weights)
        rows.append(
            f"| {e.layer} | {e.analytic_rf[0]}x{e.analytic_rf[1]} | {' | '.join(cells)} | {inside:.1%} |"
        )
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
        + "\n".join(rows)
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
        raise _error("linear probes need labelled data; --dataset noise has none")
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
    _log(f"probes: {len(probes)} layers in {seconds:.1f} s")
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
            raise _error(message)
        _log(f"curves: skipped ({message})")
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


def _report(s: Session) -> None:
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


def run(what: str, args: argparse.Namespace) -> int:
    """Run one `cnnjax inspect` action; print each path written."""
    if what not in ACTIONS:
        raise _error(f"unknown inspect action {what!r}; choose {', '.join(ACTIONS)}")
    target = resolve_target(
        args.model, seed=args.seed, seed_index=args.seed_index, input_shape=args.input
    )
    if args.layer:
        from cnnjax.analysis import layer_names

        names = layer_names(target.spec)
        if args.layer not in names:
            raise _error(
                f"--layer {args.layer!r} is not a layer of {target.name}; layers: {', '.join(names)}"
            )
    out = Path(args.out) if args.out else Path("runs") / "inspect" / target.name
    out.mkdir(parents=True, exist_ok=True)
    s = Session(target, args, out)
    t0 = time.perf_counter()
    if what in ("curves", "all"):
        do_curves(s, required=what == "curves")
    if what in ("probe", "all"):
        do_probe(s)
    if what in ("maps", "all"):
        do_maps(s)
    if what in ("erf", "all"):
        do_erf(s)
    if what == "all":
        _report(s)
    _log(f"inspect {what}: {len(s.written)} files in {out} ({time.perf_counter() - t0:.1f} s)")
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _ridges(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a number or a comma-separated list: {text}"
        ) from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"ridge penalties must be positive, got {text}")
    return values


def _add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model",
        metavar="MODEL_OR_RUN_DIR",
        help="a trained run directory, or a zoo name, text form, JSON file or JSON string",
    )
    p.add_argument(
        "--dataset",
        help="dataset name or Keras-style .npz (default: the run's dataset, else fashion_mnist); "
        "'noise' for uniform random images (maps and erf only)",
    )
    p.add_argument("--data-dir", help="TFDS data directory")
    p.add_argument(
        "--limit",
        type=_positive,
        default=5000,
        help="training images for the probes (default 5000)",
    )
    p.add_argument(
        "--test-limit",
        type=_positive,
        default=2000,
        help="test images for the probes (default 2000)",
    )
    p.add_argument("--images", type=_positive, default=64, help="images the ERF averages (64)")
    p.add_argument("--map-images", type=_positive, default=1, help="images to draw maps of (1)")
    p.add_argument("--out", help="output directory (default runs/inspect/<name>)")
    p.add_argument("--seed", type=int, default=0, help="init seed of a spec; subset seed")
    p.add_argument("--seed-index", type=int, default=0, help="which seed of a k-seed run (0)")
    p.add_argument("--layer", help="ERF layer (default: the last spatial layer)")
    p.add_argument("--input", help="model input shape HxWxC (specs only)")
    p.add_argument("--pool-to", type=_positive, help="average-pool maps to at most NxN for probes")
    p.add_argument("--max-features", type=_positive, default=8192, help="probe feature cap (8192)")
    p.add_argument(
        "--ridge",
        type=_ridges,
        default=None,
        help="probe ridge penalty, or comma-separated penalties to choose from on a hold-out "
        "(default 1e-4,1e-3,1e-2,1e-1,1,10)",
    )


def register(sub: Any) -> None:
    """Add `cnnjax inspect maps|erf|probe|curves|all`."""
    p = sub.add_parser(
        "inspect",
        help="feature maps, effective receptive fields, linear probes and training curves",
        description="Write the figures and tables that show what a network's layers hold and "
        "see, for a zoo model or spec (random-init weights) or a trained run directory.",
    )
    actions = p.add_subparsers(dest="inspect_action", metavar="WHAT", required=True)
    for what, help_text in ACTIONS.items():
        q = actions.add_parser(what, help=help_text, description=help_text)
        _add_options(q)
        q.set_defaults(func=functools.partial(run, what))
