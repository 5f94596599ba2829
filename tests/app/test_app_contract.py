"""EdgeInfer's contract (docs/EDGEINFER_CONTRACT.md) against the real gunicorn server, for the
default bundle and the trained encoder's bundle."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from app_server import AppServer


@pytest.fixture(scope="module", params=["default", pytest.param("trained", marks=pytest.mark.shared)])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    bundle: Path = request.getfixturevalue(f"{request.param}_bundle")
    server = AppServer(bundle, tmp_path_factory.mktemp(f"server-{request.param}"), workers=2).start()
    try:
        server.wait_ready()
        yield server, json.loads((bundle / "model_metadata.json").read_text())
    finally:
        server.stop()


def golden_window(metadata: dict) -> list[list[float]]:
    return metadata["golden"]["window"]


def test_edgeinfer_request_exactly_as_sent(served: tuple) -> None:
    server, metadata = served
    # EdgeInfer sends Content-Type twice; the answer must be the model's, with the lengths it checks.
    answer = server.post_json({"x": golden_window(metadata)}, content_types=2)
    assert answer.status == 200, answer.body
    assert answer.header("Content-Type") == "application/json"
    body = answer.json()
    assert len(body["latent"]) == 64 and len(body["motif_scores"]) == 12
    assert all(math.isfinite(v) for v in body["latent"] + body["motif_scores"])
    assert np.max(np.abs(np.array(body["latent"]) - metadata["golden"]["latent"])) <= 1e-3
    assert np.max(np.abs(np.array(body["motif_scores"]) - metadata["golden"]["motif_scores"])) <= 1e-3
    assert body["model_version"] == metadata["version"] and body["backend"] == "onnxruntime"
    assert b"NaN" not in answer.body and b"Infinity" not in answer.body


@pytest.mark.shared
def test_same_window_same_answer_and_shared_samples(served: tuple, samples: dict) -> None:
    """Stub output never repeats; the model's does. Every good shared sample is answered."""
    server, _ = served
    for name in ("random_imu_sample", "realistic_imu_sample", "static_imu_sample"):
        first = server.post_json(samples[name], content_types=2)
        second = server.post_json(samples[name])
        assert first.status == second.status == 200, (name, first.body)
        assert first.json()["latent"] == second.json()["latent"]


@pytest.mark.shared
def test_105_row_sample_is_rejected(served: tuple, samples: dict) -> None:
    server, _ = served
    answer = server.post_json(samples["bad_105_rows_imu_sample"], content_types=2)
    assert answer.status == 400
    assert answer.json() == {"error": "wrong_row_count", "message": "x must have exactly 100 rows, got 105"}


def rows(value: object = 0.5, *, at: tuple[int, int] = (3, 4)) -> list[list[object]]:
    x: list[list[object]] = [[0.1 * c for c in range(9)] for _ in range(100)]
    x[at[0]][at[1]] = value
    return x


BAD_BODIES = [
    # (id, body bytes, expected status, error code, words the message must contain)
    ("99 rows", json.dumps({"x": rows()[:99]}), 400, "wrong_row_count", "got 99"),
    (
        "8 columns",
        json.dumps({"x": [*rows()[:7], [1.0] * 8, *rows()[8:]]}),
        400,
        "wrong_column_count",
        "x[7]",
    ),
    ("10 columns", json.dumps({"x": [[1.0] * 10] * 100}), 400, "wrong_column_count", "got 10"),
    ("string value", json.dumps({"x": rows("1.5")}), 400, "not_a_number", "x[3][4]"),
    ("bool value", json.dumps({"x": rows(True)}), 400, "not_a_number", "boolean"),
    ("null value", json.dumps({"x": rows(None)}), 400, "not_a_number", "null"),
    ("nested list value", json.dumps({"x": rows([1.0])}), 400, "not_a_number", "x[3][4]"),
    # Numbers and brackets only, so it passes parse_window's byte check: the shape check must still catch it.
    ("every value a list", json.dumps({"x": [[[0.5]] * 9] * 100}), 400, "not_a_number", "x[0][0]"),
    ("NaN", json.dumps({"x": rows(float("nan"))}), 400, "non_finite", "NaN"),
    ("Infinity", json.dumps({"x": rows(float("inf"))}), 400, "non_finite", "Infinity"),
    ("-Infinity", json.dumps({"x": rows(float("-inf"))}), 400, "non_finite", "-Infinity"),
    (
        "1e999 overflows to inf",
        json.dumps({"x": rows(7.25)}).replace("7.25", "1e999"),
        400,
        "non_finite",
        "x[3][4]",
    ),
    ("beyond float32", json.dumps({"x": rows(1e39)}), 422, "out_of_range", "channel gy"),
    ("huge integer", json.dumps({"x": rows(10**40)}), 422, "out_of_range", "x[3][4] = 1e+40"),
    ("integer beyond float64", json.dumps({"x": rows(10**400)}), 422, "out_of_range", "401 digits"),
    # Finite, fits float32, overflows the z-scored model: no IMU produces it (issue 12's 503s).
    ("1e30", json.dumps({"x": rows(1e30)}), 422, "out_of_range", "x[3][4] = 1e+30 (row 3, channel gy)"),
    ("-3e38 in az", json.dumps({"x": rows(-3e38, at=(99, 2))}), 422, "out_of_range", "row 99, channel az"),
    (
        "gyro just past 2 x 2000 deg/s",
        json.dumps({"x": rows(69.82, at=(7, 5))}),
        422,
        "out_of_range",
        "x[7][5] = 69.82 (row 7, channel gz) is outside the channel's physical range -69.8132..69.8132 rad/s",
    ),
    ("magnetometer", json.dumps({"x": rows(-9800.5, at=(0, 8))}), 422, "out_of_range", "-9800..9800 uT"),
    (
        "x missing",
        json.dumps({"data": rows()}),
        400,
        "missing_x",
        'the JSON object has no "x" key; expected {"x": [[9 numbers] x 100]}',
    ),
    ("x not a list", json.dumps({"x": "abc"}), 400, "invalid_x", "str"),
    ("row not a list", json.dumps({"x": [5] * 100}), 400, "invalid_row", "x[0]"),
    ("top level list", json.dumps(rows()), 400, "invalid_body", "list"),
    ("invalid JSON", '{"x": [[1,2,', 400, "invalid_json", "not valid JSON"),
    ("not UTF-8", b'{"x": "\xff\xfe"}', 400, "invalid_json", "UTF-8"),
    ("empty body", "", 400, "empty_body", 'request body is empty; expected JSON {"x": [[9 numbers] x 100]}'),
    ("whitespace body", "  \n", 400, "empty_body", "empty"),
    ("deep nesting", "[" * 50000 + "]" * 50000, 400, "invalid_json", "nested"),
]


