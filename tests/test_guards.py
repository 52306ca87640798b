"""Resource guards: an impossible run is refused with the numbers before anything is allocated,
and a process that cannot reach its coordinator fails in time with one message."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from cnnjax.errors import ParallelError, TrainingError
from cnnjax.grammar import from_text
from cnnjax.parallel import wait_for_coordinator
from cnnjax.train import FitConfig, fit
from cnnjax.train.memory import check_fits, model_counts
from cnnjax.train.model import as_model


def test_a_billion_filter_conv_is_refused_before_allocating(tmp_path):
    """The audit's hang: 10^9 filters sat at 0% CPU forever at the first host sync."""
    spec = from_text("conv1000000000x3-flatten-dense10")
    x = np.zeros((64, 28, 28, 1), np.uint8)
    y = np.zeros(64, np.int64)
    start = time.perf_counter()
    with pytest.raises(TrainingError, match=r"needs about .* GiB but the device holds"):
        fit(spec, (x, y), config=FitConfig(epochs=1), run_dir=tmp_path / "run", progress=False)
    assert time.perf_counter() - start < 30
    assert not (tmp_path / "run").exists()  # nothing written


def test_the_estimate_counts_state_activations_and_data():
    model = as_model(from_text("conv8x3-flatten-dense10"))
    params, values = model_counts(model)
    assert params == 8 * 9 + 8 + 26 * 26 * 8 * 10 + 10
    assert values == 26 * 26 * 8 * 2 + 10  # conv, flatten, dense outputs
    estimate = check_fits(model, batch_size=32, seeds=3, data_bytes=1000, budget=10**12)
    assert estimate == {
        "state": params * 4 * 4 * 3,
        "activations": values * 32 * 4 * 2 * 3,
        "data": 1000,
    }
    with pytest.raises(TrainingError, match="3 seed"):
        check_fits(
            model, batch_size=32, seeds=3, data_bytes=1000, budget=sum(estimate.values()) - 1
        )


def test_an_unreachable_coordinator_fails_within_its_timeout():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.perf_counter()
    with pytest.raises(
        ParallelError, match=rf"cannot reach the coordinator 127.0.0.1:{port} within 1 s"
    ):
        wait_for_coordinator(f"127.0.0.1:{port}", 1)
    assert time.perf_counter() - start < 10


def test_a_listening_coordinator_is_reached():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        wait_for_coordinator(f"127.0.0.1:{s.getsockname()[1]}", 5)


@pytest.mark.parametrize("address", ["localhost", "host:port", ":123"])
def test_a_malformed_coordinator_address_is_one_error(address):
    with pytest.raises(ParallelError, match="HOST:PORT"):
        wait_for_coordinator(address, 1)
