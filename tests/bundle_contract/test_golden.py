"""bundle_contract.golden: the one golden-window judgment (app warm-up, health gate filter, the watch)."""

from __future__ import annotations

import math

import pytest

from bundle_contract.golden import (
    SAME_MAX_ABS,
    TOLERANCE,
    cosine,
    finite_latent,
    judge,
    max_abs,
    same_latent,
)

EXPECTED = [math.sin(i / 3.0) for i in range(64)]
GOLDEN = {"latent": EXPECTED, "tolerance": dict(TOLERANCE)}


def shifted(by: float) -> list[float]:
    return [v + by for v in EXPECTED]


def test_float_backend_passes_within_max_abs_and_fails_beyond() -> None:
    near = judge(GOLDEN, shifted(0.5 * TOLERANCE["latent_max_abs"]), "onnxruntime")
    assert near.ok and near.max_abs == pytest.approx(0.5e-3)
    assert near.rule.startswith("max abs diff 0.0005 <= 0.001")
    far = judge(GOLDEN, shifted(2 * TOLERANCE["latent_max_abs"]), "onnxruntime")
    assert not far.ok and far.max_abs == pytest.approx(2e-3)


def test_quantized_backend_is_judged_by_direction_only() -> None:
    # Twice as long, so far off in max abs, but pointing the same way: a quantized latent may do that.
    scaled = [2.0 * v for v in EXPECTED]
    assert not judge(GOLDEN, scaled, "onnxruntime").ok
    verdict = judge(GOLDEN, scaled, "hailort")
    assert verdict.ok and verdict.cosine == pytest.approx(1.0)
    assert verdict.rule.startswith("cosine 1.000000 >= 0.98")


def test_quantized_backend_fails_below_the_cosine_floor() -> None:
    noise = [(-1.0) ** i for i in range(64)]
    crooked = [e + 0.6 * n for e, n in zip(EXPECTED, noise, strict=True)]
    verdict = judge(GOLDEN, crooked, "hailort")
    assert verdict.cosine < TOLERANCE["latent_min_cosine"]
    assert not verdict.ok


def test_the_tolerance_comes_from_the_bundle_not_the_default() -> None:
    strict = {"latent": EXPECTED, "tolerance": {"latent_max_abs": 1e-6, "latent_min_cosine": 0.98}}
    assert judge(GOLDEN, shifted(1e-4), "onnxruntime").ok
    assert not judge(strict, shifted(1e-4), "onnxruntime").ok


def test_a_zero_latent_has_cosine_0_not_a_division_error() -> None:
    assert cosine([0.0] * 64, EXPECTED) == 0.0
    assert not judge(GOLDEN, [0.0] * 64, "hailort").ok


@pytest.mark.parametrize(
    "answer",
    [
        None,
        "latent",
        [EXPECTED],
        {"latent": EXPECTED[:63]},
        {"latent": [*EXPECTED[:63], float("nan")]},
        {"latent": [*EXPECTED[:63], "0.1"]},
        {"error": "not_ready"},
    ],
    ids=["null", "string", "list", "short", "nan", "text-number", "no-latent"],
)
def test_finite_latent_refuses_anything_but_length_finite_numbers(answer: object) -> None:
    assert finite_latent(answer, 64) is None


def test_finite_latent_returns_floats() -> None:
    assert finite_latent({"latent": [1, 2.5] + [0] * 62}, 64) == [1.0, 2.5] + [0.0] * 62


def test_same_latent_allows_float32_rounding_only() -> None:
    assert same_latent(shifted(SAME_MAX_ABS / 2), EXPECTED)
    assert not same_latent(shifted(SAME_MAX_ABS * 10), EXPECTED)
    assert not same_latent(None, EXPECTED)
    assert max_abs(shifted(0.25), EXPECTED) == pytest.approx(0.25)
