"""Receptive fields: effective ones (heat maps of `cnnjax.inspect` ERF results, the analytic
square drawn over each), analytic growth per layer, and the input windows of a layer's units."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnnjax.analysis import LayerReport, NetReport, receptive_window
from cnnjax.errors import InspectError
from cnnjax.plots.canvas import figure, save, shape_text, show_image
from cnnjax.results import ErfResult


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
        raise InspectError("no ERF results to draw")
    titles = list(titles) if titles is not None else [r.layer for r in results]
    if len(titles) != len(results):
        raise InspectError(f"{len(results)} results but {len(titles)} titles")
    h, w = int(image_shape[0]), int(image_shape[1])
    cols = columns or min(len(results), 4)
    rows = math.ceil(len(results) / cols)
    fig = figure(4.3 * cols, 4.5 * rows + 0.5)
    for i, (res, title) in enumerate(zip(results, titles, strict=True)):
        ax = fig.add_subplot(rows, cols, i + 1)
        m = np.asarray(res.map)
        if m.shape != (h, w):
            raise InspectError(f"ERF map of shape {m.shape} does not match the input {h}x{w}")
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
        unit = res.unit if isinstance(res.unit, str) else f"unit {res.unit}"
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
    return save(fig, path)


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
    fig = figure(9.0, 5.0)
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
    return save(fig, path)


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

    r = report_layer
    if r.is_global:
        raise InspectError(f"layer {r.name} is global: every unit sees the whole input")
    img = np.asarray(image, np.float32)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    h, w = img.shape[:2]
    oh, ow = r.output_shape[:2]
    chosen = list(units) if units is not None else _sample_units(oh, ow)
    rows_u = sorted({u[0] for u in chosen})
    cols_u = sorted({u[1] for u in chosen})
    fig = figure(11.0, 5.6)
    outer = fig.add_gridspec(1, 2, width_ratios=[1.0, 1.0], wspace=0.15)
    ax = fig.add_subplot(outer[0])
    sample = "" if len(chosen) == oh * ow else f" (a sample of its {oh}×{ow})"
    show_image(ax, img, f"input {h}×{w}: windows of {len(chosen)} units of {r.name}{sample}")
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
        or f"{r.name} output {shape_text(r.output_shape)}: each cell sees a {rf[0]}×{rf[1]} "
        f"window of the input (effective stride {stride[0]} px); right: the crops, laid out "
        "like the map",
        fontsize=10,
    )
    fig.subplots_adjust(left=0.06, right=0.98, top=0.88, bottom=0.08)
    return save(fig, path)


def plot_erf_vs_depth(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Effective receptive field (95%-mass side) against depth, at init and trained, per kind of
    network, beside the theoretical field (dashed). `rows` are the erf_depth experiment's."""
    if not rows:
        raise InspectError("no rows to draw")
    fig = figure(7.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    kinds = sorted({str(r["kind"]) for r in rows})
    for kind, colour in zip(kinds, ("tab:blue", "tab:orange", "tab:green"), strict=False):
        sel = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["depth"])
        depths = [r["depth"] for r in sel]
        ax.plot(depths, [r["erf95_init"] for r in sel], "o--", color=colour, label=f"{kind}, init")
        ax.plot(
            depths, [r["erf95_trained"] for r in sel], "o-", color=colour, label=f"{kind}, trained"
        )
    theory = sorted({(r["depth"], r["theoretical_rf"]) for r in rows})
    ax.plot([d for d, _ in theory], [t for _, t in theory], "k:", label="theoretical field")
    ax.set_xticks([d for d, _ in theory])
    ax.set_xlabel("3x3 convolutions in the stack")
    ax.set_ylabel("side of the field (pixels)")
    ax.set_title("Effective vs theoretical receptive field")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save(fig, path)