@pytest.mark.parametrize(
    ("body", "status", "code", "words"), [c[1:] for c in BAD_BODIES], ids=[c[0] for c in BAD_BODIES]
)
def test_bad_body_is_named_4xx(served: tuple, body: str | bytes, status: int, code: str, words: str) -> None:
    server, _ = served
    data = body if isinstance(body, bytes) else body.encode()
    answer = server.request("POST", "/infer", data, [("Content-Type", "application/json")] * 2)
    assert answer.status == status, answer.body
    assert answer.header("Content-Type") == "application/json"
    payload = answer.json()
    assert payload["error"] == code
    assert words in payload["message"]
    assert "Traceback" not in payload["message"]


def edge_windows(metadata: dict) -> list[list[list[float]]]:
    """Windows on the edges of the bundle's physical ranges, where a z-scored model is pushed hardest."""
    low, high = np.array(metadata["input_ranges"]["min"]), np.array(metadata["input_ranges"]["max"])
    rng = np.random.default_rng(12)
    alternating = np.where(np.arange(100)[:, None] % 2 == 1, high, low)
    corners = [np.where(rng.random((100, 9)) < 0.5, low, high) for _ in range(6)]
    return [w.tolist() for w in (np.tile(high, (100, 1)), np.tile(low, (100, 1)), alternating, *corners)]


def test_windows_on_the_range_edges_are_answered_with_finite_numbers(served: tuple) -> None:
    server, metadata = served
    for window in edge_windows(metadata):
        answer = server.post_json({"x": window})
        assert answer.status == 200, answer.body
        body = answer.json()
        assert all(math.isfinite(v) for v in body["latent"] + body["motif_scores"])


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_wrong_content_type_is_415(served: tuple, content_type: str | None) -> None:
    server, metadata = served
    headers = [("Content-Type", content_type)] if content_type else []
    answer = server.request("POST", "/infer", json.dumps({"x": golden_window(metadata)}).encode(), headers)
    assert answer.status == 415
    assert answer.json()["error"] == "unsupported_media_type"


def test_content_type_with_charset_is_accepted(served: tuple) -> None:
    server, metadata = served
    body = json.dumps({"x": golden_window(metadata)}).encode()
    answer = server.request("POST", "/infer", body, [("Content-Type", "application/json; charset=utf-8")])
    assert answer.status == 200


def test_oversized_body_is_413_json(served: tuple) -> None:
    server, _ = served
    body = b'{"x": [' + b"1.0," * 100_000 + b"1.0]}"
    answer = server.request("POST", "/infer", body, [("Content-Type", "application/json")])
    assert answer.status == 413
    assert answer.json()["error"] == "body_too_large"
    assert "131072" in answer.json()["message"]


def test_oversized_chunked_body_is_413_json(served: tuple) -> None:
    server, _ = served
    chunk = b"1.0," * 10_000
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20)) + b"0\r\n\r\n"
    headers = [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")]
    answer = server.request("POST", "/infer", body, headers, content_length=False)
    assert answer.status == 413
    assert answer.json()["error"] == "body_too_large"


def test_unknown_path_and_method_are_json(served: tuple) -> None:
    server, _ = served
    missing = server.request("GET", "/nope")
    assert missing.status == 404 and missing.json()["error"] == "not_found"
    wrong = server.request("GET", "/infer")
    assert wrong.status == 405 and wrong.json()["error"] == "method_not_allowed"
    assert "POST" in (wrong.header("Allow") or "")


def test_healthz_describes_the_model(served: tuple) -> None:
    server, metadata = served
    answer = server.request("GET", "/healthz")
    assert answer.status == 200
    body = answer.json()
    assert body["status"] == "ok" and body["backend"] == "onnxruntime"
    assert body["model_version"] == metadata["version"]
    assert body["sha256"] == metadata["files"]["tcn_encoder.onnx"]["sha256"]
    assert body["untrained_default"] is metadata["untrained_default"]
    assert server.request("GET", "/livez").status == 200
