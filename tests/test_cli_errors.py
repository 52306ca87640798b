"""Issue 17, the command line: every bad input gets one clear error (exit status 2), never a
traceback, a silent wrong answer, or a file written outside the run directory.

Each test runs `cnnjax` in-process through `cnnjax.cli.main`; only the closed-pipe test needs a
real process and a real pipe.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnjax import load_spec
from cnnjax.cli import main
from cnnjax.data import DataError
from cnnjax.data.loading import load_datasets
from cnnjax.io import safe_name

MODEL = "in8x8x1-conv4x3-flatten-dense3"


@pytest.fixture
def npz(tmp_path: Path) -> Path:
    """A tiny Keras-style dataset: 8x8x1 images, 3 classes, 48 train and 24 test examples."""
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 255, (48, 8, 8, 1), dtype=np.uint8),
        y_train=np.arange(48) % 3,
        x_test=rng.integers(0, 255, (24, 8, 8, 1), dtype=np.uint8),
        y_test=np.arange(24) % 3,
    )
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """(exit status, stderr) of `cnnjax ARGV`; argparse's usage errors count as status 2."""
    try:
        status = main(list(argv))
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    return status, capsys.readouterr().err


def assert_refused(status: int, err: str, *words: str) -> None:
    """Exit status 2 and a short error naming the input; no traceback."""
    assert status == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert "error:" in last, err
    for word in words:
        assert word in last, (word, last)


def train_args(npz: Path, *extra: str) -> list[str]:
    return ["train", "--model", MODEL, "--dataset", str(npz), *extra]


# ------------------------------------------------------------------ numbers that make no sense


@pytest.mark.parametrize("keep", ["0", "-1"])
def test_keep_below_one_is_refused(capsys, npz, tmp_path, keep):
    """`--keep 0` used to exit 0 with an empty checkpoints/ directory (weights lost)."""
    status, err = run_cli(capsys, *train_args(npz, "--keep", keep, "--out", str(tmp_path / "r")))
    assert_refused(status, err, "--keep", keep)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("flag", ["--limit", "--test-limit"])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_train_limit_zero_or_negative_is_refused(capsys, npz, flag, value):
    """`--limit 0` used to mean "all the data"; 0 means 0, and 0 examples cannot be trained."""
    status, err = run_cli(capsys, *train_args(npz, flag, value))
    assert_refused(status, err, flag, value)


def test_evaluate_and_experiment_limit_zero_is_refused(capsys, tmp_path):
    status, err = run_cli(capsys, "evaluate", str(tmp_path), "--limit", "0")
    assert_refused(status, err, "--limit")
    status, err = run_cli(capsys, "experiment", "pooling_information", "--limit", "0")
    assert_refused(status, err, "--limit")


def test_load_datasets_refuses_a_zero_limit(npz):
    """The library function behind the flags refuses too (the experiments call it directly)."""
    with pytest.raises(DataError, match="limit must be a positive number"):
        load_datasets(str(npz), limit=0)
    with pytest.raises(DataError, match="test_limit"):
        load_datasets(str(npz), test_limit=-1)
    train, test = load_datasets(str(npz), limit=5, test_limit=4)
    assert (len(train), len(test)) == (5, 4)


def test_checkpoint_every_negative_is_refused(capsys, npz):
    """`--checkpoint-every -1` used to save a checkpoint every step."""
    status, err = run_cli(capsys, *train_args(npz, "--checkpoint-every", "-1"))
    assert_refused(status, err, "--checkpoint-every", "-1")


@pytest.mark.parametrize("lr", ["nan", "inf", "-0.01", "0", "fast"])
def test_learning_rate_must_be_finite_and_positive(capsys, npz, lr):
    """`--lr -0.01` used to run gradient ascent, `--lr nan` to train into NaN."""
    status, err = run_cli(capsys, *train_args(npz, "--lr", lr))
    assert_refused(status, err, "--lr", lr)


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--epochs", "0"),
        ("--batch-size", "0"),
        ("--seeds", "0"),
        ("--seed", "-1"),
        ("--eval-every", "0"),
    ],
)
def test_sizes_and_seeds_out_of_range_are_refused(capsys, npz, flag, value):
    """`--seed -1` used to end in an OverflowError traceback; zero sizes are refused up front."""
    status, err = run_cli(capsys, *train_args(npz, flag, value))
    assert_refused(status, err, flag, value)


