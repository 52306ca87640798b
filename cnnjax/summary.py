"""Format the analytic report as a Keras-like text table, Markdown, or JSON (no JAX).

A graph's rows are named by their path (`residual/main/conv2d_1`), one row per layer of every
path and one per merge (`residual (Add+relu)`), in execution order; a chain's path is its name.
"""

from __future__ import annotations

import json

from cnnjax.analysis import LayerReport, NetReport

FORMATS = ("text", "markdown", "json")

COLUMNS = (
    "Layer (type)",
    "Output Shape",
    "Param #",
    "Values (of input)",
    "Receptive field",
    "Eff. stride",
    "Eff. padding",
    "MACs",
)


def _shape(shape: tuple[int, ...]) -> str:
    return "(None, " + ", ".join(str(s) for s in shape) + ")"


def _pair(p: tuple[int, int] | None, sep: str = "x") -> str:
    return "-" if p is None else f"{p[0]}{sep}{p[1]}"


def _count(n: int) -> str:
    return f"{n:,}"


def human(n: float) -> str:
    """1234567 -> '1.23M' (for MACs and FLOPs)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:g}"


def _row(r: LayerReport) -> tuple[str, ...]:
    rf = "global" if r.is_global else _pair(r.receptive_field)
    pad = _pair(r.effective_padding, ",")
    if r.effective_padding_end and r.effective_padding_end != (0, 0):
        pad += f" (+{_pair(r.effective_padding_end, ',')})"
    return (
        f"{r.path or r.name} ({r.description})",
        _shape(r.output_shape),
        _count(r.params),
        f"{_count(r.values)} ({r.values_fraction:.3g}x)",
        rf,
        _pair(r.effective_stride),
        pad,
        human(r.macs) if r.macs else "0",
    )


def _totals(report: NetReport) -> list[str]:
    spatial = [r for r in report.layers if not r.is_global and r.receptive_field is not None]
    lines = [
        f"Total params: {_count(report.total_params)}",
        f"Trainable params: {_count(report.trainable_params)}",
        f"Non-trainable params: {_count(report.non_trainable_params)}",
        f"MACs per image: {_count(report.total_macs)}"
        + (f" ({human(report.total_macs)})" if report.total_macs >= 1000 else "")
        + "; "
        f"FLOPs per forward pass: {human(report.total_flops)}",
    ]
    if spatial:
        last = spatial[-1]
        lines.append(
            f"Last spatial layer {last.path or last.name}: {last.output_shape[0]}x{last.output_shape[1]} units, "
            f"each sees a {_pair(last.receptive_field)} window of the "
            f"{report.input_shape[0]}x{report.input_shape[1]} input"
        )
    return lines


def to_text(report: NetReport) -> str:
    """A Keras `model.summary()`-style table with the analytic columns added."""
    rows = [COLUMNS, *(_row(r) for r in report.layers)]
    widths = [max(len(row[c]) for row in rows) for c in range(len(COLUMNS))]
    line_width = sum(widths) + 2 * (len(widths) - 1)

    def fmt(row: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()

    title = f'Model: "{report.name or "network"}"   input {_shape(report.input_shape)}, '
    title += f"{_count(report.input_values)} values"
    out = [title, "_" * line_width, fmt(rows[0]), "=" * line_width]
    for row in rows[1:]:
        out.append(fmt(row))
    out.append("=" * line_width)
    out += _totals(report)
    out.append("_" * line_width)
    return "\n".join(out)


def to_markdown(report: NetReport) -> str:
    """The same table as GitHub-flavoured Markdown."""
    head = "| " + " | ".join(COLUMNS) + " |"
    sep = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(COLUMNS))) + "|"
    body = ["| " + " | ".join(c.replace("|", "\\|") for c in _row(r)) + " |" for r in report.layers]
    title = f"**{report.name or 'network'}**, input {_shape(report.input_shape)}"
    return "\n".join([title, "", head, sep, *body, "", *(f"- {t}" for t in _totals(report))])


def to_json(report: NetReport, indent: int | None = 2) -> str:
    return json.dumps(report.to_dict(), indent=indent)


def render(report: NetReport, fmt: str = "text") -> str:
    if fmt == "text":
        return to_text(report)
    if fmt == "markdown":
        return to_markdown(report)
    if fmt == "json":
        return to_json(report)
    raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
