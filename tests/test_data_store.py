"""Preparing, loading and describing datasets by name; atomic preparation; clear messages."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnjax.cli import main
from cnnjax.data import DATASETS, DataError, default_data_dir, info, load, prepare
from cnnjax.data.idx import write_idx_dir
from cnnjax.data.store import INCOMPLETE_PREFIX, dataset_dir, is_prepared, status

ROOT = Path(__file__).resolve().parents[1]


def _arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    return images, rng.integers(0, 10, n).astype(np.uint8)


@pytest.fixture(autouse=True)
def _no_network_no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may download, and the user's data directory settings must not leak in."""
    monkeypatch.setenv("CNNJAX_OFFLINE", "1")
    monkeypatch.delenv("CNNJAX_DATA_DIR", raising=False)
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, dict]:
    """A small IDX source directory (40 train, 12 test) and the arrays written into it."""
    arrays = {"train": _arrays(40, 1), "test": _arrays(12, 2)}
    return write_idx_dir(tmp_path / "src", arrays), arrays


@pytest.fixture
def no_system_copy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Pretend Debian's Fashion-MNIST package is not installed."""
    spec = dataclasses.replace(DATASETS["fashion_mnist"], system_dir=str(tmp_path / "no-apt"))
    monkeypatch.setitem(DATASETS, "fashion_mnist", spec)


def _cli(*argv: str) -> int:
    return main(list(argv))


def test_prepare_and_load_round_trip(tmp_path: Path, source: tuple[Path, dict]) -> None:
    src, arrays = source
    path = prepare("mnist", data_dir=tmp_path / "data", source_dir=src)
    assert path == tmp_path / "data" / "cnnjax_idx" / "mnist" / "1.0.0"
    assert is_prepared(path)
    for split, (images, labels) in arrays.items():
        ds = load("mnist", split, data_dir=tmp_path / "data")
        assert ds.images.shape == (len(labels), 28, 28, 1) and ds.images.dtype == np.uint8
        np.testing.assert_array_equal(ds.images[..., 0], images)  # source order is kept
        np.testing.assert_array_equal(ds.labels, labels)
        assert ds.labels.dtype == np.int32
        assert ds.class_names == tuple(str(d) for d in range(10)) and ds.num_classes == 10
    sliced = load("mnist", "train[:10]", data_dir=tmp_path / "data")
    np.testing.assert_array_equal(sliced.labels, arrays["train"][1][:10])


def test_info(tmp_path: Path, source: tuple[Path, dict]) -> None:
    src, _ = source
    facts = info("kmnist", data_dir=tmp_path, source_dir=src)
    json.dumps(facts)  # JSON-ready
    assert facts["splits"] == {"train": 40, "test": 12}
    assert facts["image_shape"] == [28, 28, 1]
    assert facts["num_classes"] == 10 and facts["class_names"][:2] == ["o", "ki"]
    assert facts["source"] == str(src) and facts["data_dir"] == str(tmp_path)
    sidecar = json.loads((Path(facts["path"]) / "cnnjax.json").read_text())
    assert set(sidecar["files"]) == {p.name for p in src.iterdir()}


