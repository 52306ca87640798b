"""What the three inspection tools share: the model's report and named activations (a cnnjax
model from its spec; any other Flax module from its traced program, `cnnjax.trace`), images in
the model's layout, validated layer names, and fixed-size batches (one compiled shape per
tool, padding masked or dropped)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.analysis import NetReport, analyze
from cnnjax.errors import InspectError
from cnnjax.models import SpecModel, intermediates
from cnnjax.spec import NetSpec


def input_shape_of(model: Any, images: Any) -> tuple[int, ...]:
    """The model's input shape (H, W, C): its spec's, or that of the images given."""
    if isinstance(model, SpecModel):
        return tuple(model.spec.input_shape)
    shape = np.shape(images)
    if len(shape) != 4:
        raise InspectError(
            f"images for a {type(model).__name__} must be a batch (N, H, W, C), got shape {shape}"
        )
    return tuple(int(s) for s in shape[1:])


@functools.lru_cache(maxsize=32)
def _traced(model: Any, input_shape: tuple[int, ...]) -> tuple[NetReport, tuple[str, ...]]:
    from cnnjax.trace import analyze_module, module_activations

    report = analyze_module(model, input_shape)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, *input_shape))))
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    names = jax.eval_shape(lambda v, inp: module_activations(model, v, inp)[1], variables, x)
    return report, tuple(r.name for r in report.layers if r.name in names)


def report_of(model: Any, input_shape: Sequence[int]) -> NetReport:
    """The per-layer report: analytic for a cnnjax model, traced for any other Flax module."""
    if isinstance(model, SpecModel):
        return analyze(model.spec)
    return _traced(model, tuple(input_shape))[0]


def activations(model: Any, variables: Any, x: jax.Array) -> tuple[Any, dict[str, Any]]:
    """The output and every named layer's activation (eval mode), keyed as the report's rows."""
    if isinstance(model, SpecModel):
        return intermediates(model, variables, x)
    from cnnjax.trace import module_activations

    return module_activations(model, variables, x)


def predict(model: Any, variables: Any, x: jax.Array) -> jax.Array:
    """The model's output in eval mode (logits for a cnnjax model)."""
    if isinstance(model, SpecModel):
        return cast(jax.Array, model.apply(variables, x, train=False))
    return activations(model, variables, x)[0]


def known_layers(model: Any, input_shape: Sequence[int]) -> list[str]:
    """The rows whose activations the inspection tools can read, in network order."""
    if isinstance(model, SpecModel):
        return [r.name for r in analyze(model.spec).layers]
    return list(_traced(model, tuple(input_shape))[1])


def as_images(images: Any, spec: NetSpec | Sequence[int]) -> np.ndarray:
    """float32 NHWC images in [0, 1] matching the model's input (uint8 is divided by 255)."""
    x = np.asarray(images)
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / np.float32(255.0)
    else:
        x = x.astype(np.float32, copy=False)
    expected = tuple(spec.input_shape if isinstance(spec, NetSpec) else spec)
    if x.shape == expected:
        x = x[None]
    elif expected[2] == 1 and x.shape == expected[:2]:
        x = x[None, :, :, None]
    elif x.ndim == 3 and expected[2] == 1 and x.shape[1:] == expected[:2]:
        x = x[..., None]
    if x.ndim != 4 or tuple(x.shape[1:]) != expected:
        raise InspectError(
            f"images of shape {x.shape} do not match the model's input "
            f"(N, {', '.join(map(str, expected))})"
        )
    return x


def layer_names(spec: NetSpec | Sequence[str], layers: Sequence[str] | str | None) -> list[str]:
    """Validated layer names (all layers when None), of a spec or from a list of known names."""
    known = [r.name for r in analyze(spec).layers] if isinstance(spec, NetSpec) else list(spec)
    if layers is None:
        return known
    names = [layers] if isinstance(layers, str) else list(layers)
    unknown = [n for n in names if n not in known]
    if unknown:
        hint = (
            ""
            if isinstance(spec, NetSpec)
            else " (a function call such as nn.max_pool is no module: sow its output with "
            "self.sow('intermediates', NAME, x) to inspect it)"
        )
        raise InspectError(
            f"unknown layer(s) {', '.join(unknown)}; layers: {', '.join(known)}{hint}"
        )
    return names


def padded(x: np.ndarray, batch_size: int) -> tuple[np.ndarray, int]:
    """`x` zero-padded to a whole number of batches (so every batch has one compiled shape)."""
    bs = max(1, min(batch_size, len(x)))
    extra = -len(x) % bs
    if extra:
        x = np.concatenate([x, np.zeros((extra, *x.shape[1:]), x.dtype)])
    return x, bs


def batched(fn: Callable[[jax.Array], Any], x: np.ndarray, batch_size: int) -> Any:
    """Apply the jitted `fn` to fixed-size batches of `x`; outputs as numpy, padding dropped.

    Batches are cut on the host, so no eager slicing op is compiled per shape, and every batch
    is dispatched before the first result is read (one host sync at the end).
    """
    n = len(x)
    xp, bs = padded(x, batch_size)
    outs = [fn(jnp.asarray(xp[start : start + bs])) for start in range(0, len(xp), bs)]
    return jax.tree_util.tree_map(
        lambda *parts: np.concatenate([np.asarray(p) for p in parts])[:n], *outs
    )


def weighted_batches(*arrays: np.ndarray, batch_size: int) -> list[tuple[jax.Array, ...]]:
    """Equal-length arrays cut into padded device batches, plus a 0/1 weight marking padding
    (for sums over images, where a padded image must count for nothing)."""
    n = len(arrays[0])
    parts = [padded(a, batch_size)[0] for a in arrays]
    bs = max(1, min(batch_size, n))
    weight = (np.arange(len(parts[0])) < n).astype(np.float32)
    return [
        tuple(jnp.asarray(a[i : i + bs]) for a in (*parts, weight))
        for i in range(0, len(weight), bs)
    ]
