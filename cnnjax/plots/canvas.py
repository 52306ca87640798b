"""The canvas every figure is drawn on: a pyplot-free Agg figure, PNG output, and the tile
and image helpers the figure modules share."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 100
TILE_INCHES = 0.62


def figure(width: float, height: float) -> Figure:
    """A new figure on its own Agg canvas (no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: str | Path) -> Path:
    """Write the figure as a PNG (creating parent directories) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI, facecolor="white")
    return path


def shape_text(shape: Sequence[int]) -> str:
    """A shape as figures print it: 26×26×32."""
    return "×".join(str(s) for s in shape)


def scaled(tile: np.ndarray) -> np.ndarray:
    """`tile` mapped to 0..1 by its own minimum and maximum (all zeros when constant)."""
    tile = np.asarray(tile, np.float32)
    lo, hi = float(tile.min()), float(tile.max())
    return (tile - lo) / (hi - lo) if hi > lo else np.zeros_like(tile)


def tile_grid(tiles: Sequence[np.ndarray], columns: int, gap: int, fill: float) -> np.ndarray:
    """Tiles of one shape ([h, w] or [h, w, 3]) in rows of `columns`, `gap` pixels of `fill`
    between them."""
    h, w = tiles[0].shape[:2]
    cols = min(columns, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    extra = tiles[0].shape[2:]
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, *extra), fill, np.float32)
    for k, tile in enumerate(tiles):
        r, q = divmod(k, cols)
        out[r * (h + gap) : r * (h + gap) + h, q * (w + gap) : q * (w + gap) + w] = tile
    return out


def show_image(ax: Axes, image: np.ndarray, title: str) -> Any:
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
