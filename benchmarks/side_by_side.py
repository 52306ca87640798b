"""cnnjax beside PyTorch, Keras 3 on TensorFlow and Keras 3 on JAX: CPU training, same data.

    python benchmarks/side_by_side.py            # full Fashion-MNIST, every network, 5 epochs
    python benchmarks/side_by_side.py --quick    # smoke test: 2,048 / 1,024 images, 2 epochs,
                                                 # the two seed 000 rows unless --models says
    python benchmarks/side_by_side.py --models pool224,nopool224,resnet_small
    make bench                                   # installs the peers first (make bench-setup)

The rows are every network family the experiments train (MODELS): seed 000 and its 64-filter
variant, chollet_mnist, fashion_cnn_nopool, resnet_small and erf_depth's deepest plain and
residual stacks (plain13, residual13) on Fashion-MNIST (28x28x1), and
pool224 / nopool224 on random 224x224x3 two-class images (640 / 160 by default, 64 / 32 with
--quick; --train-limit and --test-limit apply to Fashion-MNIST only). The peers build each
network from a framework-neutral layer list.

The driver loads Fashion-MNIST once through cnnjax and writes it to a temporary .npz (uint8
images, int32 labels); every framework then trains in its own subprocess
(``--worker NAME``), so its threads and its peak RSS are its own. Each worker scales the
images to float32 in [0, 1] the same way, trains the same network with batch 32 and
Adam(lr 1e-3, eps 1e-7) on softmax cross-entropy, reshuffles every epoch, and evaluates the
test set after each epoch (evaluation time is kept out of the epoch time). The cnnjax worker
restarts under tcmalloc where it is installed, as the `cnnjax` command does
(`cnnjax.restart_with_tcmalloc`); the peers run on the system's malloc unless the driver's
environment sets LD_PRELOAD (each row records it). With ``--rounds R``
the workers run R times in a rotated order and the medians over the rounds are reported.

Writes ``side_by_side.json`` and ``side_by_side.md`` under ``--out`` (default
``benchmarks/results/``). A framework whose packages are missing is a "not installed" row.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import importlib.metadata as md
import importlib.util
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

FRAMEWORKS = ("cnnjax", "torch", "keras-tf", "keras-jax")
LABELS = {
    "cnnjax": "cnnjax (JAX/Flax)",
    "torch": "PyTorch",
    "keras-tf": "Keras 3 / TensorFlow",
    "keras-jax": "Keras 3 / JAX",
}
# Modules a framework needs (checked without importing them) and the packages whose versions
# its row reports.
REQUIRES = {
    "cnnjax": ("jax", "flax", "optax"),
    "torch": ("torch",),
    "keras-tf": ("keras", "tensorflow"),
    "keras-jax": ("keras", "jax"),
}
VERSIONS = {
    "cnnjax": ("cnnjax", "jax", "jaxlib", "flax", "optax", "numpy"),
    "torch": ("torch", "numpy"),
    "keras-tf": ("keras", "tensorflow", "numpy"),
    "keras-jax": ("keras", "jax", "jaxlib", "numpy"),
}
SHORT_VERSION = {
    "cnnjax": ("cnnjax", "jax"),
    "torch": ("torch",),
    "keras-tf": ("keras", "tensorflow"),
    "keras-jax": ("keras", "jax"),
}


# The networks as a framework-neutral layer list that the peers' builders read:
#   ("conv", filters, kernel, stride, symmetric padding, bias, activation)
#   ("pool", window) max pooling, window = stride, VALID; ("bn",) batch norm (eps 1e-5,
#   momentum 0.99 in Keras's sense); ("relu",); ("flatten",); ("gap",) global average pooling;
#   ("dense", units, activation), the last one giving logits;
#   ("block", filters, stride, project): a ResNet basic block (two 3x3 conv-bn, a 1x1 conv-bn
#   shortcut when project, add, relu), as cnnjax.zoo._basic_block;
#   ("res", filters): two 3x3 stride-1 convs padded by 1 with biases (relu, then linear), an
#   identity shortcut, add, relu, as erf_depth's residual blocks.
Layer = tuple[Any, ...]

ERF_WIDTH, ERF_DEPTH = 16, 13  # erf_depth's deepest networks (cnnjax.experiments.erf_depth)


def _plain(filters: int) -> tuple[Layer, ...]:
    return (
        ("conv", filters, 3, 1, 0, True, "relu"),
        ("pool", 2),
        ("conv", filters, 3, 1, 0, True, "relu"),
        ("pool", 2),
        ("flatten",),
        ("dense", 128, "relu"),
        ("dense", 10, "linear"),
    )


@dataclasses.dataclass(frozen=True)
class Model:
    layers: tuple[Layer, ...]  # what the peers build
    spec: str  # what cnnjax.loading.load_spec accepts
    params: int  # trainable parameters (batch norm's running statistics are not counted)
    description: str
    data: str = "fashion"  # a key of DATASETS

    @property
    def filters(self) -> int:
        """The first convolution's filters."""
        return next(layer[1] for layer in self.layers if layer[0] == "conv")


