"""Training data as `fit` takes it: an `ArrayDataset`, or plain `(images, labels)` arrays.

Arrays go through `ArrayDataset.from_arrays`: any real dtype (uint8 stays uint8, floats become
float32 once), NaN/inf pixels and wrong ranks refused with a `DataError`. The class count comes
from the model's output when not given.
"""

from __future__ import annotations

from typing import Any

from cnnjax.data import ArrayDataset
from cnnjax.errors import DataError, TrainingError
from cnnjax.train.model import Model


def as_dataset(
    data: ArrayDataset | tuple[Any, Any] | list[Any],
    name: str,
    num_classes: int | None = None,
) -> ArrayDataset:
    """`data` as an `ArrayDataset` (an `(images, labels)` pair is converted)."""
    if isinstance(data, ArrayDataset):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return ArrayDataset.from_arrays(data[0], data[1], num_classes=num_classes, name=name)
    raise DataError(
        f"{name}: expected an ArrayDataset or an (images, labels) pair of arrays, "
        f"got {type(data).__name__}"
    )


def classes_for(model: Model) -> int:
    """The class count a model's output implies: its units, or 2 for a one-unit sigmoid head."""
    units = model.output_shape[-1] if model.output_shape else 1
    return max(int(units), 2)


def check_data_fits(model: Model, data: ArrayDataset) -> None:
    """Refuse data whose images or class count do not fit the model, naming both."""
    if tuple(data.image_shape) != tuple(model.input_shape):
        raise TrainingError(
            f"the data's images are {'x'.join(map(str, data.image_shape))} but the model "
            f"{model.name} expects {'x'.join(map(str, model.input_shape))}; resize the data "
            "(cnnjax.data.resize, cnnjax.data.to_channels) or build the model for its shape"
        )
    out = tuple(model.output_shape)
    if out != (1,) and out != (data.num_classes,):
        raise TrainingError(
            f"the model's output has shape {out} but the data has {data.num_classes} classes"
        )
