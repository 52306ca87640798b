"""Fuzzing the command line: random argument lists for the fast subcommands end in exit 0 with
output or exit 2 with one `error:` line - never a traceback, never another status."""

from __future__ import annotations

import contextlib
import io
import json

from hypothesis import given
from hypothesis import strategies as st

from cnnjax.cli import main

TOKENS = st.sampled_from(
    [
        "fashion_cnn",
        "resnet_small",
        "conv32x3-pool2-flatten-dense10",
        "conv8x3s2same-res(conv8x3p1|)-gap-dense10",
        "cat(conv2x1|conv2x3)",
        "pool9",
        "dense10",
        "--input",
        "28x28x1",
        "?x?x3",
        "0x1x1",
        "-1x2x3",
        "--format",
        "json",
        "markdown",
        "yaml",
        "--kwargs",
        "{}",
        "{bad",
        "tests/flax_models.py:CNN",
        "tests/flax_models.py:Nope",
        "nosuch.module:X",
        "/nonexistent/spec.json",
        "--layout",
        "NCHW",
        "",
        "-",
        "--",
        "\x00",
        "é",
    ]
)
COMMANDS = st.sampled_from([["summary"], ["spec"], ["zoo"], ["data", "info"], ["evaluate"]])
JSON_SPECS = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 300) | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
).map(
    lambda v: json.dumps(
        {"input_shape": [8, 8, 1], "layers": [v] if not isinstance(v, list) else v}
    )
)


def _run(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse: --help (0) or a usage error (2)
            code = int(exit_.code or 0)
    return code, err.getvalue()


def _check(argv: list[str]) -> None:
    code, err = _run(argv)
    assert "Traceback" not in err, (argv, err)
    assert code in (0, 1, 2), (argv, code, err)  # 1: `cnnjax` alone prints its help
    if code == 2:
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, (argv, err)


@given(COMMANDS, st.lists(TOKENS, max_size=6))
def test_random_arguments_end_in_a_result_or_one_error(command, tokens):
    _check([*command, *tokens])


@given(JSON_SPECS)
def test_random_json_specs_on_the_command_line(text):
    _check(["summary", text])
    _check(["spec", text, "--format", "json"])
