"""The analytic report of any Flax module or JAX function, read from its traced program.

`analyze_module(module, input_shape)` initialises the module abstractly (`jax.eval_shape`: no
FLOPs, no weight memory), traces `apply` once with `jax.make_jaxpr` and walks the equations,
nested calls (jit, custom_jvp, custom_vjp) included, carrying a `Field` for every array
(`cnnjax.trace_fields`) - the way the receptive_field library read a TensorFlow GraphDef.

Rows are, in execution order: the outputs of submodules (Flax module paths, captured with
`capture_intermediates`), values the module `sow`s into "intermediates", and window operations
called as plain functions at the top level (`nn.max_pool`, `nn.avg_pool`, a flattening
reshape). Params per row come from the variables under its module path; MACs from the shapes of
each convolution and matmul. Anything the walker does not understand on the spatial path stops
the analysis there: `TracedReport.stopped` names the primitive and its module path, and every
row after it has no field - never a wrong one.
"""

from __future__ import annotations

import inspect as pyinspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from cnnjax.analysis import LayerReport, NetReport, layer_report, padding_end
from cnnjax.errors import CnnjaxError
from cnnjax.trace_fields import Axis, Field
from cnnjax.trace_walk import Walker


class TraceError(CnnjaxError, ValueError):
    """A model that cannot be traced with the given input shape (the message says why)."""


@dataclass(frozen=True)
class TracedReport(NetReport):
    """A `NetReport` read from a traced program; `stopped` says where the field was lost."""

    stopped: str | None = None

    def to_dict(self) -> dict:
        return {**super().to_dict(), "stopped": self.stopped}


# --------------------------------------------------------------------------- module support


def call_kwargs(module: Any) -> dict[str, Any]:
    """Evaluation-mode keyword arguments a module's __call__ accepts (train=False, ...)."""
    try:
        params = pyinspect.signature(module.__call__).parameters
    except (TypeError, ValueError):
        return {}
    wanted = {"train": False, "training": False, "is_training": False, "deterministic": True}
    return {k: v for k, v in wanted.items() if k in params}


def abstract_variables(module: Any, x: jax.ShapeDtypeStruct, **kwargs: Any) -> Any:
    """The module's variables as shapes only: `jax.eval_shape` of `init` (no compute, no memory)."""
    key = jax.random.key(0)
    rngs = {"params": key, "dropout": key}

    def init() -> Any:
        return module.init(rngs, jnp.zeros(x.shape, x.dtype), **kwargs)

    variables = jax.eval_shape(init)
    return {k: v for k, v in variables.items() if k != "intermediates"}


def _captured(tree: Any) -> list[tuple[str, Any]]:
    """(row name, leaf) for every captured or sown value, in the order they were produced."""
    out: list[tuple[str, Any]] = []

    def walk(node: Any, prefix: list[str]) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():  # insertion order = completion order
                walk(value, [*prefix, str(key)])
        elif isinstance(node, (tuple, list)):
            for i, value in enumerate(node):
                walk(value, [*prefix, str(i)] if len(node) > 1 else prefix)
        else:
            out.append(("/".join(p for p in prefix if p != "__call__"), node))

    walk(tree, [])
    return [(name, leaf) for name, leaf in out if name]


def _param_owner(
    variables: Any, rows: Sequence[tuple[str, str, int, Any, Any]], consumers: dict[int, int]
) -> dict[str, tuple[int, int]]:
    """Row name -> (trainable, non-trainable) scalars.

    A leaf belongs to the deepest row whose name is a prefix of its module path; a leaf of a
    module that is no row (a `self.param` of the top module, say) to the row of the first
    equation that uses it.
    """
    owned = {row[0]: [0, 0] for row in rows}
    ends = [row[2] for row in rows]
    flat = jax.tree_util.tree_flatten_with_path(variables)[0]
    for leaf_index, (path, leaf) in enumerate(flat):
        names = [str(getattr(k, "key", k)) for k in path]
        module = names[1:-1]
        n = int(math.prod(getattr(leaf, "shape", ())))
        slot = 0 if names[0] == "params" else 1
        for depth in range(len(module), 0, -1):
            key = "/".join(module[:depth])
            if key in owned:
                owned[key][slot] += n
                break
        else:
            used = consumers.get(leaf_index)
            row = next((i for i, end in enumerate(ends) if used is not None and end >= used), None)
            if row is None:
                row = len(rows) - 1
            owned[rows[row][0]][slot] += n
    return {k: (v[0], v[1]) for k, v in owned.items()}


