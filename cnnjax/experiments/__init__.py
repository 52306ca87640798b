"""The seed questions as experiments: `cnnjax experiment NAME [--quick | --full]`.

Five answer the seed posts; `erf_depth` asks the follow-up every receptive-field table raises
(why the effective field is smaller than the theoretical one, and what skip connections do).

Each module defines NAME, QUESTION, MODES (per-mode settings) and `run(settings, out) -> Path`
(the report it wrote). `run_experiment` resolves the settings and the run directory.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any

from cnnjax.markdown import table

EXPERIMENTS = (
    "pooling_information",
    "small_feature_maps",
    "no_pooling",
    "kernel_vs_filters",
    "pooling_224",
    "erf_depth",
)


def get(name: str) -> ModuleType:
    if name not in EXPERIMENTS:
        raise KeyError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}, all")
    return importlib.import_module(f"cnnjax.experiments.{name}")


def run_experiment(
    name: str, mode: str = "default", out: str | Path | None = None, **overrides: Any
) -> Path:
    """Run one experiment and return the path of its report.md."""
    from cnnjax.experiments.harness import settings_for

    module = get(name)
    settings = settings_for(mode, **module.MODES, **overrides)
    out_dir = Path(out) if out else Path("runs") / name
    return module.run(settings, out_dir)


def run_all(mode: str = "default", out: str | Path | None = None, **overrides: Any) -> Path:
    """Run every experiment, printing each one's wall time, and write an index report."""
    import time

    from cnnjax import parallel

    root = Path(out) if out else Path("runs") / "all"
    start = time.perf_counter()
    for name in EXPERIMENTS:
        t0 = time.perf_counter()
        run_experiment(name, mode, root / name, **overrides)
        if parallel.is_primary():
            print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
    if parallel.is_primary():
        print(f"all experiments: {time.perf_counter() - start:.0f} s", flush=True)
    return write_index(root) if parallel.is_primary() else root / "index.md"


def write_index(root: str | Path) -> Path:
    """Write `root/index.md`: each experiment's question and answer, linked to its report.

    Separate from `run_all` so that experiments run one at a time can be indexed afterwards.
    """
    from cnnjax.checkpoint import write_atomic

    root = Path(root)
    lines = ["# cnnjax: the seed questions, answered by measurement", ""]
    times = []
    for name in EXPERIMENTS:
        path = root / name / "report.md"
        if not path.exists():
            raise FileNotFoundError(
                f"{path} is missing: run `cnnjax experiment {name} --out {root / name}`"
            )
        answer = path.read_text().split("## Answer", 1)[-1].strip().split("\n\n")[0]
        lines += [f"## [{name}]({name}/report.md): {get(name).QUESTION}", "", answer, ""]
        results = root / name / "results.json"
        seconds = json.loads(results.read_text()).get("seconds") if results.exists() else None
        times.append((name, seconds))
    total = sum(s for _, s in times if s is not None)
    rows = [(n, f"{s:.0f}" if s is not None else "-") for n, s in times]
    lines += [
        "## Wall time",
        "",
        table(("experiment", "seconds"), [*rows, ("**all**", f"**{total:.0f}**")]),
        "",
    ]
    write_atomic(root / "index.md", "\n".join(lines) + "\n")
    return root / "index.md"


def run_demo(out: str | Path | None = None) -> int:
    """The main job of `make demo`: the flagship experiment on the offline default data."""
    report = run_experiment("pooling_information", "default", out or Path("runs") / "demo")
    print(report.read_text())
    print(f"report: {report}")
    return 0
