"""The five seed questions as experiments: `cnnjax experiment NAME [--quick | --full]`.

Each module defines NAME, QUESTION, MODES (per-mode settings) and `run(settings, out) -> Path`
(the report it wrote). `run_experiment` resolves the settings and the run directory.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

EXPERIMENTS = (
    "pooling_information",
    "small_feature_maps",
    "no_pooling",
    "kernel_vs_filters",
    "pooling_224",
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
    """Run the five experiments and write an index report linking them."""
    root = Path(out) if out else Path("runs") / "all"
    from cnnjax import parallel

    for name in EXPERIMENTS:
        run_experiment(name, mode, root / name, **overrides)
    return write_index(root) if parallel.is_primary() else root / "index.md"


def write_index(root: str | Path) -> Path:
    """Write `root/index.md`: each experiment's question and answer, linked to its report.

    Separate from `run_all` so that experiments run one at a time can be indexed afterwards.
    """
    from cnnjax.checkpoint import write_atomic

    root = Path(root)
    lines = ["# cnnjax: the five seed questions, answered by measurement", ""]
    for name in EXPERIMENTS:
        path = root / name / "report.md"
        if not path.exists():
            raise FileNotFoundError(
                f"{path} is missing: run `cnnjax experiment {name} --out {root / name}`"
            )
        answer = path.read_text().split("## Answer", 1)[-1].strip().split("\n\n")[0]
        lines += [f"## [{name}]({name}/report.md): {get(name).QUESTION}", "", answer, ""]
    write_atomic(root / "index.md", "\n".join(lines) + "\n")
    return root / "index.md"


def run_demo(out: str | Path | None = None) -> int:
    """The main job of `make demo`: the flagship experiment on the offline default data."""
    report = run_experiment("pooling_information", "default", out or Path("runs") / "demo")
    print(report.read_text())
    print(f"report: {report}")
    return 0
