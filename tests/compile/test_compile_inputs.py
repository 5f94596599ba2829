"""Normalization config and reference windows: the inputs that shape the graph and the motifs."""

import json
from pathlib import Path

import numpy as np
import pytest

from bundle_contract.input_ranges import InputRanges, default_ranges
from bundle_contract.tensors import CHANNEL_ORDER
from compile.errors import CompileError
from compile.normalization import default_normalization, load_input_ranges, load_normalization
from compile.reference_windows import ACTIVITIES, load_windows, synthetic_window, synthetic_windows


def test_shared_model_config_matches_the_built_in_defaults(model_config: Path):
    loaded = load_normalization(model_config)
    defaults = default_normalization()
    np.testing.assert_allclose(loaded.mean, defaults.mean, rtol=1e-6)
    np.testing.assert_allclose(loaded.std, defaults.std, rtol=1e-6)
    assert loaded.to_metadata()["channel_order"] == list(CHANNEL_ORDER)
    assert loaded.source == str(model_config)


@pytest.mark.parametrize(
    ("section", "reason"),
    [
        (None, "no 'normalization' object"),
        ({"mean": [0.0] * 8, "std": [1.0] * 9}, "normalization.mean must be a list of 9 finite numbers"),
        (
            {"mean": [0.0] * 9, "std": [1.0] * 8 + ["1"]},
            "normalization.std must be a list of 9 finite numbers",
        ),
        ({"mean": [0.0] * 9, "std": [1.0] * 10}, "normalization.std must be a list of 9 finite numbers"),
        (
            {"mean": [0.0] * 8 + [float("nan")], "std": [1.0] * 9},
            "normalization.mean must be a list of 9 finite",
        ),
        (
            {"mean": [0.0] * 9, "std": [1.0] * 8 + [True]},
            "normalization.std must be a list of 9 finite numbers",
        ),
        ({"mean": [0.0] * 9, "std": [1.0] * 9, "method": "min_max"}, "'min_max' is not supported"),
        ({"mean": [0.0] * 9, "std": [1.0] * 9, "channel_order": list("abcdefghi")}, "channel_order"),
    ],
)
def test_bad_model_config(tmp_path: Path, section: dict | None, reason: str):
    path = tmp_path / "model_config.json"
    path.write_text(json.dumps({} if section is None else {"normalization": section}))
    with pytest.raises(CompileError, match=reason) as error:
        load_normalization(path)
    assert str(path) in str(error.value)


def test_zero_std_is_rejected(tmp_path: Path):
    path = tmp_path / "model_config.json"
    path.write_text(json.dumps({"normalization": {"mean": [0.0] * 9, "std": [1.0] * 8 + [0.0]}}))
    with pytest.raises(CompileError, match="std must be > 0"):
        load_normalization(path)


def test_model_config_that_is_not_json(tmp_path: Path):
    path = tmp_path / "model_config.json"
    path.write_text("normalization: yes")
    with pytest.raises(CompileError, match="not valid JSON"):
        load_normalization(path)


def test_default_input_ranges_are_twice_the_widest_full_scales(model_config: Path):
    ranges = load_input_ranges(model_config)  # upstream's config has no input_ranges: the defaults
    assert ranges == load_input_ranges(None) == default_ranges()
    assert ranges.high == (313.8128,) * 3 + (69.8132,) * 3 + (9800.0,) * 3
    assert ranges.low == tuple(-h for h in ranges.high)
    assert ranges.describe(3) == "-69.8132..69.8132 rad/s"


def within(ranges: InputRanges, windows: np.ndarray) -> bool:
    return bool(np.all((windows >= ranges.low) & (windows <= ranges.high)))


def test_shipped_samples_and_reference_windows_pass_the_default_ranges(repo_root: Path):
    ranges = default_ranges()
    assert within(ranges, synthetic_windows()[0])
    samples = sorted((repo_root.parent / "shared" / "samples").glob("*.json"))
    if not samples:
        pytest.skip("../shared/samples is absent")
    for sample in samples:
        assert within(ranges, np.array(json.loads(sample.read_text())["x"])), sample.name


def test_input_ranges_from_the_model_config(tmp_path: Path):
    path = tmp_path / "model_config.json"
    custom = {"min": [-20.0] * 3 + [-10.0] * 3 + [-100] * 3, "max": [20.0] * 3 + [10.0] * 3 + [100] * 3}
    path.write_text(
        json.dumps({"normalization": {"mean": [0.0] * 9, "std": [1.0] * 9}, "input_ranges": custom})
    )
    ranges = load_input_ranges(path)
    assert ranges.low[0] == -20.0 and ranges.high[8] == 100.0 and ranges.source == str(path)
    assert ranges.to_metadata()["min"] == custom["min"]


