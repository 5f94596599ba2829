"""A fake model backend and a running EdgeInfer stand-in, both in-process on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from simfleet.edgeinfer_standin import server as standin


@dataclass
class FakeBackend:
    """What the fake backend answers, and what it was asked."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    delay_s: float = 0.0
    requests: list[dict] = field(default_factory=list)
    url: str = ""

    def answer_json(self, payload: object) -> None:
        self.body = json.dumps(payload).encode()


def _handler(backend: FakeBackend) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):
            pass

        def do_POST(self):
            length = int(self.headers["Content-Length"])
            backend.requests.append(
                {
                    "path": self.path,
                    "content_types": self.headers.get_all("Content-Type"),
                    "body": json.loads(self.rfile.read(length)),
                }
            )
            time.sleep(backend.delay_s)
            self.send_response(backend.status)
            self.send_header("Content-Type", backend.content_type)
            self.send_header("Content-Length", str(len(backend.body)))
            self.end_headers()
            self.wfile.write(backend.body)

    return Handler


def _serve(server: ThreadingHTTPServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def backend() -> Iterator[FakeBackend]:
    fake = FakeBackend()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    for url in _serve(server):
        fake.url = url
        yield fake


@pytest.fixture
def run_standin():
    """Start a stand-in with the given environment; returns its base URL."""
    servers: list[ThreadingHTTPServer] = []
    threads: list[threading.Thread] = []

    def start(env: dict[str, str]) -> str:
        server = standin.make_server(standin.Settings.from_env(env), "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        thread.start()
        servers.append(server)
        threads.append(thread)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
