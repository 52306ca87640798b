"""TFDS builders that write array_record files without TensorFlow.

TFDS's own builders for these datasets store images with ``tfds.features.Image``,
whose encoder needs TensorFlow, and its Fashion-MNIST builder rejects Debian's
recompressed files on checksum. These builders store raw ``Tensor`` images instead
and take their examples from the caller (``cnnjax.data.store``), which has read and
validated the source before TFDS writes anything. Reading needs only TFDS's
``data_source``. Importing this module imports tensorflow_datasets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from cnnjax.data.errors import DataError
from cnnjax.data.registry import BUILDER_VERSION, DATASETS

#: One split's examples: a callable returning (key, {"image", "label"}) pairs.
ExampleSource = Callable[[], Iterable[tuple[Any, dict[str, Any]]]]


class _CnnjaxBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):  # type: ignore[call-arg]
    """Common part: features from the registry, examples handed in by the caller."""

    VERSION = tfds.core.Version(BUILDER_VERSION)
    RELEASE_NOTES = {BUILDER_VERSION: "Raw uint8 image tensors, source order kept."}  # noqa: RUF012
    # TFDS 4.9.10 derives this from the package and, for a package outside its
    # own tree, needs the undeclared `importlib_resources`; say it directly.
    code_path = epath.Path(__file__)

    def __init__(self, *, examples: Mapping[str, ExampleSource] | None = None, **kwargs: Any):
        self._examples = examples
        kwargs.setdefault("file_format", "array_record")
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        spec = DATASETS[self.builder_config.name]
        return tfds.core.DatasetInfo(
            builder=self,
            description=spec.description,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=spec.image_shape, dtype=np.uint8),
                    "label": tfds.features.ClassLabel(names=list(spec.class_names)),
                }
            ),
            supervised_keys=("image", "label"),
            homepage=spec.homepage,
            # Keep the source order: index i of a split is example i of the source files.
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager: Any) -> dict[str, Any]:
        del dl_manager  # sources are fetched and validated by cnnjax.data.store
        if self._examples is None:
            raise DataError(
                f"{self.name}/{self.builder_config.name} is prepared by cnnjax: run "
                f"`cnnjax data prepare {self.builder_config.name}`"
            )
        return {split: self._generate_examples(make) for split, make in self._examples.items()}

    def _generate_examples(self, make: ExampleSource) -> Iterable[tuple[Any, dict[str, Any]]]:
        yield from make()


def _configs(kind: str) -> list[tfds.core.BuilderConfig]:
    return [
        tfds.core.BuilderConfig(name=spec.name, description=spec.description)
        for spec in DATASETS.values()
        if spec.kind == kind
    ]


class CnnjaxIdx(_CnnjaxBuilder):
    """MNIST-style datasets prepared from a directory of IDX files."""

    BUILDER_CONFIGS = _configs("idx")


class CnnjaxCifar(_CnnjaxBuilder):
    """CIFAR-10 prepared from the extracted binary archive."""

    BUILDER_CONFIGS = _configs("cifar")


class CnnjaxFood101(_CnnjaxBuilder):
    """Class subsets of Food-101, resized, prepared from the extracted archive."""

    BUILDER_CONFIGS = _configs("derived")


BUILDERS: dict[str, type[_CnnjaxBuilder]] = {
    cls.name: cls for cls in (CnnjaxIdx, CnnjaxCifar, CnnjaxFood101)
}


def array_examples(images: np.ndarray, labels: np.ndarray) -> ExampleSource:
    """Examples from in-memory arrays, keyed by their index."""

    def make() -> Iterable[tuple[int, dict[str, Any]]]:
        for i in range(len(labels)):
            yield i, {"image": images[i], "label": int(labels[i])}

    return make
