"""Fuzzing the inputs cnnjax reads: spec JSON, IDX and .npz bytes, and damaged run directories.

The invariant, whatever the input: a correct result, or one clear error of cnnjax's own
(SpecError, DataError, RunDirError) — never another exception, and a damaged run directory
never changes an earlier checkpoint. The 'ci' hypothesis profile keeps the default run short;
`HYPOTHESIS_PROFILE=thorough` (make test-slow) tries many more inputs.
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import math
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnnjax import checkpoint as ckpt
from cnnjax.data import ArrayDataset, DataError
from cnnjax.data.idx import read_idx, read_idx_pair
from cnnjax.data.npz import load_npz
from cnnjax.errors import RunDirError
from cnnjax.spec import NetSpec, SpecError, from_dict, from_json
from tests.strategies import graph_specs, valid_specs
from tests.test_checkpoint import CONFIG, SPEC, Run, leaves, tiny_data, tree_bytes

# ------------------------------------------------------------------------------ spec JSON

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

KEYS = ["kind", "filters", "kernel", "strides", "padding", "dilation", "activation", "units",
        "rate", "window", "epsilon", "momentum", "body", "branches", "shortcut", "name",
        "input_shape", "layers", "use_bias", "depth_multiplier"]  # fmt: skip


def _paths(tree: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a JSON tree (dict keys and list indices)."""
    out = [prefix]
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(tree: Any, path: tuple, op: str, value: Any, key: str) -> Any:
    tree = copy.deepcopy(tree)
    if not path:
        return value if op != "add" or not isinstance(tree, dict) else {**tree, key: value}
    parent = tree
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if op == "replace":
        parent[last] = value
    elif op == "delete":
        del parent[last]
    elif op == "add" and isinstance(parent[last], dict):
        parent[last][key] = value
    elif op == "add" and isinstance(parent[last], list):
        parent[last].append(value)
    else:
        parent[last] = value
    return tree


def _spec_or_spec_error(load: Any, data: Any) -> None:
    try:
        spec = load(data)
    except SpecError as e:
        assert str(e).strip(), "an empty error message"
        return
    assert isinstance(spec, NetSpec)


@given(st.one_of(valid_specs(), graph_specs()))
def test_valid_specs_round_trip_through_json(spec):
    assert from_json(json.dumps(spec.to_dict())) == spec


@given(
    st.one_of(valid_specs(), graph_specs()),
    st.data(),
    st.sampled_from(["replace", "delete", "add"]),
    json_values,
    st.sampled_from(KEYS),
)
def test_mutated_spec_json_gives_a_spec_or_spec_error(spec, data, op, value, key):
    tree = spec.to_dict()
    path = data.draw(st.sampled_from(_paths(tree)))
    mutated = _mutate(tree, path, op, value, key)
    _spec_or_spec_error(from_dict, mutated)
    _spec_or_spec_error(from_json, json.dumps(mutated, allow_nan=True))


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_arbitrary_text_gives_a_spec_or_spec_error(text):
    _spec_or_spec_error(from_json, text)


@given(json_values)
def test_arbitrary_json_gives_a_spec_or_spec_error(value):
    _spec_or_spec_error(from_dict, value)
    _spec_or_spec_error(from_json, json.dumps(value, allow_nan=True))


@pytest.mark.parametrize("text", ["[" * 60_000, '{"a":' * 60_000, '{"layers": ' + "[" * 60_000])
def test_deeply_nested_spec_json_is_a_spec_error(text):
    with pytest.raises(SpecError):
        from_json(text)


def test_deeply_nested_blocks_are_a_spec_or_spec_error():
    """Nesting that json.loads accepts but that is deep in blocks (residual in residual ...)."""
    layer: dict[str, Any] = {"type": "conv", "filters": 1, "kernel": 1}
    for _ in range(300):
        layer = {"type": "residual", "main": [layer], "shortcut": []}
    _spec_or_spec_error(from_dict, {"input_shape": [4, 4, 1], "layers": [layer]})


# ---------------------------------------------------------------------------- IDX bytes


