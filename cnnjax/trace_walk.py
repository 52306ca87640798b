"""The walk over a traced JAX program: each primitive's effect on the receptive field.

`Walker.run` goes through the equations of a jaxpr in order, inlining nested calls (jit,
custom_jvp, custom_vjp), and records an `Eqn` per equation: its Flax module path (from the
name stack), the `Field` of its output (`cnnjax.trace_fields`), its MACs and FLOPs, and
whether it changes the field (a convolution, a pool, a flatten) or merges paths (an add or a
concatenation of two input-dependent arrays). `cnnjax.trace` turns the records into rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cnnjax.trace_fields import (
    Field,
    Stop,
    broadcast,
    concat,
    conv_like,
    dot_general,
    pad,
    reduce_axes,
    reshape,
    slice_axes,
    squeeze,
    transpose,
    union,
)

# Primitives that act elementwise: the field passes through (and merges, for two inputs).
ELEMENTWISE = frozenset(
    """abs acos acosh add and asin asinh atan atan2 atanh cbrt ceil clamp convert_element_type
    copy copy_p cos cosh div eq erf erf_inv erfc exp exp2 expm1 floor ge gt imag integer_pow
    is_finite le log log1p logistic lt max min mul ne neg nextafter not or pow real
    reduce_precision rem round rsqrt select_n sign sin sinh sqrt square stop_gradient sub tan
    tanh xor""".split()  # noqa: SIM905
)
REDUCTIONS = frozenset(
    ("reduce_max", "reduce_min", "reduce_sum", "reduce_prod", "argmax", "argmin")
)
CALL_PARAMS = ("jaxpr", "call_jaxpr", "fun_jaxpr")


@dataclass
class Eqn:
    """One equation of the flattened program: its path, kind and costs."""

    index: int
    path: str
    primitive: str
    out_field: Field
    out_shape: tuple[int, ...]
    changes_field: bool
    macs: int = 0
    flops: int = 0
    merge: bool = False
    kind: str = ""


class Walker:
    """Walks a closed jaxpr, inlining nested calls, and records a `Eqn` per equation."""

    def __init__(self, root: str):
        self.root = root
        self.fields: dict[Any, Field] = {}
        self.producer: dict[Any, int] = {}
        self.eqns: list[Eqn] = []
        self.stopped: str | None = None
        self.param_of: dict[Any, int] = {}  # var -> index of the variables leaf it comes from
        self.consumers: dict[int, int] = {}  # variables leaf -> first live equation using it

    @staticmethod
    def _hashable(v: Any) -> bool:
        return type(v).__name__ != "Literal"

    def _get(self, v: Any) -> Field:
        if type(v).__name__ == "Literal":
            return Field.const()
        return self.fields.get(v, Field.const())

    def _path(self, prefix: str, eqn: Any) -> str:
        stack = str(eqn.source_info.name_stack)
        # Flax names a method other than __call__ "Class.method": not a module path component.
        parts = [p for p in f"{prefix}/{stack}".split("/") if p and "." not in p]
        if parts and parts[0] == self.root:
            parts = parts[1:]
        return "/".join(parts)

    def run(self, jaxpr: Any, prefix: str) -> None:
        for eqn in jaxpr.eqns:
            self.eqn(eqn, prefix)

    def eqn(self, eqn: Any, prefix: str) -> None:
        ins = [self._get(v) for v in eqn.invars]
        inner = next((eqn.params[k] for k in CALL_PARAMS if k in eqn.params), None)
        live = any(f.live or f.kind == "stopped" for f in ins)
        if inner is not None and live:
            jaxpr = getattr(inner, "jaxpr", inner)
            offset = len(ins) - len(jaxpr.invars)
            for v, outer in zip(jaxpr.invars, eqn.invars[offset:], strict=True):
                self.fields[v] = self._get(outer)
                if self._hashable(outer) and outer in self.producer:
                    self.producer[v] = self.producer[outer]
                if self._hashable(outer) and outer in self.param_of:
                    self.param_of[v] = self.param_of[outer]
            sub = "/".join(p for p in (prefix, str(eqn.source_info.name_stack)) if p)
            self.run(jaxpr, sub)
            for outer, v in zip(eqn.outvars, jaxpr.outvars, strict=True):
                self.fields[outer] = self._get(v)
                literal = type(v).__name__ == "Literal"
                self.producer[outer] = -1 if literal else self.producer.get(v, -1)
            return
        leaves = [self.param_of[v] for v in eqn.invars if self._hashable(v) and v in self.param_of]
        path = self._path(prefix, eqn)
        shape = tuple(eqn.outvars[0].aval.shape) if eqn.outvars else ()
        record = Eqn(len(self.eqns), path, eqn.primitive.name, Field.const(), shape, False)
        if not live:
            outs = [Field.const()] * len(eqn.outvars)
        elif any(f.kind == "stopped" for f in ins):
            outs = [Field.stopped()] * len(eqn.outvars)
        else:
            try:
                outs = [self.transfer(eqn, ins, record)] * len(eqn.outvars)
            except Stop as why:
                if self.stopped is None:
                    where = f" in {path}" if path else ""
                    self.stopped = f"{eqn.primitive.name}{where}: {why}"
                outs = [Field.stopped()] * len(eqn.outvars)
                record.changes_field = True
        record.out_field = outs[0] if outs else Field.const()
        if leaves and not live:  # a parameter reshaped or cast: follow it
            for v in eqn.outvars:
                self.param_of[v] = leaves[0]
        for leaf in leaves if live else ():
            self.consumers.setdefault(leaf, record.index)
        self.eqns.append(record)
        for v, f in zip(eqn.outvars, outs, strict=True):
            self.fields[v] = f
            self.producer[v] = record.index

    def transfer(self, eqn: Any, ins: list[Field], rec: Eqn) -> Field:
        """The output field of one primitive; sets the record's costs and kind."""
        name, p = eqn.primitive.name, eqn.params
        shapes = [tuple(getattr(v.aval, "shape", ())) for v in eqn.invars]
        out_shape, out_n = rec.out_shape, int(math.prod(rec.out_shape))
        rec.changes_field = True
        if name == "conv_general_dilated":
            if ins[1].live:
                raise Stop("the kernel depends on the input")
            if any(d != 1 for d in p["lhs_dilation"]):
                raise Stop("input (lhs) dilation - a transposed convolution - is not supported")
            dn = p["dimension_numbers"]
            kernel = shapes[1]
            windows = [kernel[d] for d in dn.rhs_spec[2:]]
            per_out = int(math.prod(windows)) * kernel[dn.rhs_spec[1]]
            rec.macs, rec.flops = out_n * per_out, 2 * out_n * per_out
            groups = p["feature_group_count"]
            rec.kind = "depthwise_conv" if groups > 1 and kernel[dn.rhs_spec[1]] == 1 else "conv"
            return conv_like(
                ins[0],
                dn.lhs_spec[2:],
                dn.out_spec[2:],
                windows,
                p["window_strides"],
                [lo for lo, _ in p["padding"]],
                p["rhs_dilation"],
                len(out_shape),
                carry={dn.lhs_spec[0]: dn.out_spec[0]},
            )
        if name.startswith("reduce_window") or name == "cumsum":
            if name == "cumsum":
                raise Stop("a cumulative sum")
            if any(d != 1 for d in p.get("base_dilation", ())):
                raise Stop("base dilation in a window reduction")
            n = len(out_shape)
            wins, strides = p["window_dimensions"], p["window_strides"]
            axes = [
                a for a in range(n) if wins[a] != 1 or strides[a] != 1 or p["padding"][a] != (0, 0)
            ]
            rec.flops = out_n * int(math.prod(wins))
            rec.kind = {"reduce_window_max": "max_pool", "reduce_window_sum": "avg_pool"}.get(
                name, "pool"
            )
            return conv_like(
                ins[0],
                axes,
                axes,
                [wins[a] for a in axes],
                [strides[a] for a in axes],
                [p["padding"][a][0] for a in axes],
                [p.get("window_dilation", (1,) * n)[a] for a in axes],
                n,
                carry={a: a for a in range(n) if a not in axes},
            )
        if name == "pad":
            cfg = p["padding_config"]
            rec.kind = "pad"
            return pad(ins[0], [lo for lo, _, _ in cfg], [i for _, _, i in cfg])
        if name == "slice":
            strides = p["strides"] or (1,) * len(p["start_indices"])
            rec.changes_field = any(p["start_indices"]) or any(s != 1 for s in strides)
            rec.kind = "crop"
            return slice_axes(ins[0], p["start_indices"], strides)
        if name == "reshape":
            f = reshape(ins[0], shapes[0], out_shape)
            rec.changes_field = f != ins[0]
            rec.kind = "flatten" if f.kind == "global" and ins[0].kind == "spatial" else ""
            return f
        if name == "squeeze":
            f = squeeze(ins[0], p["dimensions"], len(shapes[0]))
            rec.changes_field = f.kind != ins[0].kind
            return f
        if name == "broadcast_in_dim":
            rec.changes_field = False
            return broadcast(ins[0], p["broadcast_dimensions"])
        if name == "transpose":
            rec.changes_field = False
            return transpose(ins[0], p["permutation"])
        if name in REDUCTIONS:
            f, windowed = reduce_axes(ins[0], p["axes"], shapes[0])
            rec.changes_field = windowed
            if windowed:
                rec.flops = int(math.prod(shapes[0]))
                rec.kind = "global_pool" if f.kind == "global" else "max_pool"
            return f
        if name == "dot_general":
            (lc, rc), (lb, rb) = p["dimension_numbers"]
            contracted = int(math.prod(shapes[0][a] for a in lc))
            rec.macs, rec.flops = out_n * contracted, 2 * out_n * contracted
            f = dot_general(ins[0], ins[1], shapes[0], shapes[1], lc, rc, lb, rb)
            rec.kind = "dense"
            return f
        if name == "concatenate":
            rec.merge = sum(1 for f in ins if f.kind == "spatial") >= 2
            rec.kind = "concat"
            sizes = [shape[p["dimension"]] for shape in shapes]
            return concat(ins, p["dimension"], sizes)
        if name in ELEMENTWISE:
            rec.merge = sum(1 for f in ins if f.kind == "spatial") >= 2
            rec.changes_field = rec.merge
            rec.kind = name if rec.merge else ""
            rec.flops = out_n * (sum(1 for f in ins if f.kind == "spatial") - 1)
            return union(ins)
        raise Stop("this primitive is not understood on the spatial path")
