"""Every `$ cnnjax summary|zoo|spec` block in README.md and docs/ shows that command's real output."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _refresh_module():
    spec = importlib.util.spec_from_file_location("docs_refresh", ROOT / "docs" / "refresh.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_console_blocks_are_the_commands_real_output():
    refresh = _refresh_module()
    found = sum(len(list(refresh.blocks(p.read_text()))) for p in refresh.files())
    assert found >= 5, "the docs should show real command output"
    assert refresh.refresh(check=True) == [], "run: python docs/refresh.py"