@st.composite
def idx_bytes(draw) -> bytes:
    """IDX files near the valid ones: right or wrong magic, dims, payload length, gzip."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=64))
    ndim = draw(st.sampled_from([1, 3, 3, 2, 0, 255]))
    code = draw(st.sampled_from([0x08, 0x08, 0x08, 0x09, 0x0D, 0x00]))
    dims = draw(
        st.lists(
            st.one_of(st.integers(0, 6), st.sampled_from([2**31, 2**32 - 1])),
            min_size=max(ndim, 0) if ndim < 8 else 0,
            max_size=ndim if ndim < 8 else 3,
        )
    )
    header = bytes([0, 0, code, ndim]) + b"".join(d.to_bytes(4, "big") for d in dims)
    size = math.prod(dims) if dims and max(dims) < 2**20 else 8
    payload = draw(st.binary(min_size=0, max_size=8)) if draw(st.booleans()) else bytes(size)
    raw = header + payload
    cut = draw(st.one_of(st.none(), st.integers(0, len(raw))))
    raw = raw if cut is None else raw[:cut]
    if draw(st.booleans()):
        raw = gzip.compress(raw, mtime=0)
        if draw(st.booleans()):
            raw = raw[: draw(st.integers(0, len(raw)))]
    return raw


@given(idx_bytes(), st.sampled_from([1, 3]))
def test_idx_bytes_load_or_data_error(raw, ndim):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f-idx-ubyte"
        path.write_bytes(raw)
        try:
            array = read_idx(path, ndim=ndim)
        except DataError as e:
            assert str(path) in str(e)
            return
        assert array.dtype == np.uint8 and array.ndim == ndim


@given(idx_bytes(), idx_bytes())
def test_idx_pairs_load_or_data_error(images, labels):
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "i").write_bytes(images)
        (Path(d) / "l").write_bytes(labels)
        try:
            x, y = read_idx_pair(Path(d) / "i", Path(d) / "l", num_classes=3)
        except DataError:
            return
        assert x.ndim == 4 and len(x) == len(y) > 0 and y.max() < 3


# ---------------------------------------------------------------------------- npz bytes

DTYPES = ["uint8", "int8", "int64", "float16", "float32", "float64", "bool", "complex64",
          "object", "U3", "V4"]  # fmt: skip


@st.composite
def npz_bytes(draw) -> bytes:
    kind = draw(st.sampled_from(["random", "arrays", "arrays", "damaged"]))
    if kind == "random":
        return draw(st.binary(max_size=256))
    arrays = {}
    for key in draw(st.permutations(["x_train", "y_train", "x_test", "y_test"])):
        if draw(st.integers(0, 9)) == 0:
            continue  # a missing key
        dtype = draw(st.sampled_from(DTYPES)) if draw(st.booleans()) else "uint8"
        is_x = key.startswith("x")
        shape = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=5)))
        if draw(st.booleans()):
            shape = (3, 4, 4) if is_x else (3,)
        if dtype == "object":
            arr = np.empty(shape, object)
        else:
            fill = draw(st.sampled_from([0, 1, 2, 255, -1, 1.5, float("nan"), float("inf")]))
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                try:
                    arr = np.full(shape, fill).astype(dtype)
                except (ValueError, OverflowError, TypeError):
                    arr = np.zeros(shape, dtype)
        arrays[key] = arr
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    raw = buf.getvalue()
    if kind == "damaged" and raw:
        at = draw(st.integers(0, len(raw) - 1))
        flipped = raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1 :]
        raw = raw[:at] if draw(st.booleans()) else flipped
    return raw


@given(npz_bytes())
def test_npz_bytes_load_or_data_error(raw):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "data.npz"
        path.write_bytes(raw)
        try:
            train, test = load_npz(path)
        except DataError as e:
            assert "\n" not in str(e) and str(e).strip()
            return
        for ds in (train, test):
            assert isinstance(ds, ArrayDataset) and len(ds) > 0
            assert ds.labels.dtype == np.int32 and ds.labels.max() < ds.num_classes
            if ds.images.dtype == np.float32:
                assert np.isfinite(ds.images).all()


def test_npz_fuzz_reaches_zip_errors():
    """The generator above does produce damaged zips (a sanity check of the fuzzer itself)."""
    buf = io.BytesIO()
    np.savez(buf, x_train=np.zeros((2, 2, 2)))
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(buf.getvalue()[:40]))


# ------------------------------------------------------------------- run-directory damage


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    return Run(tmp_path_factory.mktemp("fuzzrun"))


OPS = ["truncate", "delete", "garbage", "flip", "empty"]


def _apply(path: Path, op: str, where: float, seed: int) -> None:
    data = path.read_bytes()
    at = int(where * len(data))
    if op == "truncate":
        path.write_bytes(data[:at])
    elif op == "delete":
        path.unlink()
    elif op == "empty":
        path.write_bytes(b"")
    elif op == "garbage":
        path.write_bytes(np.random.default_rng(seed).bytes(max(len(data), 1)))
    elif data:
        flipped = bytearray(data)
        flipped[min(at, len(data) - 1)] ^= 1 << (seed % 8)
        path.write_bytes(bytes(flipped))


damages = st.lists(
    st.tuples(st.integers(0, 10**6), st.sampled_from(OPS), st.floats(0, 1), st.integers(0, 99)),
    min_size=1,
    max_size=3,
)


def _damage(run: Run, target: Path, plan: list) -> set[str]:
    names = sorted(run.bytes)
    touched = set()
    for index, op, where, seed in plan:
        name = names[index % len(names)]
        if (target / name).exists():
            _apply(target / name, op, where, seed)
            touched.add(name)
    return touched


def _one_line_warnings(caught: list) -> None:
    for w in caught:
        if issubclass(w.category, ckpt.CheckpointWarning | ckpt.RunLockWarning):
            assert "\n" not in str(w.message)


@given(damages)
def test_damaged_run_restores_an_intact_checkpoint_or_run_dir_error(run, plan):
    with tempfile.TemporaryDirectory() as d:
        target = run.copy(Path(d))
        touched = _damage(run, target, plan)
        before = tree_bytes(target)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for read in (ckpt.read_config, ckpt.read_metrics):
                try:
                    read(target)
                except RunDirError as e:
                    assert str(e).strip()
            try:
                step, state = ckpt.restore_usable(target, run.template)
            except RunDirError:
                step = None
        _one_line_warnings(caught)
        if step is not None:
            np.testing.assert_equal(leaves(state), run.states[step])
        newest_intact = not any(n.startswith("checkpoints/6/") for n in touched)
        if newest_intact:
            assert step == 6  # an intact newest checkpoint is never passed over
        assert tree_bytes(target) == before  # reading changes nothing, deletes nothing


@pytest.mark.slow
@given(damages)
def test_damaged_run_resumes_bit_identically_or_run_dir_error(run, plan):
    """Resume after the damage: the uninterrupted run's final state, or one RunDirError; the
    checkpoints that were not damaged stay byte for byte (damaged ones are moved, not lost)."""
    from cnnjax.train import fit

    with tempfile.TemporaryDirectory() as d:
        target = run.copy(Path(d))
        touched = _damage(run, target, plan)
        before = tree_bytes(target)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = fit(SPEC, tiny_data(), config=CONFIG, run_dir=target, resume=True)
            except RunDirError:
                result = None
        _one_line_warnings(caught)
        after = tree_bytes(target)
        if result is not None:
            np.testing.assert_equal(leaves(result.state), leaves(run.result.state))
        else:
            assert after == before
        for name, data in run.bytes.items():
            if name.startswith("checkpoints/3/") and not any(
                t.startswith("checkpoints/3/") for t in touched
            ):
                assert after[name] == data
        kept = {n.removeprefix(f"{ckpt.DAMAGED}/"): v for n, v in after.items()}
        for name in before:  # a damaged checkpoint is moved aside whole, never deleted
            if name.startswith("checkpoints/") and name not in after:
                assert kept.get(name.removeprefix("checkpoints/")) == before[name]
        assert not (target / ckpt.LOCK_NAME).exists()


def test_fuzz_helpers_damage_what_they_say(run):
    with tempfile.TemporaryDirectory() as d:
        target = run.copy(Path(d))
        touched = _damage(run, target, [(0, "delete", 0.0, 0)])
        name = sorted(run.bytes)[0]
        assert touched == {name} and not (target / name).exists()
        shutil.rmtree(target)