def test_auto_prepare_from_system_copy_once(
    tmp_path: Path,
    source: tuple[Path, dict],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src, arrays = source
    spec = dataclasses.replace(DATASETS["fashion_mnist"], system_dir=str(src))
    monkeypatch.setitem(DATASETS, "fashion_mnist", spec)
    ds = load("fashion_mnist", "test", data_dir=tmp_path)
    np.testing.assert_array_equal(ds.labels, arrays["test"][1])
    first = capsys.readouterr()
    assert first.out == ""
    assert first.err.count("\n") == 1 and "preparing fashion_mnist from" in first.err
    load("fashion_mnist", "train", data_dir=tmp_path)
    assert capsys.readouterr().err == ""


def test_missing_dataset_message(tmp_path: Path, no_system_copy: None) -> None:
    with pytest.raises(DataError) as e:
        load("fashion_mnist", "train", data_dir=tmp_path / "nowhere", download=False)
    msg = str(e.value)
    assert "\n" not in msg
    assert "'fashion_mnist' is not prepared in" in msg and "downloading is disabled" in msg
    assert "sudo apt-get install dataset-fashion-mnist" in msg
    assert "cnnjax data prepare fashion_mnist --from DIR" in msg
    assert "train-images-idx3-ubyte.gz" in msg
    assert "go online and run `cnnjax data prepare fashion_mnist`" in msg
    assert not (tmp_path / "nowhere" / "cnnjax_idx" / "fashion_mnist" / "1.0.0").exists()


def test_offline_env_blocks_default_download(tmp_path: Path, no_system_copy: None) -> None:
    with pytest.raises(DataError, match=r"CNNJAX_OFFLINE is set.*go online"):
        info("fashion_mnist", data_dir=tmp_path)


@pytest.mark.parametrize("name", ["cifar10", "pizza_steak"])
def test_missing_archive_datasets_say_why_not_tfds(tmp_path: Path, name: str) -> None:
    with pytest.raises(DataError) as e:
        load(name, "train", data_dir=tmp_path, download=False)
    msg = str(e.value)
    assert f"cnnjax data prepare {name} --from DIR" in msg
    assert "needs TensorFlow to prepare" in msg and "\n" not in msg


def test_source_dir_must_exist(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        load(
            "fashion_mnist",
            "train",
            data_dir=tmp_path / "nowhere",
            source_dir=tmp_path / "no-such-dir",
            download=False,
        )
    msg = str(e.value)
    assert f"the source directory {tmp_path / 'no-such-dir'} given for it does not exist" in msg
    assert "sudo apt-get install dataset-fashion-mnist" in msg and "\n" not in msg


def test_unknown_name_and_split(tmp_path: Path, source: tuple[Path, dict]) -> None:
    with pytest.raises(DataError, match=r"unknown dataset 'imagenet'; known datasets: cifar10"):
        load("imagenet", "train", data_dir=tmp_path)
    with pytest.raises(DataError, match=r"cannot open split 'validation'"):
        load("mnist", "validation", data_dir=tmp_path, source_dir=source[0])


def test_corrupt_source_writes_nothing(tmp_path: Path, source: tuple[Path, dict]) -> None:
    src, _ = source
    labels = src / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-5])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: corrupt or truncated gzip"):
        prepare("mnist", data_dir=tmp_path / "data", source_dir=src)
    parent = tmp_path / "data" / "cnnjax_idx" / "mnist"
    assert not parent.exists() or list(parent.iterdir()) == []


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, OSError])
def test_interrupted_prepare_leaves_nothing(
    tmp_path: Path,
    source: tuple[Path, dict],
    monkeypatch: pytest.MonkeyPatch,
    interruption: type[BaseException],
) -> None:
    from cnnjax.data import builders

    original = builders._CnnjaxBuilder._generate_examples

    def dies_midway(self, make):  # type: ignore[no-untyped-def]
        for i, example in enumerate(original(self, make)):
            if i == 20:
                raise interruption("simulated interruption")
            yield example

    monkeypatch.setattr(builders._CnnjaxBuilder, "_generate_examples", dies_midway)
    data = tmp_path / "data"
    with pytest.raises(interruption, match=r"simulated interruption"):
        prepare("mnist", data_dir=data, source_dir=source[0])
    parent = data / "cnnjax_idx" / "mnist"
    assert list(parent.iterdir()) == []  # no dataset, no temp dir
    with pytest.raises(DataError, match=r"not prepared"):
        load("mnist", "train", data_dir=data, download=False)

    monkeypatch.undo()
    monkeypatch.setenv("CNNJAX_OFFLINE", "1")
    path = prepare("mnist", data_dir=data, source_dir=source[0])
    assert [p.name for p in parent.iterdir()] == ["1.0.0"] and is_prepared(path)
    assert len(load("mnist", "train", data_dir=data)) == 40


def test_leftovers_of_killed_runs_are_ignored_and_cleaned(
    tmp_path: Path, source: tuple[Path, dict]
) -> None:
    parent = tmp_path / "cnnjax_idx" / "mnist"
    host = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    killed = parent / f"{INCOMPLETE_PREFIX}1.0.0-{host}-{dead.pid}-deadbeef"
    running = parent / f"{INCOMPLETE_PREFIX}1.0.0-{host}-{os.getpid()}-cafecafe"
    for leftover in (killed, running):
        half = leftover / "cnnjax_idx" / "mnist" / "1.0.0"
        half.mkdir(parents=True)
        (half / "cnnjax_idx-train.array_record-00000-of-00001").write_bytes(b"half")
    assert status("mnist", data_dir=tmp_path)["prepared"] is False
    ds = load("mnist", "train", data_dir=tmp_path, source_dir=source[0])
    assert len(ds) == 40
    assert not killed.exists()  # its writer is gone: removed
    assert running.exists()  # its writer (this process) is alive: left alone


def test_force_rebuilds_in_place(tmp_path: Path, source: tuple[Path, dict]) -> None:
    src, _ = source
    prepare("mnist", data_dir=tmp_path, source_dir=src)
    write_idx_dir(src, {"train": _arrays(8, 9), "test": _arrays(4, 9)})
    prepare("mnist", data_dir=tmp_path, source_dir=src)  # already prepared: untouched
    assert len(load("mnist", "train", data_dir=tmp_path)) == 40
    prepare("mnist", data_dir=tmp_path, source_dir=src, force=True)
    assert len(load("mnist", "train", data_dir=tmp_path)) == 8
    assert sorted(p.name for p in (tmp_path / "cnnjax_idx" / "mnist").iterdir()) == ["1.0.0"]


