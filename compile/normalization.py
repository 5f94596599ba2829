"""Per-channel z-score of raw IMU values: inside the served ONNX graph (EdgeInfer sends raw sensor values) and
on the host in front of the HEF, which is compiled for z-scored input."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bundle_contract.input_ranges import InputRanges, RangesError, default_ranges, ranges_from
from bundle_contract.tensors import INPUT_CHANNELS
from compile.errors import CompileError

CHANNEL_ORDER = ("ax", "ay", "az", "gx", "gy", "gz", "mx", "my", "mz")
# Upstream's model_config.json values (its authors call them estimates): accelerometer m/s^2, gyro rad/s,
# magnetometer uT.
DEFAULT_MEAN = (0.12, -0.08, 9.78, 0.002, -0.001, 0.003, 22.4, -8.7, 43.2)
DEFAULT_STD = (3.92, 3.87, 2.45, 1.24, 1.31, 0.98, 28.5, 31.2, 24.8)


@dataclass(frozen=True)
class Normalization:
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channel_order: tuple[str, ...] = CHANNEL_ORDER
    source: str = "defaults"

    def to_metadata(self) -> dict[str, Any]:
        return {
            "method": "z_score_per_channel",
            "mean": list(self.mean),
            "std": list(self.std),
            "channel_order": list(self.channel_order),
            "source": self.source,
        }

    def z_score(self, windows: np.ndarray) -> np.ndarray:
        """``(x - mean) / std`` over the last (channel) axis, float32."""
        return (windows - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)


def default_normalization() -> Normalization:
    return Normalization(DEFAULT_MEAN, DEFAULT_STD)


def load_normalization(config_path: Path | None) -> Normalization:
    """Read ``normalization`` from a model_config.json (upstream's format), or use the same defaults."""
    if config_path is None:
        return default_normalization()
    config = _read_config(config_path)
    section = config.get("normalization") if isinstance(config, dict) else None
    if not isinstance(section, dict):
        raise CompileError(f"{config_path}: model config has no 'normalization' object")
    method = section.get("method", "z_score_per_channel")
    if method != "z_score_per_channel":
        raise CompileError(
            f"{config_path}: normalization method {method!r} is not supported (z_score_per_channel)"
        )
    mean = _channel_values(config_path, section, "mean")
    std = _channel_values(config_path, section, "std")
    if any(s <= 0 for s in std):
        raise CompileError(f"{config_path}: normalization.std must be > 0 for every channel")
    order = section.get("channel_order", list(CHANNEL_ORDER))
    if list(order) != list(CHANNEL_ORDER):
        raise CompileError(
            f"{config_path}: channel_order {order} differs from EdgeInfer's {list(CHANNEL_ORDER)}"
        )
    return Normalization(mean, std, CHANNEL_ORDER, source=str(config_path))


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


def _channel_values(config_path: Path, section: dict[str, Any], key: str) -> tuple[float, ...]:
    values = section.get(key)
    if (
        not isinstance(values, list)
        or len(values) != INPUT_CHANNELS
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    ):
        raise CompileError(f"{config_path}: normalization.{key} must be a list of {INPUT_CHANNELS} numbers")
    return tuple(float(v) for v in values)
