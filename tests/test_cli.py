"""The `cnnjax` command: summary in three formats, fast (no JAX import), clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cnnjax import _xla_flags, zoo
from cnnjax.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cnnjax.cli", *args], capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    ("name", "total"),
    [
        ("fashion_cnn", "113,386"),
        ("chollet_mnist", "93,322"),
        ("pool224", "8,861"),
        ("nopool224", "477,341"),
    ],
)
def test_summary_text_prints_the_seed_numbers(capsys, name, total):
    assert main(["summary", name]) == 0
    out = capsys.readouterr().out
    assert f"Total params: {total}" in out
    assert "Receptive field" in out and "Eff. stride" in out


def test_summary_markdown(capsys):
    assert main(["summary", "chollet_mnist", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "| conv2d_2 (Conv(64, 3x3)) | (None, 3, 3, 64) | 36,928 |" in out
    assert "18x18" in out


def test_summary_json_has_the_documented_fields(capsys):
    assert main(["summary", "chollet_mnist", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total_params"] == 93_322
    assert data["trainable_params"] == 93_322 and data["non_trainable_params"] == 0
    for layer in data["layers"]:
        for key in (
            "name",
            "type",
            "output_shape",
            "params",
            "receptive_field",
            "effective_stride",
            "effective_padding",
            "values",
            "macs",
        ):
            assert key in layer
    assert data["layers"][4]["output_shape"] == [3, 3, 64]
    assert data["layers"][4]["receptive_field"] == [18, 18]


def test_batch_norm_counts_as_keras(capsys):
    assert main(["summary", "in28x28x1-conv8x3-bn-flatten-dense10", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["layers"][1]["params"] == 32
    assert data["non_trainable_params"] == 16


def test_every_zoo_model_in_every_format(capsys):
    for name in zoo.ZOO:
        for fmt in ("text", "markdown", "json"):
            assert main(["summary", name, "--format", fmt]) == 0
    assert capsys.readouterr().out


def test_input_override(capsys):
    assert main(["summary", "fashion_cnn", "--input", "32x32x3", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["input_shape"] == [32, 32, 3]


def test_bad_spec_is_one_error_line_and_status_2():
    result = run("summary", "conv32x3-pool2-pool2-pool2-pool2-pool2-flatten-dense10")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: layer 5 (MaxPool(2x2)): window 2x2 is larger than its input 1x1x32"
    ]
    assert "Traceback" not in result.stderr


def test_summary_never_imports_jax():
    code = (
        "import sys; from cnnjax.cli import main; main(['summary', 'vgg16']); "
        "assert 'jax' not in sys.modules, 'jax imported'; print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


def test_spec_command_converts_text_to_json_and_back(capsys):
    assert main(["spec", "conv32x3-pool2-flatten-dense10", "--format", "json"]) == 0
    as_json = capsys.readouterr().out
    assert main(["spec", as_json, "--format", "text"]) == 0
    assert capsys.readouterr().out.strip() == "in28x28x1-conv32x3-pool2-flatten-dense10"


def _environment_after(code: str, xla_flags: str) -> str:
    """XLA_FLAGS as seen by `code` run in a fresh interpreter started with XLA_FLAGS set."""
    env = {k: v for k, v in os.environ.items() if k != "CNNJAX_KEEP_XLA_FLAGS"}
    env["XLA_FLAGS"] = xla_flags
    result = subprocess.run(
        [sys.executable, "-c", code + "; import os; print(os.environ['XLA_FLAGS'])"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.skipif(_xla_flags._jaxlib_version() < _xla_flags.MIN_JAXLIB, reason="old jaxlib")
def test_import_cnnjax_adds_the_flags_only_before_jax_starts():
    flags = "--xla_force_host_platform_device_count=2"
    expected = " ".join([flags, *_xla_flags.FLAGS])
    assert _environment_after("import jax; import cnnjax", flags) == expected
    started = "import jax; jax.devices(); import cnnjax"
    assert _environment_after(started, flags) == flags  # too late to matter: left alone
    kept = "import os; os.environ['CNNJAX_KEEP_XLA_FLAGS'] = '1'; import cnnjax"
    assert _environment_after(kept, flags) == flags


@pytest.mark.skipif(_xla_flags._jaxlib_version() < _xla_flags.MIN_JAXLIB, reason="old jaxlib")
def test_the_command_and_configure_xla_add_the_flags():
    flags = "--xla_force_host_platform_device_count=2"
    expected = " ".join([flags, *_xla_flags.FLAGS])
    assert _environment_after("import cnnjax; cnnjax.configure_xla()", flags) == expected
    after_main = _environment_after("from cnnjax.cli import main; main(['zoo'])", flags)
    assert after_main == expected


def test_the_command_splits_the_cpu_into_a_device_per_core(monkeypatch, capsys):
    """`cnnjax` adds a CPU device count (one per core, or CNNJAX_CPU_DEVICES) unless one was
    chosen; `import cnnjax` and a plain `configure_xla()` do not; a bad count is one error."""
    for name in ("XLA_FLAGS", "CNNJAX_CPU_DEVICES", "JAX_NUM_CPU_DEVICES", "CNNJAX_KEEP_XLA_FLAGS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(_xla_flags, "usable_cores", lambda: 4)
    count = _xla_flags.CPU_DEVICES_FLAG
    _xla_flags.apply()
    assert count not in os.environ.get("XLA_FLAGS", "")
    _xla_flags.apply("cores")
    assert f"{count}=4" in os.environ["XLA_FLAGS"].split()
    monkeypatch.setenv("XLA_FLAGS", f"{count}=8")
    _xla_flags.apply("cores")
    assert os.environ["XLA_FLAGS"].count(count) == 1  # the user's count stays
    monkeypatch.delenv("XLA_FLAGS")
    monkeypatch.setenv("JAX_NUM_CPU_DEVICES", "2")
    _xla_flags.apply("cores")
    assert count not in os.environ["XLA_FLAGS"]
    monkeypatch.delenv("JAX_NUM_CPU_DEVICES")
    for value, want in (("1", None), ("3", f"{count}=3")):
        monkeypatch.delenv("XLA_FLAGS", raising=False)
        monkeypatch.setenv("CNNJAX_CPU_DEVICES", value)
        _xla_flags.apply("cores")
        flags = os.environ.get("XLA_FLAGS", "").split()
        assert (want in flags) if want else not any(f.startswith(count) for f in flags)
    monkeypatch.setenv("CNNJAX_CPU_DEVICES", "two")
    assert main(["zoo"]) == 2
    assert (
        "error: CNNJAX_CPU_DEVICES must be a positive count, got 'two'" in capsys.readouterr().err
    )


def test_the_command_runs_on_the_split_cpu():
    """In a fresh process the command's JAX sees the devices it asked for."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "CNNJAX_KEEP_XLA_FLAGS")}
    env["CNNJAX_CPU_DEVICES"] = "3"
    code = "from cnnjax.cli import main; main(['zoo']); import jax; print(jax.device_count())"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip().splitlines()[-1] == "3"
