"""The metrics-only listener (app/metrics_listener.py): GET /metrics only, the app's metrics plus backend_up
and the watch's textfile, and connections from outside the allow-list closed unread."""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from app.config import AppConfig
from app.factory import create_app
from app.metrics_listener import MetricsServer, parse_networks, peer_allowed

PROMTOOL = shutil.which("promtool")


def serve(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def fake_app(default_bundle: Path) -> Iterator[tuple[str, list[str]]]:
    """An HTTP server answering /metrics with the real app's exposition text; yields its URL and the paths
    asked."""
    flask_app = create_app(AppConfig(bundle_dir=default_bundle), start_loading=False)
    body = flask_app.test_client().get("/metrics").data
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    serve(server)
    yield f"http://127.0.0.1:{server.server_address[1]}/metrics", asked
    server.shutdown()
    server.server_close()


@pytest.fixture
def listener() -> Iterator[Callable[..., MetricsServer]]:
    started: list[MetricsServer] = []

    def start(
        app_url: str, textfile_dir: Path | None = None, allow: tuple[str, ...] = (), host: str = "127.0.0.1"
    ):
        server = MetricsServer((host, 0), parse_networks(allow), app_url, textfile_dir, app_timeout_s=1.0)
        serve(server)
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def get(host: str, port: int, path: str, method: str = "GET") -> tuple[int, str]:
    connection = http.client.HTTPConnection(host, port, timeout=5)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serves_the_apps_metrics_with_backend_up_and_the_watch_textfile(
    fake_app: tuple[str, list[str]], listener: Callable[..., MetricsServer], tmp_path: Path
) -> None:
    url, asked = fake_app
    (tmp_path / "edgeinfer.prom").write_text(
        "# TYPE hailo_pipeline_edgeinfer_model_answers gauge\nhailo_pipeline_edgeinfer_model_answers 1\n"
    )
    (tmp_path / "ignored.txt").write_text("not a metric\n")
    server = listener(url, tmp_path)
    status, text = get("127.0.0.1", server.server_address[1], "/metrics")
    assert status == 200
    assert asked == ["/metrics"]
    assert "hailo_pipeline_inferences_total" in text
    assert "hailo_pipeline_backend_up 1\n" in text
    assert "hailo_pipeline_edgeinfer_model_answers 1\n" in text
    assert "not a metric" not in text
    if PROMTOOL:  # the merged text is one valid exposition (no family split or repeated)
        check = subprocess.run(
            [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
        )
        assert "error" not in (check.stdout + check.stderr).lower(), check.stdout + check.stderr


def test_app_down_still_answers_with_backend_up_0(
    listener: Callable[..., MetricsServer], tmp_path: Path
) -> None:
    (tmp_path / "edgeinfer.prom").write_text("hailo_pipeline_edgeinfer_model_answers 0\n")
    server = listener(f"http://127.0.0.1:{free_port()}/metrics", tmp_path)
    status, text = get("127.0.0.1", server.server_address[1], "/metrics")
    assert status == 200
    assert "hailo_pipeline_backend_up 0\n" in text
    assert "hailo_pipeline_edgeinfer_model_answers 0\n" in text


def test_nothing_but_get_metrics(
    fake_app: tuple[str, list[str]], listener: Callable[..., MetricsServer]
) -> None:
    url, asked = fake_app
    port = listener(url).server_address[1]
    assert get("127.0.0.1", port, "/infer", "POST")[0] == 405
    assert get("127.0.0.1", port, "/infer")[0] == 404
    assert get("127.0.0.1", port, "/healthz")[0] == 404
    assert get("127.0.0.1", port, "/metrics/../infer")[0] == 404
    assert asked == []  # nothing was passed on to the app


def own_address() -> str | None:
    """A non-loopback IPv4 address of this machine: connecting to it from here uses it as the source."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # UDP connect sends nothing; it only picks the outgoing address
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address


def test_a_peer_outside_the_allow_list_is_closed_unread(
    fake_app: tuple[str, list[str]], listener: Callable[..., MetricsServer]
) -> None:
    address = own_address()
    if address is None:
        pytest.skip("no non-loopback IPv4 address to connect from")
    url, asked = fake_app
    refused = listener(url, host="0.0.0.0").server_address[1]
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        get(address, refused, "/metrics")
    assert asked == []
    allowed = listener(url, allow=(f"{address}/32",), host="0.0.0.0").server_address[1]
    assert get(address, allowed, "/metrics")[0] == 200


@pytest.mark.parametrize(
    ("peer", "allow", "expected"),
    [
        ("127.0.0.1", [], True),
        ("::1", [], True),
        ("10.0.0.5", [], False),
        ("10.0.0.5", ["10.0.0.5"], True),
        ("10.0.0.6", ["10.0.0.5"], False),
        ("10.0.7.9", ["10.0.0.0/16"], True),
        ("::ffff:10.0.0.5", ["10.0.0.5"], True),
        ("::ffff:10.0.0.6", ["10.0.0.5"], False),
        ("2001:db8::1", ["2001:db8::/64"], True),
        ("2001:db8:1::1", ["2001:db8::/64", "10.0.0.0/8"], False),
    ],
)
def test_peer_allowed(peer: str, allow: list[str], expected: bool) -> None:
    assert peer_allowed(peer, parse_networks(allow)) is expected


def test_a_bad_allow_entry_is_named() -> None:
    with pytest.raises(ValueError, match=r"'prometheus\.lan' is not an IP address"):
        parse_networks(["10.0.0.1", "prometheus.lan"])
