"""Metric writers: epoch-end callbacks that write each record as JSON lines, CSV or TensorBoard.

In a k-seed run a metric is a list of k values; CSV and TensorBoard write its mean, and
TensorBoard also each seed's value (``loss/seed_0``, ...). On resume the JSONL and CSV files are
rewritten with the finished epochs first, so no line is written twice.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnnjax.checkpoint import write_atomic
from cnnjax.errors import TrainingError
from cnnjax.train.callbacks import Callback, Control
from cnnjax.train.steps import TrainState


def _scalars(record: dict[str, Any]) -> dict[str, float]:
    """Record values as scalars: floats kept, lists averaged, anything else left out."""
    out = {}
    for key, value in record.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)
        elif isinstance(value, list) and value:
            out[key] = float(np.mean(value))
    return out


class JsonlWriter(Callback):
    """One JSON line per epoch (the format of a run directory's metrics.jsonl)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.records: list[dict[str, Any]] = []

    def on_train_begin(
        self, history: Sequence[dict[str, Any]], state: TrainState
    ) -> Control | None:
        self.records = list(history)
        self._write()
        return None

    def on_epoch_end(self, record: dict[str, Any], state: TrainState) -> Control | None:
        self.records.append(record)
        self._write()
        return None

    def _write(self) -> None:
        write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in self.records))


class CsvWriter(JsonlWriter):
    """One CSV row per epoch; k-seed metrics as their means."""

    def _write(self) -> None:
        rows = [_scalars(r) for r in self.records]
        fields = list(dict.fromkeys(k for row in rows for k in row))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_atomic(self.path, text.getvalue())


class TensorBoardWriter(Callback):
    """TensorBoard event files (tensorboardX, no TensorFlow): one scalar per metric per epoch.

    Needs the ``tensorboard`` extra: ``pip install 'cnnjax[tensorboard]'`` (tensorboardX).
    """

    def __init__(self, logdir: str | Path):
        self.logdir = Path(logdir)
        self._writer: Any = None

    def on_train_begin(
        self, history: Sequence[dict[str, Any]], state: TrainState
    ) -> Control | None:
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise TrainingError(
                "TensorBoardWriter needs tensorboardX: pip install 'cnnjax[tensorboard]'"
            ) from None
        self._writer = SummaryWriter(str(self.logdir))
        return None

    def on_epoch_end(self, record: dict[str, Any], state: TrainState) -> Control | None:
        step = int(record["epoch"])
        for key, value in _scalars(record).items():
            if key != "epoch":
                self._writer.add_scalar(key, value, step)
        for key, value in record.items():
            if isinstance(value, list):
                for i, v in enumerate(value):
                    self._writer.add_scalar(f"{key}/seed_{i}", float(v), step)
        self._writer.flush()
        return None

    def on_train_end(self, history: Sequence[dict[str, Any]], state: TrainState) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
