"""The real inference server (`python -m app` -> gunicorn) on a free loopback port, for the benchmarks.

Imported by scripts/benchmark_infer.py and scripts/benchmark_soak.py, which run as scripts (this folder is on
their sys.path).
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the server's graceful stop), SIGKILL after 20 s."""
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def post_infer(
    conn: http.client.HTTPConnection, body: bytes, headers: Sequence[tuple[str, str]]
) -> tuple[http.client.HTTPResponse, bytes]:
    """One POST /infer with exactly these headers (a repeated name is sent twice, as EdgeInfer does)."""
    conn.putrequest("POST", "/infer", skip_accept_encoding=True)
    for name, value in headers:
        conn.putheader(name, value)
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    response = conn.getresponse()
    return response, response.read()


class AppProcess:
    def __init__(
        self, bundle: Path, workdir: Path, workers: int | None = None, threads: int | None = None
    ) -> None:
        self.port = free_loopback_port()
        command = [sys.executable, "-m", "app", "--bundle", str(bundle), "--bind", f"127.0.0.1:{self.port}"]
        if workers:
            command += ["--workers", str(workers)]
        if threads:
            command += ["--threads", str(threads)]
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics")}
        self.log = (workdir / "server.log").open("wb")
        self.process = subprocess.Popen(command, cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def get(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def samples(self) -> list[Any]:
        """Every sample of /metrics, parsed by prometheus_client."""
        _, body = self.get("/metrics")
        return [s for family in text_string_to_metric_families(body.decode()) for s in family.samples]

    def wait_ready(self, workers_expected: int, timeout: float = 90.0) -> None:
        """Until /healthz answers 200 and the app counts every worker ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"server exited with {self.process.returncode}; see {self.log.name}")
            try:
                status, _ = self.get("/healthz")
                ready = sum(s.value for s in self.samples() if s.name == "hailo_pipeline_workers_ready")
                if status == 200 and ready >= workers_expected:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"server not ready within {timeout}s; see {self.log.name}")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        stop_server(self.process)
        self.log.close()
