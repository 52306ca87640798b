"""Figures that show what the numbers mean: feature maps, filters, effective receptive fields,
training curves, values kept beside probe accuracy, and receptive-field growth.

Every function draws with matplotlib's object API on the non-interactive Agg canvas (pyplot
and the global backend are never touched, so the functions are safe in notebooks, threads and
tests), writes one PNG (`save_feature_maps`: one per layer), and returns its path. Every figure
has a title, axis labels with units, and a colour bar where colour carries a number.
matplotlib is imported on the first call.

Plots sit at the side of the library: they take arrays and results and never compute them, so
they import nothing from `cnnjax.inspect` or training; the results they draw (`ErfResult`,
`ProbeResult`) are plain data in `cnnjax.results`.

One module per kind of figure, all re-exported here: `maps` (feature maps, filters),
`receptive` (effective and analytic receptive fields), `history` (training curves), `probes`
(values kept vs probe accuracy), over the shared `canvas`.
"""

from cnnjax.plots.history import plot_history
from cnnjax.plots.maps import plot_feature_maps, plot_filters, save_feature_maps, save_filters
from cnnjax.plots.probes import plot_values_vs_probe
from cnnjax.plots.receptive import (
    draw_receptive_windows,
    plot_erf,
    plot_erf_vs_depth,
    plot_receptive_field_growth,
)

__all__ = [
    "draw_receptive_windows",
    "plot_erf",
    "plot_erf_vs_depth",
    "plot_feature_maps",
    "plot_filters",
    "plot_history",
    "plot_receptive_field_growth",
    "plot_values_vs_probe",
    "save_feature_maps",
    "save_filters",
]
