"""The real Fashion-MNIST from Debian's dataset-fashion-mnist, prepared once, with no network."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from cnnjax.cli.data import register
from cnnjax.data import DATASETS, ArrayDataset, info, load
from cnnjax.data.idx import read_idx_dir

SYSTEM_DIR = Path(DATASETS["fashion_mnist"].system_dir or "")

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(
        not SYSTEM_DIR.is_dir(),
        reason=f"{SYSTEM_DIR} not found: sudo apt-get install dataset-fashion-mnist",
    ),
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory where Fashion-MNIST is prepared once for this module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNNJAX_OFFLINE", "1")  # any download attempt would be an error
        root = tmp_path_factory.mktemp("fashion_mnist_data")
        info("fashion_mnist", data_dir=root)  # prepares from the system copy
    return root


@pytest.fixture(scope="module")
def train(data_dir: Path) -> ArrayDataset:
    return load("fashion_mnist", "train", data_dir=data_dir, download=False)


def test_cli_info_reports_the_real_dataset(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CNNJAX_OFFLINE", "1")
    parser = argparse.ArgumentParser(prog="cnnjax")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "info", "fashion_mnist", "--data-dir", str(data_dir)])
    assert args.func(args) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["splits"] == {"train": 60_000, "test": 10_000}
    assert facts["image_shape"] == [28, 28, 1]
    assert facts["num_classes"] == 10
    assert facts["class_names"][0] == "T-shirt/top" and facts["class_names"][9] == "Ankle boot"
    assert facts["source"] == str(SYSTEM_DIR)


def test_load_matches_the_idx_files(data_dir: Path, train: ArrayDataset) -> None:
    test = load("fashion_mnist", "test", data_dir=data_dir, download=False)
    raw = read_idx_dir(SYSTEM_DIR, num_classes=10, image_hw=(28, 28))
    for ds, split in ((train, "train"), (test, "test")):
        np.testing.assert_array_equal(ds.images, raw[split][0])
        np.testing.assert_array_equal(ds.labels, raw[split][1])
    assert np.bincount(train.labels).tolist() == [6000] * 10
    assert np.bincount(test.labels).tolist() == [1000] * 10