MODELS = {
    "fashion_cnn": Model(
        _plain(32),
        "fashion_cnn",
        113_386,
        "Conv(32,3x3,relu)-MaxPool2-Conv(32,3x3,relu)-MaxPool2-Flatten-Dense(128,relu)-Dense(10)",
    ),
    "fashion_cnn64": Model(
        _plain(64),
        "in28x28x1-conv64x3-pool2-conv64x3-pool2-flatten-dense128-dense10",
        243_786,
        "Conv(64,3x3,relu)-MaxPool2-Conv(64,3x3,relu)-MaxPool2-Flatten-Dense(128,relu)-Dense(10)",
    ),
    "chollet_mnist": Model(
        (
            ("conv", 32, 3, 1, 0, True, "relu"),
            ("pool", 2),
            ("conv", 64, 3, 1, 0, True, "relu"),
            ("pool", 2),
            ("conv", 64, 3, 1, 0, True, "relu"),
            ("flatten",),
            ("dense", 64, "relu"),
            ("dense", 10, "linear"),
        ),
        "chollet_mnist",
        93_322,
        "Conv(32,3x3,relu)-MaxPool2-Conv(64,3x3,relu)-MaxPool2-Conv(64,3x3,relu)-Flatten-"
        "Dense(64,relu)-Dense(10) (seed 001)",
    ),
    "fashion_cnn_nopool": Model(
        (
            ("conv", 32, 3, 1, 0, True, "relu"),
            ("conv", 32, 3, 1, 0, True, "relu"),
            ("flatten",),
            ("dense", 128, "relu"),
            ("dense", 10, "linear"),
        ),
        "fashion_cnn_nopool",
        2_370_282,
        "Conv(32,3x3,relu)-Conv(32,3x3,relu)-Flatten-Dense(128,relu)-Dense(10) (make demo)",
    ),
    "pool224": Model(
        (
            ("conv", 10, 3, 1, 0, True, "relu"),
            ("pool", 2),
            ("conv", 10, 3, 1, 0, True, "relu"),
            ("pool", 2),
            ("conv", 10, 3, 1, 0, True, "relu"),
            ("pool", 2),
            ("flatten",),
            ("dense", 1, "linear"),
        ),
        "pool224",
        8_861,
        "3 x [Conv(10,3x3,relu)-MaxPool2]-Flatten-Dense(1,sigmoid) on 224x224x3 (seed 004)",
        "rgb224",
    ),
    "nopool224": Model(
        (
            ("conv", 10, 3, 1, 0, True, "relu"),
            ("conv", 10, 3, 1, 0, True, "linear"),
            ("conv", 10, 3, 1, 0, True, "linear"),
            ("flatten",),
            ("dense", 1, "linear"),
        ),
        "nopool224",
        477_341,
        "Conv(10,3x3,relu)-Conv(10,3x3)-Conv(10,3x3)-Flatten-Dense(1,sigmoid) on 224x224x3 "
        "(seed 004)",
        "rgb224",
    ),
    "resnet_small": Model(
        (
            ("conv", 16, 3, 1, 1, False, "linear"),
            ("bn",),
            ("relu",),
            ("block", 16, 1, False),
            ("block", 32, 2, True),
            ("block", 64, 2, True),
            ("gap",),
            ("dense", 10, "linear"),
        ),
        "resnet_small",
        77_754,
        "Conv(16,3x3)-BN-ReLU, basic blocks 16/32(s2)/64(s2) with batch norm, GAP, Dense(10)",
    ),
    "plain13": Model(
        (("conv", ERF_WIDTH, 3, 1, 1, True, "relu"),) * ERF_DEPTH
        + (("gap",), ("dense", 10, "linear")),
        "in28x28x1-" + "-".join(["conv16x3same"] * ERF_DEPTH) + "-gap-dense10",
        28_170,
        "13 x Conv(16,3x3,same,relu)-GAP-Dense(10) (erf_depth's deepest plain stack)",
    ),
    "residual13": Model(
        (("conv", ERF_WIDTH, 3, 1, 1, True, "relu"),)
        + (("res", ERF_WIDTH),) * ((ERF_DEPTH - 1) // 2)
        + (("gap",), ("dense", 10, "linear")),
        "in28x28x1-conv16x3same-"
        + "-".join(["res(conv16x3same-conv16x3same:linear)"] * ((ERF_DEPTH - 1) // 2))
        + "-gap-dense10",
        28_170,
        "Conv(16,3x3,same,relu), 6 identity blocks of two Conv(16,3x3,same), GAP, Dense(10) "
        "(erf_depth's deepest residual stack)",
    ),
}
# --quick without --models: the two original rows only (CI time)
QUICK_MODELS = ("fashion_cnn", "fashion_cnn64")
# name -> (image shape, classes, default train / test images, quick train / test images)
DATASETS = {
    "fashion": ((28, 28, 1), 10, (None, None), (2048, 1024)),
    "rgb224": ((224, 224, 3), 2, (640, 160), (64, 32)),
}
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
ADAM_EPS = 1e-7  # cnnjax's make_optimizer and Keras's Adam default; set explicitly in PyTorch
EVAL_BATCH_SIZE = 1000  # cnnjax FitConfig.eval_batch_size; the peers use the same
TARGET_ACCURACY = 0.91
NUM_CLASSES = 10  # Fashion-MNIST; DATASETS gives every data set's count
DEFAULT_EPOCHS = 5
QUICK = {"epochs": 2, "train_limit": 2048, "test_limit": 1024}
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


# --------------------------------------------------------------------------- shared helpers


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _versions(packages: Sequence[str]) -> dict[str, str]:
    out = {}
    for name in packages:
        with contextlib.suppress(md.PackageNotFoundError):
            out[name] = md.version(name)
    return out


def _missing_modules(framework: str) -> list[str]:
    """The modules `framework` needs that are not installed (found without importing them)."""
    return [m for m in REQUIRES[framework] if importlib.util.find_spec(m) is None]


def _load_arrays(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): float32 NHWC images in [0, 1], int32 labels."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    scale = np.float32(1.0 / 255.0)  # uint8 / 255, the same array in every worker
    return (
        arrays["x_train"].astype(np.float32) * scale,
        arrays["y_train"].astype(np.int32),
        arrays["x_test"].astype(np.float32) * scale,
        arrays["y_test"].astype(np.int32),
    )


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _time_to_target(
    seconds: Sequence[float], accuracy: Sequence[float], target: float = TARGET_ACCURACY
) -> float | None:
    """Training seconds up to the end of the first epoch with test accuracy >= target."""
    total = 0.0
    for s, a in zip(seconds, accuracy, strict=True):
        total += s
        if a >= target:
            return total
    return None


def _summarise(result: dict[str, Any]) -> dict[str, Any]:
    """Derived numbers of one worker run, from its per-epoch lists."""
    ips = result["images_per_second"]
    steady = ips[1:]
    result["first_epoch_seconds"] = result["epoch_seconds"][0]
    result["steady_state"] = bool(steady)
    result["images_per_second_median"] = statistics.median(steady or ips)
    result["final_test_accuracy"] = result["test_accuracy"][-1]
    result["target_accuracy"] = TARGET_ACCURACY
    result["time_to_target_seconds"] = _time_to_target(
        result["epoch_seconds"], result["test_accuracy"]
    )
    result["peak_rss_mib"] = _peak_rss_mib()
    return result


def _thread_env() -> dict[str, Any]:
    keys = (
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "XLA_FLAGS",
        "TF_NUM_INTRAOP_THREADS",
        "LD_PRELOAD",
    )
    return {
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "env": {k: os.environ[k] for k in keys if k in os.environ},
    }


# --------------------------------------------------------------------------- workers


def _worker_cnnjax(data: Path, model_name: str, epochs: int, seed: int) -> dict[str, Any]:
    import cnnjax

    cnnjax.configure_xla()  # cnnjax's XLA:CPU flags, as the `cnnjax` command sets them
    import jax

    from cnnjax.data import ArrayDataset
    from cnnjax.loading import load_spec
    from cnnjax.train import FitConfig, fit

    x_train, y_train, x_test, y_test = _load_arrays(data)
    classes = DATASETS[MODELS[model_name].data][1]
    names = tuple(str(i) for i in range(classes))
    train = ArrayDataset(x_train, y_train, classes, names, "train")
    test = ArrayDataset(x_test, y_test, classes, names, "test")
    spec = dataclasses.replace(load_spec(MODELS[model_name].spec), name=model_name)
    config = FitConfig(
        epochs=epochs, batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, seed=seed
    )  # every other field at its default: fit's own default path
    start = time.perf_counter()
    result = fit(spec, train, validation=test, config=config, progress=False)
    wall = time.perf_counter() - start
    records = result.history.records
    epoch_seconds = [float(r["seconds"]) for r in records]
    return {
        "epoch_seconds": epoch_seconds,
        # fit counts full batches: an epoch drops the last partial batch
        "images_per_second": [float(r["images_per_second"]) for r in records],
        "test_accuracy": [float(r["val_accuracy"]) for r in records],
        "train_loss": [float(r["loss"]) for r in records],
        # fit does not time its evaluation apart: what it spent outside the epochs' steps
        # (state init, copying the data to the device, the evaluations) is reported instead
        "eval_seconds": None,
        "outside_epochs_seconds": wall - sum(epoch_seconds),
        "wall_seconds": wall,
        "params": int(sum(x.size for x in jax.tree_util.tree_leaves(result.state.params))),
        "threads": {
            **_thread_env(),
            "jax_backend": jax.default_backend(),
            "jax_devices": jax.device_count(),
        },
        "settings": {"fit_config": config.to_dict(), "optimizer": "cnnjax make_optimizer('adam')"},
    }


def _torch_model(layers: Sequence[Layer], shape: Sequence[int]) -> Any:
    """The layer list as a torch module for NCHW input of HWC `shape`, with Keras's
    (and cnnjax's) initialisers: glorot-uniform weights, zero biases."""
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, f: int, stride: int, project: bool) -> None:
            super().__init__()
            self.main = nn.Sequential(
                nn.Conv2d(cin, f, 3, stride, 1, bias=False),
                nn.BatchNorm2d(f, eps=1e-5, momentum=0.01),
                nn.ReLU(),
                nn.Conv2d(f, f, 3, 1, 1, bias=False),
                nn.BatchNorm2d(f, eps=1e-5, momentum=0.01),
            )
            self.short = (
                nn.Sequential(
                    nn.Conv2d(cin, f, 1, stride, 0, bias=False),
                    nn.BatchNorm2d(f, eps=1e-5, momentum=0.01),
                )
                if project
                else nn.Identity()
            )

        def forward(self, x: Any) -> Any:
            return (self.main(x) + self.short(x)).relu()

    class Res(nn.Module):
        def __init__(self, f: int) -> None:
            super().__init__()
            self.main = nn.Sequential(nn.Conv2d(f, f, 3, 1, 1), nn.ReLU(), nn.Conv2d(f, f, 3, 1, 1))

        def forward(self, x: Any) -> Any:
            return (self.main(x) + x).relu()

    h, w, c = shape
    mods: list[Any] = []
    for layer in layers:
        kind = layer[0]
        if kind == "conv":
            _, f, k, st, pad, bias, act = layer
            mods.append(nn.Conv2d(c, f, k, st, pad, bias=bias))
            mods += [nn.ReLU()] if act == "relu" else []
            h, w, c = (h + 2 * pad - k) // st + 1, (w + 2 * pad - k) // st + 1, f
        elif kind == "block":
            _, f, st, project = layer
            mods.append(Block(c, f, st, project))
            h, w, c = (h - 1) // st + 1, (w - 1) // st + 1, f
        elif kind == "res":
            mods.append(Res(layer[1]))
        elif kind == "pool":
            mods.append(nn.MaxPool2d(layer[1]))
            h, w = h // layer[1], w // layer[1]
        elif kind == "bn":
            mods.append(nn.BatchNorm2d(c, eps=1e-5, momentum=0.01))  # torch's = 1 - Keras's
        elif kind == "relu":
            mods.append(nn.ReLU())
        elif kind == "flatten":
            mods.append(nn.Flatten())
            h, w, c = 1, 1, h * w * c
        elif kind == "gap":
            mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            h, w = 1, 1
        elif kind == "dense":
            _, units, act = layer
            mods.append(nn.Linear(h * w * c, units))
            mods += [nn.ReLU()] if act == "relu" else []
            h, w, c = 1, 1, units
        else:
            raise ValueError(f"unknown layer {layer!r}")
    model = nn.Sequential(*mods)
    for m in model.modules():  # Keras's (and cnnjax's) initialisers instead of torch's
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def _worker_torch(data: Path, model_name: str, epochs: int, seed: int) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    spec = MODELS[model_name]
    shape, classes = DATASETS[spec.data][:2]
    model = _torch_model(spec.layers, shape)
    binary = classes == 2 and spec.layers[-1][1] == 1

    def loss_fn(logits: Any, labels: Any) -> Any:
        if binary:
            return F.binary_cross_entropy_with_logits(logits[:, 0], labels.float())
        return F.cross_entropy(logits, labels)

    def predict(logits: Any) -> Any:
        return (logits[:, 0] > 0).long() if binary else logits.argmax(1)

    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, eps=ADAM_EPS)

    x_train, y_train, x_test, y_test = _load_arrays(data)
    x = torch.from_numpy(x_train).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW, once
    y = torch.from_numpy(y_train).long()
    xt = torch.from_numpy(x_test).permute(0, 3, 1, 2).contiguous()
    yt = torch.from_numpy(y_test).long()
    n = len(y)
    gen = torch.Generator().manual_seed(seed)

    def evaluate() -> float:
        model.eval()
        correct = 0
        with torch.inference_mode():
            for i in range(0, len(yt), EVAL_BATCH_SIZE):
                logits = model(xt[i : i + EVAL_BATCH_SIZE])
                correct += int((predict(logits) == yt[i : i + EVAL_BATCH_SIZE]).sum())
        return correct / len(yt)

    out: dict[str, Any] = {k: [] for k in ("epoch_seconds", "images_per_second", "test_accuracy")}
    out.update(train_loss=[], eval_seconds=[])
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        loss_sum = torch.zeros(())
        for i in range(0, n, BATCH_SIZE):
            idx = perm[i : i + BATCH_SIZE]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(idx)
        seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        acc = evaluate()
        out["eval_seconds"].append(time.perf_counter() - t1)
        out["epoch_seconds"].append(seconds)
        out["images_per_second"].append(n / seconds)
        out["test_accuracy"].append(acc)
        out["train_loss"].append(float(loss_sum) / n)
    out["wall_seconds"] = time.perf_counter() - start
    out["params"] = sum(p.numel() for p in model.parameters())
    out["threads"] = {
        **_thread_env(),
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
    }
    out["settings"] = {"loop": "eager, index shuffling over a resident tensor", "compile": False}
    return out


def _keras_model(keras: Any, layers: Sequence[Layer], shape: Sequence[int], name: str) -> Any:
    """The layer list as a functional Keras model (Keras's initialisers are the defaults)."""
    kl = keras.layers

    def conv(x: Any, f: int, k: int, st: int, pad: int, bias: bool, act: str = "linear") -> Any:
        x = kl.ZeroPadding2D(pad)(x) if pad else x  # symmetric, as torch and cnnjax pad
        return kl.Conv2D(f, k, st, use_bias=bias, activation=act)(x)

    def bn(x: Any) -> Any:
        return kl.BatchNormalization(momentum=0.99, epsilon=1e-5)(x)

    inputs = keras.Input(tuple(shape))
    x = inputs
    for layer in layers:
        kind = layer[0]
        if kind == "conv":
            x = conv(x, *layer[1:])
        elif kind == "block":
            _, f, st, project = layer
            y = kl.ReLU()(bn(conv(x, f, 3, st, 1, False)))
            y = bn(conv(y, f, 3, 1, 1, False))
            short = bn(conv(x, f, 1, st, 0, False)) if project else x
            x = kl.ReLU()(kl.Add()([y, short]))
        elif kind == "res":
            y = conv(conv(x, layer[1], 3, 1, 1, True, "relu"), layer[1], 3, 1, 1, True)
            x = kl.ReLU()(kl.Add()([y, x]))
        elif kind == "pool":
            x = kl.MaxPooling2D(layer[1])(x)
        elif kind == "bn":
            x = bn(x)
        elif kind == "relu":
            x = kl.ReLU()(x)
        elif kind == "flatten":
            x = kl.Flatten()(x)
        elif kind == "gap":
            x = kl.GlobalAveragePooling2D()(x)
        elif kind == "dense":
            x = kl.Dense(layer[1], activation=None if layer[2] == "linear" else layer[2])(x)
        else:
            raise ValueError(f"unknown layer {layer!r}")
    return keras.Model(inputs, x, name=name)


def _worker_keras(
    backend: str, data: Path, model_name: str, epochs: int, seed: int
) -> dict[str, Any]:
    os.environ["KERAS_BACKEND"] = backend
    import keras

    if keras.backend.backend() != backend:
        raise RuntimeError(f"KERAS_BACKEND={backend} but keras runs on {keras.backend.backend()}")
    keras.utils.set_random_seed(seed)
    spec = MODELS[model_name]
    shape, classes = DATASETS[spec.data][:2]
    model = _keras_model(keras, spec.layers, shape, model_name)
    binary = classes == 2 and spec.layers[-1][1] == 1
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE, epsilon=ADAM_EPS),
        loss=keras.losses.BinaryCrossentropy(from_logits=True)
        if binary
        else keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy(threshold=0.0) if binary else "accuracy"],
    )  # jit_compile left at Keras's default ("auto")

    def sync() -> None:
        if backend == "jax":
            import jax

            jax.block_until_ready([v.value for v in model.trainable_variables])

    x_train, y_train, x_test, y_test = _load_arrays(data)
    n = len(y_train)
    out: dict[str, Any] = {k: [] for k in ("epoch_seconds", "images_per_second", "test_accuracy")}
    out.update(train_loss=[], eval_seconds=[])
    start = time.perf_counter()
    for _ in range(epochs):
        t0 = time.perf_counter()
        hist = model.fit(x_train, y_train, batch_size=BATCH_SIZE, epochs=1, shuffle=True, verbose=0)
        sync()
        seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        _, acc = model.evaluate(x_test, y_test, batch_size=EVAL_BATCH_SIZE, verbose=0)
        out["eval_seconds"].append(time.perf_counter() - t1)
        out["epoch_seconds"].append(seconds)
        out["images_per_second"].append(n / seconds)
        out["test_accuracy"].append(float(acc))
        out["train_loss"].append(float(hist.history["loss"][-1]))
    out["wall_seconds"] = time.perf_counter() - start
    out["params"] = int(sum(np.prod(v.shape) for v in model.trainable_weights))
    threads = _thread_env()
    if backend == "tensorflow":
        import tensorflow as tf

        threads["tf_intra_op"] = tf.config.threading.get_intra_op_parallelism_threads()
        threads["tf_inter_op"] = tf.config.threading.get_inter_op_parallelism_threads()
    else:
        import jax

        threads["jax_backend"] = jax.default_backend()
        threads["jax_devices"] = jax.device_count()
    out["threads"] = threads
    out["settings"] = {
        "backend": backend,
        "jit_compile": model.jit_compile,
        "fit": "model.fit(epochs=1, shuffle=True) per epoch",
        "tensorflow_loaded": "tensorflow" in sys.modules,
    }
    return out


