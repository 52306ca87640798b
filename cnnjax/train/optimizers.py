"""Any optax optimizer: what a run records about it, and its injected hyperparameters.

An optax `GradientTransformation` is a pair of functions, so it cannot be saved; a run records
its state's structure (the optax state types, e.g. ``(TraceState, ScaleByScheduleState)``) and
the hyperparameters that `optax.inject_hyperparams` exposes. A resume compares the two, and
callbacks change exposed hyperparameters in the state itself, with no recompilation.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cnnjax.errors import TrainingError


def _is_injected(x: Any) -> bool:
    return hasattr(x, "hyperparams") and hasattr(x, "_fields")


def state_structure(opt_state: Any) -> str:
    """The optax state types of `opt_state`, nested as built, e.g. ``(ScaleByAdamState, ...)``."""
    if _is_injected(x := opt_state):
        names = ", ".join(sorted(x.hyperparams))
        return f"inject_hyperparams[{names}]({state_structure(x.inner_state)})"
    if hasattr(x, "_fields"):
        inner = [state_structure(getattr(x, f)) for f in x._fields]
        inner = [s for s in inner if s]
        return type(x).__name__ + (f"({', '.join(inner)})" if inner else "")
    if isinstance(x, (tuple, list)):
        return "(" + ", ".join(s for s in map(state_structure, x) if s) + ")"
    return ""


def hyperparams(opt_state: Any) -> dict[str, Any]:
    """The hyperparameters `optax.inject_hyperparams` exposes in `opt_state` (first seed's)."""
    found: dict[str, Any] = {}

    def visit(x: Any) -> Any:
        if _is_injected(x):
            for name, value in x.hyperparams.items():
                arr = np.asarray(value)
                found.setdefault(name, float(arr.reshape(-1)[0]) if arr.size else None)
            visit(x.inner_state)
        return x

    jax.tree_util.tree_map(visit, opt_state, is_leaf=_is_injected)
    return found


def set_hyperparams(opt_state: Any, values: dict[str, float]) -> Any:
    """`opt_state` with injected hyperparameters replaced (same shapes, dtypes and devices)."""
    missing = set(values) - set(hyperparams(opt_state))
    if missing:
        raise TrainingError(
            f"the optimizer exposes no hyperparameter {', '.join(sorted(missing))}; build it "
            "with optax.inject_hyperparams(...)(learning_rate=...) to change it during training"
        )

    def replace(x: Any) -> Any:
        if not _is_injected(x):
            return x
        new = dict(x.hyperparams)
        for name, value in values.items():
            if name in new:
                old = new[name]
                arr = jnp.full(jnp.shape(old), value, jnp.asarray(old).dtype)
                # placed as the old value was: a change of placement would recompile the step
                committed = getattr(old, "committed", False)
                new[name] = jax.device_put(arr, old.sharding) if committed else arr
        return x._replace(hyperparams=new, inner_state=set_inner(x.inner_state))

    def set_inner(tree: Any) -> Any:
        return jax.tree_util.tree_map(replace, tree, is_leaf=_is_injected)

    return set_inner(opt_state)


def describe(
    tx: optax.GradientTransformation | None, opt_state: Any, name: str, learning_rate: float
) -> dict[str, Any]:
    """What config.json records about the optimizer: name, state structure, hyperparameters.

    `tx` None means the named Keras-like optimizer `name` at `learning_rate`.
    """
    if tx is None:
        return {"name": name, "learning_rate": learning_rate}
    return {
        "name": "custom",
        "structure": state_structure(opt_state),
        "hyperparams": hyperparams(opt_state),
    }
