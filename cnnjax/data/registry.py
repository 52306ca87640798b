"""The datasets cnnjax serves by name, and where their data comes from and goes to."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cnnjax.data.errors import DataError

# Version of the on-disk format written by the cnnjax builders. Bump it when the
# features or the example order change; older prepared copies are then ignored.
BUILDER_VERSION = "1.0.0"

#: How a dataset is prepared: from IDX files (the MNIST format), from the CIFAR
#: binary batches, or derived from a bigger dataset (a Food-101 class subset).
Kind = Literal["idx", "cifar", "derived"]

#: The four IDX files of every MNIST-style dataset, per split: (images, labels).
IDX_FILES: Mapping[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class DatasetSpec:
    """What cnnjax knows about a named dataset before any of it is on disk."""

    name: str
    kind: Kind
    builder: str  # name of the cnnjax TFDS builder; `name` is its config
    image_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    description: str
    homepage: str
    tfds_name: str  # the TFDS builtin dataset this one mirrors (same source and split)
    urls: Mapping[str, str] = field(default_factory=dict)  # online source files
    system_dir: str | None = None  # offline source installed by a system package
    apt_package: str | None = None
    source_hint: str = ""  # what a `--from DIR` directory must contain
    source_classes: tuple[str, ...] = ()  # derived datasets: classes taken from the parent

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def tfds_id(self) -> str:
        """``builder/config`` as accepted by ``tfds.builder`` / ``tfds.data_source``."""
        return f"{self.builder}/{self.name}"


_IDX_HINT = "the four MNIST-style IDX files " + ", ".join(
    f"{name}.gz" for pair in IDX_FILES.values() for name in pair
)


def _idx_urls(base: str) -> dict[str, str]:
    return {f"{n}.gz": f"{base}{n}.gz" for pair in IDX_FILES.values() for n in pair}


DATASETS: dict[str, DatasetSpec] = {
    "fashion_mnist": DatasetSpec(
        name="fashion_mnist",
        kind="idx",
        builder="cnnjax_idx",
        image_shape=(28, 28, 1),
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        description="Zalando's Fashion-MNIST: 28x28 grayscale clothing images, 10 classes.",
        homepage="https://github.com/zalandoresearch/fashion-mnist",
        tfds_name="fashion_mnist",
        urls=_idx_urls("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
        system_dir="/usr/share/datasets/fashion-mnist",
        apt_package="dataset-fashion-mnist",
        source_hint=_IDX_HINT,
    ),
    "mnist": DatasetSpec(
        name="mnist",
        kind="idx",
        builder="cnnjax_idx",
        image_shape=(28, 28, 1),
        class_names=tuple(str(d) for d in range(10)),
        description="LeCun's MNIST: 28x28 grayscale handwritten digits, 10 classes.",
        homepage="http://yann.lecun.com/exdb/mnist/",
        tfds_name="mnist",
        urls=_idx_urls("https://storage.googleapis.com/cvdf-datasets/mnist/"),
        source_hint=_IDX_HINT,
    ),
    "kmnist": DatasetSpec(
        name="kmnist",
        kind="idx",
        builder="cnnjax_idx",
        image_shape=(28, 28, 1),
        class_names=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        description="Kuzushiji-MNIST: 28x28 grayscale cursive Japanese characters, 10 classes.",
        homepage="http://codh.rois.ac.jp/kmnist/index.html.en",
        tfds_name="kmnist",
        urls=_idx_urls("http://codh.rois.ac.jp/kmnist/dataset/kmnist/"),
        source_hint=_IDX_HINT,
    ),
    "cifar10": DatasetSpec(
        name="cifar10",
        kind="cifar",
        builder="cnnjax_cifar",
        image_shape=(32, 32, 3),
        class_names=(
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ),
        description="CIFAR-10: 32x32 colour images, 10 classes (50,000 train, 10,000 test).",
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
        tfds_name="cifar10",
        urls={"archive": "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"},
        source_hint=(
            "the extracted CIFAR-10 binary version (cifar-10-batches-bin: "
            "data_batch_1.bin .. data_batch_5.bin, test_batch.bin)"
        ),
    ),
    "pizza_steak": DatasetSpec(
        name="pizza_steak",
        kind="derived",
        builder="cnnjax_food101",
        image_shape=(224, 224, 3),
        class_names=("pizza", "steak"),
        description=(
            "Two Food-101 classes, pizza vs steak, with Food-101's own split "
            "(750 train / 250 test per class), resized to 224x224x3."
        ),
        homepage="https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/",
        tfds_name="food101",
        urls={"archive": "http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz"},
        source_hint=(
            "the extracted Food-101 archive (food-101/images/<class>/<id>.jpg and "
            "food-101/meta/train.json, test.json)"
        ),
        source_classes=("pizza", "steak"),
    ),
}


def get_spec(name: str) -> DatasetSpec:
    """The registry entry for ``name``, or a DataError listing the known names."""
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise DataError(f"unknown dataset {name!r}; known datasets: {known}") from None


def default_data_dir(flag: str | os.PathLike[str] | None = None) -> Path:
    """Where prepared datasets live.

    Order: ``flag`` > $CNNJAX_DATA_DIR > $TFDS_DATA_DIR > ~/tensorflow_datasets.

    Follows the TFDS convention so that a TFDS data directory can be shared.
    """
    for candidate in (flag, os.environ.get("CNNJAX_DATA_DIR"), os.environ.get("TFDS_DATA_DIR")):
        if candidate:
            return check_data_dir(Path(candidate).expanduser())
    return check_data_dir(Path("~/tensorflow_datasets").expanduser())


#: Kernel pseudo-filesystems: nothing can be prepared there, and reading them can hang.
_PSEUDO_FILESYSTEMS = (Path("/proc"), Path("/sys"))


def check_data_dir(path: Path) -> Path:
    """``path`` if it can be a data directory (it need not exist yet), else a DataError.

    Refused: a path in /proc or /sys, and a path that is, or lies under, an existing file.
    """
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as e:
        raise DataError(f"data directory {path}: cannot resolve it ({e})") from None
    for pseudo in _PSEUDO_FILESYSTEMS:
        if resolved == pseudo or pseudo in resolved.parents:
            raise DataError(
                f"data directory {path} lies in {pseudo}, a kernel pseudo-filesystem; "
                "choose a directory on a real disk (--data-dir or $CNNJAX_DATA_DIR)"
            )
    existing = resolved
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "is" if existing == resolved else f"lies under the file {existing}, so it"
        raise DataError(
            f"data directory {path} {where} is not a directory; choose a directory "
            "(--data-dir or $CNNJAX_DATA_DIR)"
        )
    return path
