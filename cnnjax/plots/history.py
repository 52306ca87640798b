"""Training curves: loss and accuracy per epoch, train beside validation, k seeds as a band."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cnnjax.errors import InspectError
from cnnjax.plots.canvas import figure, save


def _as_runs(history_or_list: Any) -> dict[str, list[dict[str, Any]]]:
    """Normalise: one History / record list, a list of them, or a name -> history mapping."""

    def records(h: Any) -> list[dict[str, Any]]:
        return list(getattr(h, "records", h))

    if isinstance(history_or_list, Mapping):
        return {str(k): records(v) for k, v in history_or_list.items()}
    if hasattr(history_or_list, "records"):
        return {"run": records(history_or_list)}
    items = list(history_or_list)
    if items and isinstance(items[0], Mapping):
        return {"run": items}
    return {f"run {i}": records(h) for i, h in enumerate(items)}


def _metric(records: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(epochs, mean over seeds, std over seeds) of one metric; epochs without it are skipped."""
    epochs, means, stds = [], [], []
    for i, rec in enumerate(records):
        value = rec.get(key)
        if value is None:
            continue
        v = np.asarray(value, np.float64).reshape(-1)
        epochs.append(rec.get("epoch", i + 1))
        means.append(v.mean())
        stds.append(v.std(ddof=1) if v.size > 1 else 0.0)
    return np.asarray(epochs, float), np.asarray(means), np.asarray(stds)


def _seeds(records: list[dict[str, Any]]) -> int:
    value = records[0].get("loss") if records else None
    return len(value) if isinstance(value, (list, tuple)) else 1


def plot_history(history_or_list: Any, path: str | Path, title: str = "Training curves") -> Path:
    """Loss and accuracy per epoch, train (solid, filled) vs validation (dashed, hollow), per
    run; k-seed runs draw the mean with a ± 1 std band (error bars for a single epoch, whose
    values are also written beside the points)."""
    runs = _as_runs(history_or_list)
    if not runs or not any(runs.values()):
        raise InspectError("no history records to plot")
    fig = figure(11.0, 4.6)
    axes = [fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)]
    max_epoch = 1
    max_seeds = 1
    single = len(runs) == 1
    for r, (name, records) in enumerate(runs.items()):
        k = _seeds(records)
        max_seeds = max(max_seeds, k)
        for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
            for j, (key, style, marker, what) in enumerate(
                ((metric, "-", "o", "train"), (f"val_{metric}", "--", "s", "validation"))
            ):
                epochs, mean, std = _metric(records, key)
                if epochs.size == 0:
                    continue
                # one run: train and validation in two colours; several: a colour per run
                color = f"C{j}" if single else f"C{r % 10}"
                face = color if j == 0 else "white"
                max_epoch = max(max_epoch, int(epochs.max()))
                label = (what if single else f"{name} {what}") + (
                    f" (mean of {k} seeds)" if k > 1 else ""
                )
                if epochs.size == 1:
                    epochs = epochs + 0.12 * (r - (len(runs) - 1) / 2)  # side by side
                    ax.errorbar(
                        epochs,
                        mean,
                        yerr=std,
                        color=color,
                        mfc=face,
                        ls="none",
                        marker=marker,
                        ms=7,
                        capsize=4,
                        label=label,
                    )
                    ax.annotate(
                        f"{mean[0]:.4f}",
                        (epochs[0], mean[0]),
                        textcoords="offset points",
                        xytext=(10, -3),
                        fontsize=8,
                        color=color,
                    )
                else:
                    ax.plot(
                        epochs,
                        mean,
                        ls=style,
                        marker=marker,
                        ms=5,
                        color=color,
                        mfc=face,
                        label=label,
                    )
                    if k > 1:
                        ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.18)
    axes[0].set_ylabel("loss (cross-entropy, nats per example)")
    axes[1].set_ylabel("accuracy (fraction correct)")
    for ax, metric in zip(axes, ("Loss", "Accuracy"), strict=True):
        ax.set_xlabel("epoch")
        ax.set_title(metric, fontsize=10)
        ax.set_xlim(0.5, max_epoch + 0.5)
        ax.set_xticks(range(1, max_epoch + 1, max(1, max_epoch // 10)))
        ax.grid(alpha=0.3)
        if single:
            ax.legend(fontsize=7)
    bottom = 0.04
    if not single:  # one legend for both panels, below them, clear of the data
        handles, labels = axes[0].get_legend_handles_labels()
        ncol = min(len(labels), 4)
        fig.legend(
            handles,
            labels,
            loc="lower center",
            ncol=ncol,
            fontsize=7.5,
            frameon=False,
            bbox_to_anchor=(0.5, 0.04),
        )
        bottom = 0.06 + 0.045 * math.ceil(len(labels) / ncol)
        fig.set_size_inches(11.0, 4.6 + 0.3 * math.ceil(len(labels) / ncol))
    band = f" — band: ± 1 std over {max_seeds} seeds" if max_seeds > 1 else ""
    fig.suptitle(f"{title}{band}", fontsize=11)
    fig.text(
        0.5,
        0.01,
        "train: running mean over each epoch's batches while the weights change (as Keras "
        "reports it); validation: measured at the end of the epoch",
        ha="center",
        fontsize=8,
        color="0.3",
    )
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return save(fig, path)
