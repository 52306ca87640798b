"""Linear probes: accuracy per layer above the values each layer keeps."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cnnjax.errors import InspectError
from cnnjax.plots.canvas import figure, save
from cnnjax.results import ProbeResult


def plot_values_vs_probe(
    probes: Sequence[ProbeResult],
    path: str | Path,
    *,
    title: str | None = None,
    chance: float | None = None,
) -> Path:
    """Linear-probe accuracy per layer (top) above the values each layer keeps (bottom, log
    scale): seed 000's "less data, more accuracy" measured layer by layer."""
    probes = list(probes)
    if not probes:
        raise InspectError("no probe results to plot")
    x = np.arange(len(probes))
    fig = figure(max(7.5, 0.95 * len(probes) + 3.0), 7.0)
    grid = fig.add_gridspec(2, 1, height_ratios=[1.1, 1.0], hspace=0.08)
    acc = fig.add_subplot(grid[0])
    ax = fig.add_subplot(grid[1], sharex=acc)
    test = np.array([p.test_acc for p in probes])
    train = np.array([p.train_acc for p in probes])
    acc.plot(x, test, "o-", color="tab:red", lw=2, label="probe test accuracy")
    acc.plot(x, train, "s--", color="tab:orange", lw=1, ms=4, label="probe train accuracy")
    for xi, t in zip(x, test, strict=True):
        acc.annotate(
            f"{t:.3f}",
            (xi, t),
            textcoords="offset points",
            xytext=(0, -14),
            ha="center",
            fontsize=8,
            color="tab:red",
        )
    low = float(min(test.min(), train.min()))
    bottom = max(0.0, math.floor((low - 0.06) * 20) / 20)
    if chance is not None and chance >= bottom:
        acc.axhline(chance, color="gray", ls=":", lw=1, label=f"chance ({chance:.2f})")
    elif chance is not None:
        acc.plot([], [], ls=":", color="gray", label=f"chance {chance:.2f} (below the axis)")
    acc.set_ylim(bottom, min(1.0, max(test.max(), train.max()) + 0.03) + 0.005)
    acc.set_ylabel("linear-probe accuracy\n(fraction correct)")
    acc.grid(alpha=0.3)
    acc.legend(fontsize=8, loc="lower right")
    acc.tick_params(labelbottom=False)
    values = np.array([p.values for p in probes], float)
    bars = ax.bar(x, values, color="lightsteelblue", edgecolor="steelblue")
    ax.set_yscale("log")
    ax.set_ylim(max(values.min() / 3, 0.5), values.max() * 6)
    for bar, p in zip(bars, probes, strict=True):
        ax.text(
            bar.get_x() + bar.get_width() / 2,
            bar.get_height() * 1.15,
            f"{p.values:,}\n({p.values_fraction:.3g}×)",
            ha="center",
            va="bottom",
            fontsize=7.5,
        )
    ax.set_ylabel("values per image\n(log scale; × of the input)")
    ax.set_xlabel("layer (input → output); * probed on reduced features (see the table)")
    ax.set_xticks(x)
    ax.set_xticklabels(
        [p.layer + ("*" if p.reduction != "none" else "") for p in probes], rotation=30, ha="right"
    )
    ax.grid(alpha=0.3, axis="y")
    fig.suptitle(
        title or "Values kept per layer vs the class information a linear classifier reads off it",
        fontsize=11,
    )
    fig.subplots_adjust(left=0.1, right=0.97, top=0.93, bottom=0.16)
    return save(fig, path)
