"""Figures that show what the numbers mean: feature maps, filters, effective receptive fields,
training curves, values kept beside probe accuracy, and receptive-field growth.

Every function draws with matplotlib's object API on the non-interactive Agg canvas (pyplot
and the global backend are never touched, so the functions are safe in notebooks, threads and
tests), writes one PNG, and returns its path. Every figure has a title, axis labels with units,
and a colour bar where colour carries a number. matplotlib is imported on the first call.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from cnnjax.analysis import LayerReport, NetReport
    from cnnjax.inspect import ErfResult, ProbeResult

DPI = 100
TILE_INCHES = 0.62


# --------------------------------------------------------------------------- canvas


def _figure(width: float, height: float) -> Figure:
    """A new figure on its own Agg canvas (no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    """Write the figure as a PNG (creating parent directories) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI, facecolor="white")
    return path


def _shape_text(shape: Sequence[int]) -> str:
    return "×".join(str(s) for s in shape)


# --------------------------------------------------------------------------- feature maps


def _mosaic(maps: np.ndarray, columns: int) -> np.ndarray:
    """[H, W, C] -> one image of C tiles (each scaled to its own 0..1), NaN gutters between."""
    h, w, c = maps.shape
    cols = min(columns, c)
    rows = math.ceil(c / cols)
    gap = max(1, round(max(h, w) / 12))
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), np.nan, np.float32)
    for k in range(c):
        tile = maps[:, :, k].astype(np.float32)
        lo, hi = float(tile.min()), float(tile.max())
        tile = (tile - lo) / (hi - lo) if hi > lo else np.zeros_like(tile)
        r, q = divmod(k, cols)
        out[r * (h + gap) : r * (h + gap) + h, q * (w + gap) : q * (w + gap) + w] = tile
    return out


def _show_image(ax: Axes, image: np.ndarray, title: str) -> Any:
    """Show an input image (grey for one channel, RGB for three, else the channel mean)."""
    image = np.asarray(image, np.float32)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 3 and image.shape[-1] != 3:
        image = image.mean(axis=-1)
    if image.ndim == 2:
        im = ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        im = ax.imshow(np.clip(image, 0.0, 1.0), interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("column (px)")
    ax.set_ylabel("row (px)")
    return im


def plot_feature_maps(
    maps: Mapping[str, np.ndarray],
    path: str | Path,
    *,
    max_channels: int = 64,
    image: Any = None,
    index: int = 0,
    columns: int = 16,
    title: str | None = None,
    class_names: Sequence[str] | None = None,
) -> Path:
    """One panel per layer: a tile per channel of image `index`'s activation (input on top).

    Spatial maps show one tile per channel (the first `max_channels`), each scaled to its own
    range; vectors show as bars, the last one labelled with `class_names` when they fit.
    """
    panels: list[tuple[str, Any, float]] = []
    if image is not None:
        panels.append(("image", np.asarray(image), 2.4))
    for name, value in maps.items():
        a = np.asarray(value)[index]
        if a.ndim == 3:
            shown = min(a.shape[-1], max_channels)
            rows = math.ceil(shown / min(columns, shown))
            aspect = a.shape[0] / a.shape[1]
            panels.append((name, a, 0.75 + rows * TILE_INCHES * aspect * 1.08))
        else:
            panels.append((name, a.reshape(-1), 1.9))
    if not panels:
        raise ValueError("nothing to draw: no maps and no image")
    width = max(6.0, min(columns, 16) * TILE_INCHES + 2.0)
    heights = [p[2] for p in panels]
    fig = _figure(width, sum(heights) + (0.6 if title else 0.2))
    grid = fig.add_gridspec(len(panels), 1, height_ratios=heights, hspace=0.55)
    last = list(maps)[-1] if maps else None
    for i, (name, a, _) in enumerate(panels):
        if name == "image":
            row = grid[i].subgridspec(1, 2, width_ratios=[1.0, 3.0], wspace=0.3)
            ax = fig.add_subplot(row[0])
            im = _show_image(ax, a, f"input {_shape_text(np.shape(a))}")
            fig.colorbar(im, ax=ax, label="pixel value (0..1)", fraction=0.08, pad=0.04)
            note = fig.add_subplot(row[1])
            note.axis("off")
            note.text(
                0.0,
                0.5,
                "How to read this figure: each panel below is one layer's output for this image.\n"
                "A spatial layer H×W×C shows C tiles of H×W positions; a bright cell means that\n"
                "channel's detector responds strongly at that place (tiles are scaled one by one).\n"
                "Vectors (flatten, dense) are drawn as bars; the last one holds the class scores.",
                va="center",
                fontsize=9,
            )
            continue
        ax = fig.add_subplot(grid[i])
        if a.ndim == 3:
            h, w, c = a.shape
            shown = min(c, max_channels)
            import matplotlib

            cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
            im = ax.imshow(
                _mosaic(a[:, :, :shown], columns),
                cmap=cmap,
                vmin=0,
                vmax=1,
                interpolation="nearest",
            )
            dead = int(sum(float(a[:, :, k].max() - a[:, :, k].min()) == 0.0 for k in range(c)))
            note = f"channels 0-{shown - 1} of {c}" if shown < c else f"all {c} channels"
            ax.set_title(
                f"{name}: {h}×{w}×{c} = {h * w * c:,} values ({note}, one tile each, "
                f"left to right; {dead} constant)",
                fontsize=9,
            )
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"each tile: {h}×{w} positions of one channel", fontsize=8)
            fig.colorbar(
                im, ax=ax, fraction=0.04, pad=0.02, label="activation\n(min→0, max→1 per tile)"
            )
        else:
            units = np.arange(a.size)
            if a.size <= 128:
                colors = ["tab:blue"] * a.size
                if name == last and class_names is not None and len(class_names) == a.size:
                    colors[int(np.argmax(a))] = "tab:red"
                ax.bar(units, a, width=0.85, color=colors)
            else:
                ax.plot(units, a, lw=0.7, color="tab:blue")
            ax.axhline(0.0, color="black", lw=0.5)
            ax.set_xlim(-0.5, a.size - 0.5)
            ax.set_ylabel("activation")
            if name == last and class_names is not None and len(class_names) == a.size:
                ax.set_xticks(units)
                ax.set_xticklabels(class_names, fontsize=8, rotation=20)
                ax.set_title(
                    f"{name}: {a.size} class scores (logits; red: the largest)", fontsize=9
                )
                ax.set_xlabel("class")
            else:
                ax.set_title(f"{name}: vector of {a.size:,} values", fontsize=9)
                ax.set_xlabel("unit index")
    if title:
        fig.suptitle(title, fontsize=12)
    fig.subplots_adjust(left=0.08, right=0.95, top=0.97 if not title else 0.95, bottom=0.03)
    return _save(fig, path)


def plot_filters(
    kernel: np.ndarray,
    path: str | Path,
    *,
    layer: str = "conv2d",
    description: str = "",
    columns: int = 16,
) -> Path:
    """A convolution's kernels [kh, kw, cin, cout] as tiles: RGB for 3 input channels, else a
    diverging map of the weights (averaged over input channels when there are several)."""
    kernel = np.asarray(kernel, np.float32)
    kh, kw, cin, cout = kernel.shape
    cols = min(columns, cout)
    rows = math.ceil(cout / cols)
    fig = _figure(max(5.0, cols * 0.55 + 2.0), rows * 0.6 + 1.4)
    ax = fig.add_subplot(1, 1, 1)
    gap = 1
    if cin == 3:
        canvas = np.full((rows * (kh + gap) - gap, cols * (kw + gap) - gap, 3), 0.3, np.float32)
        for k in range(cout):
            f = kernel[:, :, :, k]
            f = (f - f.min()) / (f.max() - f.min() + 1e-12)
            r, q = divmod(k, cols)
            canvas[r * (kh + gap) : r * (kh + gap) + kh, q * (kw + gap) : q * (kw + gap) + kw] = f
        ax.imshow(canvas, interpolation="nearest")
        how = "RGB, each filter scaled to its own range"
    else:
        import matplotlib

        w = kernel.mean(axis=2)
        vmax = float(np.abs(w).max()) or 1.0
        canvas = np.full((rows * (kh + gap) - gap, cols * (kw + gap) - gap), np.nan, np.float32)
        for k in range(cout):
            r, q = divmod(k, cols)
            canvas[r * (kh + gap) : r * (kh + gap) + kh, q * (kw + gap) : q * (kw + gap) + kw] = w[
                :, :, k
            ]
        cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="0.3")
        im = ax.imshow(canvas, cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
        fig.colorbar(
            im, ax=ax, fraction=0.03, pad=0.02, shrink=0.8, label="weight\n(red +, blue −)"
        )
        how = "weights" + (f", mean over {cin} input channels" if cin > 1 else "")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"each tile: one {kh}×{kw} filter ({how})")
    ax.set_title(
        f"First-layer filters: {layer} {description}, {cout} filters of {kh}×{kw}×{cin}",
        fontsize=10,
    )
    fig.tight_layout()
    return _save(fig, path)


# --------------------------------------------------------------------------- ERF


def plot_erf(
    result_or_results: ErfResult | Sequence[ErfResult],
    path: str | Path,
    image_shape: Sequence[int],
    *,
    titles: Sequence[str] | None = None,
    columns: int | None = None,
) -> Path:
    """Heat maps of effective receptive fields side by side, each with its analytic square
    (solid cyan, clipped to the input), its 95%-mass square (dashed) and its unit's centre."""
    from matplotlib.patches import Rectangle

    results = (
        list(result_or_results) if isinstance(result_or_results, Sequence) else [result_or_results]
    )
    if not results:
        raise ValueError("no ERF results to draw")
    titles = list(titles) if titles is not None else [r.layer for r in results]
    if len(titles) != len(results):
        raise ValueError(f"{len(results)} results but {len(titles)} titles")
    h, w = int(image_shape[0]), int(image_shape[1])
    cols = columns or min(len(results), 4)
    rows = math.ceil(len(results) / cols)
    fig = _figure(4.3 * cols, 4.5 * rows + 0.5)
    for i, (res, title) in enumerate(zip(results, titles, strict=True)):
        ax = fig.add_subplot(rows, cols, i + 1)
        m = np.asarray(res.map)
        if m.shape != (h, w):
            raise ValueError(f"ERF map of shape {m.shape} does not match the input {h}x{w}")
        im = ax.imshow(m, cmap="inferno", interpolation="nearest", vmin=0.0)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, label="share of |gradient| per pixel")
        t, b, l, r = res.analytic_window
        ax.add_patch(
            Rectangle(
                (l - 0.5, t - 0.5),
                r - l + 1,
                b - t + 1,
                fill=False,
                ec="cyan",
                lw=1.8,
                label=f"analytic RF {res.analytic_rf[0]}×{res.analytic_rf[1]}",
            )
        )
        cr, cc = res.centre
        for share, side, style, color in (
            (95, res.size95, "--", "white"),
            (50, res.size50, ":", "lime"),
        ):
            if side <= 0:
                continue
            top = (res.window[0] + res.window[1] - (side - 1)) // 2
            left = (res.window[2] + res.window[3] - (side - 1)) // 2
            ax.add_patch(
                Rectangle(
                    (left - 0.5, top - 0.5),
                    side,
                    side,
                    fill=False,
                    ec=color,
                    lw=1.2,
                    ls=style,
                    label=f"{share}% of mass: {side}×{side}",
                )
            )
        ax.plot([cc], [cr], marker="+", color="lime", ms=9, mew=1.5, ls="none", label="unit centre")
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        unit = res.unit if isinstance(res.unit, str) else f"unit {tuple(res.unit)}"
        where = unit if res.layer in title else f"{res.layer}, {unit}"
        ax.set_title(
            f"{title}\n{where}: ERF 95% {res.size95} px (50% {res.size50}) vs analytic "
            f"{res.analytic_rf[0]}×{res.analytic_rf[1]}\n(mean over {res.num_images} images; "
            f"{res.mass_in_window:.0%} of mass inside the square)",
            fontsize=8.5,
        )
        ax.set_xlabel("input column (px)")
        ax.set_ylabel("input row (px)")
        ax.legend(loc="lower left", fontsize=6.5, framealpha=0.7)
    fig.suptitle(
        "Effective receptive field: mean |∂ unit / ∂ input pixel| (Luo et al. 2016)", fontsize=11
    )
    fig.tight_layout()
    return _save(fig, path)