WORKERS: dict[str, Callable[[Path, str, int, int], dict[str, Any]]] = {
    "cnnjax": _worker_cnnjax,
    "torch": _worker_torch,
    "keras-tf": lambda *a: _worker_keras("tensorflow", *a),
    "keras-jax": lambda *a: _worker_keras("jax", *a),
}


def run_worker(name: str, data: Path, model_name: str, epochs: int, seed: int, out: Path) -> int:
    """One framework, one model: train, write the JSON result to `out`."""
    if name == "cnnjax":  # as the `cnnjax` command runs: under tcmalloc where installed
        import cnnjax

        cnnjax.restart_with_tcmalloc()  # this worker again, from the start, same arguments
    base = {"framework": name, "model": model_name, "epochs": epochs}
    t0 = time.perf_counter()
    try:
        WORKERS[name]  # fail on an unknown name before importing anything
        missing = _missing_modules(name)
        if missing:
            raise ImportError(f"missing {', '.join(missing)}")
        result = WORKERS[name](data, model_name, epochs, seed)
    except ImportError as err:  # incl. a peer that is installed but cannot import beside jax
        _atomic_write(out, json.dumps({**base, "status": "unavailable", "reason": str(err)}))
        return 0
    result = _summarise({**base, "status": "ok", **result})
    result["process_seconds"] = time.perf_counter() - t0
    result["versions"] = _versions(VERSIONS[name])
    expected = MODELS[model_name].params
    if result["params"] != expected:
        result["status"] = "error"
        result["reason"] = f"{result['params']} parameters, expected {expected}"
    _atomic_write(out, json.dumps(result, indent=1))
    return 0


