"""A client on every simulated Pi posting one window to EdgeInfer at 50 Hz while a playbook runs.

Shared by the fleet tests (which hold the answers to issue 10's bar) and scripts/benchmark_fleet.py (which
prints the fallbacks by cause, goal 0).

Each answer is kept and judged afterwards against the model latents the app itself gave for that window before
and after the run: an answer equal to neither is EdgeInfer's random stub output. The EdgeInfer stand-in's own
fallback counters (GET /_standin/fallbacks, stand-in behaviour only) say why each such answer was hidden.
"""

from __future__ import annotations

import http.client
import json
import shlex
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import docker
import numpy as np

from fleetops.pi_vars import PI_VARS
from simfleet.fleet import FleetSpec

RATE_HZ = 50
# EdgeInfer's port on the Pi (edgeinfer_url's): its compose project publishes it on the Pi's own address too.
EDGEINFER_PORT = urlsplit(PI_VARS["edgeinfer_url"]).port or 80
INFER_PATH = "/api/v1/analysis/infer"
# The app's answers are float32 serialised as JSON: equal models agree far inside this.
LATENT_ATOL = 1e-5
# One fixed window: what matters is which model answered it, not what it holds.
WINDOW = np.random.default_rng(10).normal(size=(100, 9)).round(4).tolist()
WINDOW_BODY = json.dumps({"x": WINDOW})


@dataclass
class PiTraffic:
    """What one Pi's client saw: answered latents, and requests that failed outright."""

    address: str
    latents: list[list[float]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def run(self, stop: threading.Event) -> None:
        # One kept-alive connection to EdgeInfer: a new one per request makes the simulated Pis spend more CPU
        # on this client's connections than on the answers the test judges.
        conn = http.client.HTTPConnection(self.address, EDGEINFER_PORT, timeout=5)
        due = time.monotonic()
        try:
            while not stop.is_set():
                self._one(conn)
                due += 1 / RATE_HZ
                stop.wait(max(0.0, due - time.monotonic()))
        finally:
            conn.close()

    def _one(self, conn: http.client.HTTPConnection) -> None:
        try:
            body, status = _post(conn)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The kept connection went stale (EdgeInfer restarted): a new client would open a fresh one.
            conn.close()
            try:
                body, status = _post(conn)
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(f"{exc.__class__.__name__}: {exc}")
                return
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            self.failures.append(f"{exc.__class__.__name__}: {exc}")
            return
        try:
            if status != 200:
                self.failures.append(f"HTTP {status}: {body[:200]!r}")
            else:
                self.latents.append(json.loads(body)["latent"])
        except (ValueError, KeyError) as exc:
            self.failures.append(f"{exc.__class__.__name__}: {exc}")


def _post(conn: http.client.HTTPConnection) -> tuple[bytes, int]:
    conn.request("POST", INFER_PATH, WINDOW_BODY, {"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.read(), response.status


def fallbacks(address: str) -> dict[str, int]:
    """The stand-in's fallback counts by cause on the Pi at `address`, since its container started."""
    conn = http.client.HTTPConnection(address, EDGEINFER_PORT, timeout=5)
    try:
        conn.request("GET", "/_standin/fallbacks")
        return json.loads(conn.getresponse().read())["fallbacks"]
    finally:
        conn.close()


class TrafficError(RuntimeError):
    """The app on a Pi did not answer the window itself, so answers through EdgeInfer cannot be judged."""


def app_latent(client: docker.DockerClient, pi: str) -> list[float]:
    """The latent the app on `pi` gives for WINDOW (asked on the Pi, since the app listens there only)."""
    command = (
        f"printf '%s' {shlex.quote(WINDOW_BODY)} | curl -s --max-time 5 -H 'Content-Type: application/json' "
        f"--data-binary @- http://127.0.0.1:{PI_VARS['inference_app_port']}/infer"
    )
    result = client.containers.get(pi).exec_run(["sh", "-c", command], user="root")
    out = result.output.decode(errors="replace")
    if result.exit_code != 0 or not out.startswith("{"):
        raise TrafficError(f"{pi}: the app did not answer the window: {out[:300]}")
    return json.loads(out)["latent"]


@dataclass
class Verdict:
    """One Pi's traffic judged: answers by origin, failed requests, and the fallbacks the stand-in counted."""

    answers: int
    from_model: int
    failures: list[str]
    fallbacks: dict[str, int]
    # The most answers in a row from neither model: a gap in serving, where scattered read timeouts are not.
    longest_gap: int = 0

    def problems(self, read_timeouts_per_1000: float = 1.0, longest_gap: int | None = None) -> list[str]:
        """Issue 10's bar: no failed request, only read timeouts hidden (at most 1 in 1,000 unless told), and
        every answer not from the old or new model is one of those; no more than `longest_gap` in a row."""
        found = []
        if longest_gap is not None and self.longest_gap > longest_gap:
            found.append(f"{self.longest_gap} answers in a row from neither model (at most {longest_gap})")
        if self.failures:
            found.append(f"{len(self.failures)} failed requests, first: {self.failures[0]}")
        others = {cause: n for cause, n in self.fallbacks.items() if cause != "read_timeout" and n}
        if others:
            found.append(f"fallbacks other than read timeouts: {others}")
        if self.fallbacks.get("read_timeout", 0) * 1000 > self.answers * read_timeouts_per_1000:
            found.append(f"{self.fallbacks['read_timeout']} read-timeout fallbacks in {self.answers} answers")
        # The stand-in also counts the health gate's own calls through EdgeInfer, so it may count more.
        if self.answers - self.from_model > sum(self.fallbacks.values()):
            found.append(
                f"{self.answers - self.from_model} answers from neither model, "
                f"{sum(self.fallbacks.values())} fallbacks counted"
            )
        return found


def longest_gap(from_model: Sequence[bool]) -> int:
    """The longest run of answers that came from neither model."""
    longest = run = 0
    for matched in from_model:
        run = 0 if matched else run + 1
        longest = max(longest, run)
    return longest


class Traffic:
    """`with Traffic(client, spec, names) as traffic:` around a playbook run; then `traffic.verdicts()`."""

    def __init__(self, client: docker.DockerClient, spec: FleetSpec, names: list[str]) -> None:
        self.docker = client
        self.clients = {pi: PiTraffic(spec.address(pi)) for pi in names}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.before: dict[str, list[float]] = {}
        self._fallbacks_before: dict[str, dict[str, int]] = {}

    def __enter__(self) -> Traffic:
        for pi, client in self.clients.items():
            self.before[pi] = app_latent(self.docker, pi)
            self._fallbacks_before[pi] = fallbacks(client.address)
        for client in self.clients.values():
            thread = threading.Thread(target=client.run, args=(self._stop,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def verdicts(self) -> dict[str, Verdict]:
        result = {}
        for pi, client in self.clients.items():
            models = np.array([self.before[pi], app_latent(self.docker, pi)])
            answers = np.array(client.latents).reshape(-1, 1, models.shape[1])
            matches = np.isclose(answers, models, atol=LATENT_ATOL, rtol=0).all(axis=2).any(axis=1)
            from_model = int(matches.sum())
            after = fallbacks(client.address)
            counted = {cause: after[cause] - self._fallbacks_before[pi].get(cause, 0) for cause in after}
            result[pi] = Verdict(
                len(client.latents), from_model, client.failures, counted, longest_gap(matches.tolist())
            )
        return result
