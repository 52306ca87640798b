"""What `fit` prints: a rich progress bar on a terminal, one plain line per epoch elsewhere.

``progress=None`` picks by the stream (a terminal gets the bar, a log file or CI the lines),
True asks for the bar, False prints nothing at all. Processes other than 0 of a multi-host run
print nothing.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from cnnjax.metrics import mean_std_ci

_SHOWN = ("loss", "accuracy", "val_loss", "val_accuracy")


def format_metric(value: Any) -> str:
    """One metric for a log line: a float, or mean±std over k seeds."""
    if isinstance(value, list):
        s = mean_std_ci(value)
        return f"{s['mean']:.4f}±{s['std']:.4f}"
    return f"{value:.4f}"


def epoch_line(record: dict[str, Any]) -> str:
    """`12.3s 4,567 img/s - loss: ... - val_accuracy: ...` for one epoch's record."""
    parts = [f"{k}: {format_metric(record[k])}" for k in _SHOWN if record.get(k) is not None]
    speed = f"{record['seconds']:.1f}s {record['images_per_second']:,.0f} img/s"
    return " - ".join([speed, *parts])


class Progress:
    """The progress display of one `fit` call (see the module docstring)."""

    def __init__(
        self,
        epochs: int,
        steps: int,
        enabled: bool | None = None,
        stream: TextIO | None = None,
        silent: bool = False,
    ):
        self.stream = stream or sys.stderr
        self.epochs, self.steps = epochs, steps
        self.quiet = silent or enabled is False
        is_tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.bar = not self.quiet and (enabled is True or is_tty)
        self._live: Any = None
        self._task: Any = None

    def begin_epoch(self, epoch: int) -> None:
        if not self.bar:
            return
        import rich.console
        import rich.progress as rp

        console = rich.console.Console(file=self.stream, force_terminal=True)
        self._live = rp.Progress(
            rp.TextColumn(f"Epoch {epoch + 1}/{self.epochs}"),
            rp.BarColumn(),
            rp.MofNCompleteColumn(),
            rp.TimeElapsedColumn(),
            rp.TextColumn("{task.fields[metrics]}"),
            console=console,
            transient=False,
        )
        self._task = self._live.add_task("train", total=self.steps, metrics="")
        self._live.start()

    def update(self, step: int, loss: float, acc: float) -> None:
        """Steps done in this epoch and the running loss and accuracy."""
        if self._live is not None:
            metrics = f"loss: {loss:.4f} - accuracy: {acc:.4f}"
            self._live.update(self._task, completed=step, metrics=metrics)

    def end_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        if self.quiet:
            return
        line = epoch_line(record)
        if self._live is not None:
            self._live.update(self._task, completed=self.steps, metrics=line)
            self._live.stop()
            self._live = None
        else:
            print(f"epoch {epoch + 1}/{self.epochs} {line}", file=self.stream, flush=True)

    def close(self) -> None:
        """Stop a bar left running by an exception."""
        if self._live is not None:
            self._live.stop()
            self._live = None
