"""What the engine applies: a Flax Linen module, its input shape, and how to call it.

A cnnjax `NetSpec` builds its `SpecModel`; any other Linen module is read once by an abstract
`init` (`jax.eval_shape`, no FLOPs): which variable collections it has besides ``params`` (batch
norm's ``batch_stats``), and its output shape. Its ``__call__`` signature tells how to switch
between training and evaluation: a ``train`` (or ``training``, ``is_training``) flag, an
inverted ``deterministic`` flag, or none at all.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnnjax.errors import TrainingError
from cnnjax.models import SpecModel, build_model, has_batch_norm, init_variables
from cnnjax.spec import NetSpec

# Collections the engine never keeps (written by `sow` for inspection, not state).
_TRANSIENT = ("intermediates",)
_TRAIN_FLAGS = ("train", "training", "is_training")
_DETERMINISTIC_FLAGS = ("deterministic",)


@dataclass(frozen=True)
class Model:
    """A Linen module with its input shape and calling convention (see the module docstring).

    Attributes:
      module: the Flax Linen module.
      input_shape: one example's shape, e.g. ``(28, 28, 1)`` (the batch axis is left out).
      output_shape: one example's output shape, e.g. ``(10,)``.
      mode_arg: the ``__call__`` keyword that switches training on, or None.
      mode_inverted: True when ``mode_arg`` means "deterministic" (False while training).
      has_batch_stats: whether the module keeps a mutable ``batch_stats`` collection.
      spec: the cnnjax spec the module was built from, if any.
    """

    module: nn.Module
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    mode_arg: str | None = "train"
    mode_inverted: bool = False
    has_batch_stats: bool = False
    spec: NetSpec | None = None

    @property
    def name(self) -> str:
        """The spec's name, or the module's class name."""
        if self.spec is not None:
            return self.spec.name or "model"
        return type(self.module).__name__

    def describe(self) -> dict[str, Any]:
        """What config.json records about a module that is not a spec (resume compares it)."""
        return {
            "module": f"{type(self.module).__module__}.{type(self.module).__qualname__}",
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
        }

    def _mode(self, train: bool) -> dict[str, Any]:
        if self.mode_arg is None:
            return {}
        return {self.mode_arg: (not train) if self.mode_inverted else train}

    def init(self, key: jax.Array) -> dict[str, Any]:
        """Initial variables from one key (params and, where present, batch_stats)."""
        if isinstance(self.module, SpecModel):
            return init_variables(self.module, key)
        x = jnp.zeros((1, *self.input_shape), jnp.float32)
        variables = self.module.init({"params": key, "dropout": key}, x, **self._mode(False))
        return {k: v for k, v in variables.items() if k not in _TRANSIENT}

    def apply_train(
        self, params: Any, batch_stats: Any, images: jax.Array, key: jax.Array
    ) -> tuple[jax.Array, Any]:
        """Logits in training mode (dropout on, batch statistics updated) and new batch_stats."""
        variables = {"params": params}
        if self.has_batch_stats:
            variables["batch_stats"] = batch_stats
            out: Any = self.module.apply(
                variables,
                images,
                rngs={"dropout": key},
                mutable=["batch_stats"],
                **self._mode(True),
            )
            logits, updates = out
            return logits, updates["batch_stats"]
        out = self.module.apply(variables, images, rngs={"dropout": key}, **self._mode(True))
        return out, batch_stats

    def apply_eval(self, params: Any, batch_stats: Any, images: jax.Array) -> jax.Array:
        """Logits in evaluation mode (no dropout, running batch statistics)."""
        variables = {
            "params": params,
            **({"batch_stats": batch_stats} if self.has_batch_stats else {}),
        }
        out: Any = self.module.apply(variables, images, **self._mode(False))
        return out


def _mode_arg(module: nn.Module) -> tuple[str | None, bool]:
    """The keyword of `module.__call__` that switches training, and whether it is inverted."""
    try:
        params = inspect.signature(type(module).__call__).parameters
    except (TypeError, ValueError):
        return None, False
    for name in _TRAIN_FLAGS:
        if name in params:
            return name, False
    for name in _DETERMINISTIC_FLAGS:
        if name in params:
            return name, True
    return None, False


def as_model(
    model: Model | NetSpec | nn.Module,
    input_shape: tuple[int, ...] | None = None,
    *,
    dtype: Any = jnp.float32,
    pool_impl: str = "auto",
    conv_impl: str = "auto",
    norm_impl: str = "auto",
    merge_impl: str = "auto",
) -> Model:
    """The engine's view of `model`: a `Model`, a cnnjax spec, or any Flax Linen module.

    A spec builds its `SpecModel` (with `dtype` and the `*_impl` paths); a module that is
    not a `SpecModel` needs `input_shape` (one example, no batch axis).
    """
    if isinstance(model, Model):
        return model
    if isinstance(model, NetSpec):
        model = build_model(
            model,
            dtype=dtype,
            pool_impl=pool_impl,
            conv_impl=conv_impl,
            norm_impl=norm_impl,
            merge_impl=merge_impl,
        )
    if isinstance(model, SpecModel):
        spec = model.spec
        return Model(
            model,
            tuple(spec.input_shape),
            tuple(spec.output_shape),
            "train",
            False,
            has_batch_norm(spec),
            spec,
        )
    if not isinstance(model, nn.Module):
        raise TrainingError(
            f"model must be a cnnjax NetSpec or a Flax Linen module (flax.linen.Module), "
            f"got {type(model).__name__}"
        )
    if input_shape is None:
        raise TrainingError(
            f"{type(model).__name__} is a Flax module without a spec: pass input_shape= "
            "(one example's shape, e.g. (28, 28, 1))"
        )
    shape = tuple(int(d) for d in input_shape)
    mode_arg, inverted = _mode_arg(model)
    probe = Model(model, shape, (), mode_arg, inverted)
    key = jax.random.key(0)
    x = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
    try:
        out, variables = jax.eval_shape(
            lambda x: model.init_with_output(
                {"params": key, "dropout": key}, x, **probe._mode(False)
            ),
            x,
        )
    except Exception as err:
        raise TrainingError(
            f"{type(model).__name__} cannot be applied to a batch of shape {(1, *shape)}: {err}"
        ) from err
    if not hasattr(out, "shape") or len(out.shape) < 2:
        raise TrainingError(
            f"{type(model).__name__} must return logits of shape [batch, classes]; "
            f"got {getattr(out, 'shape', type(out).__name__)}"
        )
    return Model(
        model,
        shape,
        tuple(int(d) for d in out.shape[1:]),
        mode_arg,
        inverted,
        "batch_stats" in variables,
    )
