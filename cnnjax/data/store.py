"""Prepare, find and read datasets by name, through TFDS array_record files and no TensorFlow.

Layout follows TFDS: ``<data_dir>/<builder>/<name>/<version>/`` holds the array_record
shards, ``dataset_info.json`` and ``features.json``, plus ``cnnjax.json`` (where the
data came from). Preparation is atomic: everything is written into a sibling
``.incomplete-*`` directory that is renamed into place only when complete, so a
reader never sees half a dataset; leftovers of killed runs are removed later.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnnjax.data.dataset import ArrayDataset
from cnnjax.data.errors import DataError
from cnnjax.data.registry import BUILDER_VERSION, DatasetSpec, default_data_dir, get_spec
from cnnjax.io import pid_alive, sha256_file

SIDECAR = "cnnjax.json"
INCOMPLETE_PREFIX = ".incomplete-"
_STALE_SECONDS = 24 * 3600  # leftovers this old are removed whoever wrote them
_CHUNK = 8192  # examples per vectorised read


# ----------------------------------------------------------------------------- paths


def dataset_dir(spec: DatasetSpec, root: Path) -> Path:
    """Where the prepared copy of ``spec`` lives under the data directory ``root``."""
    return root / spec.builder / spec.name / BUILDER_VERSION


def is_prepared(path: Path) -> bool:
    """True when ``path`` is a complete prepared dataset (it only ever appears complete)."""
    return (path / "dataset_info.json").is_file() and (path / SIDECAR).is_file()


def clean_leftovers(parent: Path) -> list[Path]:
    """Remove ``.incomplete-*`` directories of interrupted preparations under ``parent``.

    A leftover is removed when the process that wrote it (recorded in its name) is
    gone from this host, or when it is older than a day; a preparation still in
    progress elsewhere is left alone. Returns what was removed.
    """
    removed: list[Path] = []
    if not parent.is_dir():
        return removed
    host = socket.gethostname()
    for path in parent.glob(f"{INCOMPLETE_PREFIX}*"):
        # name: .incomplete-<version>-<host>-<pid>-<random>
        parts = path.name[len(INCOMPLETE_PREFIX) :].split("-")
        try:
            pid, writer = int(parts[-2]), "-".join(parts[1:-2])
        except (IndexError, ValueError):
            pid, writer = -1, ""
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            continue
        dead = writer == host and (pid < 0 or not pid_alive(pid))
        if dead or age > _STALE_SECONDS or writer == "":
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


# ---------------------------------------------------------------------------- messages


def _offline_env() -> bool:
    return os.environ.get("CNNJAX_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def missing_message(spec: DatasetSpec, root: Path, *, reason: str = "") -> str:
    """One line saying that ``spec`` is not available and every way to get it."""
    where = f"dataset {spec.name!r} is not prepared in {root}"
    if spec.system_dir:
        where += f" and its offline copy {spec.system_dir} does not exist"
    ways = []
    if spec.apt_package:
        ways.append(f"install it with `sudo apt-get install {spec.apt_package}`")
    ways.append(
        f"run `cnnjax data prepare {spec.name} --from DIR` where DIR holds {spec.source_hint}"
    )
    size = " (about 5 GB)" if spec.kind == "derived" else ""
    ways.append(f"go online and run `cnnjax data prepare {spec.name}` to download it{size}")
    msg = f"{where}{reason}. To get it, " + "; or ".join(ways) + "."
    if spec.kind != "idx":
        msg += (
            f" TFDS's own {spec.tfds_name} builder needs TensorFlow to prepare, so cnnjax "
            "builds it from the original archive."
        )
    if spec.kind == "derived":
        msg += (
            " Offline, build a stand-in from fashion_mnist with the views subset_classes, "
            "resize and to_channels."
        )
    return msg


# ----------------------------------------------------------------------- preparation


@contextlib.contextmanager
def _quiet_tfds() -> Iterator[None]:
    """Silence TFDS's prints (stdout carries our JSON); progress bars only on a terminal."""
    from tensorflow_datasets.core.utils import tqdm_utils

    previous = getattr(tqdm_utils, "_active", True)
    tqdm_utils.display_progress_bar(sys.stderr.isatty())
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            yield
    finally:
        tqdm_utils.display_progress_bar(previous)


