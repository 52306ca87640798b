"""The CIFAR-10 binary format: strict reading of the extracted ``cifar-10-batches-bin``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cnnjax.data.errors import DataError

CIFAR10_FILES: dict[str, tuple[str, ...]] = {
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}
_HW, _C = 32, 3
_RECORD = 1 + _HW * _HW * _C  # one label byte, then the image as 3 planes of 32x32


def find_cifar_dir(directory: str | os.PathLike[str]) -> Path:
    """The directory holding the ``.bin`` batches: ``directory`` or its ``cifar-10-batches-bin``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: no such directory")
    for candidate in (directory, directory / "cifar-10-batches-bin"):
        if (candidate / CIFAR10_FILES["test"][0]).is_file():
            missing = [
                f for fs in CIFAR10_FILES.values() for f in fs if not (candidate / f).is_file()
            ]
            if missing:
                raise DataError(f"{candidate}: missing CIFAR-10 batch file(s) {', '.join(missing)}")
            return candidate
    raise DataError(
        f"{directory}: no CIFAR-10 binary batches (test_batch.bin) here or in "
        "cifar-10-batches-bin/; extract cifar-10-binary.tar.gz and pass that directory"
    )


def read_cifar_file(path: Path, *, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """One batch file: images ``[N, 32, 32, 3]`` uint8 and labels ``[N]`` int32."""
    raw = np.fromfile(path, np.uint8)
    if raw.size == 0 or raw.size % _RECORD:
        raise DataError(
            f"{path}: truncated or corrupt: {raw.size} bytes is not a whole number of "
            f"{_RECORD}-byte CIFAR records"
        )
    records = raw.reshape(-1, _RECORD)
    labels = records[:, 0].astype(np.int32)
    bad = np.flatnonzero(labels >= num_classes)
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{path}: label {labels[i]} of record {i} is out of range 0..{num_classes - 1}"
        )
    images = records[:, 1:].reshape(-1, _C, _HW, _HW).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def read_cifar_dir(
    directory: str | os.PathLike[str], *, num_classes: int = 10
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Both splits of an extracted CIFAR-10 binary archive, validated before anything is written."""
    root = find_cifar_dir(directory)
    out = {}
    for split, files in CIFAR10_FILES.items():
        parts = [read_cifar_file(root / f, num_classes=num_classes) for f in files]
        out[split] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return out


def write_cifar_file(path: str | os.PathLike[str], images: np.ndarray, labels: np.ndarray) -> Path:
    """Write ``images [N, 32, 32, 3]`` uint8 and labels in the CIFAR binary layout (for tests)."""
    path = Path(path)
    planes = np.asarray(images, np.uint8).transpose(0, 3, 1, 2).reshape(len(images), -1)
    records = np.concatenate([np.asarray(labels, np.uint8)[:, None], planes], axis=1)
    path.write_bytes(records.tobytes())
    return path