# --------------------------------------------------------------------------- rows


def _rows(
    walker: Walker, named: list[tuple[str, int, Field, tuple[int, ...]]]
) -> list[tuple[str, str, int, Field, tuple[int, ...]]]:
    """(name, kind, last equation index, field, shape) per row, in execution order.

    Named rows come from captures; an unnamed field-changing equation outside every named
    module becomes a row of its own unless a named capture follows it before the next change.
    """
    named_paths = {name for name, *_ in named}
    out: list[tuple[str, str, int, Field, tuple[int, ...]]] = []
    counters: dict[str, int] = {}
    boundaries = sorted(i for _, i, _, _ in named)
    for e in walker.eqns:
        if not e.changes_field or (e.kind == "" and not e.merge):
            continue
        inside = any(e.path == n or e.path.startswith(n + "/") for n in named_paths)
        if inside:
            continue
        nxt = next((i for i in boundaries if i >= e.index), None)
        later_change = next(
            (x.index for x in walker.eqns[e.index + 1 :] if x.changes_field), len(walker.eqns)
        )
        if nxt is not None and nxt < later_change:
            continue  # a capture names this operation's result
        base = e.kind or e.primitive
        name = f"{e.path}/{base}" if e.path else base
        count = counters.get(name, 0)
        counters[name] = count + 1
        # the row ends at the last equation on the input's path before the next field change
        end = max(
            (x.index for x in walker.eqns[e.index : later_change] if x.out_field.kind != "const"),
            default=e.index,
        )
        last = walker.eqns[end]
        out.append(
            (name if count == 0 else f"{name}_{count}", base, end, last.out_field, last.out_shape)
        )
    for name, index, f, shape in named:
        out.append((name, "", index, f, shape))
    out.sort(key=lambda r: r[2])
    return out


def _kind(walker: Walker, lo: int, hi: int) -> str:
    kinds = [e.kind for e in walker.eqns[lo : hi + 1] if e.kind]
    for preferred in ("conv", "depthwise_conv", "dense", "max_pool", "avg_pool", "global_pool"):
        if preferred in kinds:
            return preferred
    return kinds[-1] if kinds else "elementwise"