# ------------------------------------------------------------------ malformed values


@pytest.mark.parametrize("value", ["abc", "1.5", "0", "nan"])
def test_validation_must_be_test_none_or_a_fraction(capsys, npz, value):
    """`--validation abc` used to end in a ValueError traceback."""
    status, err = run_cli(capsys, *train_args(npz, "--validation", value))
    assert_refused(status, err, "--validation", "'test', 'none' or a fraction")


@pytest.mark.parametrize("value", ["a,b", "1,,2", "-1"])
def test_classes_must_be_class_indices(capsys, npz, value):
    """`--classes a,b` used to end in a ValueError traceback."""
    status, err = run_cli(capsys, *train_args(npz, "--classes", value))
    assert_refused(status, err, "--classes")


# ------------------------------------------------------------------ output directories


@pytest.mark.parametrize(
    "command",
    [
        ["train", "--model", MODEL],
        ["experiment", "pooling_information", "--quick"],
        ["inspect", "maps", MODEL, "--dataset", "noise"],
    ],
    ids=["train", "experiment", "inspect"],
)
def test_out_naming_a_file_is_refused(capsys, tmp_path, command):
    """`--out FILE` used to end in a FileExistsError / NotADirectoryError traceback."""
    file = tmp_path / "results.txt"
    file.write_text("keep me\n")
    for out in (file, file / "below"):
        status, err = run_cli(capsys, *command, "--out", str(out))
        assert_refused(status, err, "--out", "is a file, not a directory")
    assert file.read_text() == "keep me\n"


def test_out_name_too_long_is_one_error(capsys, npz):
    status, err = run_cli(capsys, *train_args(npz, "--out", "x" * 300))
    assert_refused(status, err, "--out", "too long")


@pytest.mark.parametrize("state", ["empty", "missing"])
def test_resume_without_a_run_is_an_error(capsys, npz, tmp_path, state):
    """`--resume` on an empty or misspelt directory used to train from scratch."""
    out = tmp_path / "run"
    if state == "empty":
        out.mkdir()
    status, err = run_cli(capsys, *train_args(npz, "--resume", "--out", str(out)))
    assert_refused(status, err, "--resume", "holds no run")
    assert list(out.iterdir()) == [] if state == "empty" else not out.exists()


def test_resume_without_out_is_an_error(capsys, npz):
    status, err = run_cli(capsys, *train_args(npz, "--resume"))
    assert_refused(status, err, "--resume needs --out")


# ------------------------------------------------------------------ spec files


def test_binary_spec_file_is_one_error(capsys, tmp_path):
    path = tmp_path / "spec.json"
    path.write_bytes(bytes(range(256)) * 8)
    status, err = run_cli(capsys, "summary", str(path))
    assert_refused(status, err, str(path), "not text")


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_deeply_nested_spec_file_is_one_error(capsys, tmp_path, opening):
    """A 60,000-deep JSON spec file used to end in a RecursionError traceback."""
    path = tmp_path / "deep.json"
    depth = 60_000
    path.write_text(opening * depth + "1" + ("]" if opening == "[" else "}") * depth)
    status, err = run_cli(capsys, "summary", str(path))
    assert_refused(status, err, "nested too deeply")
    assert len(err) < 500


# ------------------------------------------------------------------ names from specs


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("fashion_cnn", "fashion_cnn"),
        ("../../x", "x"),
        ("/etc/passwd", "etc_passwd"),
        ("..", "model"),
        ("", "model"),
        (".hidden", "hidden"),
        ("a b/c\\d", "a_b_c_d"),
    ],
)
def test_safe_name_is_one_harmless_path_component(name, expected):
    assert safe_name(name) == expected


