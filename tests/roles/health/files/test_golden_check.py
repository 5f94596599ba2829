"""roles/health/files/golden_check.py against real loopback HTTP servers: an app stand-in answering with the
bundle's golden outputs (or wrong ones) and an EdgeInfer stand-in that forwards to it or answers from a random
stub, as EdgeInfer does when its backend fails (docs/EDGEINFER_CONTRACT.md). Each scenario runs the gate as
the role does: the script measures, the role's health_golden_judgment filter judges its JSON."""

from __future__ import annotations

import http.client
import json
import random
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from golden_judgment import health_golden_judgment

REPO = Path(__file__).resolve().parents[4]
SCRIPT = REPO / "roles" / "health" / "files" / "golden_check.py"
EDGEINFER_PATH = "/api/v1/analysis/infer"


class StandIn(ThreadingHTTPServer):
    """A loopback server whose answers the test switches with `mode`; it records every POSTed body."""

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], golden: dict[str, Any]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.golden = golden
        self.mode = "golden"
        self.backend = "onnxruntime"
        self.app_url = ""
        self.posted: list[Any] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: StandIn

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def send_json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()  # NaN is written as NaN, as a broken backend would
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_x(self) -> Any:
        x = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["x"]
        self.server.posted.append(x)
        return x


class AppHandler(Handler):
    """The app's /healthz (healthy, naming its backend) and /infer, which accepts only the golden window."""

    def do_GET(self) -> None:
        self.send_json(200, {"status": "ok", "backend": self.server.backend})

    def do_POST(self) -> None:
        x = self.read_x()
        golden, mode = self.server.golden, self.server.mode
        if x != golden["window"]:
            self.send_json(400, {"error": "bad_input", "message": "not the golden window"})
            return
        latent = list(golden["latent"])
        if mode == "503":
            self.send_json(503, {"error": "unavailable", "message": "model not loaded"})
            return
        if mode == "array":
            self.send_json(200, latent)
            return
        if mode in ("not_utf8", "truncated"):
            # A broken proxy or a worker killed mid-answer: not JSON text, or fewer bytes than announced.
            body = b"\xff\xfe{" if mode == "not_utf8" else b'{"latent": [0.1, '
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body) + (100 if mode == "truncated" else 0)))
            self.end_headers()
            self.wfile.write(body)
            return
        if mode == "slow":
            time.sleep(3)
        answers = {
            "offset": [v + 0.01 for v in latent],
            "scaled": [v * 1.25 for v in latent],  # what quantization does to magnitude, not direction
            "scrambled": latent[::-1],
            "nan": [float("nan"), *latent[1:]],
            "short": latent[:-1],
        }
        self.send_json(200, {"latent": answers.get(mode, latent), "motif_scores": golden["motif_scores"]})


def stub_answer() -> dict[str, list[float]]:
    return {"latent": [random.uniform(-1, 1) for _ in range(64)], "motif_scores": [random.random()] * 12}


def as_float32(values: list[float]) -> list[float]:
    return list(struct.unpack(f"{len(values)}f", struct.pack(f"{len(values)}f", *values)))