def _local_source(
    spec: DatasetSpec, root: Path, source_dir: str | os.PathLike[str] | None
) -> Path | None:
    """The offline source directory: ``source_dir`` if given, else the system copy if present."""
    if source_dir is not None:
        path = Path(source_dir).expanduser()
        if not path.is_dir():
            reason = f", and the source directory {path} given for it does not exist"
            raise DataError(missing_message(spec, root, reason=reason))
        return path
    if spec.system_dir and Path(spec.system_dir).is_dir():
        return Path(spec.system_dir)
    return None


def _download_manager(*, download_dir: Path, dataset_name: str) -> Any:
    """TFDS's download manager (resumable, cached under ``<data_dir>/downloads``)."""
    import tensorflow_datasets as tfds

    return tfds.download.DownloadManager(download_dir=download_dir, dataset_name=dataset_name)


def _download(spec: DatasetSpec, root: Path) -> Path:
    """Fetch the original files with TFDS's download manager; returns a source directory."""
    print(f"cnnjax: downloading {spec.name} into {root / 'downloads'}", file=sys.stderr)
    manager = _download_manager(download_dir=root / "downloads", dataset_name=spec.name)
    with _quiet_tfds():
        if spec.kind != "idx":
            return Path(manager.download_and_extract(spec.urls["archive"]))
        paths = manager.download(dict(spec.urls))
    # Give the downloaded files their canonical names so the offline reader applies.
    target = root / "downloads" / "cnnjax" / spec.name
    target.mkdir(parents=True, exist_ok=True)
    for file_name, path in paths.items():
        shutil.copyfile(path, target / file_name)
    return target


