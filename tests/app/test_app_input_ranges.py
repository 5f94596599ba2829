"""Inside the bundle's physical input ranges no finite window may give a non-finite output, on either
backend (the HailoRT one against the hailo_platform TEST DOUBLE in tests/doubles, not Hailo software);
outside them the window is the client's error, never a backend failure."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from app_server import DOUBLES

from app.backends.base import Backend, BackendError
from app.backends.selection import choose_backend, create_backend
from app.config import AppConfig
from app.errors import ApiError
from app.service import bundle_ranges
from app.validation import window_from
from bundle_contract.input_ranges import default_ranges
from bundle_contract.tensors import CHANNEL_ORDER


def edge_windows(low: np.ndarray, high: np.ndarray) -> list[np.ndarray]:
    rng = np.random.default_rng(12)
    rows = np.arange(100)[:, None]
    windows = [np.tile(high, (100, 1)), np.tile(low, (100, 1))]
    windows += [np.where(rows % period < period // 2, high, low) for period in (2, 4, 10, 50)]  # steps
    windows += [np.where(rng.random((100, 9)) < 0.5, low, high) for _ in range(40)]  # random corners
    for channel in range(9):  # one channel at an edge, the others at rest
        for edge in (low, high):
            window = np.zeros((100, 9))
            window[:, 2] = 9.81
            window[:, channel] = edge[channel]
            windows.append(window)
    return windows  # float64, as a client's decimal numbers are before the app rounds them to float32


def backend_for(bundle: Path, name: str) -> Backend:
    metadata = json.loads((bundle / "model_metadata.json").read_text())
    config = AppConfig(bundle_dir=bundle, backend=name)
    backend = create_backend(choose_backend(config, metadata), config, metadata)
    backend.load()
    return backend


def assert_finite_on_every_edge(bundle: Path, backend: Backend) -> None:
    metadata = json.loads((bundle / "model_metadata.json").read_text())
    ranges = bundle_ranges(metadata)
    windows = edge_windows(np.array(ranges.low), np.array(ranges.high))
    for window in windows:
        accepted = window_from(window.tolist(), ranges)
        np.testing.assert_array_equal(accepted, window.astype(np.float32))
        result = backend.infer(accepted)  # checked_inference raises non_finite_output otherwise
        assert np.isfinite(result.latent).all() and np.isfinite(result.motif_scores).all()


@pytest.mark.parametrize(
    "bundle_name", ["default_bundle", pytest.param("trained_bundle", marks=pytest.mark.shared)]
)
def test_onnxruntime_is_finite_on_the_range_edges(bundle_name: str, request: pytest.FixtureRequest) -> None:
    bundle = request.getfixturevalue(bundle_name)
    assert_finite_on_every_edge(bundle, backend_for(bundle, "onnxruntime"))


@pytest.fixture
def hailo_double(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.syspath_prepend(str(DOUBLES))
    sys.modules.pop("hailo_platform", None)
    assert importlib.import_module("hailo_platform").IS_TEST_DOUBLE
    yield
    sys.modules.pop("hailo_platform", None)


def test_hailort_is_finite_on_the_range_edges(hailo_double: None, hailo_bundle: Path) -> None:
    backend = backend_for(hailo_bundle, "hailort")
    assert backend.name == "hailort"
    try:
        assert_finite_on_every_edge(hailo_bundle, backend)
    finally:
        backend.close()


def test_the_model_does_overflow_far_outside_the_ranges(default_bundle: Path) -> None:
    """Control: the windows the ranges refuse are the ones that break the model (issue 12's 503s)."""
    backend = backend_for(default_bundle, "onnxruntime")
    window = np.full((100, 9), 3e38, np.float32)
    with pytest.raises(BackendError) as caught:
        backend.infer(window)
    assert caught.value.kind == "non_finite_output"
    with pytest.raises(ApiError) as refused:
        window_from(window.astype(float).tolist(), default_ranges())
    assert refused.value.status == 422 and refused.value.code == "out_of_range"


@pytest.mark.parametrize("channel", range(9))
def test_just_outside_names_channel_row_and_range(channel: int) -> None:
    ranges = default_ranges()
    window = np.zeros((100, 9))
    window[42, channel] = ranges.high[channel] * 1.001
    with pytest.raises(ApiError) as caught:
        window_from(window.tolist(), ranges)
    assert caught.value.status == 422 and caught.value.code == "out_of_range"
    message = caught.value.message
    assert f"x[42][{channel}]" in message and f"row 42, channel {CHANNEL_ORDER[channel]}" in message
    assert ranges.describe(channel) in message


def test_a_bundle_without_recorded_ranges_gets_the_defaults_and_a_bad_one_is_refused() -> None:
    assert bundle_ranges({}) == default_ranges()
    with pytest.raises(BackendError) as caught:
        bundle_ranges({"input_ranges": {"min": [0.0] * 9, "max": [0.0] * 9}})
    assert caught.value.kind == "bad_model"