# --------------------------------------------------------------------------- history


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
        raise ValueError("no history records to plot")
    fig = _figure(11.0, 4.6)
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
    return _save(fig, path)


# --------------------------------------------------------------------------- probes


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
        raise ValueError("no probe results to plot")
    x = np.arange(len(probes))
    fig = _figure(max(7.5, 0.95 * len(probes) + 3.0), 7.0)
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
    return _save(fig, path)


# --------------------------------------------------------------------------- receptive field


def plot_receptive_field_growth(
    report: NetReport | Mapping[str, NetReport],
    path: str | Path,
    *,
    measured: Mapping[str, Mapping[str, float]] | None = None,
    title: str | None = None,
) -> Path:
    """Analytic receptive field (side, px) and effective stride per spatial layer, for one
    network or several (name -> report); `measured` adds measured ERF sizes, label -> layer ->
    px (e.g. {"95% of mass, trained": {"conv2d": 3, ...}})."""
    reports = dict(report) if isinstance(report, Mapping) else {report.name or "network": report}
    fig = _figure(9.0, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    single = len(reports) == 1
    labels: list[str] = []
    input_hw = None
    for i, (name, rep) in enumerate(reports.items()):
        spatial = [r for r in rep.layers if not r.is_global]
        input_hw = rep.input_shape[:2]
        xs = np.arange(len(spatial) + 1)
        rf = [1] + [r.receptive_field[0] for r in spatial]
        stride = [1] + [r.effective_stride[0] for r in spatial if r.effective_stride]
        color = f"C{i}"
        prefix = "" if single else f"{name}: "
        ax.plot(xs, rf, "o-", color=color, lw=2, label=f"{prefix}analytic receptive field")
        ax.plot(xs, stride, "^:", color=color, lw=1, ms=5, label=f"{prefix}effective stride")
        if single:
            labels = ["input"] + [f"{r.name}\n{r.description}" for r in spatial]
            for x, v in zip(xs, rf, strict=True):
                ax.annotate(
                    str(v),
                    (x, v),
                    textcoords="offset points",
                    xytext=(0, 6),
                    ha="center",
                    fontsize=8,
                    color=color,
                )
    if measured:
        first = next(iter(reports.values()))
        names = ["input"] + [r.name for r in first.layers if not r.is_global]
        for j, (label, sizes) in enumerate(measured.items()):
            pts = [(names.index(n), v) for n, v in sizes.items() if n in names]
            if pts:
                px, py = zip(*pts, strict=True)
                color = f"C{j + len(reports)}"
                ax.plot(
                    px,
                    py,
                    "D--",
                    color=color,
                    ms=10 - 3 * min(j, 1),
                    mfc="none" if j == 0 else color,
                    label=f"measured ERF: {label}",
                )
    if input_hw is not None:
        ax.axhline(
            input_hw[0], color="gray", ls="--", lw=1, label=f"input height ({input_hw[0]} px)"
        )
    if single:
        ax.set_xticks(np.arange(len(labels)))
        ax.set_xticklabels(labels, fontsize=7, rotation=0)
        ax.set_xlabel("spatial layer (input → output); global layers see the whole input")
    else:
        ax.set_xlabel("spatial layer depth (0 = input); global layers see the whole input")
    ax.set_ylabel("pixels of the input (side of the square)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title or f"Receptive field growth per layer: {', '.join(reports)}", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _sample_units(oh: int, ow: int, limit: int = 25) -> list[tuple[int, int]]:
    """Every unit of a small map, else a 3 x 3 sample (corners, edge middles, centre)."""
    if oh * ow <= limit:
        return [(i, j) for i in range(oh) for j in range(ow)]
    rows = sorted({0, (oh - 1) // 2, oh - 1})
    cols = sorted({0, (ow - 1) // 2, ow - 1})
    return [(i, j) for i in rows for j in cols]


def draw_receptive_windows(
    image: Any,
    report_layer: LayerReport,
    path: str | Path,
    *,
    units: Sequence[tuple[int, int]] | None = None,
    title: str | None = None,
) -> Path:
    """The input windows seen by a spatial layer's units: outlined on the image (left) and as
    crops laid out like the feature map (right); padding beyond the input shows as grey."""
    from matplotlib.patches import Rectangle

    from cnnjax.analysis import receptive_window

    r = report_layer
    if r.is_global:
        raise ValueError(f"layer {r.name} is global: every unit sees the whole input")
    img = np.asarray(image, np.float32)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    h, w = img.shape[:2]
    oh, ow = r.output_shape[:2]
    chosen = list(units) if units is not None else _sample_units(oh, ow)
    rows_u = sorted({u[0] for u in chosen})
    cols_u = sorted({u[1] for u in chosen})
    fig = _figure(11.0, 5.6)
    outer = fig.add_gridspec(1, 2, width_ratios=[1.0, 1.0], wspace=0.15)
    ax = fig.add_subplot(outer[0])
    sample = "" if len(chosen) == oh * ow else f" (a sample of its {oh}×{ow})"
    _show_image(ax, img, f"input {h}×{w}: windows of {len(chosen)} units of {r.name}{sample}")
    windows = {u: receptive_window(r, *u) for u in chosen}
    lo_r = min(0, *(wd[0] for wd in windows.values()))
    hi_r = max(h - 1, *(wd[1] for wd in windows.values()))
    lo_c = min(0, *(wd[2] for wd in windows.values()))
    hi_c = max(w - 1, *(wd[3] for wd in windows.values()))
    for k, (u, (t, b, le, ri)) in enumerate(windows.items()):
        color = f"C{k % 10}"
        inset = 0.25 * (k % 3)
        ax.add_patch(
            Rectangle(
                (le - 0.5 + inset, t - 0.5 + inset),
                ri - le + 1 - 2 * inset,
                b - t + 1 - 2 * inset,
                fill=False,
                ec=color,
                lw=1.6,
            )
        )
        ax.text(
            (le + ri) / 2,
            (t + b) / 2,
            f"{u[0]},{u[1]}",
            color=color,
            fontsize=7,
            ha="center",
            va="center",
            fontweight="bold",
        )
    ax.set_xlim(lo_c - 0.5, hi_c + 0.5)
    ax.set_ylim(hi_r + 0.5, lo_r - 0.5)
    inner = outer[1].subgridspec(len(rows_u), len(cols_u), wspace=0.1, hspace=0.45)
    padded = np.full((hi_r - lo_r + 1, hi_c - lo_c + 1), 0.5, np.float32)
    base = img if img.ndim == 2 else img.mean(axis=-1)
    padded[-lo_r : -lo_r + h, -lo_c : -lo_c + w] = base
    for k, (u, (t, b, le, ri)) in enumerate(windows.items()):
        sub = fig.add_subplot(inner[rows_u.index(u[0]), cols_u.index(u[1])])
        crop = padded[t - lo_r : b - lo_r + 1, le - lo_c : ri - lo_c + 1]
        sub.imshow(crop, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        sub.set_xticks([])
        sub.set_yticks([])
        for spine in sub.spines.values():
            spine.set_edgecolor(f"C{k % 10}")
            spine.set_linewidth(2)
        sub.set_title(f"cell {u[0]},{u[1]}\nrows {t}..{b}, cols {le}..{ri}", fontsize=7)
    rf, stride = r.receptive_field, r.effective_stride or (1, 1)
    fig.suptitle(
        title
        or f"{r.name} output {_shape_text(r.output_shape)}: each cell sees a {rf[0]}×{rf[1]} "
        f"window of the input (effective stride {stride[0]} px); right: the crops, laid out "
        "like the map",
        fontsize=10,
    )
    fig.subplots_adjust(left=0.06, right=0.98, top=0.88, bottom=0.08)
    return _save(fig, path)
