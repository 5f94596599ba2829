"""The EdgeInfer watch (app/edgeinfer_watch.py) against stand-in HTTP servers for the app and EdgeInfer:
EdgeInfer counts as answering with the model only when it carries the app's latent."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from app.edgeinfer_watch import edgeinfer_answers_with_model, main

LATENT = [0.01 * i for i in range(64)]


def answering(latent: Callable[[], list[float]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            assert len(body["x"]) == 100
            answer = json.dumps({"latent": latent(), "motif_scores": [0.0] * 12}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def http_server() -> Iterator[Callable[[Callable[[], list[float]]], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(latent: Callable[[], list[float]]) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), answering(latent))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/infer"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def metadata(tmp_path: Path) -> Path:
    path = tmp_path / "model_metadata.json"
    path.write_text(json.dumps({"golden": {"window": [[0.5] * 9] * 100, "latent": LATENT, "tolerance": {}}}))
    return path


def run_watch(metadata: Path, app_url: str, edgeinfer_url: str, out: Path) -> dict[str, float]:
    argv = [
        "--metadata",
        str(metadata),
        "--app-url",
        app_url,
        "--edgeinfer-url",
        edgeinfer_url,
        "--out",
        str(out),
    ]
    assert main([*argv, "--timeout", "2"]) == 0
    values = {}
    for line in out.read_text().splitlines():
        if line and not line.startswith("#"):
            name, value = line.split()
            values[name] = float(value)
    return values


def float32_rounded(values: list[float]) -> list[float]:
    return [value + 1e-7 for value in values]  # EdgeInfer re-encodes as float32


def stub() -> list[float]:
    return [random.uniform(-1, 1) for _ in range(64)]


def test_edgeinfer_passing_the_apps_answer_is_the_model(
    http_server: Callable[..., str], metadata: Path, tmp_path: Path
) -> None:
    out = tmp_path / "edgeinfer.prom"
    values = run_watch(
        metadata, http_server(lambda: LATENT), http_server(lambda: float32_rounded(LATENT)), out
    )
    assert values["hailo_pipeline_edgeinfer_model_answers"] == 1
    assert values["hailo_pipeline_edgeinfer_watch_app_answers"] == 1
    assert values["hailo_pipeline_edgeinfer_watch_timestamp_seconds"] > 1.7e9
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_edgeinfer_stub_output_is_a_fallback(
    http_server: Callable[..., str], metadata: Path, tmp_path: Path
) -> None:
    values = run_watch(metadata, http_server(lambda: LATENT), http_server(stub), tmp_path / "edgeinfer.prom")
    assert values["hailo_pipeline_edgeinfer_model_answers"] == 0
    assert values["hailo_pipeline_edgeinfer_watch_app_answers"] == 1


def test_app_down_behind_a_healthy_edgeinfer_is_a_fallback(
    http_server: Callable[..., str], metadata: Path, tmp_path: Path
) -> None:
    # EdgeInfer happens to return the golden latent, but with the app down it cannot be the model's answer.
    values = run_watch(metadata, "http://127.0.0.1:9/infer", http_server(lambda: LATENT), tmp_path / "e.prom")
    assert values["hailo_pipeline_edgeinfer_model_answers"] == 0
    assert values["hailo_pipeline_edgeinfer_watch_app_answers"] == 0


def test_one_real_answer_among_stub_ones_is_the_model() -> None:
    assert edgeinfer_answers_with_model(LATENT, [stub(), None, float32_rounded(LATENT)])
    assert not edgeinfer_answers_with_model(LATENT, [stub(), None, [v + 1e-3 for v in LATENT]])
    assert not edgeinfer_answers_with_model(None, [LATENT])


def test_metadata_without_golden_window_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "model_metadata.json"
    bad.write_text(json.dumps({"model": {}}))
    argv = [
        "--metadata",
        str(bad),
        "--edgeinfer-url",
        "http://127.0.0.1:9/infer",
        "--out",
        str(tmp_path / "e.prom"),
    ]
    assert main(argv) == 2
    assert "no golden window" in capsys.readouterr().err
    assert not (tmp_path / "e.prom").exists()


def test_edgeinfer_url_is_required(tmp_path: Path, metadata: Path) -> None:
    # The unit passes the fleet's EdgeInfer URL; the watch writes none of its own.
    with pytest.raises(SystemExit):
        main(["--metadata", str(metadata), "--out", str(tmp_path / "e.prom")])