# --------------------------------------------------------------------------- data


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A learnable stand-in for Fashion-MNIST (uint8 28x28x1): each class lights its own square."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, n).astype(np.int32)
    images = rng.integers(0, 80, (n, 28, 28, 1), dtype=np.uint8)
    for c in range(NUM_CLASSES):
        r, col = 3 + 12 * (c // 5), 1 + 5 * (c % 5)
        images[labels == c, r : r + 8, col : col + 5, 0] += 150
    return images, labels


def synthetic224(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random 224x224x3 uint8 images, two classes: class 1 has a brighter central square."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n).astype(np.int32)
    images = rng.integers(0, 160, (n, 224, 224, 3), dtype=np.uint8)
    images[labels == 1, 80:144, 80:144, :] += 60
    return images, labels


def prepare_data(args: argparse.Namespace, path: Path, kind: str = "fashion") -> dict[str, Any]:
    """Write the shared arrays (uint8 NHWC images, int32 labels) of data set `kind` to `path`;
    describe them."""
    if kind == "rgb224":
        n_train, n_test = DATASETS[kind][3 if args.quick else 2]
        x_train, y_train = synthetic224(n_train, seed=args.seed)
        x_test, y_test = synthetic224(n_test, seed=args.seed + 1)
        source = "random 224x224x3, 2 classes (benchmarks/side_by_side.py:synthetic224)"
    elif args.synthetic:
        x_train, y_train = synthetic(args.train_limit or 6000, seed=args.seed)
        x_test, y_test = synthetic(args.test_limit or 1000, seed=args.seed + 1)
        source = "synthetic (benchmarks/side_by_side.py:synthetic)"
    else:
        from cnnjax.data import load, random_subset

        train, test = load("fashion_mnist", "train"), load("fashion_mnist", "test")
        if args.train_limit and args.train_limit < len(train):
            train = random_subset(train, args.train_limit, seed=args.seed)
        if args.test_limit and args.test_limit < len(test):
            test = random_subset(test, args.test_limit, seed=args.seed + 1)
        if train.images.dtype != np.uint8 or test.images.dtype != np.uint8:
            raise SystemExit("expected uint8 images from cnnjax.data.load")
        x_train, y_train, x_test, y_test = train.images, train.labels, test.images, test.labels
        source = "fashion_mnist via cnnjax.data.load"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return {
        "source": source,
        "train_examples": len(y_train),
        "test_examples": len(y_test),
        "image_shape": list(x_train.shape[1:]),
        "stored": "uint8; every worker scales to float32 x / 255 in [0, 1]",
    }


# --------------------------------------------------------------------------- driver


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024**2, 1)
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _worker_env(framework: str, base: dict[str, str]) -> dict[str, str]:
    """`base`: the driver's environment, without cnnjax's XLA:CPU flags (the cnnjax worker
    sets them with `cnnjax.configure_xla()`; the peers must not get them).
    """
    env = dict(base)
    env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU benchmark, even where a GPU is present
    env["JAX_PLATFORMS"] = "cpu"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if framework.startswith("keras-"):
        env["KERAS_BACKEND"] = "tensorflow" if framework == "keras-tf" else "jax"
    return env


def _launch(
    framework: str, data: Path, model: str, args: argparse.Namespace, tmp: Path, tag: str
) -> dict[str, Any]:
    out, log = tmp / f"{tag}.json", tmp / f"{tag}.log"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        framework,
        "--data",
        str(data),
        "--model",
        model,
        "--epochs",
        str(args.epochs),
        "--seed",
        str(args.seed),
        "--out",
        str(out),
    ]
    base = {"framework": framework, "model": model}
    with log.open("w") as fh:
        try:
            rc = subprocess.run(
                cmd,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=_worker_env(framework, args.base_env),
                timeout=args.timeout,
                check=False,
            ).returncode
        except subprocess.TimeoutExpired:
            return {**base, "status": "error", "reason": f"timed out after {args.timeout} s"}
    if rc == 0 and out.is_file():
        return json.loads(out.read_text())
    tail = log.read_text(errors="replace").strip().splitlines()[-15:]
    return {**base, "status": "error", "reason": f"worker exited {rc}", "log_tail": tail}


