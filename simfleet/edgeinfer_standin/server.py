"""EdgeInfer TEST STAND-IN — not EdgeInfer.

EdgeInfer is a Swift/Vapor service that cannot be built here. This stdlib-only server reproduces the behaviour
our deployment depends on, as docs/EDGEINFER_CONTRACT.md records it from EdgeInfer's source:
- the backend is used only when USE_REAL_MODEL is exactly "true";
- POST /api/v1/analysis/infer validates a 100x9 window (400 otherwise) and posts it to MODEL_BACKEND_URL (with
  /infer appended when missing), connect timeout 2 s, read timeout 45 ms, overall BACKEND_TIMEOUT_MS, no
  retries;
- ANY backend failure is hidden: the answer is still 200 with random stub output, with nothing saying so.
STAND-IN ONLY, not EdgeInfer behaviour: it counts those hidden fallbacks by cause and serves the counts at
GET /_standin/fallbacks, so tests can tell a clean rollout from one EdgeInfer papered over.
It runs as PID 1 in its own small image, so it must not import anything outside the standard library.
"""

import http.client
import json
import math
import os
import random
import signal
import socket
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WINDOW_ROWS = 100
WINDOW_COLS = 9
LATENT_DIM = 64
MOTIF_COUNT = 12
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 0.045
MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True)
class Settings:
    use_real_model: bool
    backend_url: str
    backend_timeout_ms: int

    @classmethod
    def from_env(cls, env: dict[str, str]) -> "Settings":
        try:
            timeout_ms = int(env.get("BACKEND_TIMEOUT_MS", "1500"))
        except ValueError:
            timeout_ms = 1500
        return cls(
            use_real_model=env.get("USE_REAL_MODEL", "false") == "true",
            backend_url=env.get("MODEL_BACKEND_URL", "http://hailo-inference:9000/infer"),
            backend_timeout_ms=timeout_ms,
        )


# Why a backend call fell back to stub output (the stand-in's own counters; EdgeInfer has none).
FALLBACK_CAUSES = ("read_timeout", "connection_refused", "non_200", "undecodable", "other")


class BackendFailure(Exception):
    """The backend answer was unusable; EdgeInfer swallows this and serves stub output."""

    def __init__(self, message: str, cause: str = "undecodable") -> None:
        super().__init__(message)
        self.cause = cause