class EdgeInferHandler(Handler):
    """EdgeInfer's infer endpoint: forwards to the app and re-encodes as float32; any backend failure (or mode
    "stub", or the first call in mode "stub_first") silently becomes random stub output with status 200."""

    def do_POST(self) -> None:
        x = self.read_x()
        if self.path != EDGEINFER_PATH or len(x) != 100 or any(len(row) != 9 for row in x):
            self.send_json(400, {"error": "bad request"})
            return
        mode = self.server.mode
        if mode == "stub" or (mode == "stub_first" and len(self.server.posted) == 1):
            self.send_json(200, stub_answer())
            return
        request = urllib.request.Request(
            self.server.app_url + "/infer",
            data=json.dumps({"x": x}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=1) as response:
                answer = json.loads(response.read())
            latent, motifs = answer["latent"], answer["motif_scores"]
            assert len(latent) == 64 and len(motifs) == 12
            self.send_json(200, {"latent": as_float32(latent), "motif_scores": as_float32(motifs)})
        except (
            urllib.error.URLError,
            http.client.HTTPException,
            OSError,
            ValueError,
            KeyError,
            TypeError,
            AssertionError,
        ):
            self.send_json(200, stub_answer())


def serve(server: StandIn) -> Iterator[StandIn]:
    # A short poll interval keeps shutdown() (and so each test's teardown) quick.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def golden(bundle_metadata: dict[str, Any]) -> dict[str, Any]:
    return bundle_metadata["golden"]


@pytest.fixture
def app(golden: dict[str, Any]) -> Iterator[StandIn]:
    yield from serve(StandIn(AppHandler, golden))


@pytest.fixture
def edgeinfer(golden: dict[str, Any], app: StandIn) -> Iterator[StandIn]:
    server = StandIn(EdgeInferHandler, golden)
    server.mode = "forward"
    server.app_url = app.url
    yield from serve(server)


@pytest.fixture
def metadata_path(default_bundle: Path) -> Path:
    return default_bundle / "model_metadata.json"


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{EDGEINFER_PATH}"


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    # -I -S: no site-packages, as with Pi OS's bare python3; the script must need the standard library only.
    return subprocess.run(
        [sys.executable, "-I", "-S", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def measure(metadata: Path, app: StandIn, edgeinfer_url: str, calls: int = 3) -> dict[str, Any]:
    """The script's one JSON object, run as roles/health/tasks/golden.yml runs it."""
    result = run_script(
        "--metadata", str(metadata),
        "--app-url", app.url + "/infer",
        "--edgeinfer-url", edgeinfer_url,
        "--calls", str(calls),
        "--timeout", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    (line,) = result.stdout.strip().splitlines()
    return json.loads(line)


def golden_check(
    metadata: Path, app: StandIn, edgeinfer_url: str, calls: int = 3, **judgment: Any
) -> dict[str, Any]:
    """Measure, then judge as golden.yml does, with the backend the app's /healthz reports."""
    with urllib.request.urlopen(app.url + "/healthz", timeout=5) as response:
        backend = json.loads(response.read())["backend"]
    return health_golden_judgment(measure(metadata, app, edgeinfer_url, calls), backend, **judgment)


def test_passes_when_app_and_edgeinfer_agree(
    metadata_path: Path,
    app: StandIn,
    edgeinfer: StandIn,
    golden: dict[str, Any],
    bundle_metadata: dict[str, Any],
) -> None:
    report = golden_check(metadata_path, app, edgeinfer.url + EDGEINFER_PATH)
    assert report["bundle_version"] == bundle_metadata["version"]
    assert report["golden_app"]["ok"] is True
    assert report["golden_app"]["max_abs"] == 0.0
    assert report["golden_app"]["reason"].startswith("onnxruntime: max abs diff")
    edge = report["golden_edgeinfer"]
    assert edge["ok"] is True and edge["real_model"] is True
    assert (edge["real_answers"], edge["answers"]) == (3, 3)
    assert edge["closest_max_abs"] <= 1e-5
    for key in ("latency_ms", "edgeinfer_latency_ms"):
        assert 0 < report[key]["p50"] <= report[key]["max"]
    # 3 timed calls straight to the app and 3 forwarded by EdgeInfer, every one the golden window.
    assert len(app.posted) == 6 and all(x == golden["window"] for x in app.posted)
    assert len(edgeinfer.posted) == 3


def test_the_script_reports_latents_as_answered_and_judges_nothing(
    metadata_path: Path, app: StandIn, edgeinfer: StandIn, golden: dict[str, Any]
) -> None:
    app.mode = "short"
    measured = measure(metadata_path, app, edgeinfer.url + EDGEINFER_PATH, calls=2)
    assert set(measured) == {"bundle_version", "golden", "app", "edgeinfer"}
    # The judge's part of the golden section only, not the 900-number window.
    assert measured["golden"] == {"latent": golden["latent"], "tolerance": golden["tolerance"]}
    assert measured["app"]["latents"] == [golden["latent"][:-1]] * 2
    assert measured["app"]["error"] == ""
    # EdgeInfer refuses the short latent and answers from its stub: 64 numbers, passed on as they came.
    assert [len(latent) for latent in measured["edgeinfer"]["latents"]] == [64, 64]
    app.mode = "array"
    assert measure(metadata_path, app, edgeinfer.url + EDGEINFER_PATH, calls=1)["app"]["latents"] == [None]


def test_app_latent_off_fails_golden_app(metadata_path: Path, app: StandIn, edgeinfer: StandIn) -> None:
    app.mode = "offset"
    report = golden_check(metadata_path, app, edgeinfer.url + EDGEINFER_PATH)
    assert report["golden_app"]["ok"] is False
    assert report["golden_app"]["max_abs"] == pytest.approx(0.01, abs=1e-6)
    assert report["golden_app"]["reason"].endswith("<= 0.001 is false")
    # EdgeInfer is judged against what the app answers, and it does forward to the app.
    assert report["golden_edgeinfer"]["ok"] is True


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("nan", "app answer has no finite latent of length 64"),
        ("short", "app answer has no finite latent of length 64"),
        ("array", "app answer has no finite latent of length 64"),
        ("503", "HTTP 503 from http://127.0.0.1:"),
        ("not_utf8", "http://127.0.0.1:"),
        ("truncated", "http://127.0.0.1:"),
    ],
)
def test_app_without_a_usable_latent_fails_both_checks(
    metadata_path: Path, app: StandIn, edgeinfer: StandIn, mode: str, reason: str
) -> None:
    app.mode = mode
    report = golden_check(metadata_path, app, edgeinfer.url + EDGEINFER_PATH)
    assert report["golden_app"]["ok"] is False
    assert reason in report["golden_app"]["reason"]
    assert report["golden_edgeinfer"] == {
        "ok": False,
        "real_model": None,
        "reason": "no app latent to compare EdgeInfer's with",
    }


def test_app_slower_than_the_timeout_fails_in_bounded_time(
    metadata_path: Path, app: StandIn, edgeinfer: StandIn
) -> None:
    app.mode = "slow"
    edgeinfer.mode = "stub"
    started = time.monotonic()
    report = golden_check(metadata_path, app, edgeinfer.url + EDGEINFER_PATH, calls=1)
    assert time.monotonic() - started < 2.5  # the 1 s timeout, not the app's 3 s
    assert report["golden_app"]["ok"] is False
    assert "timed out" in report["golden_app"]["reason"]
    assert report["latency_ms"] is None


def test_edgeinfer_random_stub_fails_golden_edgeinfer(
    metadata_path: Path, app: StandIn, edgeinfer: StandIn
) -> None:
    edgeinfer.mode = "stub"
    report = golden_check(metadata_path, app, edgeinfer.url + EDGEINFER_PATH)
    assert report["golden_app"]["ok"] is True
    edge = report["golden_edgeinfer"]
    assert edge["ok"] is False and edge["real_model"] is False
    assert (
        edge["reason"]
        == "0/3 EdgeInfer answers equal the app's latent, need 1: EdgeInfer answers from its random stub"
    )
    assert edge["closest_max_abs"] > 1e-2


@pytest.mark.parametrize(("min_real", "ok"), [(1, True), (2, True), (3, False)])
def test_silent_stub_fallbacks_count_against_the_minimum(
    metadata_path: Path, app: StandIn, edgeinfer: StandIn, min_real: int, ok: bool
) -> None:
    edgeinfer.mode = "stub_first"
    report = golden_check(metadata_path, app, edgeinfer.url + EDGEINFER_PATH, min_real=min_real)
    edge = report["golden_edgeinfer"]
    assert edge["ok"] is ok
    assert (edge["real_answers"], edge["answers"], edge["real_model"]) == (2, 3, True)


def test_edgeinfer_unreachable_fails_naming_its_url(metadata_path: Path, app: StandIn) -> None:
    url = closed_port_url()
    report = golden_check(metadata_path, app, url)
    assert report["golden_app"]["ok"] is True
    assert report["golden_edgeinfer"]["ok"] is False
    assert report["golden_edgeinfer"]["reason"].startswith(url)
    assert report["edgeinfer_latency_ms"] is None


def test_hailort_backend_is_judged_by_cosine(metadata_path: Path, app: StandIn, edgeinfer: StandIn) -> None:
    app.mode = "scaled"
    app.backend = "hailort"
    report = golden_check(metadata_path, app, edgeinfer.url + EDGEINFER_PATH)
    assert report["golden_app"]["ok"] is True
    assert report["golden_app"]["cosine"] == pytest.approx(1.0)
    assert report["golden_app"]["max_abs"] > 1e-3  # would fail the float backend's rule
    assert report["golden_app"]["reason"].startswith("hailort: cosine")
    assert report["golden_edgeinfer"]["ok"] is True


def test_float_backend_is_not_judged_by_cosine(metadata_path: Path, app: StandIn, edgeinfer: StandIn) -> None:
    app.mode = "scaled"
    report = golden_check(metadata_path, app, edgeinfer.url + EDGEINFER_PATH)
    assert report["golden_app"]["ok"] is False
    assert report["golden_app"]["cosine"] == pytest.approx(1.0)


def test_hailort_latent_pointing_elsewhere_fails(
    metadata_path: Path, app: StandIn, edgeinfer: StandIn
) -> None:
    app.mode = "scrambled"
    app.backend = "hailort"
    report = golden_check(metadata_path, app, edgeinfer.url + EDGEINFER_PATH)
    assert report["golden_app"]["ok"] is False
    assert report["golden_app"]["cosine"] < 0.98
    assert report["golden_app"]["reason"].endswith(">= 0.98 is false")


def test_expected_stub_mode_passes_on_stub_answers(
    metadata_path: Path, app: StandIn, edgeinfer: StandIn
) -> None:
    edgeinfer.mode = "stub"
    report = golden_check(metadata_path, app, edgeinfer.url + EDGEINFER_PATH, expect_edgeinfer="stub")
    edge = report["golden_edgeinfer"]
    assert edge["ok"] is True and edge["real_model"] is False
    assert edge["reason"].endswith("stub mode, as expected")


def test_expected_stub_mode_fails_while_edgeinfer_uses_the_app(
    metadata_path: Path, app: StandIn, edgeinfer: StandIn
) -> None:
    report = golden_check(metadata_path, app, edgeinfer.url + EDGEINFER_PATH, expect_edgeinfer="stub")
    edge = report["golden_edgeinfer"]
    assert edge["ok"] is False and edge["real_model"] is True
    assert edge["reason"].endswith("but stub mode (USE_REAL_MODEL=false) was expected")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "No such file"),
        ("{not json", "Expecting property name"),
        ("[1, 2]", "metadata is not a JSON object"),
        ('{"golden": {"window": []}}', "'golden' lacks latent, tolerance"),
    ],
)
def test_unusable_metadata_exits_2_with_one_line(tmp_path: Path, content: str | None, problem: str) -> None:
    metadata = tmp_path / "model_metadata.json"
    if content is not None:
        metadata.write_text(content)
    url = closed_port_url()  # never reached: the metadata is read first
    result = run_script("--metadata", str(metadata), "--app-url", url, "--edgeinfer-url", url)
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"golden_check: cannot read the golden window from {metadata}: ")
    assert problem in line
