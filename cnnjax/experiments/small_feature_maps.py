"""Seed 001: how can a final 3x3x64 feature map classify MNIST at 99%? Each of its nine cells
sees an 18x18 window of the 28x28 input, and 64 channels of them describe the digit."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from cnnjax import zoo
from cnnjax.experiments.harness import Run, Settings, command_for, load_data, pm, train_variant

NAME = "small_feature_maps"
QUESTION = "How can a final 3x3x64 feature map classify MNIST at 99%?"
MODES = {
    "quick": {"epochs": 1, "seeds": 2, "train_limit": 512, "test_limit": 256},
    "default": {"epochs": 3, "seeds": 3, "train_limit": None, "test_limit": None},
    "full": {"epochs": 5, "seeds": 5, "train_limit": None, "test_limit": None, "dataset": "mnist"},
}


def run(settings: Settings, out: Path) -> Path:
    from cnnjax import inspect, models, plots
    from cnnjax.analysis import receptive_window
    from cnnjax.summary import to_markdown

    record = Run(NAME, QUESTION, out, settings)
    train, test = load_data(settings)
    spec = zoo.chollet_mnist()
    v = train_variant("chollet_mnist", spec, train, test, settings)
    last = v.report.layer("conv2d_2")
    record.add("## The network (analytic)\n\n" + to_markdown(v.report))
    image = np.asarray(test.images[:1], np.float32) / 255.0
    windows = [receptive_window(last, i, j) for i in range(3) for j in range(3)]
    path = record.figure(
        "windows.png", "The nine 18x18 input windows seen by the cells of the final 3x3x64 map"
    )
    plots.draw_receptive_windows(image[0], last, path)
    model = models.build_model(spec)
    variables = v.fit.variables(0)
    maps = inspect.feature_maps(model, variables, image)
    path = record.figure(
        "feature_maps.png", "Feature maps of every layer for one test image (trained, seed 0)"
    )
    plots.save_feature_maps(maps, path, image=image[0])
    images = np.asarray(test.images[:64], np.float32) / 255.0
    random_init = models.init_variables(model, jax.random.key(settings.seed + 1000))
    erf_random = inspect.effective_receptive_field(model, random_init, images, "conv2d_2")
    erf_trained = inspect.effective_receptive_field(model, variables, images, "conv2d_2")
    path = record.figure(
        "erf.png",
        "Effective receptive field of the centre cell of the 3x3x64 map: random init vs trained; the square is the analytic 18x18 field",
    )
    plots.plot_erf(
        [erf_random, erf_trained], path, spec.input_shape, titles=["random init", "trained"]
    )
    path = record.figure("curves.png", "Training curves (band: ± std over seeds)")
    plots.plot_history({"chollet_mnist": v.history}, path, title="chollet_mnist")
    data_name = (
        "MNIST" if settings.dataset == "mnist" else "Fashion-MNIST (offline stand-in for MNIST)"
    )
    answer = [
        f"The last convolution's output is {last.output_shape[0]}x{last.output_shape[1]}x"
        f"{last.output_shape[2]} = {last.values} numbers, but it is not a 3x3 image: each of its nine "
        f"cells sees an {last.receptive_field[0]}x{last.receptive_field[1]} window of the 28x28 input "
        f"(effective stride {(last.effective_stride or (0, 0))[0]}), so together they cover the whole digit "
        f"(windows start at rows {sorted({w[0] for w in windows})}).",
        f"The 64 channels of each cell are 64 learned detectors over that window: {last.params:,} "
        "parameters in this layer alone.",
        f"Measured on {data_name}: test accuracy {pm(v.accuracy)} after {settings.epochs} epoch(s).",
        f"The effective receptive field (95% of the gradient mass) of the centre cell is "
        f"{erf_random.size95}x{erf_random.size95} at random init and {erf_trained.size95}x"
        f"{erf_trained.size95} trained, inside the analytic {last.receptive_field[0]}x"
        f"{last.receptive_field[1]}.",
    ]
    record.results = {
        "variant": v.to_dict(),
        "windows": windows,
        "erf_size95": {"random_init": erf_random.size95, "trained": erf_trained.size95},
    }
    return record.finish(answer, command_for(NAME, settings))
