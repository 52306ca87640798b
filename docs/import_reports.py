"""Copy experiment reports (report.md + figures/) from a run directory into docs/experiments/.

    cnnjax experiment all --out runs/all      # writes runs/all/<name>/report.md, figures/
    python docs/import_reports.py runs/all    # copies them to docs/experiments/<name>.md
    python docs/import_reports.py runs/all --headlines   # the README's headline table

Each copied page keeps the report's `Command:` line, so every number on it comes from the
command written at its top.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cnnjax.experiments import EXPERIMENTS  # noqa: E402


def main(run_root: str) -> None:
    source = Path(run_root)
    target = ROOT / "docs" / "experiments"
    for name in EXPERIMENTS:
        report = source / name / "report.md"
        if not report.is_file():
            print(f"skip {name}: no {report}")
            continue
        text = report.read_text().replace("](figures/", f"]({name}/")
        (target / f"{name}.md").write_text(text)
        figures = target / name
        if figures.exists():
            shutil.rmtree(figures)
        shutil.copytree(source / name / "figures", figures)
        print(f"docs/experiments/{name}.md <- {report}")


def _last_spatial_rf(analysis: dict) -> str:
    spatial = [layer for layer in analysis["layers"] if not layer["is_global"]]
    if not spatial:
        return "-"
    h, w = spatial[-1]["receptive_field"]
    return f"{h}x{w}"


def headlines(run_root: str) -> str:
    """One markdown row per network of every experiment: params, receptive field, accuracy."""
    rows = [
        "| experiment | network | params | receptive field (last map) | test accuracy, mean ± std "
        "(95% CI), seeds | s/epoch |",
        "|---|---|---:|---:|---|---:|",
    ]
    for name in EXPERIMENTS:
        path = Path(run_root) / name / "results.json"
        if not path.is_file():
            continue
        results = json.loads(path.read_text())
        # erf_depth has no variants of this shape: its own report holds its table.
        variants = results.get("variants") or ([results["variant"]] if "variant" in results else [])
        for v in variants:
            a = v["test_accuracy"]
            rows.append(
                f"| `{name}` | `{v['name']}` | {v['analysis']['total_params']:,} | "
                f"{_last_spatial_rf(v['analysis'])} | {a['mean']:.4f} ± {a['std']:.4f} "
                f"(± {a['ci95']:.4f}), {a['n']} | {v['seconds_per_epoch']:.1f} |"
            )
    return "\n".join(rows)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    root = args[0] if args else "runs/all"
    if "--headlines" in sys.argv:
        print(headlines(root))
    else:
        main(root)
