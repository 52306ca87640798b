"""Receptive-field algebra over the axes of traced arrays (pure Python, no JAX).

A `Field` says how an array depends on the input image: not at all (`const`), through a grid
of windows (`spatial`: per array axis the receptive field r, effective stride j and effective
padding P of the input dimension it runs along), through every pixel (`global`), or in a way
the walker could not follow (`stopped`). Unit u of a spatial axis sees input pixels
[u * j - P, u * j - P + r - 1] (Araujo, Norris & Sim, Distill 2019).

Merges (add, concatenate, any elementwise op of two fields) take the union of the windows,
which needs equal strides; with aligned centres this is the Distill rule "the largest field".
A reshape that splits a spatial axis into (n, k) gives a coarse axis and a `fine` one; a
reduction over the fine axis is a pooling window (cnnjax's reshape max pool on CPU).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace


class Stop(Exception):
    """The walker cannot follow the field through this operation (the message says why)."""


@dataclass(frozen=True)
class Axis:
    """One spatial axis: which input dimension (0 = height, 1 = width), r, j, P.

    A `fine` axis (from a reshape split) has unit t at offset t * j inside its `partner`
    (coarse) axis's window; reducing it widens the partner's field by (size - 1) * j.
    """

    dim: int
    r: int
    j: int
    p: int
    fine: bool = False
    partner: int = -1


@dataclass(frozen=True)
class Field:
    kind: str  # "const" | "spatial" | "global" | "stopped"
    axes: tuple[tuple[int, Axis], ...] = ()

    @staticmethod
    def const() -> Field:
        return Field("const")

    @staticmethod
    def global_() -> Field:
        return Field("global")

    @staticmethod
    def stopped() -> Field:
        return Field("stopped")

    @staticmethod
    def spatial(axes: dict[int, Axis]) -> Field:
        return Field("spatial", tuple(sorted(axes.items())))

    @property
    def live(self) -> bool:
        """Depends on the input (spatially or globally)."""
        return self.kind in ("spatial", "global")

    @property
    def amap(self) -> dict[int, Axis]:
        return dict(self.axes)

    def coarse(self) -> dict[int, Axis]:
        """Height and width axes (not fine), keyed by input dimension."""
        return {a.dim: a for a in self.amap.values() if not a.fine}


def _renumber(axes: dict[int, Axis], mapping: dict[int, int]) -> dict[int, Axis]:
    out = {}
    for old, axis in axes.items():
        if old not in mapping:
            raise Stop("a spatial axis would be dropped")
        partner = mapping.get(axis.partner, -1) if axis.fine else -1
        out[mapping[old]] = replace(axis, partner=partner)
    return out


def conv_like(
    f: Field,
    in_axes: Sequence[int],
    out_axes: Sequence[int],
    windows: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[int],
    dilations: Sequence[int],
    ndim_out: int,
    carry: dict[int, int] | None = None,
) -> Field:
    """A sliding window over `in_axes` (a convolution or a window reduction)."""
    if f.kind != "spatial":
        return f
    axes = f.amap
    if any(a.fine for a in axes.values()):
        raise Stop("a window over a split (reshaped) axis")
    out: dict[int, Axis] = {}
    for i, a in enumerate(in_axes):
        if a not in axes:
            if windows[i] != 1 or strides[i] != 1:
                raise Stop("a window over a non-spatial axis")
            continue
        ax = axes[a]
        k = dilations[i] * (windows[i] - 1) + 1
        out[out_axes[i]] = Axis(
            ax.dim, ax.r + (k - 1) * ax.j, ax.j * strides[i], ax.p + pads[i] * ax.j
        )
    for a, ax in axes.items():
        if a in in_axes:
            continue
        if carry is None or a not in carry:
            raise Stop("a spatial axis is not a window axis of this operation")
        out[carry[a]] = ax
    del ndim_out
    return Field.spatial(out)


def pad(f: Field, lows: Sequence[int], interiors: Sequence[int]) -> Field:
    if f.kind != "spatial":
        return f
    out = {}
    for a, ax in f.amap.items():
        if interiors[a]:
            raise Stop("interior padding (input dilation) is not supported")
        if ax.fine:
            raise Stop("padding of a split axis")
        out[a] = replace(ax, p=ax.p + lows[a] * ax.j)
    return Field.spatial(out)


def slice_axes(f: Field, starts: Sequence[int], strides: Sequence[int]) -> Field:
    if f.kind != "spatial":
        return f
    out = {}
    for a, ax in f.amap.items():
        if ax.fine and (starts[a] or strides[a] != 1):
            raise Stop("slicing a split axis")
        out[a] = replace(ax, p=ax.p - starts[a] * ax.j, j=ax.j * strides[a])
    return Field.spatial(out)


def _groups(in_shape: Sequence[int], out_shape: Sequence[int]) -> list[tuple[list[int], list[int]]]:
    """Match axes of a reshape by products: [(input axes, output axes)], size-1 axes attached."""
    groups: list[tuple[list[int], list[int]]] = []
    i = o = 0
    while i < len(in_shape) or o < len(out_shape):
        gi: list[int] = []
        go: list[int] = []
        pi = po = 1
        while True:
            if pi == po and gi and go:
                # attach trailing size-1 axes to this group
                while i < len(in_shape) and in_shape[i] == 1 and pi == po:
                    gi.append(i)
                    i += 1
                while o < len(out_shape) and out_shape[o] == 1:
                    go.append(o)
                    o += 1
                break
            if (pi <= po or o >= len(out_shape)) and i < len(in_shape):
                pi *= in_shape[i]
                gi.append(i)
                i += 1
            elif o < len(out_shape):
                po *= out_shape[o]
                go.append(o)
                o += 1
            else:
                break
        groups.append((gi, go))
    return groups


def reshape(f: Field, in_shape: Sequence[int], out_shape: Sequence[int]) -> Field:
    """Carry axes kept, split an axis into (n, k) (pooling by reshape), or flatten space."""
    if f.kind != "spatial":
        return f
    axes = f.amap
    out: dict[int, Axis] = {}
    flattened = 0
    for gi, go in _groups(in_shape, out_shape):
        spatial_in = [a for a in gi if a in axes]
        if not spatial_in:
            continue
        big_in = [a for a in gi if in_shape[a] != 1]
        big_out = [a for a in go if out_shape[a] != 1]
        if len(spatial_in) == 1 and len(big_in) <= 1 and len(big_out) <= 1:
            a = spatial_in[0]
            target = big_out[0] if big_out else (go[gi.index(a)] if len(go) == len(gi) else None)
            if target is None:
                flattened += 1
                continue
            out[target] = axes[a]
        elif (
            len(spatial_in) == 1
            and len(big_in) == 1
            and len(big_out) == 2
            and not axes[spatial_in[0]].fine
        ):
            ax = axes[spatial_in[0]]
            coarse, fine = big_out
            k = out_shape[fine]
            out[coarse] = Axis(ax.dim, ax.r, ax.j * k, ax.p)
            out[fine] = Axis(ax.dim, ax.r, ax.j, ax.p, fine=True, partner=coarse)
        else:
            flattened += len(spatial_in)
    if flattened == 0:
        return Field.spatial(out)
    if not out:
        return Field.global_()
    raise Stop("a reshape merges one spatial axis but keeps another")


def reduce_axes(f: Field, axes_: Sequence[int], in_shape: Sequence[int]) -> tuple[Field, bool]:
    """A reduction: over fine axes it is a pooling window; over all of space, a global pool.

    Returns the field and whether a spatial window was reduced.
    """
    if f.kind != "spatial":
        return f, False
    axes = dict(f.amap)
    reduced = set(axes_)
    windowed = False
    for a in sorted(reduced):
        ax = axes.get(a)
        if ax is not None and ax.fine:
            partner = axes[ax.partner]
            size = in_shape[a]
            axes[ax.partner] = replace(partner, r=partner.r + (size - 1) * ax.j)
            del axes[a]
            windowed = True
    spatial_reduced = [a for a in reduced if a in axes]
    if spatial_reduced and len(spatial_reduced) < len(axes):
        # One spatial axis reduced whole, with a size-1 axis just before it: a pooling window
        # that spans the axis (a reshape into (1, n) then a reduction over n). The size-1 axis
        # carries the widened field.
        for a in spatial_reduced:
            ax = axes[a]
            before = a - 1
            if before < 0 or in_shape[before] != 1 or before in axes or before in reduced:
                raise Stop("a reduction over one spatial axis but not the other")
            n = in_shape[a]
            axes[before] = Axis(ax.dim, ax.r + (n - 1) * ax.j, ax.j * n, ax.p)
            del axes[a]
        windowed = True
        spatial_reduced = []
    if spatial_reduced:
        remaining = [a for a in axes if a not in reduced]
        if remaining:
            raise Stop("a reduction over one spatial axis but not the other")
        return Field.global_(), True
    keep = [a for a in range(len(in_shape)) if a not in reduced]
    mapping = {old: new for new, old in enumerate(keep)}
    return Field.spatial(_renumber(axes, mapping)), windowed


def dot_general(
    lf: Field,
    rf: Field,
    lshape: Sequence[int],
    rshape: Sequence[int],
    lc: Sequence[int],
    rc: Sequence[int],
    lb: Sequence[int],
    rb: Sequence[int],
) -> Field:
    """A matmul: contracting space is global; contracting channels keeps each spatial axis."""
    if lf.live and rf.live:
        if lf.kind == "spatial" or rf.kind == "spatial":
            raise Stop("a product of two input-dependent arrays")
        return Field.global_()
    f, contract, batch, side = (lf, lc, lb, 0) if lf.live else (rf, rc, rb, 1)
    if f.kind != "spatial":
        return f
    axes = f.amap
    if any(a in contract for a in axes):
        if all(a in contract for a in axes if not axes[a].fine):
            return Field.global_()
        raise Stop("a contraction over one spatial axis but not the other")
    lfree = [a for a in range(len(lshape)) if a not in lc and a not in lb]
    rfree = [a for a in range(len(rshape)) if a not in rc and a not in rb]
    order = list(range(len(batch)))
    mapping: dict[int, int] = {a: i for i, a in enumerate(batch)}
    if side == 0:
        mapping.update({a: len(order) + i for i, a in enumerate(lfree)})
    else:
        mapping.update({a: len(order) + len(lfree) + i for i, a in enumerate(rfree)})
    return Field.spatial(_renumber(axes, mapping))


def broadcast(f: Field, dims: Sequence[int]) -> Field:
    if f.kind != "spatial":
        return f
    return Field.spatial(_renumber(f.amap, {i: d for i, d in enumerate(dims)}))


def transpose(f: Field, perm: Sequence[int]) -> Field:
    if f.kind != "spatial":
        return f
    return Field.spatial(_renumber(f.amap, {old: new for new, old in enumerate(perm)}))


def squeeze(f: Field, dims: Sequence[int], ndim: int) -> Field:
    if f.kind != "spatial":
        return f
    axes = f.amap
    if any(a in axes for a in dims):
        if all(a in dims for a in axes):
            return Field.global_()
        raise Stop("squeezing one spatial axis but not the other")
    keep = [a for a in range(ndim) if a not in dims]
    return Field.spatial(_renumber(axes, {old: new for new, old in enumerate(keep)}))


def union(fields: Sequence[Field], skip_axis: int | None = None) -> Field:
    """The merge of several fields into one array (add, concatenate, elementwise)."""
    live = [f for f in fields if f.live or f.kind == "stopped"]
    if not live:
        return Field.const()
    if any(f.kind == "stopped" for f in live):
        return Field.stopped()
    if any(f.kind == "global" for f in live):
        return Field.global_()
    first = live[0].amap
    for f in live[1:]:
        if set(f.amap) != set(first) or any(
            f.amap[a].dim != first[a].dim or f.amap[a].fine != first[a].fine for a in first
        ):
            raise Stop("merged arrays do not share their spatial axes")
    out = {}
    for a, ax in first.items():
        group = [f.amap[a] for f in live]
        strides = {g.j for g in group}
        if len(strides) > 1:
            raise Stop(
                "merged paths have different effective strides "
                + " vs ".join(str(g.j) for g in group)
            )
        p = max(g.p for g in group)
        end = max(g.r - g.p for g in group)
        out[a] = replace(ax, r=end + p, p=p)
    del skip_axis
    return Field.spatial(out)


def concat(fields: Sequence[Field], dim: int, sizes: Sequence[int] | None = None) -> Field:
    """Channel concatenation merges paths; along a spatial axis it is a wrap/reflect padding.

    `jnp.pad(mode="wrap" | "reflect" | "edge")` and Flax's CIRCULAR padding concatenate slices
    of an array around the array itself: the largest piece is the core, and the pieces before
    it pad its start.
    """
    if not any(f.kind == "spatial" and dim in f.amap for f in fields):
        return union(fields)
    if sizes is None or any(f.kind != "spatial" for f in fields if f.live):
        raise Stop("concatenation along a spatial axis")
    core = max(range(len(fields)), key=lambda i: (fields[i].kind == "spatial", sizes[i]))
    if fields[core].kind != "spatial":
        raise Stop("concatenation along a spatial axis")
    return pad(
        fields[core],
        [sum(sizes[:core]) if a == dim else 0 for a in range(dim + 1 + max(fields[core].amap))],
        [0] * (dim + 1 + max(fields[core].amap)),
    )
