"""IDX files (the MNIST format): strict reading, validation and writing.

Every way an IDX file can be broken (bad gzip stream, wrong magic number, a
header that promises more or fewer bytes than follow, image and label counts
that disagree, labels out of range) is refused with a DataError naming the file.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from cnnjax.data.errors import DataError
from cnnjax.data.registry import IDX_FILES

_GZIP_MAGIC = b"\x1f\x8b"
_UBYTE = 0x08  # IDX type code of unsigned bytes, the only type image datasets use


def _read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when it starts with the gzip magic (whatever its name)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: corrupt or truncated gzip data ({e})") from None


def read_idx(path: str | os.PathLike[str], *, ndim: int) -> np.ndarray:
    """Read an unsigned-byte IDX array of ``ndim`` dimensions, refusing anything malformed."""
    path = Path(path)
    raw = _read_bytes(path)
    expected_magic = (_UBYTE << 8) | ndim
    what = "images" if ndim == 3 else "labels" if ndim == 1 else f"{ndim}-d array"
    if len(raw) < 4:
        raise DataError(f"{path}: truncated: {len(raw)} bytes, too short for an IDX header")
    magic = int.from_bytes(raw[:4], "big")
    if magic != expected_magic:
        raise DataError(
            f"{path}: wrong magic number 0x{magic:08x}, expected 0x{expected_magic:08x} "
            f"(IDX {what}: unsigned bytes, {ndim} dimension{'s' * (ndim > 1)}); "
            "not an IDX file of this kind"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated header: {len(raw)} of {header} bytes")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    size = math.prod(dims)
    payload = len(raw) - header
    shape = "x".join(map(str, dims))
    if payload < size:
        raise DataError(
            f"{path}: truncated: header promises {shape} = {size} bytes of data "
            f"but only {payload} follow (short read)"
        )
    if payload > size:
        raise DataError(
            f"{path}: {payload - size} unexpected bytes after the {shape} data the header "
            "promises; the file is corrupt"
        )
    return np.frombuffer(raw, np.uint8, size, header).reshape(dims)


def read_idx_pair(
    images_path: str | os.PathLike[str],
    labels_path: str | os.PathLike[str],
    *,
    num_classes: int,
    image_hw: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read one split: images ``[N, H, W, 1]`` uint8 and labels ``[N]`` int32, cross-checked."""
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if image_hw is not None and images.shape[1:] != tuple(image_hw):
        h, w = images.shape[1:]
        raise DataError(f"{images_path}: images are {h}x{w}, expected {image_hw[0]}x{image_hw[1]}")
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds "
            f"{len(labels)} labels; the counts must agree"
        )
    if len(labels) == 0:
        raise DataError(f"{labels_path}: no examples")
    bad = np.flatnonzero(labels >= num_classes)
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{labels_path}: label {int(labels[i])} at index {i} is out of range "
            f"0..{num_classes - 1} ({bad.size} such labels); the file is mislabeled or corrupt"
        )
    return images[..., None], labels.astype(np.int32)


def _candidates(base: str) -> list[str]:
    """Accepted spellings of one IDX file name, gzipped or raw (``train-images.idx3-ubyte`` too)."""
    dotted = base.replace("-idx", ".idx")
    return [f"{base}.gz", base, f"{dotted}.gz", dotted]


def find_idx_files(directory: str | os.PathLike[str]) -> dict[str, tuple[Path, Path]]:
    """Locate the four MNIST-style IDX files in ``directory``: split -> (images, labels)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: no such directory")
    found: dict[str, tuple[Path, Path]] = {}
    missing: list[str] = []
    for split, pair in IDX_FILES.items():
        paths = []
        for base in pair:
            hit = next(
                (directory / c for c in _candidates(base) if (directory / c).is_file()), None
            )
            if hit is None:
                missing.append(f"{base}[.gz]")
            paths.append(hit)
        found[split] = (paths[0], paths[1])  # type: ignore[assignment]
    if missing:
        raise DataError(
            f"{directory}: missing IDX file(s) {', '.join(missing)}; a source directory needs "
            "the four MNIST-style files train-images-idx3-ubyte, train-labels-idx1-ubyte, "
            "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (gzipped or not)"
        )
    return found


def read_idx_dir(
    directory: str | os.PathLike[str], *, num_classes: int, image_hw: tuple[int, int]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read and validate both splits of an IDX directory before anything is written."""
    return {
        split: read_idx_pair(images, labels, num_classes=num_classes, image_hw=image_hw)
        for split, (images, labels) in find_idx_files(directory).items()
    }


def write_idx(
    path: str | os.PathLike[str], array: np.ndarray, *, compress: bool | None = None
) -> Path:
    """Write a uint8 array as an IDX file; gzip it when ``compress`` or the name ends in .gz."""
    path = Path(path)
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8:
        raise DataError(f"{path}: IDX writing supports uint8 arrays only, got {array.dtype}")
    if not 1 <= array.ndim <= 255:
        raise DataError(f"{path}: cannot write a {array.ndim}-d array as IDX")
    header = bytes([0, 0, _UBYTE, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    data = header + array.tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


def write_idx_dir(
    directory: str | os.PathLike[str],
    splits: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    compress: bool = True,
) -> Path:
    """Write ``{split: (images [N,H,W] or [N,H,W,1], labels [N])}`` as MNIST-style IDX files."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    for split, (images, labels) in splits.items():
        images = np.asarray(images)
        if images.ndim == 4 and images.shape[-1] == 1:
            images = images[..., 0]
        image_name, label_name = IDX_FILES[split]
        write_idx(directory / f"{image_name}{suffix}", images.astype(np.uint8), compress=compress)
        write_idx(
            directory / f"{label_name}{suffix}", np.asarray(labels, np.uint8), compress=compress
        )
    return directory