def _median(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The medians over the rounds of one framework and model."""
    ok = [r for r in runs if r.get("status") == "ok"]
    if not ok:
        first = runs[0]
        return {"status": first.get("status", "error"), "reason": first.get("reason"), "runs": runs}
    reached = [r["time_to_target_seconds"] for r in ok if r["time_to_target_seconds"] is not None]
    epochs = len(ok[0]["epoch_seconds"])
    per_epoch = {
        key: [_median([r[key][e] for r in ok]) for e in range(epochs)]
        for key in ("epoch_seconds", "images_per_second", "test_accuracy")
    }
    return {
        "status": "ok",
        "rounds_ok": len(ok),
        "rounds": len(runs),
        "versions": ok[0]["versions"],
        "params": ok[0]["params"],
        "images_per_second_median": _median([r["images_per_second_median"] for r in ok]),
        "steady_state": ok[0]["steady_state"],
        "first_epoch_seconds": _median([r["first_epoch_seconds"] for r in ok]),
        "final_test_accuracy": _median([r["final_test_accuracy"] for r in ok]),
        "time_to_target_seconds": _median(reached),
        "rounds_reaching_target": len(reached),
        "peak_rss_mib": _median([r["peak_rss_mib"] for r in ok]),
        "per_epoch_median": per_epoch,
        "threads": ok[0]["threads"],
        "settings": ok[0]["settings"],
        "runs": runs,
    }


def _fmt(value: float | None, spec: str, missing: str = "–") -> str:
    return missing if value is None else format(value, spec)


def _version_text(framework: str, versions: dict[str, str]) -> str:
    return ", ".join(f"{p} {versions[p]}" for p in SHORT_VERSION[framework] if p in versions)


def _data_note(report: dict[str, Any], entry: dict[str, Any]) -> str:
    """The data of a model whose data set is not the one in the page's header."""
    d = report.get("datasets", {}).get(entry.get("data", ""))
    if not d or d == report["data"]:
        return ""
    return (
        f" Data: {d['source']}, {d['train_examples']:,} training and {d['test_examples']:,} "
        "test images."
    )


def render_markdown(report: dict[str, Any]) -> str:
    s, m, d = report["settings"], report["machine"], report["data"]
    lines = [
        "# cnnjax beside PyTorch and Keras 3: CPU training, side by side",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['created']}  ",
        f"Machine: {m['cpu']}, {m['logical_cores']} logical cores ({m['usable_cores']} usable), "
        f"{m['memory_gib']} GiB, Python {m['python']}, {m['platform']}  ",
        "Load average at start / end: "
        + " / ".join(
            ", ".join(f"{v:.2f}" for v in la) if la else "?"
            for la in (m.get("load_average_start"), m.get("load_average_end"))
        ),
        "",
        f"Data: {d['source']}, {d['train_examples']:,} training and {d['test_examples']:,} test "
        f"images {'x'.join(map(str, d['image_shape']))}, the same arrays for every framework, "
        "float32 in [0, 1].  ",
        f"Training: {s['epochs']} epochs, batch {s['batch_size']}, Adam(lr {s['learning_rate']:g}, "
        f"eps {s['adam_eps']:g}) on softmax cross-entropy (sigmoid for a one-unit head), glorot-uniform kernels and zero biases, "
        f"reshuffled every epoch, test accuracy after each epoch; {s['rounds']} round(s), the "
        "order of the frameworks rotated each round, medians over the rounds.  ",
        "Epoch time: wall clock of an epoch's training steps; the test evaluation is excluded; "
        "epoch 1 includes tracing and compilation. Images/s: median over epochs 2.."
        f"{s['epochs']}"
        + (" (epoch 1 where there is only one)" if s["epochs"] < 2 else "")
        + f". Time to {TARGET_ACCURACY:.0%}: training seconds up to the first epoch whose test "
        "accuracy reaches it. Peak RSS: the worker process's maximum resident set.",
    ]
    if report.get("quick"):
        lines += [
            "",
            "**Quick mode**: a smoke test of the harness on a small subset; startup and "
            "compilation dominate these numbers, do not read them as a benchmark.",
        ]
    for model_name, entry in report["models"].items():
        lines += [
            "",
            f"## {model_name} ({entry['params']:,} parameters)",
            "",
            f"{entry['description']}; cnnjax spec `{entry['spec']}`." + _data_note(report, entry),
            "",
            "| framework | version | images/s (median epoch) | first epoch s (incl. compile) "
            f"| final test accuracy | time to {TARGET_ACCURACY:.0%} (s) | peak RSS MiB "
            "| cnnjax ÷ peer (images/s) |",
            "|---|---|--:|--:|--:|--:|--:|--:|",
        ]
        results = entry["results"]
        ref = results.get("cnnjax", {}).get("images_per_second_median")
        for fw, r in results.items():
            if r["status"] != "ok":
                status = "not installed" if r["status"] == "unavailable" else r["status"]
                reason = (r.get("reason") or "").replace("|", "/")
                lines.append(f"| {LABELS[fw]} | {status} ({reason}) | – | – | – | – | – | – |")
                continue
            ips = r["images_per_second_median"]
            t91 = r["time_to_target_seconds"]
            t91_text = _fmt(t91, ".1f", "not reached")
            if t91 is not None and r["rounds_reaching_target"] < r["rounds_ok"]:
                t91_text += f" ({r['rounds_reaching_target']}/{r['rounds_ok']} rounds)"
            ratio = "1.00" if fw == "cnnjax" else (f"{ref / ips:.2f}" if ref and ips else "–")
            lines.append(
                f"| {LABELS[fw]} | {_version_text(fw, r['versions'])} | {ips:,.0f} "
                f"| {r['first_epoch_seconds']:.2f} | {r['final_test_accuracy']:.4f} "
                f"| {t91_text} | {r['peak_rss_mib']:,.0f} | {ratio} |"
            )
        ok = {fw: r for fw, r in results.items() if r["status"] == "ok"}
        if ok:
            lines += [
                "",
                "Per epoch (median over rounds): seconds / test accuracy",
                "",
                "| framework | " + " | ".join(f"epoch {e + 1}" for e in range(s["epochs"])) + " |",
                "|---|" + "--:|" * s["epochs"],
            ]
            for fw, r in ok.items():
                pe = r["per_epoch_median"]
                cells = [
                    f"{t:.2f} / {a:.4f}"
                    for t, a in zip(pe["epoch_seconds"], pe["test_accuracy"], strict=True)
                ]
                lines.append(f"| {LABELS[fw]} | " + " | ".join(cells) + " |")
    lines += ["", "## Frameworks as run", ""]
    seen = {}
    for entry in report["models"].values():
        for fw, r in entry["results"].items():
            if r["status"] == "ok" and fw not in seen:
                seen[fw] = r
    for fw, r in seen.items():
        t = r["threads"]
        extra = {k: v for k, v in t.items() if k not in ("cpu_count", "affinity", "env")}
        env = ", ".join(f"{k}={v}" for k, v in t["env"].items()) or "none set"
        lines.append(
            f"- {LABELS[fw]}: {_version_text(fw, r['versions'])}; threads "
            + ", ".join(f"{k} {v}" for k, v in extra.items())
            + f"; thread env: {env}; settings: "
            + ", ".join(f"{k} {v}" for k, v in r["settings"].items() if k != "fit_config")
        )
    lines += [
        "",
        "Notes: every framework is at its thread defaults; the cnnjax worker appends its XLA:CPU "
        "flags to XLA_FLAGS (`cnnjax.configure_xla()`), the other workers get the environment "
        "without them. "
        "PyTorch runs eager (no torch.compile) "
        "with Keras's initialisers and eps 1e-7 set explicitly; Keras's Adam adds its epsilon "
        "to the uncorrected root of the second moment (epsilon-hat), optax and PyTorch to the "
        "bias-corrected one. cnnjax's fit drops a last partial batch; the peers train on it "
        "(the full 60,000 are 1,875 whole batches).",
        "",
    ]
    return "\n".join(lines)


