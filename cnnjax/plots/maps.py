"""Feature maps (a tile per channel, a bar chart per vector) and first-layer filters."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnnjax.analysis import LayerReport
from cnnjax.errors import InspectError
from cnnjax.plots.canvas import TILE_INCHES, figure, save, scaled, shape_text, show_image, tile_grid


def _mosaic(maps: np.ndarray, columns: int) -> np.ndarray:
    """[H, W, C] -> one image of C tiles (each scaled to its own 0..1), NaN gutters between."""
    h, w, c = maps.shape
    tiles = [scaled(maps[:, :, k]) for k in range(c)]
    return tile_grid(tiles, columns, max(1, round(max(h, w) / 12)), np.nan)


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
        raise InspectError("nothing to draw: no maps and no image")
    width = max(6.0, min(columns, 16) * TILE_INCHES + 2.0)
    heights = [p[2] for p in panels]
    fig = figure(width, sum(heights) + (0.6 if title else 0.2))
    grid = fig.add_gridspec(len(panels), 1, height_ratios=heights, hspace=0.55)
    last = list(maps)[-1] if maps else None
    for i, (name, a, _) in enumerate(panels):
        if name == "image":
            row = grid[i].subgridspec(1, 2, width_ratios=[1.0, 3.0], wspace=0.3)
            ax = fig.add_subplot(row[0])
            im = show_image(ax, a, f"input {shape_text(np.shape(a))}")
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
            which = f"channels 0-{shown - 1} of {c}" if shown < c else f"all {c} channels"
            ax.set_title(
                f"{name}: {h}×{w}×{c} = {h * w * c:,} values ({which}, one tile each, "
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
    return save(fig, path)


def save_feature_maps(
    maps: Mapping[str, np.ndarray],
    path: str | Path,
    *,
    max_channels: int = 64,
    image: Any = None,
    index: int = 0,
) -> list[Path]:
    """Draw image `index`'s activations, one tile per channel, and return the PNGs written.

    A `path` ending in `.png` gets one figure with a panel per layer (the input on top when
    `image` is given); any other `path` is a directory that gets one PNG per layer, named
    `NN_<layer>.png` in network order (and `00_input.png`).
    """
    path = Path(path)
    if path.suffix.lower() == ".png":
        return [plot_feature_maps(maps, path, max_channels=max_channels, image=image, index=index)]
    path.mkdir(parents=True, exist_ok=True)
    written = []
    if image is not None:
        written.append(plot_feature_maps({}, path / "00_input.png", image=image))
    for i, (name, value) in enumerate(maps.items(), start=1):
        written.append(
            plot_feature_maps(
                {name: value}, path / f"{i:02d}_{name}.png", max_channels=max_channels, index=index
            )
        )
    return written


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
    fig = figure(max(5.0, cols * 0.55 + 2.0), rows * 0.6 + 1.4)
    ax = fig.add_subplot(1, 1, 1)
    if cin == 3:
        tiles = [scaled(kernel[:, :, :, k]) for k in range(cout)]
        ax.imshow(tile_grid(tiles, cols, 1, 0.3), interpolation="nearest")
        how = "RGB, each filter scaled to its own range"
    else:
        import matplotlib

        w = kernel.mean(axis=2)
        vmax = float(np.abs(w).max()) or 1.0
        canvas = tile_grid([w[:, :, k] for k in range(cout)], cols, 1, np.nan)
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
    return save(fig, path)


def save_filters(variables: Mapping[str, Any], layer: LayerReport, path: str | Path) -> Path:
    """Draw the kernels of convolution `layer` (e.g. `cnnjax.inspect.first_conv(spec)`: what
    the first layer looks for) from a model's variables."""
    kernel = np.asarray(variables["params"][layer.name]["kernel"])
    return plot_filters(kernel, path, layer=layer.name, description=layer.description)
