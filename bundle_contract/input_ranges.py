"""Per-channel physical ranges of a raw window: a value no IMU can produce is the client's error (422).

Compile writes the ranges into the bundle metadata from here (or from the model config's ``input_ranges``),
the app reads them back from the bundle it serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bundle_contract.tensors import CHANNEL_ORDER, float32_values

# The model's units (compile/normalization.py: the shipped z-score puts az's mean at 9.78, gyro std ~1 rad/s).
UNITS = ("m/s^2",) * 3 + ("rad/s",) * 3 + ("uT",) * 3

STANDARD_GRAVITY = 9.80665
DEG_PER_RAD = 57.29577951308232
# Twice the widest common full scales (+-16 g, +-2000 deg/s, +-4,900 uT): admits the next tier of parts and
# calibrated readings past saturation; windows that overflow the model lie ~30 orders of magnitude beyond.
MARGIN = 2.0
FULL_SCALE = (16 * STANDARD_GRAVITY,) * 3 + (2000 / DEG_PER_RAD,) * 3 + (4900.0,) * 3


@dataclass(frozen=True)
class InputRanges:
    low: tuple[float, ...]
    high: tuple[float, ...]
    source: str = "defaults"

    def to_metadata(self) -> dict[str, Any]:
        return {
            "channel_order": list(CHANNEL_ORDER),
            "units": list(UNITS),
            "min": list(self.low),
            "max": list(self.high),
            "source": self.source,
        }

    def describe(self, channel: int) -> str:
        return f"{self.low[channel]:.10g}..{self.high[channel]:.10g} {UNITS[channel]}"


def default_ranges() -> InputRanges:
    return InputRanges(
        tuple(round(-MARGIN * f, 4) for f in FULL_SCALE), tuple(round(MARGIN * f, 4) for f in FULL_SCALE)
    )


class RangesError(ValueError):
    """An ``input_ranges`` object is malformed; the message says which key."""


def ranges_from(section: object, source: str) -> InputRanges:
    """Parse ``{"min": [9 numbers], "max": [9 numbers]}`` (channel order as CHANNEL_ORDER), as written by
    to_metadata or given in a model config."""
    if not isinstance(section, dict):
        raise RangesError("input_ranges must be an object with 'min' and 'max' lists")
    order = section.get("channel_order", list(CHANNEL_ORDER))
    if list(order) != list(CHANNEL_ORDER):
        raise RangesError(f"input_ranges.channel_order {order} differs from {list(CHANNEL_ORDER)}")
    bounds = []
    for key in ("min", "max"):
        values = float32_values(section.get(key), len(CHANNEL_ORDER))
        if values is None:
            raise RangesError(f"input_ranges.{key} must be a list of {len(CHANNEL_ORDER)} float32 numbers")
        bounds.append(values)
    low, high = bounds
    if not all(lo < hi for lo, hi in zip(low, high, strict=True)):
        raise RangesError("input_ranges.min must be below input_ranges.max for every channel")
    return InputRanges(low, high, source)