def run_driver(args: argparse.Namespace, argv: Sequence[str]) -> dict[str, Any]:
    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    kinds = list(dict.fromkeys(MODELS[m].data for m in models if m in MODELS))
    for f in frameworks:
        if f not in FRAMEWORKS:
            raise SystemExit(f"unknown framework {f!r}; choose from {', '.join(FRAMEWORKS)}")
    for m in models:
        if m not in MODELS:
            raise SystemExit(f"unknown model {m!r}; choose from {', '.join(MODELS)}")
    missing = {f: _missing_modules(f) for f in frameworks}
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {
        (m, f): [] for m in models for f in frameworks
    }
    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="cnnjax-bench-") as tmpdir:
        tmp = Path(tmpdir)
        paths = {kind: tmp / f"{kind}.npz" for kind in kinds}
        datasets = {kind: prepare_data(args, paths[kind], kind) for kind in kinds}
        for d in datasets.values():
            print(
                f"data: {d['source']}, {d['train_examples']:,} train / "
                f"{d['test_examples']:,} test; {args.epochs} epochs, {args.rounds} round(s)",
                file=sys.stderr,
                flush=True,
            )
        for rnd in range(args.rounds):
            k = rnd % len(frameworks)
            order = frameworks[k:] + frameworks[:k]
            for model in models:
                for fw in order:
                    if missing[fw]:
                        continue
                    tag = f"r{rnd}-{model}-{fw}"
                    r = _launch(fw, paths[MODELS[model].data], model, args, tmp, tag)
                    runs[(model, fw)].append(r)
                    if r["status"] == "ok":
                        msg = (
                            f"{r['images_per_second_median']:,.0f} img/s, first epoch "
                            f"{r['first_epoch_seconds']:.2f} s, test acc "
                            f"{r['final_test_accuracy']:.4f}, RSS {r['peak_rss_mib']:,.0f} MiB"
                        )
                    else:
                        msg = f"{r['status']}: {r.get('reason')}"
                    print(
                        f"round {rnd + 1}/{args.rounds} {model} {fw}: {msg}",
                        file=sys.stderr,
                        flush=True,
                    )
    machine["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    report: dict[str, Any] = {
        "benchmark": "side_by_side",
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "benchmarks/side_by_side.py", *argv]),
        "quick": bool(args.quick),
        "machine": machine,
        "data": datasets[kinds[0]],
        "datasets": datasets,
        "settings": {
            "epochs": args.epochs,
            "rounds": args.rounds,
            "batch_size": BATCH_SIZE,
            "learning_rate": LEARNING_RATE,
            "adam_eps": ADAM_EPS,
            "eval_batch_size": EVAL_BATCH_SIZE,
            "seed": args.seed,
            "target_accuracy": TARGET_ACCURACY,
            "frameworks": frameworks,
        },
        "models": {},
    }
    for model in models:
        results = {}
        for fw in frameworks:
            if missing[fw]:
                results[fw] = {
                    "status": "unavailable",
                    "reason": f"missing {', '.join(missing[fw])}",
                }
            else:
                results[fw] = aggregate(runs[(model, fw)])
        spec = MODELS[model]
        report["models"][model] = {
            "params": spec.params,
            "spec": spec.spec,
            "description": spec.description,
            "data": spec.data,
            "results": results,
        }
    out = Path(args.out)
    _atomic_write(out / "side_by_side.json", json.dumps(report, indent=1) + "\n")
    _atomic_write(out / "side_by_side.md", render_markdown(report))
    print(f"wrote {out / 'side_by_side.md'} and side_by_side.json", file=sys.stderr)
    return report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="CPU training of cnnjax beside PyTorch, Keras/TensorFlow and Keras/JAX.",
    )
    p.add_argument(
        "--frameworks", default=",".join(FRAMEWORKS), help="comma-separated; default: all"
    )
    p.add_argument(
        "--models",
        default=None,
        help=f"comma-separated, from {', '.join(MODELS)}; default: all "
        f"({','.join(QUICK_MODELS)} with --quick)",
    )
    p.add_argument("--epochs", type=int, default=None, help=f"default {DEFAULT_EPOCHS}")
    p.add_argument(
        "--rounds", type=int, default=1, help="runs of every worker, order rotated; default 1"
    )
    p.add_argument(
        "--train-limit", type=int, default=None, help="random training subset; default: all"
    )
    p.add_argument("--test-limit", type=int, default=None, help="random test subset; default: all")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: {QUICK['train_limit']} / {QUICK['test_limit']} images, "
        f"{QUICK['epochs']} epochs (unless given)",
    )
    p.add_argument("--synthetic", action="store_true", help="synthetic data, no dataset needed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=None, help="seconds per worker; default: none")
    p.add_argument("--out", default=None, help=f"directory (driver; default {DEFAULT_OUT})")
    # one worker (internal): the driver runs these
    p.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.worker:
        if not (args.data and args.model and args.out):
            raise SystemExit("--worker needs --data, --model and --out")
        return run_worker(
            args.worker,
            Path(args.data),
            args.model,
            args.epochs or DEFAULT_EPOCHS,
            args.seed,
            Path(args.out),
        )
    if args.quick:
        for key, value in QUICK.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    args.epochs = args.epochs or DEFAULT_EPOCHS
    args.models = args.models or ",".join(QUICK_MODELS if args.quick else MODELS)
    args.out = args.out or str(DEFAULT_OUT)
    args.base_env = dict(os.environ)  # before prepare_data imports cnnjax
    if args.epochs < 1 or args.rounds < 1:
        raise SystemExit("--epochs and --rounds must be positive")
    run_driver(args, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