def _examples(spec: DatasetSpec, source: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read and validate the source; returns per-split example makers and provenance."""
    from cnnjax.data import builders

    provenance: dict[str, Any] = {"source": str(source)}
    if spec.kind == "idx":
        from cnnjax.data.idx import find_idx_files, read_idx_pair

        files = find_idx_files(source)
        arrays = {
            split: read_idx_pair(
                images, labels, num_classes=spec.num_classes, image_hw=spec.image_shape[:2]
            )
            for split, (images, labels) in files.items()
        }
        provenance["files"] = {p.name: sha256_file(p) for pair in files.values() for p in pair}
    elif spec.kind == "cifar":
        from cnnjax.data.cifar import CIFAR10_FILES, find_cifar_dir, read_cifar_dir

        arrays = read_cifar_dir(source, num_classes=spec.num_classes)
        root = find_cifar_dir(source)
        provenance["files"] = {
            f: sha256_file(root / f) for fs in CIFAR10_FILES.values() for f in fs
        }
    else:
        from cnnjax.data.food101 import food101_files, load_resized

        lists = food101_files(source, spec.source_classes)
        size = spec.image_shape[:2]

        def maker(files: list[tuple[Path, int]]) -> Callable[[], Iterator[Any]]:
            def make() -> Iterator[Any]:
                for path, label in files:
                    key = f"{path.parent.name}/{path.stem}"
                    yield key, {"image": load_resized(path, size), "label": label}

            return make

        provenance["images"] = {split: len(files) for split, files in lists.items()}
        return {split: maker(files) for split, files in lists.items()}, provenance
    makers = {split: builders.array_examples(x, y) for split, (x, y) in arrays.items()}
    return makers, provenance


def _find_data_error(error: BaseException) -> DataError | None:
    """The DataError that caused ``error``, if TFDS wrapped one of ours."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, DataError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _build(spec: DatasetSpec, root: Path, final: Path, source: Path, *, force: bool) -> Path:
    """Write the dataset next to ``final`` and rename it into place when complete."""
    import tensorflow_datasets as tfds

    from cnnjax.data.builders import BUILDERS

    makers, provenance = _examples(spec, source)  # refuse bad input before writing anything
    tmp = final.parent / (
        f"{INCOMPLETE_PREFIX}{final.name}-{socket.gethostname()}-{os.getpid()}-"
        f"{uuid.uuid4().hex[:8]}"
    )
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    except OSError as e:
        raise DataError(
            f"cannot write {spec.name} into the data directory {root}: {e.strerror or e}; "
            "choose a writable directory (--data-dir or $CNNJAX_DATA_DIR)"
        ) from None
    start = time.perf_counter()
    try:
        builder = BUILDERS[spec.builder](data_dir=str(tmp), config=spec.name, examples=makers)
        try:
            with _quiet_tfds():
                builder.download_and_prepare(
                    download_dir=str(tmp / "downloads"),
                    download_config=tfds.download.DownloadConfig(try_download_gcs=False),
                )
        except Exception as e:
            inner = _find_data_error(e)
            if inner is not None and inner is not e:
                raise inner from None
            raise
        built = Path(builder.data_dir)
        provenance.update(
            name=spec.name,
            builder=f"{spec.builder}:{BUILDER_VERSION}",
            prepared_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            seconds=round(time.perf_counter() - start, 3),
        )
        (built / SIDECAR).write_text(json.dumps(provenance, indent=2) + "\n")
        if force and final.exists():
            final.rename(tmp / "replaced")
        try:
            built.rename(final)
        except OSError:
            if is_prepared(final):  # another process finished first: use its copy
                return final
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _ensure(
    spec: DatasetSpec,
    root: Path,
    source_dir: str | os.PathLike[str] | None,
    download: bool | None,
    *,
    force: bool = False,
) -> Path:
    """The prepared directory of ``spec``, preparing it first if needed (see ``prepare``)."""
    final = dataset_dir(spec, root)
    clean_leftovers(final.parent)
    if is_prepared(final) and not force:
        return final
    source = _local_source(spec, root, source_dir)
    if source is None:
        allowed = download if download is not None else not _offline_env()
        if not allowed:
            why = "downloading is disabled" if download is False else "CNNJAX_OFFLINE is set"
            raise DataError(missing_message(spec, root, reason=f" ({why})"))
        try:
            source = _download(spec, root)
        except DataError:
            raise
        except Exception as e:
            reason = f"; downloading failed ({type(e).__name__}: {e})".replace("\n", " ")
            raise DataError(missing_message(spec, root, reason=reason)) from e
    print(f"cnnjax: preparing {spec.name} from {source} into {final} (once)", file=sys.stderr)
    return _build(spec, root, final, source, force=force)


def prepare(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    source_dir: str | os.PathLike[str] | None = None,
    download: bool | None = None,
    force: bool = False,
) -> Path:
    """Prepare ``name`` into array_record files once; returns the prepared directory.

    The source is ``source_dir`` if given, else the system copy (Debian's package for
    Fashion-MNIST), else a download when ``download`` allows it (``None``: only if
    no offline source exists and ``$CNNJAX_OFFLINE`` is unset). ``force`` rebuilds.
    """
    spec = get_spec(name)
    return _ensure(spec, default_data_dir(data_dir), source_dir, download, force=force)


# --------------------------------------------------------------------------- reading


def open_source(
    name: str,
    split: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    source_dir: str | os.PathLike[str] | None = None,
    download: bool | None = None,
) -> Any:
    """A random-access TFDS data source over one split (prepared on first use).

    Items are dicts ``{"image": uint8 [H, W, C], "label": int}``; use it to stream data
    that should not be loaded whole (see ``batching.stream_batches``).
    """
    spec = get_spec(name)
    root = default_data_dir(data_dir)
    _ensure(spec, root, source_dir, download)
    import tensorflow_datasets as tfds

    import cnnjax.data.builders  # noqa: F401  (registers the cnnjax builders with TFDS)

    try:
        return tfds.data_source(spec.tfds_id, split=split, data_dir=str(root), download=False)
    except (ValueError, KeyError, AssertionError) as e:
        raise DataError(
            f"{name}: cannot open split {split!r} ({e}); splits are 'train' and 'test', "
            "optionally sliced like 'train[:10%]'".replace("\n", " ")
        ) from None


def fetch_examples(source: Any, keys: Sequence[int]) -> list[dict[str, Any]]:
    """Items ``keys`` of a data source, read in one vectorised call when it supports one."""
    keys = [int(k) for k in keys]
    getitems = getattr(source, "__getitems__", None)
    if getitems is not None:
        try:
            return list(getitems(keys))
        except TypeError:  # e.g. tfds.testing.mock_data's batched read is broken
            pass
    return [source[k] for k in keys]


def read_source(
    source: Any,
    *,
    name: str,
    class_names: Sequence[str] | None = None,
    chunk_size: int = _CHUNK,
) -> ArrayDataset:
    """Read every item of a TFDS data source into an ArrayDataset, in vectorised chunks."""
    n = len(source)
    features = getattr(getattr(source, "dataset_info", None), "features", None)
    if class_names is None:
        if features is None:
            raise DataError(f"{name}: the data source has no label names; pass class_names")
        class_names = tuple(features["label"].names)
    if features is not None:
        shape, dtype = tuple(features["image"].shape), np.dtype(features["image"].np_dtype)
    else:
        first = np.asarray(fetch_examples(source, [0])[0]["image"]) if n else np.zeros((0, 0, 0))
        shape, dtype = first.shape, first.dtype
    images = np.empty((n, *shape), dtype)
    labels = np.empty((n,), np.int32)
    for start in range(0, n, chunk_size):
        stop = min(n, start + chunk_size)
        items = fetch_examples(source, range(start, stop))
        images[start:stop] = np.stack([item["image"] for item in items])
        labels[start:stop] = [item["label"] for item in items]
    return ArrayDataset(images, labels, len(class_names), tuple(class_names), name)


def load(
    name: str,
    split: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    source_dir: str | os.PathLike[str] | None = None,
    download: bool | None = None,
) -> ArrayDataset:
    """The whole split ``name``/``split`` in memory (uint8 images), prepared on first use."""
    spec = get_spec(name)
    source = open_source(name, split, data_dir=data_dir, source_dir=source_dir, download=download)
    return read_source(source, name=name, class_names=spec.class_names)


def info(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    source_dir: str | os.PathLike[str] | None = None,
    download: bool | None = None,
) -> dict[str, Any]:
    """JSON-ready facts about a prepared dataset (prepared on first use)."""
    spec = get_spec(name)
    root = default_data_dir(data_dir)
    path = _ensure(spec, root, source_dir, download)
    import tensorflow_datasets as tfds

    ds_info = tfds.builder_from_directory(str(path)).info
    sidecar = json.loads((path / SIDECAR).read_text())
    label = ds_info.features["label"]
    return {
        "name": spec.name,
        "description": spec.description,
        "splits": {s: int(ds_info.splits[s].num_examples) for s in ds_info.splits},
        "image_shape": [int(d) for d in ds_info.features["image"].shape],
        "num_classes": int(label.num_classes),
        "class_names": list(label.names),
        "data_dir": str(root),
        "path": str(path),
        "source": sidecar.get("source"),
        "format": f"array_record ({spec.builder}:{BUILDER_VERSION})",
        "mirrors_tfds": spec.tfds_name,
    }


def status(name: str, *, data_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Whether ``name`` is prepared and whether an offline source exists; touches nothing."""
    spec = get_spec(name)
    path = dataset_dir(spec, default_data_dir(data_dir))
    system = spec.system_dir if spec.system_dir and Path(spec.system_dir).is_dir() else None
    return {
        "name": spec.name,
        "kind": spec.kind,
        "prepared": is_prepared(path),
        "path": str(path),
        "offline_source": system,
    }
