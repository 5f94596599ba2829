"""Start the app exactly as the Pi does (`python -m app ...` -> gunicorn) and talk raw HTTP to it."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOUBLES = REPO / "tests" / "doubles"


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def double_events(path: Path) -> list[dict]:
    """What the hailo_platform test double recorded (HAILO_DOUBLE_EVENTS), in order."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppServer:
    def __init__(
        self,
        bundle: Path,
        workdir: Path,
        *,
        workers: int = 2,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        with_hailo_double: bool = False,
        cwd: Path = REPO,
    ) -> None:
        self.cwd = cwd
        self.port = free_port()
        self.workers = workers
        self.workdir = workdir
        self.log_path = workdir / "server.log"
        self.command = [
            sys.executable, "-m", "app", "--bundle", str(bundle),
            "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers), *args,
        ]  # fmt: skip
        self.env = {
            **os.environ,
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
            # hailo_platform is importable only where a test asks for the test double.
            "PYTHONPATH": str(DOUBLES) if with_hailo_double else "",
            # The double's "chip": one per server, shared by its master and workers.
            "HAILO_DOUBLE_DEVICE_LOCK": str(workdir / "chip.lock"),
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> AppServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        return self

    def wait_listening(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.log()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise TimeoutError(f"server did not listen within {timeout}s:\n{self.log()}")

    def wait_ready(self, timeout: float = 60.0) -> list[Answer]:
        """Poll /healthz until 200, then until every worker reports its model in /metrics (a request reaches
        whichever worker accepts it). Returns every /healthz answer seen, the not-ready ones first."""
        self.wait_listening(timeout)
        seen: list[Answer] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.request("GET", "/healthz")
            seen.append(answer)
            if answer.status == 200 and self.ready_workers() == self.workers:
                return seen
            time.sleep(0.02)
        raise TimeoutError(f"not every worker turned ready; last {seen[-1:]}\n{self.log()}")

    def ready_workers(self) -> int:
        lines = self.metrics().splitlines()
        return int(
            sum(
                float(line.rsplit(" ", 1)[1])
                for line in lines
                if line.startswith("hailo_pipeline_workers_ready ")
            )
        )

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: list[tuple[str, str]] | None = None,
        content_length: bool = True,
    ) -> Answer:
        """Raw http.client so headers go out exactly as given (EdgeInfer repeats Content-Type)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for name, value in headers or []:
                conn.putheader(name, value)
            if body is not None and content_length:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            return Answer(response.status, response.getheaders(), response.read())
        finally:
            conn.close()

    def post_json(self, payload: object, content_types: int = 1) -> Answer:
        body = json.dumps(payload).encode()
        return self.request("POST", "/infer", body, [("Content-Type", "application/json")] * content_types)

    def metrics(self) -> str:
        answer = self.request("GET", "/metrics")
        assert answer.status == 200, (answer.status, answer.body[:500], self.log()[-2000:])
        return answer.body.decode()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for_state(server: AppServer, state: str, timeout: float = 20.0) -> dict:
    """Poll /healthz until a worker reports the given not-ready state (warming_up, failed, ...)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = server.request("GET", "/healthz")
        if answer.status == 503 and answer.json()["state"] == state:
            return answer.json()
        time.sleep(0.01)
    raise TimeoutError(f"/healthz never reported {state}:\n{server.log()}")
