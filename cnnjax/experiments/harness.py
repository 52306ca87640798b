"""The shared harness of the seed experiments: train variants over k seeds, write the run.

Every experiment writes one run directory: `config.json` (everything needed to rerun),
`results.json` (all measured and analytic numbers), `report.md` (the analytic table beside the
accuracy, mean ± std and 95% CI over seeds, and the answer in plain sentences) and `figures/`.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np

from cnnjax import markdown
from cnnjax.analysis import NetReport, analyze
from cnnjax.spec import NetSpec
from cnnjax.summary import human

MODES = ("quick", "default", "full")


@dataclass(frozen=True)
class Settings:
    """How much to train: `quick` is CI's smoke run, `default` a real answer on a 2-core CPU in
    about ten minutes, `full` the setting for an accelerator."""

    mode: str = "default"
    epochs: int = 3
    seeds: int = 3
    train_limit: int | None = 20_000
    test_limit: int | None = None
    batch_size: int = 32
    seed: int = 0
    dataset: str = "fashion_mnist"
    data_dir: str | None = None
    devices: int | None = None  # data parallel (FitConfig.devices); None: automatic

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def settings_for(
    mode: str,
    *,
    quick: dict[str, Any],
    default: dict[str, Any],
    full: dict[str, Any],
    **overrides: Any,
) -> Settings:
    """Settings of one mode, with the experiment's per-mode values and CLI overrides."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    values = {"quick": quick, "default": default, "full": full}[mode]
    merged = {**values, **{k: v for k, v in overrides.items() if v is not None}}
    return Settings(mode=mode, **merged)


@dataclass
class VariantResult:
    """One network of an experiment: its analytic report and its measured results."""

    name: str
    spec: NetSpec
    report: NetReport
    history: list[dict[str, Any]]
    accuracy: dict[str, float]  # mean, std, ci95, n over seeds (final epoch, test set)
    loss: dict[str, float]
    seconds_per_epoch: float
    fit: Any = field(default=None, repr=False)  # the FitResult (variables for inspection)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "spec": self.spec.to_dict(),
            "text": _text_or_none(self.spec),
            "analysis": self.report.to_dict(),
            "history": self.history,
            "test_accuracy": self.accuracy,
            "test_loss": self.loss,
            "seconds_per_epoch": self.seconds_per_epoch,
            "execution": getattr(self.fit, "execution", None),  # strategy and device count
        }


def _text_or_none(spec: NetSpec) -> str | None:
    try:
        return spec.to_text()
    except Exception:
        return None


def train_variant(
    name: str, spec: NetSpec, train: Any, test: Any, settings: Settings, curves: bool = True
) -> VariantResult:
    """Train `spec` for k seeds at once and summarise the final test accuracy over seeds.

    `curves=False`: the experiment plots no training curves, so the test set is evaluated after
    the last epoch only (FitConfig.eval_every); the final accuracy is the same either way."""
    from cnnjax.train import FitConfig, fit, mean_std_ci

    config = FitConfig(
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        seed=settings.seed,
        seeds=settings.seeds,
        devices=settings.devices,
        eval_every=1 if curves else settings.epochs,
    )
    log(
        f"[{name}] {analyze(spec).total_params:,} params, {settings.seeds} seeds x {settings.epochs} epochs"
    )
    result = fit(spec, train, validation=test, config=config, progress=False)
    records = result.history.records
    last = records[-1]
    acc = last["val_accuracy"] if settings.seeds > 1 else [last["val_accuracy"]]
    loss = last["val_loss"] if settings.seeds > 1 else [last["val_loss"]]
    # The first epoch includes compilation: report the median of the others when there are.
    seconds = [r["seconds"] for r in records]
    per_epoch = float(np.median(seconds[1:] if len(seconds) > 1 else seconds))
    return VariantResult(
        name, spec, analyze(spec), records, mean_std_ci(acc), mean_std_ci(loss), per_epoch, result
    )


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pm(stats: dict[str, float], digits: int = 4) -> str:
    """'0.9012 ± 0.0031 (95% CI ± 0.0077, 3 seeds)'."""
    if stats.get("n", 1) < 2:
        return f"{stats['mean']:.{digits}f} (1 seed)"
    return (
        f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f} "
        f"(95% CI ± {stats['ci95']:.{digits}f}, {stats['n']} seeds)"
    )


def last_spatial(report: NetReport) -> Any:
    spatial = [r for r in report.layers if not r.is_global]
    return spatial[-1] if spatial else None


