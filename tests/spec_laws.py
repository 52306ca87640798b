"""Round-trip laws every spec keeps, chain or graph: shared by test_spec and test_graph_spec."""

from __future__ import annotations

import json

from hypothesis import assume

from cnnjax.grammar import from_text
from cnnjax.spec import NetSpec, SpecError, from_dict, from_json


def assert_json_round_trip(spec: NetSpec) -> None:
    """JSON text and the plain dict form both give the spec back."""
    assert from_json(spec.to_json()) == spec
    assert from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def assert_text_round_trip(spec: NetSpec) -> None:
    """The text form gives the spec back; specs without one (unequal explicit padding or
    strides: JSON only) are rejected as examples, not passed."""
    try:
        text = spec.to_text()
    except SpecError:
        text = None
    assume(text is not None)
    assert from_text(text) == spec
