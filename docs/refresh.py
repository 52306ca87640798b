"""Re-run every fast `$ cnnjax ...` console block in README.md and docs/ and paste its output.

A block is a fenced `console` code block whose first line is `$ cnnjax summary|zoo|spec ...`;
everything after that line is the command's output. `python docs/refresh.py` rewrites the
outputs; `python docs/refresh.py --check` (and tests/test_docs.py) fails if any is stale, so
every number in those blocks comes from the command written above it.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAST = ("summary", "zoo", "spec")
BLOCK = re.compile(r"```console\n\$ (cnnjax [^\n]*)\n(.*?)```", re.S)


def files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def run(command: str) -> str:
    from cnnjax.cli import main

    args = shlex.split(command)[1:]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(args)
    return out.getvalue()


def blocks(text: str):
    for m in BLOCK.finditer(text):
        args = shlex.split(m.group(1))
        if len(args) > 1 and args[1] in FAST:
            yield m


def refresh(check: bool = False) -> list[str]:
    stale = []
    for path in files():
        text = path.read_text()
        new = text
        for m in reversed(list(blocks(text))):
            output = run(m.group(1))
            if output != m.group(2):
                stale.append(f"{path.relative_to(ROOT)}: $ {m.group(1)}")
                new = new[: m.start(2)] + output + new[m.end(2) :]
        if new != text and not check:
            path.write_text(new)
    return stale


if __name__ == "__main__":
    check = "--check" in sys.argv
    stale = refresh(check)
    for line in stale:
        print(("stale: " if check else "refreshed: ") + line)
    sys.exit(1 if check and stale else 0)
