"""The golden window: does a latent answered for the bundle's ``golden.window`` match ``golden.latent``?

One judgment for the app's warm-up, the EdgeInfer watch and the health gate (whose filter judges on the
control host).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bundle_contract.metadata import Golden

# golden.tolerance as compile writes it: a float backend must match closely, a quantized one in direction.
TOLERANCE = {"latent_max_abs": 1e-3, "latent_min_cosine": 0.98}
# Backends whose latent is quantized (int8 on the chip), so only its direction is judged.
QUANTIZED_BACKENDS = frozenset({"hailort"})
# EdgeInfer re-encodes the backend's latent as float32; its random stub output differs by orders of magnitude.
SAME_MAX_ABS = 1e-5


@dataclass(frozen=True)
class Judgment:
    ok: bool
    max_abs: float
    cosine: float
    rule: str  # the comparison that decided, e.g. "cosine 0.991234 >= 0.98"


def finite_latent(answer: Any, length: int) -> list[float] | None:
    """The ``latent`` of a JSON answer when it is ``length`` finite numbers, else None (any JSON can come
    back, e.g. a string from the wrong service)."""
    latent = answer.get("latent") if isinstance(answer, dict) else None
    if not isinstance(latent, list) or len(latent) != length:
        return None
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in latent):
        return None
    return [float(v) for v in latent]


def max_abs(a: Sequence[float], b: Sequence[float]) -> float:
    return max(abs(float(x) - float(y)) for x, y in zip(a, b, strict=True))


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    norm = math.sqrt(sum(float(x) ** 2 for x in a)) * math.sqrt(sum(float(y) ** 2 for y in b))
    return sum(float(x) * float(y) for x, y in zip(a, b, strict=True)) / norm if norm else 0.0


def judge(golden: Golden, latent: Sequence[float], backend: str) -> Judgment:
    """Judge ``latent`` against ``golden["latent"]`` with ``golden["tolerance"]`` as ``backend`` computes."""
    expected = [float(v) for v in golden["latent"]]
    tolerance = golden["tolerance"]
    diff, cos = max_abs(latent, expected), cosine(latent, expected)
    if backend in QUANTIZED_BACKENDS:
        return Judgment(
            cos >= tolerance["latent_min_cosine"],
            diff,
            cos,
            f"cosine {cos:.6f} >= {tolerance['latent_min_cosine']}",
        )
    return Judgment(
        diff <= tolerance["latent_max_abs"],
        diff,
        cos,
        f"max abs diff {diff:.3g} <= {tolerance['latent_max_abs']}",
    )


def same_latent(a: Sequence[float] | None, b: Sequence[float], same_max_abs: float = SAME_MAX_ABS) -> bool:
    """Whether ``a`` is ``b`` up to float32 rounding: EdgeInfer passed the backend's answer on."""
    return a is not None and max_abs(a, b) <= same_max_abs
