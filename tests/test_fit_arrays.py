"""fit on plain numpy arrays: any real dtype, clear errors, the class count inferred."""

from __future__ import annotations

import numpy as np
import pytest

from cnnjax.data import ArrayDataset
from cnnjax.errors import DataError
from cnnjax.train import FitConfig, fit
from tests.test_train import SPEC, leaves, synthetic


def test_from_arrays_keeps_uint8_and_converts_floats_once():
    ds = synthetic(32)
    kept = ArrayDataset.from_arrays(ds.images, ds.labels.astype(np.int64))
    assert kept.images.dtype == np.uint8 and np.shares_memory(kept.images, ds.images)
    assert kept.labels.dtype == np.int32
    assert kept.num_classes == 3 and kept.class_names == ("0", "1", "2")
    floats = ArrayDataset.from_arrays(ds.images.astype(np.float64) / 255, ds.labels)
    assert floats.images.dtype == np.float32
    wide = ArrayDataset.from_arrays(ds.images.astype(np.int64), ds.labels.astype(np.float32))
    assert wide.images.dtype == np.uint8 and np.array_equal(wide.images, ds.images)
    named = ArrayDataset.from_arrays(ds.images, ds.labels, num_classes=5, name="x")
    assert named.num_classes == 5 and named.name == "x"


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (
            np.zeros((4, 12, 12)),
            np.zeros(4),
            r"\[N, H, W, C\], got shape \(4, 12, 12\).*\[\.\.\., None\]",
        ),
        (np.full((4, 12, 12, 1), np.nan), np.zeros(4), r"576 image values are NaN or infinite"),
        (np.full((4, 2, 2, 1), np.inf, np.float16), np.zeros(4), r"NaN or infinite"),
        (np.full((4, 2, 2, 1), 300), np.zeros(4), r"integer images must lie in 0..255"),
        (np.zeros((4, 2, 2, 1), complex), np.zeros(4), r"real dtype"),
        (np.zeros((4, 2, 2, 1)), np.eye(4)[:, :3], r"labels must be \[N\].*argmax"),
        (np.zeros((4, 2, 2, 1)), np.full(4, 0.5), r"whole class indices"),
    ],
)
def test_from_arrays_refuses_bad_arrays_clearly(images, labels, message):
    with pytest.raises(DataError, match=message):
        ArrayDataset.from_arrays(images, labels)


def test_fit_takes_arrays_of_any_real_dtype():
    ds, val = synthetic(), synthetic(64, seed=1)
    cfg = FitConfig(epochs=1, batch_size=32)
    x32 = ds.images.astype(np.float32) / 255
    a = fit(SPEC, (x32, ds.labels), validation=(val.images, val.labels), config=cfg)
    b = fit(SPEC, (x32.astype(np.float64), ds.labels.astype(np.int64)), config=cfg)
    for x, y in zip(leaves(a.state.params), leaves(b.state.params), strict=True):
        np.testing.assert_array_equal(x, y)  # float64 became the same float32 once
    assert a.history.records[0]["val_accuracy"] > 1 / 3


def test_class_count_comes_from_the_model_when_not_given():
    ds = synthetic()
    two = ds.labels < 2  # only classes 0 and 1 present; the model has 3 outputs
    result = fit(SPEC, (ds.images[two], ds.labels[two]), config=FitConfig(epochs=1, batch_size=32))
    assert len(result.history) == 1
    bad = ds.labels.copy()
    bad[0] = 3
    with pytest.raises(DataError, match=r"labels span 0..3, outside 0..2"):
        fit(SPEC, (ds.images, bad), config=FitConfig(epochs=1))
