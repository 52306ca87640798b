"""One entry point for every way of naming a spec: `load_spec` (pure Python).

It sits above `cnnjax.spec`, `cnnjax.grammar` and `cnnjax.zoo` because it needs all three (a
zoo name, a JSON file or string, a text form); keeping it here lets those modules import
one way only (spec <- grammar, spec <- zoo) with no cycle between spec and zoo.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cnnjax import zoo
from cnnjax.grammar import from_text
from cnnjax.spec import NetSpec, SpecError, from_dict, from_json


def load_spec(
    source: str | NetSpec | Mapping[str, Any], input_shape: Sequence[int] | None = None
) -> NetSpec:
    """A spec from a zoo name, a JSON file path, a JSON string, a text form, or a dict."""
    if isinstance(source, NetSpec):
        spec = source
    elif isinstance(source, Mapping):
        spec = from_dict(source)
    else:
        spec = _load_string(str(source))
    if input_shape is not None and tuple(input_shape) != spec.input_shape:
        spec = spec.with_input(input_shape)
    return spec


def _load_string(text: str) -> NetSpec:
    stripped = text.strip()
    if stripped in zoo.ZOO:
        return zoo.get(stripped)
    if stripped.startswith(("{", "[")):
        return from_json(stripped)
    if stripped.endswith(".json") or ("/" in stripped and "(" not in stripped):
        path = Path(stripped)
        if not path.is_file():
            raise SpecError(f"spec file not found: {path}")
        return from_json(path.read_text())
    try:
        return from_text(stripped)
    except SpecError as err:
        if "-" in stripped or "(" in stripped:  # a text form with a bad layer: the error says which
            raise
        close = [n for n in zoo.ZOO if n.startswith(stripped[:4])]
        hint = f"did you mean {close[0]}?" if close else f"zoo names: {', '.join(zoo.ZOO)}"
        shown = stripped if len(stripped) <= 80 else stripped[:77] + "..."
        reason = str(err) if len(str(err)) <= 200 else str(err)[:197] + "..."
        raise SpecError(
            f"{shown!r} is neither a zoo name nor a valid text form ({reason}); {hint}"
        ) from None