@pytest.mark.parametrize(
    ("section", "reason"),
    [
        ([1, 2], "must be an object"),
        ({"min": [0.0] * 9}, "input_ranges.max must be a list of 9"),
        ({"min": [0.0] * 9, "max": [1.0] * 8}, "input_ranges.max must be a list of 9"),
        ({"min": [0.0] * 9, "max": [1e39] * 9}, "float32"),
        ({"min": [0.0] * 9, "max": [True] * 9}, "input_ranges.max must be a list of 9"),
        ({"min": [1.0] * 9, "max": [1.0] * 9}, "min must be below"),
        ({"min": [0.0] * 9, "max": [1.0] * 9, "channel_order": list("abcdefghi")}, "channel_order"),
    ],
)
def test_bad_input_ranges(tmp_path: Path, section: object, reason: str):
    path = tmp_path / "model_config.json"
    path.write_text(json.dumps({"input_ranges": section}))
    with pytest.raises(CompileError, match=reason) as error:
        load_input_ranges(path)
    assert str(path) in str(error.value)


def test_synthetic_windows_are_deterministic_and_seed_dependent():
    first, labels = synthetic_windows(per_activity=3)
    again, _ = synthetic_windows(per_activity=3)
    other, _ = synthetic_windows(per_activity=3, seed=99)
    assert first.shape == (3 * len(ACTIVITIES), 100, 9) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert labels == [a for a in ACTIVITIES for _ in range(3)]


def _by_activity(per_activity: int = 12) -> dict[str, np.ndarray]:
    windows, labels = synthetic_windows(per_activity=per_activity)
    return {a: windows[[i for i, label in enumerate(labels) if label == a]] for a in ACTIVITIES}


def test_synthetic_activities_are_physically_plausible():
    by = _by_activity()
    accel_norm = {a: np.linalg.norm(w[..., :3], axis=-1) for a, w in by.items()}
    field_norm = np.linalg.norm(by["still"][..., 6:], axis=-1)
    # At rest the accelerometer reads gravity and the gyro nothing; the field keeps Earth's magnitude.
    assert accel_norm["still"].mean() == pytest.approx(9.81, abs=0.1)
    assert np.abs(by["still"][..., 3:6]).max() < 0.05
    assert field_norm.mean() == pytest.approx(np.linalg.norm([22.0, -9.0, 43.0]), rel=0.02)
    # Motion intensity orders as expected.
    spread = {a: accel_norm[a].std(axis=1).mean() for a in ACTIVITIES}
    assert spread["still"] < spread["stationary"] < spread["walking"] < spread["running"]
    # Turning shows a sustained yaw rate; walking does not.
    assert np.abs(by["turning"][..., 5].mean(axis=1)).min() > 0.5
    assert np.abs(by["walking"][..., 5].mean(axis=1)).max() < 0.2


def test_golden_window_is_one_walking_window():
    window = synthetic_window("walking")
    assert window.shape == (100, 9) and window.dtype == np.float32
    np.testing.assert_array_equal(window, synthetic_window("walking"))
    with pytest.raises(CompileError, match="unknown activity 'flying'"):
        synthetic_window("flying")


def test_user_windows_from_npy_and_json(tmp_path: Path, shared_file):
    windows, _ = synthetic_windows(per_activity=2)
    npy = tmp_path / "windows.npy"
    np.save(npy, windows)
    np.testing.assert_array_equal(load_windows(npy), windows)
    listed = tmp_path / "windows.json"
    listed.write_text(json.dumps({"windows": windows[:3].tolist()}))
    np.testing.assert_allclose(load_windows(listed), windows[:3])
    sample = load_windows(shared_file("samples", "realistic_imu_sample.json"))
    assert sample.shape == (1, 100, 9)


def test_user_windows_with_wrong_shape_are_named(shared_file):
    path = shared_file("samples", "bad_105_rows_imu_sample.json")
    with pytest.raises(CompileError, match=r"shape \[1, 105, 9\], expected \[N, 100, 9\]") as error:
        load_windows(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    ("content", "reason"),
    [('{"y": 1}', 'needs a "windows" or "x" key'), ('[[["a"] * 9] * 100]', "not a numeric array")],
)
def test_bad_user_windows(tmp_path: Path, content: str, reason: str):
    path = tmp_path / "windows.json"
    path.write_text(content)
    with pytest.raises(CompileError, match=reason):
        load_windows(path)


def test_non_finite_user_windows(tmp_path: Path):
    windows = np.zeros((2, 100, 9), np.float32)
    windows[1, 5, 3] = np.nan
    path = tmp_path / "nan.npy"
    np.save(path, windows)
    with pytest.raises(CompileError, match="NaN or infinite"):
        load_windows(path)
