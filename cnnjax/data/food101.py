"""Class subsets of Food-101 (e.g. pizza vs steak), read from the extracted archive."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cnnjax.data.errors import DataError

SPLITS = ("train", "test")


def find_food101_root(directory: str | os.PathLike[str]) -> Path:
    """The Food-101 root (with ``images/`` and ``meta/``): ``directory`` or its ``food-101``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: no such directory")
    for candidate in (directory, directory / "food-101"):
        if (candidate / "images").is_dir() and (candidate / "meta").is_dir():
            return candidate
    raise DataError(
        f"{directory}: not an extracted Food-101 archive (no images/ and meta/ here or in "
        "food-101/)"
    )


def _split_lists(root: Path, split: str) -> dict[str, list[str]]:
    """Food-101's own split: class -> ["class/id", ...] from meta/<split>.json (or .txt)."""
    json_path = root / "meta" / f"{split}.json"
    txt_path = root / "meta" / f"{split}.txt"
    if json_path.is_file():
        try:
            data = json.loads(json_path.read_text())
        except (OSError, ValueError) as e:
            raise DataError(f"{json_path}: unreadable split list ({e})") from None
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            raise DataError(f"{json_path}: expected a JSON object of class -> list of image ids")
        return data
    if txt_path.is_file():
        lists: dict[str, list[str]] = {}
        try:
            text = txt_path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"{txt_path}: unreadable split list ({e})") from None
        for line in text.split():
            lists.setdefault(line.split("/", 1)[0], []).append(line)
        return lists
    raise DataError(f"{root / 'meta'}: missing {split}.json (Food-101's split list)")


_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def check_image_id(image_id: object, cls: str, where: str) -> str:
    """``image_id`` if it has Food-101's form ``<cls>/<id>`` (letters, digits, ``_``, ``-``).

    The ids come from a JSON file inside a downloaded archive and are joined into paths: an id
    such as ``../../x`` or ``/etc/x`` would read outside the archive, so it is refused.
    """
    parts = image_id.split("/") if isinstance(image_id, str) else []
    if len(parts) != 2 or parts[0] != cls or not parts[1] or not set(parts[1]) <= _ID_CHARS:
        raise DataError(
            f"{where}: image id {image_id!r} of class {cls!r} is not of the form "
            f"'{cls}/<id>' with <id> made of letters, digits, '_' and '-'; the archive's "
            "split list is corrupt or hostile"
        )
    return str(image_id)


def food101_files(
    directory: str | os.PathLike[str], classes: Sequence[str]
) -> dict[str, list[tuple[Path, int]]]:
    """Per split, the image files of ``classes`` with their new labels 0..len(classes)-1."""
    root = find_food101_root(directory)
    out: dict[str, list[tuple[Path, int]]] = {}
    for split in SPLITS:
        lists = _split_lists(root, split)
        files: list[tuple[Path, int]] = []
        for label, cls in enumerate(classes):
            if cls not in lists:
                raise DataError(f"{root}/meta/{split}: Food-101 has no class {cls!r}")
            for image_id in lists[cls]:
                check_image_id(image_id, cls, f"{root}/meta/{split}")
                path = root / "images" / f"{image_id}.jpg"
                if not path.is_file():
                    raise DataError(f"{path}: listed in meta/{split} but missing")
                files.append((path, label))
        out[split] = files
    return out


def load_resized(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Decode one image as RGB and resize it bilinearly to ``size`` = (H, W): uint8 [H, W, 3]."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            im = opened.convert("RGB").resize((size[1], size[0]), Image.Resampling.BILINEAR)
            return np.asarray(im, np.uint8)
    except (OSError, UnidentifiedImageError) as e:
        raise DataError(f"{path}: cannot decode image ({e})") from None