def analyze_function(
    fn: Callable[[Any, jax.Array], Any],
    variables: Any,
    input_shape: Sequence[int],
    *,
    layout: str = "NHWC",
    name: str = "",
    root: str = "",
    dtype: Any = jnp.float32,
    row_names: Sequence[str] | None = None,
) -> TracedReport:
    """The report of `fn(variables, x)`, where `fn` may return `(output, captures)`.

    `captures` (optional) is a pytree of intermediate arrays whose leaves become named rows.
    """
    shape = _sizes(input_shape)
    if len(shape) != 3 or min(shape) <= 0:
        raise TraceError(f"input_shape must be three positive sizes, got {input_shape!r}")
    if layout not in ("NHWC", "NCHW"):
        raise TraceError(f"layout must be 'NHWC' or 'NCHW', got {layout!r}")
    x = jax.ShapeDtypeStruct((1, *shape), dtype)
    order: list[list[tuple[str, Any]]] = []

    def traced(v: Any, inp: jax.Array) -> Any:
        result = fn(v, inp)
        if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], Mapping):
            caps = _captured(result[1])
            order.append(caps)
            return result[0], [leaf for _, leaf in caps]
        order.append([])
        return result, []

    try:
        closed = jax.make_jaxpr(traced)(variables, x)
    except CnnjaxError:
        raise
    except Exception as err:  # a shape error inside the user's model, say
        raise TraceError(
            f"the model could not be traced on an input of shape {(1, *shape)}: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        ) from err
    jaxpr = closed.jaxpr
    walker = Walker(root)
    n_var = len(jax.tree_util.tree_leaves(variables))
    spatial_axes = (1, 2) if layout == "NHWC" else (2, 3)

    in_field = Field.spatial({a: Axis(dim, 1, 1, 0) for dim, a in enumerate(spatial_axes)})
    for i, v in enumerate(jaxpr.invars):
        walker.fields[v] = in_field if i == n_var else Field.const()
        walker.producer[v] = -1
        if i < n_var:
            walker.param_of[v] = i
    walker.run(jaxpr, "")
    names = [n for n, _ in order[-1]] if order else []
    if row_names is not None:
        if len(row_names) != len(names):
            raise TraceError(
                f"row_names has {len(row_names)} names but the model captured {len(names)} values"
            )
        names = list(row_names)
    outvars = jaxpr.outvars
    out_leaves = len(outvars) - len(names)
    named = []
    for n, v in zip(names, outvars[out_leaves:], strict=True):
        f = walker._get(v)
        named.append((n, walker.producer.get(v, -1), f, tuple(v.aval.shape)))
    # The final output is the last row when no capture names it.
    final = outvars[0]
    final_index = walker.producer.get(final, -1)
    if not any(i == final_index for _, i, _, _ in named):
        named.append(("output", final_index, walker._get(final), tuple(final.aval.shape)))
    # Keep the last capture of each name (a module called twice keeps both: they differ).
    dedup: dict[str, tuple[str, int, Field, tuple[int, ...]]] = {}
    for row in named:
        dedup[row[0]] = row
    rows = _rows(walker, list(dedup.values()))
    params = _param_owner(variables, rows, walker.consumers)
    return _report(walker, rows, params, shape, layout, name)


def _report(
    walker: Walker,
    rows: list[tuple[str, str, int, Field, tuple[int, ...]]],
    params: dict[str, tuple[int, int]],
    shape: tuple[int, ...],
    layout: str,
    name: str,
) -> TracedReport:
    h, w = (shape[0], shape[1]) if layout == "NHWC" else (shape[1], shape[2])
    in_values = int(math.prod(shape))
    reports: list[LayerReport] = []
    prev_shape: tuple[int, ...] = shape
    lo = 0
    for i, (row_name, kind, end, f, out_shape) in enumerate(rows):
        macs = sum(e.macs for e in walker.eqns[lo : end + 1])
        flops = sum(e.flops for e in walker.eqns[lo : end + 1])
        row_kind = kind or _kind(walker, lo, end)
        lo = max(lo, end + 1)
        trainable, frozen = params.get(row_name, (0, 0))
        if row_kind == "elementwise" and frozen:
            row_kind = "batch_norm"  # elementwise with running statistics
        out = tuple(out_shape[1:])
        rf: Any = None
        stride = padding = pad_end = None
        is_global = f.kind == "global"
        if is_global:
            rf = (h, w)
        elif f.kind == "spatial" and not any(a.fine for a in f.amap.values()):
            coarse = f.coarse()
            if set(coarse) == {0, 1}:
                by_dim = {a.dim: idx for idx, a in f.amap.items()}
                rf = (int(coarse[0].r), int(coarse[1].r))
                stride = (int(coarse[0].j), int(coarse[1].j))
                padding = (int(coarse[0].p), int(coarse[1].p))
                pad_end = tuple(
                    int(
                        padding_end(
                            out_shape[by_dim[d]], coarse[d].r, coarse[d].j, coarse[d].p, (h, w)[d]
                        )
                    )
                    for d in range(2)
                )
        reports.append(
            layer_report(
                trainable,
                frozen,
                in_values,
                index=i,
                name=row_name,
                type=row_kind,
                description=row_kind,
                input_shape=prev_shape,
                output_shape=out,
                receptive_field=rf,
                effective_stride=stride,
                effective_padding=padding,
                effective_padding_end=pad_end,  # type: ignore[arg-type]
                is_global=is_global,
                macs=macs,
                flops=flops,
            )
        )
        prev_shape = out
    return TracedReport(name, shape, tuple(reports), stopped=walker.stopped)  # type: ignore[arg-type]


def _sizes(input_shape: Sequence[int | None]) -> tuple[int, ...]:
    """The input shape as integers; an unknown size (None, `?`) cannot be traced."""
    if any(s is None for s in input_shape):
        shown = "x".join("?" if s is None else str(s) for s in input_shape)
        raise TraceError(
            f"tracing a module needs the input size, got {shown}: give the input size, e.g. "
            "--input 224x224x3 (an unknown ?x? size works for specs, reported without a trace)"
        )
    return tuple(int(s) for s in input_shape)  # type: ignore[arg-type]


def analyze_module(
    module: Any,
    input_shape: Sequence[int],
    variables: Any = None,
    *,
    layout: str = "NHWC",
    method_kwargs: dict[str, Any] | None = None,
    dtype: Any = jnp.float32,
    row_names: Sequence[str] | None = None,
) -> TracedReport:
    """The report of a Flax Linen module on one image of `input_shape` (H, W, C for NHWC).

    Without `variables` the module is initialised abstractly (`jax.eval_shape`). `method_kwargs`
    are passed to `__call__` (default: evaluation mode, e.g. `train=False`, where accepted).
    `row_names` renames the captured rows in order (cnnjax's own models sow a list of layer
    outputs, named by the spec).
    """
    kwargs = call_kwargs(module) if method_kwargs is None else dict(method_kwargs)
    shape = _sizes(input_shape)
    x = jax.ShapeDtypeStruct((1, *shape), dtype)
    if variables is None:
        try:
            variables = abstract_variables(module, x, **kwargs)
        except CnnjaxError:
            raise
        except Exception as err:
            raise TraceError(
                f"{type(module).__name__} could not be initialised on an input of shape "
                f"{(1, *shape)}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            ) from err
    variables = {k: v for k, v in dict(variables).items() if k != "intermediates"}

    # Rows: what the module sows into "intermediates" if it sows anything (its author chose
    # them), else the output of every submodule.
    def sown(v: Any, inp: jax.Array) -> Any:
        return module.apply(v, inp, mutable=["intermediates"], **kwargs)[1]

    x_abstract = jax.ShapeDtypeStruct((1, *shape), dtype)
    try:
        capture = not jax.tree_util.tree_leaves(jax.eval_shape(sown, variables, x_abstract))
    except Exception as err:
        raise TraceError(
            f"{type(module).__name__} could not be applied to an input of shape {(1, *shape)}: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        ) from err

    def fn(v: Any, inp: jax.Array) -> Any:
        out, state = module.apply(
            v, inp, capture_intermediates=capture, mutable=["intermediates"], **kwargs
        )
        return out, state.get("intermediates", {})

    return analyze_function(
        fn,
        variables,
        shape,
        layout=layout,
        name=getattr(module, "name", None) or type(module).__name__,
        root=type(module).__name__,
        dtype=dtype,
        row_names=row_names,
    )


def analyze_any(
    model: Any,
    input_shape: Sequence[int] | None = None,
    variables: Any = None,
    *,
    layout: str = "NHWC",
) -> NetReport:
    """The report of a Flax Linen module, or of a function `f(variables, x)` given `variables`.

    A cnnjax model built from a spec is traced like any other module, its rows named after the
    spec's layers; `analyze_any(build_model(spec))` equals `analysis.analyze(spec)`.
    """
    import flax.linen as nn

    from cnnjax.analysis import analyze as analyze_spec

    spec = getattr(model, "spec", None)
    if isinstance(model, nn.Module):
        names = None
        if spec is not None and hasattr(spec, "input_shape"):
            input_shape = input_shape or spec.input_shape
            names = [r.name for r in analyze_spec(spec).layers]
        if input_shape is None:
            raise TraceError(f"{type(model).__name__}: pass input_shape (H, W, C) to trace it")
        return analyze_module(model, input_shape, variables, layout=layout, row_names=names)
    if callable(model):
        if variables is None or input_shape is None:
            raise TraceError(
                "a plain function f(variables, x) needs variables= and input_shape= to be traced"
            )
        return analyze_function(
            model, variables, input_shape, layout=layout, name=getattr(model, "__name__", "")
        )
    raise TraceError(
        f"cannot analyse a {type(model).__name__}: pass a cnnjax spec, a Flax Linen module, "
        "or a function f(variables, x) with variables"
    )


def module_activations(module: Any, variables: Any, x: jax.Array) -> tuple[Any, dict[str, Any]]:
    """The output and the named activations of a module, under the names its report uses.

    As `analyze_module`: what the module sows into "intermediates" if anything, else every
    submodule's output (`capture_intermediates`). Traceable, so it can sit inside `jax.jit`.
    """
    kwargs = call_kwargs(module)
    variables = {k: v for k, v in dict(variables).items() if k != "intermediates"}
    out, state = module.apply(variables, x, mutable=["intermediates"], **kwargs)
    if not jax.tree_util.tree_leaves(state.get("intermediates", {})):
        out, state = module.apply(
            variables, x, capture_intermediates=True, mutable=["intermediates"], **kwargs
        )
    return out, dict(_captured(state.get("intermediates", {})))
