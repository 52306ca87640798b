"""IDX files: strict reading, and one clear error per kind of corruption."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from cnnjax.data import DataError
from cnnjax.data.idx import find_idx_files, read_idx, read_idx_dir, read_idx_pair, write_idx_dir


def _arrays(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), np.arange(n, dtype=np.uint8) % 10


@pytest.fixture
def idx_dir(tmp_path: Path) -> Path:
    """A small MNIST-style directory: 30 train and 10 test examples, gzipped."""
    return write_idx_dir(tmp_path / "src", {"train": _arrays(30, 1), "test": _arrays(10, 2)})


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw"])
def test_round_trip(tmp_path: Path, compress: bool) -> None:
    train, test = _arrays(30, 1), _arrays(10, 2)
    write_idx_dir(tmp_path, {"train": train, "test": test}, compress=compress)
    got = read_idx_dir(tmp_path, num_classes=10, image_hw=(28, 28))
    for split, (images, labels) in {"train": train, "test": test}.items():
        assert got[split][0].shape == (len(labels), 28, 28, 1)
        assert got[split][0].dtype == np.uint8
        np.testing.assert_array_equal(got[split][0][..., 0], images)
        np.testing.assert_array_equal(got[split][1], labels)
        assert got[split][1].dtype == np.int32


def test_gzip_detected_by_content_not_name(tmp_path: Path) -> None:
    images, _ = _arrays(3)
    write_idx_dir(tmp_path, {"train": (images, np.zeros(3, np.uint8))}, compress=False)
    raw = tmp_path / "train-images-idx3-ubyte"
    named_gz = tmp_path / "x.gz"
    named_gz.write_bytes(raw.read_bytes())  # raw bytes under a .gz name
    gz_unnamed = tmp_path / "y"
    gz_unnamed.write_bytes(gzip.compress(raw.read_bytes()))  # gzip without the name
    for path in (named_gz, gz_unnamed):
        np.testing.assert_array_equal(read_idx(path, ndim=3), images)


def test_dotted_file_names_accepted(tmp_path: Path, idx_dir: Path) -> None:
    for path in idx_dir.iterdir():
        path.rename(idx_dir / path.name.replace("-idx", ".idx"))
    files = find_idx_files(idx_dir)
    assert files["train"][0].name == "train-images.idx3-ubyte.gz"


def test_missing_files_listed(idx_dir: Path) -> None:
    (idx_dir / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"missing IDX file\(s\) t10k-labels-idx1-ubyte") as e:
        find_idx_files(idx_dir)
    assert str(idx_dir) in str(e.value)


def test_missing_directory() -> None:
    with pytest.raises(DataError, match=r"no such directory"):
        find_idx_files("/nonexistent/cnnjax-test")


# --------------------------------------------------------------------------- corruption


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _header(ndim: int, *dims: int, dtype: int = 0x08) -> bytes:
    return bytes([0, 0, dtype, ndim]) + np.asarray(dims, ">u4").tobytes()


def test_wrong_magic_labels_file_as_images(tmp_path: Path) -> None:
    path = _write(tmp_path / "imgs", _header(1, 5) + bytes(5))
    with pytest.raises(DataError, match=r"wrong magic number 0x00000801, expected 0x00000803") as e:
        read_idx(path, ndim=3)
    assert str(path) in str(e.value)


def test_wrong_magic_not_idx_at_all(tmp_path: Path) -> None:
    path = _write(tmp_path / "readme.gz", b"<html>not a dataset</html>")
    with pytest.raises(DataError, match=r"readme.gz: wrong magic number .*not an IDX file"):
        read_idx(path, ndim=1)


def test_wrong_element_type(tmp_path: Path) -> None:
    path = _write(tmp_path / "floats", _header(1, 2, dtype=0x0D) + bytes(8))
    with pytest.raises(DataError, match=r"wrong magic number 0x00000d01"):
        read_idx(path, ndim=1)


def test_short_read(tmp_path: Path) -> None:
    path = _write(tmp_path / "imgs", _header(3, 4, 28, 28) + bytes(4 * 784 - 100))
    with pytest.raises(DataError, match=r"truncated: header promises 4x28x28 = 3136 bytes") as e:
        read_idx(path, ndim=3)
    assert "only 3036 follow" in str(e.value)


def test_truncated_header(tmp_path: Path) -> None:
    path = _write(tmp_path / "imgs", _header(3, 4, 28, 28)[:9])
    with pytest.raises(DataError, match=r"imgs: truncated header: 9 of 16 bytes"):
        read_idx(path, ndim=3)


def test_too_short_for_magic(tmp_path: Path) -> None:
    path = _write(tmp_path / "empty", b"")
    with pytest.raises(DataError, match=r"empty: truncated: 0 bytes"):
        read_idx(path, ndim=1)


def test_trailing_bytes(tmp_path: Path) -> None:
    path = _write(tmp_path / "labels", _header(1, 3) + bytes(7))
    with pytest.raises(DataError, match=r"labels: 4 unexpected bytes after the 3 data"):
        read_idx(path, ndim=1)


def test_truncated_gzip_stream(idx_dir: Path) -> None:
    path = idx_dir / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-300])
    with pytest.raises(DataError, match=r"corrupt or truncated gzip data") as e:
        read_idx(path, ndim=3)
    assert str(path) in str(e.value)


def test_corrupt_gzip_payload(idx_dir: Path) -> None:
    path = idx_dir / "train-labels-idx1-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[12:20] = b"\xff" * 8  # inside the deflate stream
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz: corrupt or truncated gzip"):
        read_idx(path, ndim=1)


def test_counts_disagree(tmp_path: Path) -> None:
    images, labels = _arrays(5)
    write_idx_dir(tmp_path, {"train": (images, labels[:4])})
    img, lab = tmp_path / "train-images-idx3-ubyte.gz", tmp_path / "train-labels-idx1-ubyte.gz"
    with pytest.raises(DataError, match=r"holds 5 images but .* holds 4 labels") as e:
        read_idx_pair(img, lab, num_classes=10)
    assert str(img) in str(e.value) and str(lab) in str(e.value)


def test_labels_out_of_range(tmp_path: Path) -> None:
    images, labels = _arrays(5)
    labels[3] = 12
    write_idx_dir(tmp_path, {"train": (images, labels)})
    img, lab = tmp_path / "train-images-idx3-ubyte.gz", tmp_path / "train-labels-idx1-ubyte.gz"
    with pytest.raises(DataError, match=r"label 12 at index 3 is out of range 0..9") as e:
        read_idx_pair(img, lab, num_classes=10)
    assert str(lab) in str(e.value)


def test_wrong_image_size(tmp_path: Path) -> None:
    write_idx_dir(tmp_path, {"train": (np.zeros((2, 32, 32), np.uint8), np.zeros(2, np.uint8))})
    img, lab = tmp_path / "train-images-idx3-ubyte.gz", tmp_path / "train-labels-idx1-ubyte.gz"
    with pytest.raises(DataError, match=r"images are 32x32, expected 28x28"):
        read_idx_pair(img, lab, num_classes=10, image_hw=(28, 28))


def test_errors_are_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "x", _header(3, 4, 28, 28))
    with pytest.raises(DataError) as e:
        read_idx(path, ndim=3)
    assert "\n" not in str(e.value)
