"""The per-channel z-score of raw windows, as the bundle metadata's ``normalization`` holds it.

Compile writes it (from a model config or its built-in values) and builds it into the served ONNX; the HailoRT
backend reads it back to z-score each window on the host in front of the .hef (``model.hef_input``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bundle_contract.tensors import CHANNEL_ORDER, INPUT_CHANNELS, float32_values

METHOD = "z_score_per_channel"


@dataclass(frozen=True)
class Normalization:
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str = "defaults"

    def to_metadata(self) -> dict[str, Any]:
        return {
            "method": METHOD,
            "mean": list(self.mean),
            "std": list(self.std),
            "channel_order": list(CHANNEL_ORDER),
            "source": self.source,
        }


class NormalizationError(ValueError):
    """A ``normalization`` object is unusable; the message says which key."""


def normalization_from(section: object, source: str) -> Normalization:
    """Parse ``{"method", "mean": [9 numbers], "std": [9 numbers > 0], "channel_order"}`` as written by
    to_metadata or given in a model config (where ``method`` and ``channel_order`` may be left out)."""
    if not isinstance(section, dict):
        raise NormalizationError("normalization must be an object with 'mean' and 'std' lists")
    method = section.get("method", METHOD)
    if method != METHOD:
        raise NormalizationError(f"normalization method {method!r} is not supported ({METHOD})")
    mean, std = _channel_values(section, "mean"), _channel_values(section, "std")
    if any(s <= 0 for s in std):
        raise NormalizationError("normalization.std must be > 0 for every channel")
    order = section.get("channel_order", list(CHANNEL_ORDER))
    if order != list(CHANNEL_ORDER):
        raise NormalizationError(f"channel_order {order} differs from EdgeInfer's {list(CHANNEL_ORDER)}")
    return Normalization(mean, std, source)


def _channel_values(section: dict[str, Any], key: str) -> tuple[float, ...]:
    values = float32_values(section.get(key), INPUT_CHANNELS)
    if values is None:
        raise NormalizationError(f"normalization.{key} must be a list of {INPUT_CHANNELS} finite numbers")
    return values
