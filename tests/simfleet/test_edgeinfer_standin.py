"""The EdgeInfer test stand-in behaves as docs/EDGEINFER_CONTRACT.md says EdgeInfer does.

These run in-process (no docker): the stand-in's server against a fake backend on 127.0.0.1.
"""

from __future__ import annotations

import json
import math
import socket

import pytest
import requests

from simfleet.edgeinfer_standin import server as standin

WINDOW = [[float(r * 9 + c) / 100 for c in range(9)] for r in range(100)]
LATENT = [i / 64 for i in range(64)]
MOTIFS = [i / 12 for i in range(12)]


def infer(base_url: str, body: object) -> requests.Response:
    return requests.post(f"{base_url}/api/v1/analysis/infer", json=body, timeout=5)


def fallbacks(base_url: str) -> dict[str, int]:
    """The stand-in-only fallback counters (EdgeInfer itself exposes nothing like them)."""
    answer = requests.get(f"{base_url}/_standin/fallbacks", timeout=5)
    assert answer.status_code == 200
    payload = answer.json()
    assert payload["stand_in_only"] is True
    assert payload["total"] == sum(payload["fallbacks"].values())
    return {cause: count for cause, count in payload["fallbacks"].items() if count}


def assert_stub_shaped(payload: dict) -> None:
    assert set(payload) == {"latent", "motif_scores"}
    assert len(payload["latent"]) == 64 and len(payload["motif_scores"]) == 12
    assert all(math.isfinite(v) for v in payload["latent"] + payload["motif_scores"])


def test_real_model_returns_the_backends_latent(backend, run_standin):
    backend.answer_json({"latent": LATENT, "motif_scores": MOTIFS, "model_version": "x"})
    base = run_standin({"USE_REAL_MODEL": "true", "MODEL_BACKEND_URL": f"{backend.url}/v1"})
    # The 45 ms read budget is real; on a loaded CI machine a local round trip can miss it: allow retries.
    answers = [infer(base, {"x": WINDOW}) for _ in range(5)]
    assert all(a.status_code == 200 for a in answers)
    assert {"latent": LATENT, "motif_scores": MOTIFS} in [a.json() for a in answers]
    first = backend.requests[0]
    assert first["path"] == "/v1/infer"  # /infer appended when the URL does not end with it
    assert first["body"] == {"x": WINDOW}  # raw window passed through
    assert first["content_types"] == ["application/json", "application/json"]  # EdgeInfer may send it twice
    # Only a missed 45 ms read (the retries above) may have fallen back, and each one is counted.
    misses = sum(a.json()["latent"] != LATENT for a in answers)
    assert fallbacks(base) == ({"read_timeout": misses} if misses else {})


def test_url_already_ending_in_infer_is_used_as_is(backend, run_standin):
    backend.answer_json({"latent": LATENT, "motif_scores": MOTIFS})
    base = run_standin({"USE_REAL_MODEL": "true", "MODEL_BACKEND_URL": f"{backend.url}/infer"})
    infer(base, {"x": WINDOW})
    assert backend.requests[0]["path"] == "/infer"


@pytest.mark.parametrize("delay_s", [0.08, 0.3])
def test_slow_backend_falls_back_to_random_output_silently(backend, run_standin, delay_s):
    backend.answer_json({"latent": LATENT, "motif_scores": MOTIFS})
    backend.delay_s = delay_s  # past EdgeInfer's 45 ms read timeout
    base = run_standin({"USE_REAL_MODEL": "true", "MODEL_BACKEND_URL": backend.url})
    first, second = infer(base, {"x": WINDOW}), infer(base, {"x": WINDOW})
    assert first.status_code == second.status_code == 200
    assert_stub_shaped(first.json())
    assert first.json()["latent"] != LATENT
    assert first.json()["latent"] != second.json()["latent"]  # random, never repeats
    assert len(backend.requests) == 2  # it did try the backend, and did not retry
    assert fallbacks(base) == {"read_timeout": 2}


