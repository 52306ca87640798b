"""Seed 004: pooling vs no pooling on 224x224x3 images (8,861 vs 477,341 parameters): which
generalises? Online: Food-101's pizza/steak pair; offline: a stated Fashion-MNIST stand-in."""

from __future__ import annotations

from pathlib import Path

from cnnjax import zoo
from cnnjax.experiments.harness import (
    Run,
    Settings,
    command_for,
    comparison_table,
    log,
    pm,
    train_variant,
    verdict,
)

NAME = "pooling_224"
QUESTION = (
    "Pooling vs no pooling on 224x224x3 images: 8,861 vs 477,341 parameters, which generalises?"
)
MODES = {
    "quick": {"epochs": 1, "seeds": 2, "train_limit": 64, "test_limit": 64, "dataset": "stand_in"},
    "default": {
        "epochs": 4,
        "seeds": 3,
        "train_limit": 1_500,
        "test_limit": 500,
        "dataset": "stand_in",
    },
    "full": {
        "epochs": 10,
        "seeds": 5,
        "train_limit": 1_500,
        "test_limit": 500,
        "dataset": "pizza_steak",
    },
}
# The offline stand-in: two Fashion-MNIST classes that look alike (T-shirt/top vs Shirt),
# 1,500 train / 500 test like the seed's 750 + 750 / 250 + 250, resized to 224x224x3.
STAND_IN_CLASSES = (0, 6)


def load(settings: Settings):
    """(train, test, description): the pizza/steak pair, or the stand-in built from views."""
    from cnnjax import data

    if settings.dataset == "pizza_steak":
        train = data.load("pizza_steak", "train", data_dir=settings.data_dir)
        test = data.load("pizza_steak", "test", data_dir=settings.data_dir)
        what = "Food-101 pizza vs steak (750/250 per class), 224x224x3"
    else:
        train = data.load("fashion_mnist", "train", data_dir=settings.data_dir)
        test = data.load("fashion_mnist", "test", data_dir=settings.data_dir)
        train = data.subset_classes(train, STAND_IN_CLASSES)
        test = data.subset_classes(test, STAND_IN_CLASSES)
        names = " vs ".join(train.class_names)
        what = (
            f"offline stand-in: Fashion-MNIST {names}, resized 28x28 -> 224x224 and replicated to "
            "3 channels"
        )
    if settings.train_limit and settings.train_limit < len(train):
        train = data.random_subset(train, settings.train_limit, settings.seed)
    if settings.test_limit and settings.test_limit < len(test):
        test = data.random_subset(test, settings.test_limit, settings.seed + 1)
    if train.image_shape != (224, 224, 3):
        log(f"[{NAME}] resizing {len(train) + len(test)} images to 224x224x3")
        train = data.to_channels(data.resize(train, (224, 224)), 3)
        test = data.to_channels(data.resize(test, (224, 224)), 3)
    return train, test, what


def run(settings: Settings, out: Path) -> Path:
    record = Run(NAME, QUESTION, out, settings)
    train, test, what = load(settings)
    pool = train_variant("pool224", zoo.pool224(), train, test, settings)
    nopool = train_variant("nopool224", zoo.nopool224(), train, test, settings)
    record.add(f"Data: {what}; {len(train):,} training and {len(test):,} test images.")

    def gap(v):
        return f"{_mean(v.history[-1]['accuracy']):.4f} / {_gap(v):+.4f}"

    record.add(
        "## Measured\n\n" + comparison_table([pool, nopool], {"train acc / train-test gap": gap})
    )
    from cnnjax.summary import to_markdown

    record.add(
        "## The two networks (analytic)\n\n"
        + to_markdown(pool.report)
        + "\n\n"
        + to_markdown(nopool.report)
    )
    try:
        from cnnjax import plots

        path = record.figure(
            "curves.png", "Training vs test loss and accuracy per epoch (band: ± std over seeds)"
        )
        plots.plot_history(
            {"pool224": pool.history, "nopool224": nopool.history},
            path,
            title="pool224 vs nopool224",
        )
    except ImportError:
        pass
    flat_pool = pool.report.layer("flatten").values
    flat_nopool = nopool.report.layer("flatten").values
    answer = [
        f"With pooling the network has {pool.report.total_params:,} parameters, without "
        f"{nopool.report.total_params:,}: the Dense(1) head reads {flat_pool:,} values instead of "
        f"{flat_nopool:,} ({flat_nopool / flat_pool:.0f}x more).",
        f"Test accuracy after {settings.epochs} epoch(s): with pooling {pm(pool.accuracy)}; without "
        f"{pm(nopool.accuracy)}. {verdict(pool, nopool)}",
        f"Train-test gap (final train accuracy minus test accuracy): with pooling "
        f"{_gap(pool):+.4f}, without {_gap(nopool):+.4f}; test loss {pool.loss['mean']:.3f} vs "
        f"{nopool.loss['mean']:.3f}. "
        + (
            "The network without pooling fits its training images better than it generalises: its "
            "huge linear head memorises."
            if _gap(nopool) > _gap(pool) and nopool.loss["mean"] > pool.loss["mean"]
            else "Here the network without pooling does not overfit more than the one with pooling."
        )
        + " The seed's 0.744 vs 0.720 came from one run each; only intervals over seeds say "
        "whether such a difference is real.",
        f"Receptive field of the last map: {pool.report.layer('max_pooling2d_2').receptive_field[0]} "
        f"pixels with pooling vs {nopool.report.layer('conv2d_2').receptive_field[0]} without: each "
        "unit of the no-pooling network sees a 7x7 patch of a 224x224 image.",
    ]
    record.results = {"data": what, "variants": [pool.to_dict(), nopool.to_dict()]}
    return record.finish(answer, command_for(NAME, settings))


def _mean(value):
    return sum(value) / len(value) if isinstance(value, list) else value


def _gap(v) -> float:
    """Final-epoch training accuracy minus test accuracy (means over seeds)."""
    return _mean(v.history[-1]["accuracy"]) - v.accuracy["mean"]
