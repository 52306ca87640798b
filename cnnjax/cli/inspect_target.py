"""What `cnnjax inspect` looks at: the target (a spec with random-init weights, or a trained
run), its data sized to the model's input, and the session that collects what is written.
"""

from __future__ import annotations

import argparse
import functools
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnjax.cli.helpers import UserError, load_spec, log

NOISE = "noise"  # --dataset noise: uniform random images (maps and ERF only)


@dataclass
class Target:
    """What is inspected: a spec with random-init weights, or a trained run."""

    name: str
    spec: Any
    init_seed: int  # the seed of the random-init weights (a run's own initial weights)
    trained: dict[str, Any] | None = None
    history: list[dict[str, Any]] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None
    _initial: dict[str, Any] | None = None

    @property
    def initial(self) -> dict[str, Any]:
        """Random-init weights, made on first use (the spec's, or the run's starting point)."""
        if self._initial is None:
            self._initial = _initial_weights(self.spec, self.init_seed)
        return self._initial

    @property
    def variables(self) -> dict[str, Any]:
        """The weights to inspect: trained when there are, else the random init."""
        return self.trained if self.trained is not None else self.initial

    @property
    def weights_label(self) -> str:
        return "trained" if self.trained is not None else "random init"


def _initial_weights(spec: Any, seed: int) -> dict[str, Any]:
    """The initial weights `cnnjax.train` starts seed `seed` from (its own init recipe)."""

    return _initial_weights_program()(spec, seed)


@functools.cache
def _initial_weights_program() -> Any:
    """One jitted init per (spec, seed), cached across calls (compiling it costs seconds)."""
    import jax
    import optax

    from cnnjax.models import build_model, has_batch_norm
    from cnnjax.train import create_train_state

    def init(spec: Any, seed: int) -> dict[str, Any]:
        state = create_train_state(build_model(spec), optax.identity(), seed)
        out = {"params": state.params}
        if has_batch_norm(spec):
            out["batch_stats"] = state.batch_stats
        return out

    return jax.jit(init, static_argnums=(0, 1))


def resolve_target(
    source: str, *, seed: int = 0, seed_index: int = 0, input_shape: Any = None
) -> Target:
    """A run directory (has config.json) or a spec (zoo name, text form, JSON file or string)."""
    path = Path(source)
    if _is_dir(path):
        if not (path / "config.json").is_file():
            raise UserError(
                f"{path} is a directory but not a cnnjax run directory (no config.json)"
            )
        from cnnjax.train import load_run

        run = load_run(path)
        k = int(run.seeds)
        if not 0 <= seed_index < k:
            raise UserError(f"--seed-index {seed_index} is outside the run's {k} seed(s)")
        trained = run.variables_of(seed_index)
        first_seed = int(run.config.get("fit", {}).get("seed", 0))
        return Target(
            name=path.resolve().name,
            spec=run.spec,
            init_seed=first_seed + seed_index,
            trained=trained,
            history=list(run.history),
            config=dict(run.config),
            run_dir=path,
        )
    spec = load_spec(source, input_shape)
    spec.require_size("inspection")
    name = spec.name or re.sub(r"[^A-Za-z0-9_.-]+", "_", source)[:60] or "model"
    return Target(name=name, spec=spec, init_seed=seed)


def _is_dir(path: Path) -> bool:
    """Whether `path` is a directory; False for a string no file could have (a long JSON spec)."""
    try:
        return path.is_dir()
    except OSError:  # e.g. ENAMETOOLONG
        return False


@dataclass
class Data:
    """Float images in [0, 1] and labels, sized to the model's input."""

    name: str
    train_x: Any
    train_y: Any
    test_x: Any
    test_y: Any
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def load_data(
    target: Target,
    dataset: str | None,
    *,
    data_dir: str | None = None,
    limit: int | None = None,
    test_limit: int | None = None,
    seed: int = 0,
) -> Data:
    """The run's dataset (or --dataset), subsets of it, resized to the model's input shape."""
    import numpy as np

    spec = target.spec
    name = dataset or target.config.get("dataset") or "fashion_mnist"
    if name == NOISE:
        rng = np.random.default_rng(seed)
        n = test_limit or 64
        x = rng.random((n, *spec.input_shape), dtype=np.float32)
        return Data(NOISE, None, None, x, None, ())
    from cnnjax import data
    from cnnjax.data.loading import load_datasets

    train, test = load_datasets(
        name,
        data_dir=data_dir,
        limit=limit,
        test_limit=test_limit,
        classes=target.config.get("classes"),
        seed=seed,
    )
    if tuple(train.image_shape) != tuple(spec.input_shape):
        h, w, c = spec.input_shape
        if train.image_shape[:2] != (h, w):
            train, test = data.resize(train, (h, w)), data.resize(test, (h, w))
        if train.image_shape[2] != c:
            train, test = data.to_channels(train, c), data.to_channels(test, c)
    return Data(
        name,
        data.scale_images(train.images),
        np.asarray(train.labels),
        data.scale_images(test.images),
        np.asarray(test.labels),
        tuple(train.class_names),
    )


@dataclass
class Session:
    """One `cnnjax inspect` invocation: the target, the options, the data, what was written."""

    target: Target
    args: argparse.Namespace
    out: Path
    written: list[Path] = field(default_factory=list)
    sections: dict[str, str] = field(default_factory=dict)
    facts: list[str] = field(default_factory=list)  # one-sentence findings for inspect.md
    _data: Data | None = None

    @property
    def data(self) -> Data:
        if self._data is None:
            a = self.args
            t0 = time.perf_counter()
            self._data = load_data(
                self.target,
                a.dataset,
                data_dir=a.data_dir,
                limit=a.limit,
                test_limit=max(a.test_limit or 0, a.images, a.map_images) or None,
                seed=a.seed,
            )
            log(f"data: {self._data.name} ({time.perf_counter() - t0:.1f} s)")
        return self._data

    @property
    def model(self) -> Any:
        from cnnjax.models import build_model

        return build_model(self.target.spec)

    def add(self, path: Path) -> Path:
        self.written.append(path)
        print(path, flush=True)
        return path
