"""Per-channel z-score of raw IMU values: inside the served ONNX graph (EdgeInfer sends raw sensor values) and
on the host in front of the HEF, which is compiled for z-scored input. Its metadata form and rules are
bundle_contract.normalization's; this module reads a model config and applies it."""

import json
from pathlib import Path

import numpy as np

from bundle_contract.input_ranges import InputRanges, RangesError, default_ranges, ranges_from
from bundle_contract.normalization import Normalization, NormalizationError, normalization_from
from compile.errors import CompileError

# Upstream's model_config.json values (its authors call them estimates): accelerometer m/s^2, gyro rad/s,
# magnetometer uT.
DEFAULT_MEAN = (0.12, -0.08, 9.78, 0.002, -0.001, 0.003, 22.4, -8.7, 43.2)
DEFAULT_STD = (3.92, 3.87, 2.45, 1.24, 1.31, 0.98, 28.5, 31.2, 24.8)


def default_normalization() -> Normalization:
    return Normalization(DEFAULT_MEAN, DEFAULT_STD)


def z_score(normalization: Normalization, windows: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` over the last (channel) axis, float32."""
    return (windows - np.asarray(normalization.mean, np.float32)) / np.asarray(normalization.std, np.float32)


def load_normalization(config_path: Path | None) -> Normalization:
    """Read ``normalization`` from a model_config.json (upstream's format), or use the same defaults."""
    if config_path is None:
        return default_normalization()
    config = _read_config(config_path)
    section = config.get("normalization") if isinstance(config, dict) else None
    if not isinstance(section, dict):
        raise CompileError(f"{config_path}: model config has no 'normalization' object")
    try:
        return normalization_from(section, str(config_path))
    except NormalizationError as exc:
        raise CompileError(f"{config_path}: {exc}") from None


def load_input_ranges(config_path: Path | None) -> InputRanges:
    """The physical range check the app applies to raw windows: the model config's optional ``input_ranges``
    (``{"min": [9], "max": [9]}`` in the model's units) or bundle_contract.input_ranges' defaults."""
    if config_path is None:
        return default_ranges()
    config = _read_config(config_path)
    if not isinstance(config, dict) or "input_ranges" not in config:
        return default_ranges()
    try:
        return ranges_from(config["input_ranges"], str(config_path))
    except RangesError as exc:
        raise CompileError(f"{config_path}: {exc}") from None


def _read_config(config_path: Path) -> object:
    try:
        return json.loads(config_path.read_text())
    except OSError as exc:
        raise CompileError(f"{config_path}: cannot read model config ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CompileError(f"{config_path}: model config is not valid JSON ({exc})") from None