class FallbackCounts:
    """Thread-safe count of fallbacks by cause (the server handles each request on its own thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(FALLBACK_CAUSES, 0)

    def add(self, cause: str) -> None:
        with self._lock:
            self._counts[cause] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def infer_url(url: str) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(url)
    path = parts.path.rstrip("/")
    if not path.endswith("/infer"):
        path += "/infer"
    return parts._replace(path=path)


def validate_window(body: Any) -> list[list[float]]:
    """Return the window or raise ValueError naming what is wrong."""
    if not isinstance(body, dict) or "x" not in body:
        raise ValueError('body must be a JSON object with key "x"')
    rows = body["x"]
    if not isinstance(rows, list) or len(rows) != WINDOW_ROWS:
        raise ValueError(f'"x" must be a list of {WINDOW_ROWS} rows')
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != WINDOW_COLS:
            raise ValueError(f'"x"[{i}] must be a list of {WINDOW_COLS} numbers')
        if not all(_is_number(v) and math.isfinite(v) for v in row):
            raise ValueError(f'"x"[{i}] must hold finite numbers only')
    return rows


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _reject_constant(name: str) -> float:
    # Swift's JSONDecoder rejects NaN/Infinity; so does EdgeInfer.
    raise BackendFailure(f"backend JSON contains {name}")


def _number_list(payload: dict[str, Any], key: str, length: int) -> list[float]:
    value = payload.get(key)
    if not isinstance(value, list) or len(value) != length or not all(_is_number(v) for v in value):
        raise BackendFailure(f'backend "{key}" is not a list of {length} numbers')
    return [float(v) for v in value]


def call_backend(settings: Settings, window: list[list[float]]) -> dict[str, list[float]]:
    url = infer_url(settings.backend_url)
    if url.scheme != "http" or not url.hostname:
        raise BackendFailure(f"unsupported backend URL {settings.backend_url!r}", "other")
    deadline = time.monotonic() + settings.backend_timeout_ms / 1000
    body = json.dumps({"x": window}).encode()
    conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=CONNECT_TIMEOUT_S)
    try:
        conn.connect()
        assert conn.sock is not None
        conn.sock.settimeout(READ_TIMEOUT_S)
        conn.putrequest("POST", url.path + (f"?{url.query}" if url.query else ""))
        # EdgeInfer may send this header twice; sending it twice keeps backends honest about tolerating that.
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        raw = response.read()
    except OSError as exc:  # refused, reset, DNS, and socket.timeout (the 45 ms read timeout)
        raise BackendFailure(f"backend call failed: {exc.__class__.__name__}: {exc}", _os_cause(exc)) from exc
    finally:
        conn.close()
    if time.monotonic() > deadline:
        raise BackendFailure(f"backend exceeded BACKEND_TIMEOUT_MS={settings.backend_timeout_ms}", "other")
    if response.status != 200:
        raise BackendFailure(f"backend answered HTTP {response.status}", "non_200")
    if not (response.getheader("Content-Type") or "").startswith("application/json"):
        raise BackendFailure("backend answer is not application/json")
    try:
        payload = json.loads(raw, parse_constant=_reject_constant)
    except ValueError as exc:
        raise BackendFailure(f"backend answer is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise BackendFailure("backend answer is not a JSON object")
    return {
        "latent": _number_list(payload, "latent", LATENT_DIM),
        "motif_scores": _number_list(payload, "motif_scores", MOTIF_COUNT),
    }


def _os_cause(exc: OSError) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "read_timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection_refused"
    return "other"


def stub_output() -> dict[str, list[float]]:
    return {
        "latent": [random.gauss(0.0, 1.0) for _ in range(LATENT_DIM)],
        "motif_scores": [random.random() for _ in range(MOTIF_COUNT)],
    }


class Handler(BaseHTTPRequestHandler):
    server_version = "EdgeInferTestStandIn/1"
    # A client may keep its connection (every answer has a Content-Length); one thread then serves it.
    protocol_version = "HTTP/1.1"
    settings: Settings  # set on the subclass made by make_server
    fallbacks: FallbackCounts  # likewise

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"edgeinfer-standin: {self.address_string()} {format % args}\n")

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # A line per answer at the fleet tests' 50 Hz costs the simulated Pi's docker logging more CPU than
        # the answer itself; errors and fallbacks are still written.
        if not str(code).startswith("2"):
            super().log_request(code, size)

    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path == "/healthz":
            self._send_json(200, {"ok": True})
        elif path == "/api/v1/analysis/motifs":
            motifs = [{"id": i, "score": random.random()} for i in range(MOTIF_COUNT)]
            self._send_json(200, {"motifs": motifs, "useReal": self.settings.use_real_model})
        elif path == "/_standin/fallbacks":
            counts = self.fallbacks.snapshot()
            self._send_json(
                200,
                {"stand_in_only": True, "fallbacks": counts, "total": sum(counts.values())},
            )
        elif path == "/api/v1/analysis/infer":
            self._send_json(405, {"error": "method_not_allowed", "reason": "use POST"})
        else:
            self._send_json(404, {"error": "not_found", "reason": f"no route {path}"})

    def do_POST(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path != "/api/v1/analysis/infer":
            self._send_json(404, {"error": "not_found", "reason": f"no route {path}"})
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True  # the unread body would be taken for the next request
            self._send_json(411, {"error": "length_required", "reason": "Content-Length header is required"})
            return
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            self._send_json(413, {"error": "too_large", "reason": f"body over {MAX_BODY_BYTES} bytes"})
            return
        try:
            window = validate_window(json.loads(self.rfile.read(length)))
        except ValueError as exc:  # includes json.JSONDecodeError
            self._send_json(400, {"error": "bad_request", "reason": str(exc)})
            return
        result = None
        if self.settings.use_real_model:
            try:
                result = call_backend(self.settings, window)
            except BackendFailure as exc:
                self.fallbacks.add(exc.cause)
                sys.stderr.write(f"edgeinfer-standin: {exc}; answering with stub output\n")
        self._send_json(200, result or stub_output())


def make_server(settings: Settings, host: str = "0.0.0.0", port: int = 8080) -> ThreadingHTTPServer:
    handler = type("ConfiguredHandler", (Handler,), {"settings": settings, "fallbacks": FallbackCounts()})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # As PID 1 in its container the process gets no default SIGTERM handler; without this, stop waits 10 s.
    raise SystemExit(0)


def main() -> None:
    settings = Settings.from_env(dict(os.environ))
    server = make_server(settings, port=int(os.environ.get("PORT", "8080")))
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    sys.stderr.write(f"edgeinfer-standin: TEST STAND-IN listening, {settings}\n")
    server.serve_forever()


if __name__ == "__main__":
    main()
