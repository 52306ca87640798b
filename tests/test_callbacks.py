"""Callbacks: early stopping, reduce-on-plateau without recompiling, functions, writers."""

from __future__ import annotations

import csv
import json
import logging
import struct

import jax
import numpy as np
import optax
import pytest

from cnnjax.errors import TrainingError
from cnnjax.train import (
    Callback,
    Control,
    CsvWriter,
    EarlyStopping,
    FitConfig,
    JsonlWriter,
    ReduceLROnPlateau,
    TensorBoardWriter,
    fit,
    load_run,
)
from tests.test_train import SPEC, leaves, synthetic

# "loss" in mode "max" never improves after the first epoch: a plateau on a fixed schedule.
NEVER_BETTER = {"monitor": "loss", "mode": "max"}


def sgd(lr=0.1):
    return optax.inject_hyperparams(optax.sgd)(learning_rate=lr)


def test_early_stopping_stops_and_a_resume_does_not_train_on(tmp_path):
    run = tmp_path / "run"
    cfg = FitConfig(epochs=5, batch_size=32)
    stopper = EarlyStopping(patience=1, **NEVER_BETTER)
    result = fit(SPEC, synthetic(96), config=cfg, run_dir=run, callbacks=[stopper])
    assert [r["epoch"] for r in result.history.records] == [1, 2]
    assert stopper.stopped_epoch == 2
    steps = sorted(p.name for p in (run / "checkpoints").iterdir())
    again = fit(
        SPEC,
        synthetic(96),
        config=cfg,
        run_dir=run,
        resume=True,
        callbacks=[EarlyStopping(patience=1, **NEVER_BETTER)],
    )
    assert len(again.history) == 2, "the replayed history stops the resumed run at once"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == steps
    assert json.loads((run / "results.json").read_text())["history"] == again.history.records


def test_a_function_sees_the_record_and_state_and_can_stop():
    seen = []

    def stop_after_first(record, state):
        seen.append((record["epoch"], int(state.step), state.params["conv2d"]["kernel"].shape))
        return record["epoch"] >= 1

    result = fit(
        SPEC, synthetic(96), config=FitConfig(epochs=3, batch_size=32), callbacks=[stop_after_first]
    )
    assert len(result.history) == 1 and seen == [(1, 3, (3, 3, 1, 4))]
    with pytest.raises(TrainingError, match="Callback objects or functions, got int"):
        fit(SPEC, synthetic(96), config=FitConfig(epochs=1, batch_size=32), callbacks=[3])


def _compiles_of_run_batch(caplog) -> int:
    return sum("XLA compilation of jit(run_batch)" in r.getMessage() for r in caplog.records)


def test_reduce_on_plateau_changes_the_rate_without_recompiling(caplog):
    cfg = FitConfig(epochs=4, batch_size=32)
    with caplog.at_level(logging.DEBUG), jax.log_compiles():
        result = fit(
            SPEC,
            synthetic(96),
            config=cfg,
            optimizer=sgd(0.1),
            callbacks=[ReduceLROnPlateau(factor=0.1, patience=0, **NEVER_BETTER)],
        )
    rates = [r["learning_rate"] for r in result.history.records]
    np.testing.assert_allclose(rates, [0.1, 0.1, 0.01, 0.001], rtol=1e-6)
    assert _compiles_of_run_batch(caplog) == 1, "one compiled step for every rate"
    with pytest.raises(TrainingError, match="does not expose"):
        fit(SPEC, synthetic(96), config=cfg, callbacks=[ReduceLROnPlateau(monitor="loss")])


def test_reduce_on_plateau_resumes_bit_identically(tmp_path):
    def callbacks():
        return [ReduceLROnPlateau(factor=0.5, patience=0, **NEVER_BETTER)]

    train = synthetic(96)
    straight = fit(
        SPEC,
        train,
        config=FitConfig(epochs=4, batch_size=32),
        optimizer=sgd(),
        callbacks=callbacks(),
    )
    run = tmp_path / "run"
    fit(
        SPEC,
        train,
        config=FitConfig(epochs=2, batch_size=32),
        optimizer=sgd(),
        run_dir=run,
        callbacks=callbacks(),
    )
    resumed = fit(
        SPEC, train, config=FitConfig(epochs=4, batch_size=32), optimizer=sgd(), run_dir=run,
        resume=True, callbacks=callbacks(),
    )  # fmt: skip
    for x, y in zip(leaves(straight.state), leaves(resumed.state), strict=True):
        np.testing.assert_array_equal(x, y)
    assert [r["learning_rate"] for r in load_run(run).history] == [
        r["learning_rate"] for r in straight.history.records
    ]


