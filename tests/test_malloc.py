"""The restart under tcmalloc: when it happens, that it keeps the arguments, that it never loops."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cnnjax import _malloc, cli

LINUX = sys.platform.startswith("linux")
# `make setup` installs Debian's libtcmalloc-minimal4 wherever apt exists.
INSTALLED = _malloc.tcmalloc_path() is not None
REQUIRE = pytest.mark.skipif(
    not (LINUX and (INSTALLED or shutil.which("apt-get"))),
    reason="tcmalloc is installed by `make setup` only where apt exists",
)
PROBE = (
    "import sys, cnnjax; cnnjax.restart_with_tcmalloc(); "
    "from cnnjax import _malloc; print(_malloc.active(), sys.argv[1:], flush=True)"
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNNJAX_MALLOC")}
    env.pop("CNNJAX_TCMALLOC", None)
    env.pop("LD_PRELOAD", None)
    return {**env, **extra}


def _probe(*args: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env=_env(**env),
        check=True,
        timeout=60,
    )
    return result.stdout


@REQUIRE
def test_setup_installed_tcmalloc_and_a_script_restarts_under_it_with_its_arguments():
    assert INSTALLED, "libtcmalloc-minimal4 missing: run `make setup`"
    # printed once: the restart replaced the first process before it printed anything
    assert _probe("a", "b c") == "tcmalloc ['a', 'b c']\n"


@REQUIRE
def test_cnnjax_malloc_system_keeps_the_system_malloc():
    assert _probe("x", CNNJAX_MALLOC="system") == "system ['x']\n"


def test_a_missing_library_means_no_restart_and_no_error(tmp_path: Path):
    missing = str(tmp_path / "libtcmalloc_minimal.so.4")
    assert _probe("x", CNNJAX_TCMALLOC=missing) == "system ['x']\n"


def test_a_library_that_does_not_load_is_tried_once(tmp_path: Path):
    bogus = tmp_path / "libtcmalloc_minimal.so.4"
    bogus.write_text("not a shared library")  # ld.so ignores it, with a message; no loop
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "x"],
        capture_output=True,
        text=True,
        env=_env(CNNJAX_TCMALLOC=str(bogus)),
        timeout=60,
        check=True,
    )
    assert result.stdout == "system ['x']\n"


def test_tcmalloc_path_honours_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    lib = tmp_path / "libtcmalloc.so"
    monkeypatch.setenv(_malloc.PATH_VAR, str(lib))
    assert _malloc.tcmalloc_path() is None
    lib.write_bytes(b"")
    assert _malloc.tcmalloc_path() == str(lib)


@pytest.mark.parametrize(
    ("argv", "restarts"),
    [(["train", "--help"], True), (["experiment"], True), (["summary", "x"], False), ([], False)],
)
def test_the_command_restarts_only_subcommands_that_run_jax(
    argv: list[str], restarts: bool, monkeypatch: pytest.MonkeyPatch
):
    calls: list[str] = []
    monkeypatch.setattr(_malloc, "restart_with_tcmalloc", lambda: calls.append("restart"))
    monkeypatch.setattr(cli, "main", lambda: 0)
    monkeypatch.setattr(sys, "argv", ["cnnjax", *argv])
    assert cli.run() == 0
    assert calls == (["restart"] if restarts else [])


@REQUIRE
def test_a_training_run_records_the_malloc_it_ran_on(tmp_path: Path):
    npz = tmp_path / "tiny.npz"
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(
        npz,
        x_train=rng.random((64, 8, 8, 1), np.float32),
        y_train=rng.integers(0, 2, 64),
        x_test=rng.random((32, 8, 8, 1), np.float32),
        y_test=rng.integers(0, 2, 32),
    )
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "cnnjax.cli",
        "train",
        "--model",
        "in8x8x1-conv2x3-flatten-dense2",
    ]
    command += ["--dataset", str(npz), "--epochs", "1", "--batch-size", "16", "--out", str(out)]
    subprocess.run(command, check=True, capture_output=True, env=_env(), timeout=300)
    assert json.loads((out / "config.json").read_text())["versions"]["malloc"] == "tcmalloc"
