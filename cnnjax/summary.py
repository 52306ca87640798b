"""Format the analytic report as a Keras-like text table, Markdown, or JSON (no JAX).

A graph's rows are named by their path (`residual/main/conv2d_1`), one row per layer of every
path and one per merge (`residual (Add+relu)`), in execution order; a chain's path is its name.
With an unknown input size (`?x?x3`) a number that needs the size is printed as `?` (null in
JSON): spatial sizes, values, MACs, and the effective padding of SAME layers of stride > 1.
"""

from __future__ import annotations

import json

from cnnjax import markdown
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


def _dim(n: int | None) -> str:
    """A size, or ? where it needs the unknown input size."""
    return "?" if n is None else str(n)


def _shape(shape: tuple[int | None, ...]) -> str:
    return "(None, " + ", ".join(_dim(s) for s in shape) + ")"


def _pair(p: tuple[int | None, int | None] | None, sep: str = "x") -> str:
    return "-" if p is None else f"{_dim(p[0])}{sep}{_dim(p[1])}"


def _count(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


def human(n: float) -> str:
    """1234567 -> '1.23M' (for MACs and FLOPs)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:g}"


def _values(r: LayerReport) -> str:
    if r.values_fraction is None:  # the input size is unknown
        return _count(r.values)
    return f"{_count(r.values)} ({r.values_fraction:.3g}x)"


def _row(r: LayerReport) -> tuple[str, ...]:
    rf = "global" if r.is_global else _pair(r.receptive_field)
    # no padding: "-" for a global row or one without a field; "?" where it needs the size
    unknown = not r.is_global and r.receptive_field is not None and r.effective_padding is None
    pad = "?" if unknown else _pair(r.effective_padding, ",")
    if r.effective_padding_end and r.effective_padding_end != (0, 0):
        pad += f" (+{_pair(r.effective_padding_end, ',')})"
    return (
        f"{r.path or r.name} ({r.description})",
        _shape(r.output_shape),
        _count(r.params),
        _values(r),
        rf,
        _pair(r.effective_stride),
        pad,
        _macs(r.macs),
    )


def _macs(n: int | None) -> str:
    if n is None:
        return "?"
    return human(n) if n else "0"


def _totals(report: NetReport) -> list[str]:
    spatial = [r for r in report.layers if not r.is_global and r.receptive_field is not None]
    lines = [
        f"Total params: {_count(report.total_params)}",
        f"Trainable params: {_count(report.trainable_params)}",
        f"Non-trainable params: {_count(report.non_trainable_params)}",
        _cost_line(report),
    ]
    if spatial:
        last = spatial[-1]
        lines.append(
            f"Last spatial layer {last.path or last.name}: {_pair(last.output_shape[:2])} units, "  # type: ignore[arg-type]
            f"each sees a {_pair(last.receptive_field)} window of the "
            f"{_pair(report.input_shape[:2])} input"  # type: ignore[arg-type]
        )
    return lines


def _cost_line(report: NetReport) -> str:
    macs, flops = report.total_macs, report.total_flops
    if macs is None or flops is None:  # type: ignore[redundant-expr]
        return "MACs per image: ?; FLOPs per forward pass: ? (they need the input size)"
    return (
        f"MACs per image: {_count(macs)}" + (f" ({human(macs)})" if macs >= 1000 else "") + "; "
        f"FLOPs per forward pass: {human(flops)}"
    )


def to_text(report: NetReport) -> str:
    """A Keras `model.summary()`-style table with the analytic columns added."""
    rows = [COLUMNS, *(_row(r) for r in report.layers)]
    widths = [max(len(row[c]) for row in rows) for c in range(len(COLUMNS))]
    line_width = sum(widths) + 2 * (len(widths) - 1)

    def fmt(row: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()

    title = f'Model: "{report.name or "network"}"   input {_shape(report.input_shape)}, '
    title += f"{_count(report.input_values)} values" if report.size_known else "size unknown"
    out = [title, "_" * line_width, fmt(rows[0]), "=" * line_width]
    for row in rows[1:]:
        out.append(fmt(row))
    out.append("=" * line_width)
    out += _totals(report)
    out.append("_" * line_width)
    return "\n".join(out)


def to_markdown(report: NetReport) -> str:
    """The same table as GitHub-flavoured Markdown."""
    body = markdown.table(COLUMNS, (_row(r) for r in report.layers))
    title = f"**{report.name or 'network'}**, input {_shape(report.input_shape)}"
    return "\n".join([title, "", body, "", *(f"- {t}" for t in _totals(report))])


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