def test_step_end_hook_sets_a_hyperparameter():
    class ZeroRateAfter(Callback):
        def __init__(self):
            self.steps = []

        def on_step_end(self, step, state):
            self.steps.append(step)
            return Control(hyperparams={"learning_rate": 0.0}) if step == 3 else None

    cb = ZeroRateAfter()
    result = fit(
        SPEC,
        synthetic(96),
        config=FitConfig(epochs=2, batch_size=32),
        optimizer=sgd(),
        callbacks=[cb],
    )
    assert cb.steps == [1, 2, 3, 4, 5, 6]
    assert result.history.records[1]["learning_rate"] == 0.0


def _read_events(path):
    """Scalars of a TensorBoard event file (TFRecord framing), read without TensorFlow."""
    from tensorboardX.proto import event_pb2

    data, out, i = path.read_bytes(), [], 0
    while i < len(data):
        (length,) = struct.unpack("<Q", data[i : i + 8])
        event = event_pb2.Event.FromString(data[i + 12 : i + 12 + length])
        i += 12 + length + 4
        out += [(v.tag, event.step, v.simple_value) for v in event.summary.value]
    return out


def test_writers_jsonl_csv_and_tensorboard(tmp_path):
    pytest.importorskip("tensorboardX")
    cbs = [
        JsonlWriter(tmp_path / "m.jsonl"),
        CsvWriter(tmp_path / "m.csv"),
        TensorBoardWriter(tmp_path / "tb"),
    ]
    cfg = FitConfig(epochs=2, batch_size=32, seeds=2)
    result = fit(SPEC, synthetic(96), validation=synthetic(32, 1), config=cfg, callbacks=cbs)
    records = result.history.records
    lines = (tmp_path / "m.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == records
    rows = list(csv.DictReader((tmp_path / "m.csv").open()))
    assert [int(float(r["epoch"])) for r in rows] == [1, 2]
    assert float(rows[1]["val_loss"]) == pytest.approx(np.mean(records[1]["val_loss"]))
    (events,) = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    scalars = _read_events(events)
    got = {(tag, step): value for tag, step, value in scalars}
    assert got[("loss", 2)] == pytest.approx(np.mean(records[1]["loss"]), rel=1e-6)
    assert got[("val_accuracy/seed_1", 1)] == pytest.approx(records[0]["val_accuracy"][1], rel=1e-6)


def test_eval_every_validates_every_nth_epoch_and_the_last():
    data, val = synthetic(96), synthetic(48, seed=1)
    every = fit(SPEC, data, validation=val, config=FitConfig(epochs=3, batch_size=32))
    sparse = fit(
        SPEC, data, validation=val, config=FitConfig(epochs=3, batch_size=32, eval_every=2)
    )
    assert [r.get("val_loss") is not None for r in sparse.history.records] == [False, True, True]
    for a, b in zip(every.history.records, sparse.history.records, strict=True):
        assert a["loss"] == b["loss"] and a["accuracy"] == b["accuracy"]  # training untouched
        if "val_loss" in b:
            assert (a["val_loss"], a["val_accuracy"]) == (b["val_loss"], b["val_accuracy"])


def test_a_callback_that_stops_between_validations_gets_a_validated_last_record():
    result = fit(
        SPEC,
        synthetic(96),
        validation=synthetic(48, seed=1),
        config=FitConfig(epochs=4, batch_size=32, eval_every=3),
        callbacks=[lambda record, state: record["epoch"] >= 1],
    )
    (last,) = result.history.records
    assert last["epoch"] == 1 and last["val_accuracy"] is not None


@pytest.mark.parametrize(
    ("cfg", "validation", "match"),
    [
        (FitConfig(epochs=2, eval_every=2), True, "eval_every=2 computes only every 2 epochs"),
        (FitConfig(epochs=2), False, "fit has no validation data"),
        (FitConfig(epochs=2, eval_every=0), True, "eval_every must be positive, got 0"),
    ],
)
def test_eval_every_and_val_monitors_are_checked_before_training(cfg, validation, match):
    val = synthetic(48, seed=1) if validation else None
    with pytest.raises(TrainingError, match=match):
        fit(SPEC, synthetic(96), validation=val, config=cfg, callbacks=[EarlyStopping()])