def test_safe_name_never_escapes():
    for name in ("../" * 50, "/" + "a" * 500, "\x00..\n/..", "C:\\Windows"):
        cleaned = safe_name(name)
        assert cleaned and "/" not in cleaned and "\\" not in cleaned
        assert not cleaned.startswith(".") and len(cleaned) <= 80
        assert Path("runs", cleaned).resolve().parent == Path("runs").resolve()


def _hostile_spec(name: str) -> str:
    """MODEL as a JSON spec whose "name" is `name`."""
    spec = json.loads(load_spec(MODEL).to_json())
    spec["name"] = name
    return json.dumps(spec)


def _files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_spec_name_cannot_move_inspect_outputs_out_of_runs(capsys, tmp_path, monkeypatch):
    """A spec named `../../x` used to make `cnnjax inspect` write outside runs/ (and a JSON spec
    string longer than a file name used to end in an ENAMETOOLONG traceback)."""
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    spec = _hostile_spec("../../escaped")
    assert main(["inspect", "maps", spec, "--dataset", "noise"]) == 0
    written = _files_under(tmp_path)
    assert written and all((work / "runs" / "inspect") in p.parents for p in written)
    assert (work / "runs" / "inspect" / "escaped" / "feature_maps.png").is_file()
    capsys.readouterr()


def test_spec_name_cannot_move_a_training_run_out_of_runs(capsys, npz, tmp_path, monkeypatch):
    """A spec named `/abs/...` used to make `cnnjax train` write its run there."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    target = tmp_path / "elsewhere"
    spec = _hostile_spec(str(target))
    before = _files_under(tmp_path)
    assert main(["train", "--model", spec, "--dataset", str(npz), "--epochs", "1"]) == 0
    new = _files_under(tmp_path) - before
    assert new and all((work / "runs") in p.parents for p in new)
    assert not target.exists()
    (run_dir,) = (work / "runs").iterdir()
    assert run_dir.name.startswith(safe_name(str(target)) + "-tiny-")
    capsys.readouterr()


# ------------------------------------------------------------------ pipes


def test_closed_pipe_exits_quietly():
    """`cnnjax summary ... | head -1` used to end in a BrokenPipeError traceback."""
    # Far more than a pipe buffer (64 KiB), so the writer meets the closed pipe mid-output.
    argv = [sys.executable, "-m", "cnnjax.cli", "summary", *["fashion_cnn"] * 200]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    status = proc.wait(timeout=60)
    assert first.startswith(b'Model: "fashion_cnn"')
    assert err == ""
    assert status == 141


def test_cnnjax_warnings_print_as_one_line():
    """A damaged checkpoint skipped, a stale lock taken over: one `warning:` line each."""
    import warnings

    from cnnjax.checkpoint import CheckpointWarning
    from cnnjax.cli import _one_line_warning
    from cnnjax.run_lock import RunLockWarning

    for category in (CheckpointWarning, RunLockWarning):
        text = _one_line_warning(category("step 3 is damaged"), category, "x.py", 7)
        assert text == "warning: step 3 is damaged\n"
    other = _one_line_warning(DeprecationWarning("old"), DeprecationWarning, "x.py", 7)
    assert "x.py:7" in other  # other libraries' warnings keep Python's form
    assert warnings.formatwarning is not None


def test_library_errors_name_flags_on_the_command_line():
    """`fit` says `resume=True` / `run_dir=`; the command line says `--resume` / `--out`."""
    from cnnjax.cli import as_flags

    text = "runs/x already holds a run; pass resume=True to continue it, or another run_dir="
    assert as_flags(text) == (
        "runs/x already holds a run; pass --resume to continue it, or another --out"
    )
    assert as_flags("devices=3 is not divisible") == "--devices 3 is not divisible"


def test_eval_every_reaches_the_run(capsys, npz, tmp_path):
    """`--eval-every 2` over 3 epochs validates after epochs 2 and 3 only, and says so."""
    out = tmp_path / "run"
    status, _ = run_cli(
        capsys, *train_args(npz, "--epochs", "3", "--eval-every", "2", "--out", str(out))
    )
    assert status == 0
    assert json.loads((out / "config.json").read_text())["fit"]["eval_every"] == 2
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line.get("val_accuracy") is not None for line in lines] == [False, True, True]