@pytest.mark.parametrize(
    ("status", "body", "content_type", "cause"),
    [
        (500, json.dumps({"latent": LATENT, "motif_scores": MOTIFS}), "application/json", "non_200"),
        (200, json.dumps({"latent": LATENT[:63], "motif_scores": MOTIFS}), "application/json", "undecodable"),
        (
            200,
            json.dumps({"latent": LATENT, "motif_scores": [*MOTIFS, 0.0]}),
            "application/json",
            "undecodable",
        ),
        (200, json.dumps({"latent": LATENT, "motif_scores": MOTIFS})[:-5], "application/json", "undecodable"),
        (
            200,
            json.dumps({"latent": [math.nan, *LATENT[1:]], "motif_scores": MOTIFS}),
            "application/json",
            "undecodable",
        ),
        (200, json.dumps({"latent": LATENT, "motif_scores": MOTIFS}), "text/plain", "undecodable"),
    ],
    ids=["http-500", "short-latent", "long-motifs", "truncated-json", "nan", "not-json-content-type"],
)
def test_any_bad_backend_answer_falls_back_to_stub(backend, run_standin, status, body, content_type, cause):
    backend.status, backend.body, backend.content_type = status, body.encode(), content_type
    base = run_standin({"USE_REAL_MODEL": "true", "MODEL_BACKEND_URL": backend.url})
    answer = infer(base, {"x": WINDOW})
    assert answer.status_code == 200
    assert_stub_shaped(answer.json())
    assert answer.json()["latent"] != LATENT
    assert len(backend.requests) == 1
    assert fallbacks(base) == {cause: 1}


def test_backend_timeout_ms_bounds_the_whole_call(backend, run_standin):
    backend.answer_json({"latent": LATENT, "motif_scores": MOTIFS})
    base = run_standin(
        {"USE_REAL_MODEL": "true", "MODEL_BACKEND_URL": backend.url, "BACKEND_TIMEOUT_MS": "0"}
    )
    answer = infer(base, {"x": WINDOW})
    assert answer.status_code == 200
    assert answer.json()["latent"] != LATENT
    assert len(backend.requests) == 1
    assert fallbacks(base) == {"other": 1}


def test_refused_connection_falls_back_to_stub(run_standin):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = run_standin({"USE_REAL_MODEL": "true", "MODEL_BACKEND_URL": f"http://127.0.0.1:{port}/infer"})
    answer = infer(base, {"x": WINDOW})
    assert answer.status_code == 200
    assert_stub_shaped(answer.json())
    assert fallbacks(base) == {"connection_refused": 1}


@pytest.mark.parametrize("value", ["false", "True", "1", "yes", ""])
def test_only_the_exact_string_true_uses_the_backend(backend, run_standin, value):
    backend.answer_json({"latent": LATENT, "motif_scores": MOTIFS})
    base = run_standin({"USE_REAL_MODEL": value, "MODEL_BACKEND_URL": backend.url})
    answer = infer(base, {"x": WINDOW})
    assert answer.status_code == 200
    assert_stub_shaped(answer.json())
    assert backend.requests == []
    assert fallbacks(base) == {}  # stub mode is what was asked for, not a hidden fallback
    motifs = requests.get(f"{base}/api/v1/analysis/motifs", timeout=5).json()
    assert motifs["useReal"] is False and len(motifs["motifs"]) == 12


@pytest.mark.parametrize(
    "body",
    [
        {"x": WINDOW[:99]},
        {"x": [*WINDOW, WINDOW[0]]},
        {"x": [row[:8] for row in WINDOW]},
        {"x": [*WINDOW[:50], ["a"] * 9, *WINDOW[51:]]},
        {"x": [*WINDOW[:50], [True] * 9, *WINDOW[51:]]},
        {"window": WINDOW},
        [WINDOW],
    ],
    ids=["99-rows", "101-rows", "8-columns", "strings", "booleans", "wrong-key", "not-an-object"],
)
def test_bad_windows_are_rejected_with_400(backend, run_standin, body):
    base = run_standin({"USE_REAL_MODEL": "true", "MODEL_BACKEND_URL": backend.url})
    answer = infer(base, body)
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad_request"
    assert backend.requests == []


def test_undecodable_body_is_400(run_standin):
    base = run_standin({})
    answer = requests.post(
        f"{base}/api/v1/analysis/infer",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert answer.status_code == 400


def test_healthz_and_motifs(run_standin):
    base = run_standin({"USE_REAL_MODEL": "true"})
    health = requests.get(f"{base}/healthz", timeout=5)
    assert health.status_code == 200 and health.json() == {"ok": True}
    motifs = requests.get(f"{base}/api/v1/analysis/motifs", timeout=5).json()
    assert motifs["useReal"] is True
    assert [m["id"] for m in motifs["motifs"]] == list(range(12))
    assert requests.get(f"{base}/nope", timeout=5).status_code == 404


@pytest.mark.parametrize(
    ("url", "path"),
    [("http://h:9000/infer", "/infer"), ("http://h:9000", "/infer"), ("http://h:9000/api/", "/api/infer")],
)
def test_infer_url(url, path):
    assert standin.infer_url(url).path == path