def comparison_table(
    variants: Sequence[VariantResult],
    extra: dict[str, Callable[[VariantResult], str]] | None = None,
) -> str:
    """Markdown: one row per variant, analytic numbers beside the measured accuracy."""
    cols = [
        "network",
        "params",
        "last map",
        "receptive field",
        "values into head",
        "MACs/image",
        "test accuracy",
        "s/epoch",
    ]
    extra = extra or {}
    cols += list(extra)
    rows = []
    for v in variants:
        ls = last_spatial(v.report)
        head_in = next(
            (r.values for r in v.report.layers if r.is_global), v.report.layers[-1].values
        )
        rows.append(
            [
                f"`{v.name}`",
                f"{v.report.total_params:,}",
                "x".join(map(str, ls.output_shape)) if ls else "-",
                f"{ls.receptive_field[0]}x{ls.receptive_field[1]}" if ls else "-",
                f"{head_in:,}",
                human(v.report.total_macs),
                pm(v.accuracy),
                f"{v.seconds_per_epoch:.1f}",
                *(fn(v) for fn in extra.values()),
            ]
        )
    return markdown.table(cols, rows)


@dataclass
class Run:
    """A run directory being written: collects sections, figures and results."""

    name: str
    question: str
    out: Path
    settings: Settings
    sections: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        from cnnjax import parallel

        if not parallel.is_primary():
            # Every process of a multi-host run computes the same report; only process 0's
            # lands in `out`, the others write into a scratch directory of their own.
            self.out = Path(tempfile.mkdtemp(prefix=f"cnnjax-{self.name}-p{jax.process_index()}-"))
        self.out.mkdir(parents=True, exist_ok=True)
        self.figures.mkdir(exist_ok=True)

    @property
    def figures(self) -> Path:
        return self.out / "figures"

    def add(self, markdown: str) -> None:
        self.sections.append(markdown.strip())

    def figure(self, filename: str, caption: str) -> Path:
        """The path for a figure, and a Markdown reference to it in the report."""
        path = self.figures / filename
        self.sections.append(f"![{caption}](figures/{filename})\n\n*{caption}*")
        return path

    def finish(self, answer: Sequence[str], command: str) -> Path:
        """Write config.json, results.json and report.md (each atomically); return report.md."""
        from cnnjax.checkpoint import write_atomic
        from cnnjax.train import versions as _versions

        seconds = time.perf_counter() - self.started
        config: dict[str, Any] = {
            "experiment": self.name,
            "settings": self.settings.to_dict(),
            "command": command,
            "versions": _versions(),
        }
        self.results["seconds"] = seconds
        self.results["answer"] = list(answer)
        write_atomic(self.out / "config.json", json.dumps(config, indent=2) + "\n")
        write_atomic(
            self.out / "results.json",
            json.dumps(self.results, indent=2, default=_json_default) + "\n",
        )
        s = self.settings
        header = [
            f"# {self.name}: {self.question}",
            "",
            f"Command: `{command}`  ",
            f"Data: {s.dataset}, {s.train_limit or 'all'} training / {s.test_limit or 'all'} test images; "
            f"{s.epochs} epoch{'s' if s.epochs != 1 else ''}, batch {s.batch_size}, Adam 1e-3, {s.seeds} seeds; "
            f"mode `{s.mode}`; {seconds:.0f} s on {config['versions'].get('backend', '?')}.",
            "",
            "## Answer",
            "",
            *(f"- {a}" for a in answer),
            "",
        ]
        write_atomic(
            self.out / "report.md", "\n".join(header) + "\n" + "\n\n".join(self.sections) + "\n"
        )
        return self.out / "report.md"


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def load_data(settings: Settings, classes: Sequence[int] | None = None) -> tuple[Any, Any]:
    """Train and test splits of the settings' dataset, limited to the settings' sizes."""
    from cnnjax.data.loading import load_datasets

    return load_datasets(
        settings.dataset,
        data_dir=settings.data_dir,
        limit=settings.train_limit,
        test_limit=settings.test_limit,
        classes=list(classes) if classes else None,
        seed=settings.seed,
    )


def verdict(x, y) -> str:
    """Whether two accuracies differ beyond their confidence intervals."""
    dx, dy = x.accuracy, y.accuracy
    gap = dx["mean"] - dy["mean"]
    ci = (dx.get("ci95") or 0.0) + (dy.get("ci95") or 0.0)
    if ci != ci or abs(gap) <= ci:  # nan (one seed) or overlapping intervals
        return f"The difference ({gap:+.4f}) is within the seeds' noise."
    better = x.name if gap > 0 else y.name
    return f"`{better}` is better by {abs(gap):.4f}, beyond the 95% intervals."


def command_for(name: str, settings: Settings) -> str:
    """The command line that reruns an experiment with these settings."""
    parts = ["cnnjax", "experiment", name]
    if settings.mode != "default":
        parts.append(f"--{settings.mode}")
    return " ".join(parts)
