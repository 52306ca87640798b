"""Training engine: a pure jitted Optax step, `fit` / `evaluate`, k seeds at once, resume.

The whole training state is one pytree (`TrainState`); the steps are pure functions compiled
with `jax.jit` (`steps`). `fit` takes a cnnjax spec or any Flax Linen module (`model`), an
`ArrayDataset` or plain arrays (`inputs`), any optax optimizer (`optimizers`) and callbacks
(`callbacks`, `writers`); it runs on one device, k seeds looped, or data parallel
(`strategies`), and keeps a run directory (`rundir`) that `load_run` reads back (`runs`).
"""

from cnnjax.errors import TrainingError
from cnnjax.metrics import History, mean_std_ci
from cnnjax.train.callbacks import (
    Callback,
    Control,
    EarlyStopping,
    FunctionCallback,
    ReduceLROnPlateau,
)
from cnnjax.train.evaluation import evaluate
from cnnjax.train.fit import NAN_CHECK_EVERY, FitConfig, FitResult, fit, variables_of
from cnnjax.train.model import Model, as_model
from cnnjax.train.optimizers import hyperparams, set_hyperparams
from cnnjax.train.progress import Progress
from cnnjax.train.runs import LoadedRun, load_run
from cnnjax.train.steps import (
    OPTIMIZERS,
    LossFn,
    TrainState,
    create_train_state,
    loss_and_correct,
    make_eval_step,
    make_optimizer,
    make_train_step,
)
from cnnjax.train.strategies import DataParallelStrategy, Job, SeedLoop, SingleDevice, Strategy
from cnnjax.train.versions import versions
from cnnjax.train.writers import CsvWriter, JsonlWriter, TensorBoardWriter

_versions = versions  # the old private name (experiments/harness.py used it)

__all__ = [
    "NAN_CHECK_EVERY",
    "OPTIMIZERS",
    "Callback",
    "Control",
    "CsvWriter",
    "DataParallelStrategy",
    "EarlyStopping",
    "FitConfig",
    "FitResult",
    "FunctionCallback",
    "History",
    "Job",
    "JsonlWriter",
    "LoadedRun",
    "LossFn",
    "Model",
    "Progress",
    "ReduceLROnPlateau",
    "SeedLoop",
    "SingleDevice",
    "Strategy",
    "TensorBoardWriter",
    "TrainState",
    "TrainingError",
    "as_model",
    "create_train_state",
    "evaluate",
    "fit",
    "hyperparams",
    "load_run",
    "loss_and_correct",
    "make_eval_step",
    "make_optimizer",
    "make_train_step",
    "mean_std_ci",
    "set_hyperparams",
    "variables_of",
    "versions",
]
