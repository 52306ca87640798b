"""A dataset name or a Keras-style .npz path -> (train, test), with the usual views applied.

Shared by `cnnjax train`, `cnnjax evaluate`, `cnnjax inspect` and the experiments, so that each
reads its data the same way (class subset, then random subsets of the requested sizes).
"""

from __future__ import annotations

from collections.abc import Sequence

from cnnjax.data.dataset import ArrayDataset
from cnnjax.data.errors import DataError


def load_datasets(
    dataset: str,
    *,
    data_dir: str | None = None,
    limit: int | None = None,
    test_limit: int | None = None,
    classes: Sequence[int] | None = None,
    seed: int = 0,
) -> tuple[ArrayDataset, ArrayDataset]:
    """(train, test) ArrayDatasets for a dataset name or a Keras-style .npz path, with views.

    `limit` / `test_limit`: a random subset of that many examples (None: all of them; a limit
    below 1 is refused, 0 examples cannot be trained or scored). `classes`: a class subset,
    relabelled 0..k-1.
    """
    from cnnjax.data.store import load
    from cnnjax.data.views import random_subset, subset_classes

    for flag, n in (("limit", limit), ("test_limit", test_limit)):
        if n is not None and n < 1:
            raise DataError(f"{flag} must be a positive number of examples (or None: all), got {n}")
    if dataset.endswith(".npz"):
        from cnnjax.data.npz import load_npz

        train, test = load_npz(dataset)
    else:
        train = load(dataset, "train", data_dir=data_dir)
        test = load(dataset, "test", data_dir=data_dir)
    if classes:
        train, test = subset_classes(train, classes), subset_classes(test, classes)
    if limit and limit < len(train):
        train = random_subset(train, limit, seed)
    if test_limit and test_limit < len(test):
        test = random_subset(test, test_limit, seed)
    return train, test