def test_default_data_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert default_data_dir() == Path("~/tensorflow_datasets").expanduser()
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    assert default_data_dir() == tmp_path / "tfds"
    monkeypatch.setenv("CNNJAX_DATA_DIR", str(tmp_path / "cnnjax"))
    assert default_data_dir() == tmp_path / "cnnjax"
    assert default_data_dir(tmp_path / "flag") == tmp_path / "flag"


def test_data_dir_from_environment(
    tmp_path: Path, source: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CNNJAX_DATA_DIR", str(tmp_path / "env"))
    prepare("mnist", source_dir=source[0])
    assert is_prepared(dataset_dir(DATASETS["mnist"], tmp_path / "env"))


def test_registry_matches_builders() -> None:
    from cnnjax.data.builders import BUILDERS

    for spec in DATASETS.values():
        assert spec.name in BUILDERS[spec.builder].builder_configs
        assert spec.num_classes == len(spec.class_names)


# ----------------------------------------------------------------------------------- CLI


def test_cli_prepare_and_info(
    tmp_path: Path, source: tuple[Path, dict], capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path / "data")
    assert _cli("data", "prepare", "mnist", "--from", str(source[0]), "--data-dir", data) == 0
    assert "mnist: prepared at" in capsys.readouterr().out
    assert _cli("data", "prepare", "mnist", "--data-dir", data) == 0
    assert "already prepared" in capsys.readouterr().out
    assert _cli("data", "info", "mnist", "--data-dir", data) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["splits"] == {"train": 40, "test": 12} and facts["image_shape"] == [28, 28, 1]
    assert _cli("data", "list", "--data-dir", data) == 0
    assert any(
        line.split()[:3] == ["mnist", "idx", "prepared"]
        for line in capsys.readouterr().out.splitlines()
    )


def test_cli_error_is_one_line_exit_2(
    tmp_path: Path, no_system_copy: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli("data", "info", "fashion_mnist", "--data-dir", str(tmp_path), "--offline") == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith("error: dataset 'fashion_mnist' is not prepared")
    assert out.err.count("\n") == 1


def test_import_is_light() -> None:
    code = (
        "import sys, cnnjax.data, cnnjax.cli.data; "
        "print(sorted(m for m in ('jax', 'tensorflow_datasets', 'tensorflow', 'PIL') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------ online route (no network)


class _FakeDownloads:
    """Stands in for tfds.download.DownloadManager: serves files from a local directory."""

    def __init__(self, served: Path | None, **kwargs: object):
        self.served = served
        self.download_dir = Path(str(kwargs["download_dir"]))

    def download(self, urls: dict[str, str]) -> dict[str, Path]:
        if self.served is None:
            raise ConnectionError("Name or service not known")
        self.download_dir.mkdir(parents=True, exist_ok=True)
        out = {}
        for name, url in urls.items():
            assert url.endswith(name)
            hashed = self.download_dir / f"host_{name}_0123abcd"  # TFDS names files by URL hash
            hashed.write_bytes((self.served / name).read_bytes())
            out[name] = hashed
        return out


def _fake_tfds_downloads(monkeypatch: pytest.MonkeyPatch, served: Path | None) -> None:
    from cnnjax.data import store

    monkeypatch.setattr(store, "_download_manager", lambda **kw: _FakeDownloads(served, **kw))


def test_online_route_uses_downloaded_files(
    tmp_path: Path,
    source: tuple[Path, dict],
    monkeypatch: pytest.MonkeyPatch,
    no_system_copy: None,
) -> None:
    src, arrays = source
    _fake_tfds_downloads(monkeypatch, src)
    facts = info("fashion_mnist", data_dir=tmp_path, download=True)
    assert facts["splits"] == {"train": 40, "test": 12}
    assert facts["source"] == str(tmp_path / "downloads" / "cnnjax" / "fashion_mnist")
    ds = load("fashion_mnist", "test", data_dir=tmp_path)
    np.testing.assert_array_equal(ds.labels, arrays["test"][1])


def test_failed_download_gives_the_full_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_system_copy: None
) -> None:
    _fake_tfds_downloads(monkeypatch, None)
    monkeypatch.delenv("CNNJAX_OFFLINE")
    with pytest.raises(DataError) as e:
        load("fashion_mnist", "train", data_dir=tmp_path)  # download=None: tries online
    msg = str(e.value)
    assert "downloading failed (ConnectionError: Name or service not known)" in msg
    assert "sudo apt-get install dataset-fashion-mnist" in msg and "\n" not in msg
