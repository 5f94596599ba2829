"""A release switch with no gap (app/handover.py), on the real gunicorn server laid out as on a Pi: `current`
points at another release, USR2 goes to the master, and clients posting all the while never see a refused
connection, a non-200 or an answer that is neither release's model. A release that cannot serve never takes a
request, and the old one keeps serving. systemd's side is a datagram socket standing in for NOTIFY_SOCKET."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from app_server import AppServer, double_events

from bundle_contract.golden import same_latent

PR_SET_CHILD_SUBREAPER = 36
VENV = Path(sys.executable).parents[1]


@pytest.fixture(scope="module")
def bundle_b(tmp_path_factory: pytest.TempPathFactory, build_bundle: Callable[..., Path]) -> Path:
    """Another model version: the same encoder under another normalization, so other latents."""
    from compile.normalization import default_normalization

    defaults = default_normalization()
    config = tmp_path_factory.mktemp("config_b") / "model_config.json"
    config.write_text(
        json.dumps(
            {
                "normalization": {
                    "method": "z_score_per_channel",
                    "mean": list(defaults.mean),
                    "std": [value * 1.05 for value in defaults.std],
                }
            }
        )
    )
    return build_bundle(tmp_path_factory.mktemp("b"), "--config", str(config))


@pytest.fixture(autouse=True)
def adopt_orphans() -> Iterator[None]:
    """The new master outlives the old one, its parent: become its parent then, so it can be reaped."""
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0, os.strerror(ctypes.get_errno())
    yield
    libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def golden(bundle: Path) -> dict:
    return json.loads((bundle / "model_metadata.json").read_text())["golden"]


def release(root: Path, name: str, bundle: Path) -> str:
    """releases/<name>/{venv,bundle} as the role lays them out (links into the shared parts)."""
    folder = root / "releases" / name
    folder.mkdir(parents=True)
    (folder / "venv").symlink_to(VENV)
    (folder / "bundle").symlink_to(bundle)
    return name


def point_current(root: Path, name: str) -> None:
    """Rename a fresh link over `current`, as release_switch does."""
    fresh = root / ".current-new"
    fresh.symlink_to(Path("releases") / name)
    fresh.replace(root / "current")


@dataclass
class Traffic:
    """Posts the golden window over and over from a few threads, keeping every outcome."""

    server: AppServer
    window: list
    outcomes: list[tuple[int | str, list | None, float]] = field(default_factory=list)
    running: bool = True

    def post(self) -> None:
        body = json.dumps({"x": self.window}).encode()
        while self.running:
            started = time.monotonic()
            try:
                answer = self.server.request("POST", "/infer", body, [("Content-Type", "application/json")])
                latent = answer.json().get("latent") if answer.status == 200 else None
                self.outcomes.append((answer.status, latent, time.monotonic() - started))
            except OSError as exc:
                self.outcomes.append((type(exc).__name__, None, time.monotonic() - started))

    def __enter__(self) -> Traffic:
        self.threads = [threading.Thread(target=self.post, daemon=True) for _ in range(3)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.running = False
        for thread in self.threads:
            thread.join(15)


class Notify:
    """systemd's notification socket: what the masters and workers tell the service manager."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[str] = []

    def receive(self, until: Callable[[list[str]], bool], timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while not until(self.messages) and time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                break
        return self.messages


def main_pid(messages: list[str]) -> int | None:
    lines = [line for message in messages for line in message.split("\n")]
    pids = [int(line.split("=", 1)[1]) for line in lines if line.startswith("MAINPID=")]
    return pids[-1] if pids else None


def gone(pid: int, timeout: float) -> bool:
    """Reaps pid (our child, or adopted as subreaper) and says whether it exited within timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            return True
        time.sleep(0.05)
    return False


def switch(server: AppServer, root: Path, notify: Notify, name: str) -> int:
    """Point current at `name`, USR2 the master, and return the new master once systemd is told of it and the
    old one retired (gunicorn's graceful stop: it exits 0 once its workers finished their requests)."""
    old_master = server.process.pid
    point_current(root, name)
    os.kill(old_master, signal.SIGUSR2)
    notify.receive(lambda seen: main_pid(seen) is not None, timeout=60)
    new_master = main_pid(notify.messages)
    assert new_master is not None and new_master != old_master, (notify.messages, server.log()[-3000:])
    assert server.process.wait(timeout=30) == 0, "the old master did not retire"
    return new_master


def serve(
    root: Path,
    tmp_path: Path,
    notify: Notify,
    *,
    workers: int = 2,
    env: dict[str, str] | None = None,
    hailo_double: bool = False,
) -> AppServer:
    current = root / "current"
    server = AppServer(
        current / "bundle",
        tmp_path,
        workers=workers,
        env={"NOTIFY_SOCKET": str(notify.path), "PWD": str(current), **(env or {})},
        cwd=current,
        with_hailo_double=hailo_double,
    )
    server.command[0] = str(current / "venv" / "bin" / "python")
    return server.start()


@pytest.fixture
def layout(tmp_path: Path, default_bundle: Path) -> tuple[Path, Notify]:
    root = tmp_path / "opt"
    point_current(root, release(root, "a", default_bundle))
    return root, Notify(tmp_path / "notify.sock")


def test_switch_serves_every_request_from_one_release_or_the_other(
    layout: tuple[Path, Notify], tmp_path: Path, default_bundle: Path, bundle_b: Path
) -> None:
    root, notify = layout
    old, new = golden(default_bundle), golden(bundle_b)
    assert old["window"] == new["window"] and not same_latent(old["latent"], new["latent"])
    release(root, "b", bundle_b)
    server = serve(root, tmp_path, notify)
    new_master = None
    try:
        server.wait_ready()
        with Traffic(server, old["window"]) as traffic:
            time.sleep(0.5)
            new_master = switch(server, root, notify, "b")
            time.sleep(0.5)
        outcomes = traffic.outcomes
        assert os.readlink(f"/proc/{new_master}/cwd") == str((root / "releases" / "b").resolve())
        health = server.request("GET", "/healthz").json()
        assert health["model_version"] == bundle_b.name
    finally:
        if new_master is not None:
            os.kill(new_master, signal.SIGTERM)
            gone(new_master, 20)
        server.stop()
    failed = [o for o in outcomes if o[0] != 200]
    unknown = [
        o for o in outcomes if o[0] == 200 and not any(same_latent(o[1], g["latent"]) for g in (old, new))
    ]
    from_new = [o for o in outcomes if o[0] == 200 and same_latent(o[1], new["latent"])]
    print(
        f"switch under traffic: {len(outcomes)} requests, {len(failed)} failed, "
        f"{len(from_new)} from the new release, slowest {max(o[2] for o in outcomes) * 1000:.0f} ms"
    )
    assert not failed and not unknown, (failed[:5], unknown[:5], server.log()[-3000:])
    # The last answers all come from the new release: it serves once the old one has gone.
    assert from_new and all(same_latent(o[1], new["latent"]) for o in outcomes[-20:])


def test_a_release_that_cannot_serve_never_takes_a_request(
    layout: tuple[Path, Notify], tmp_path: Path, default_bundle: Path, tampered_bundle: Path
) -> None:
    root, notify = layout
    old = golden(default_bundle)
    release(root, "broken", tampered_bundle)
    server = serve(root, tmp_path, notify)
    try:
        server.wait_ready()
        old_master = server.process.pid
        with Traffic(server, old["window"]) as traffic:
            point_current(root, "broken")
            os.kill(old_master, signal.SIGUSR2)
            deadline = time.monotonic() + 60
            while "Worker failed to boot" not in server.log() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)
        assert "the new release cannot serve" in server.log(), server.log()[-3000:]
        assert server.process.poll() is None, "the old master must keep serving"
        assert main_pid(notify.receive(lambda seen: False, timeout=0.5)) is None
        assert server.request("GET", "/healthz").json()["model_version"] == default_bundle.name
    finally:
        server.stop()
    outcomes = traffic.outcomes
    assert outcomes and all(o[0] == 200 and same_latent(o[1], old["latent"]) for o in outcomes), [
        o for o in outcomes if o[0] != 200
    ][:5]


# The HailoRT backend against the hailo_platform TEST DOUBLE (tests/doubles), whose chip one process holds
# unless every holder goes through hailort.service.


@pytest.fixture
def hailo_layout(
    tmp_path: Path,
    hailo_bundle: Path,
    bundle_b: Path,
    test_double_hefs: Callable[[Path, Path], Path],
) -> tuple[Path, Notify, Path]:
    root = tmp_path / "opt"
    point_current(root, release(root, "a", hailo_bundle))
    release(root, "b", test_double_hefs(bundle_b, tmp_path))
    return root, Notify(tmp_path / "notify.sock"), tmp_path / "events.jsonl"


def test_on_the_chip_both_releases_hold_it_through_the_service_during_the_switch(
    hailo_layout: tuple[Path, Notify, Path], tmp_path: Path, hailort_service: str
) -> None:
    root, notify, log = hailo_layout
    old, new = golden(root / "releases" / "a" / "bundle"), golden(root / "releases" / "b" / "bundle")
    env = {
        "HAILO_DOUBLE_EVENTS": str(log),
        "HAILO_PIPELINE_BACKEND": "hailort",
        "HAILO_PIPELINE_HAILO_MULTI_PROCESS": "true",
        "HAILORT_SERVICE_ADDRESS": hailort_service,
    }
    server = serve(root, tmp_path, notify, env=env, hailo_double=True)
    new_master = None
    try:
        server.wait_ready()
        with Traffic(server, old["window"]) as traffic:
            time.sleep(0.3)
            new_master = switch(server, root, notify, "b")
            time.sleep(0.3)
        assert server.request("GET", "/healthz").json()["backend"] == "hailort"
    finally:
        if new_master is not None:
            os.kill(new_master, signal.SIGTERM)
            gone(new_master, 20)
        server.stop()
    outcomes = traffic.outcomes
    assert outcomes and all(
        o[0] == 200 and any(same_latent(o[1], g["latent"]) for g in (old, new)) for o in outcomes
    ), [o[:1] for o in outcomes if o[0] != 200][:5]
    assert all(same_latent(o[1], new["latent"]) for o in outcomes[-10:])
    seen = double_events(log)
    opened = [e for e in seen if e["event"] == "vdevice"]
    assert len(opened) == 4 and all(e["multi_process_service"] for e in opened), opened
    # The new release's workers opened the chip while the old ones still held it: no release came between.
    first_new = next(
        i
        for i, e in enumerate(seen)
        if e["event"] == "vdevice" and e["pid"] not in {opened[0]["pid"], opened[1]["pid"]}
    )
    assert not [e for e in seen[:first_new] if e["event"] == "release"], seen[:first_new]


def test_on_the_chip_without_the_service_a_reload_is_refused_and_the_old_release_keeps_serving(
    hailo_layout: tuple[Path, Notify, Path], tmp_path: Path
) -> None:
    """Why the role restarts instead of reloading where the service is off: one process owns the chip."""
    root, notify, log = hailo_layout
    old = golden(root / "releases" / "a" / "bundle")
    env = {"HAILO_DOUBLE_EVENTS": str(log), "HAILO_PIPELINE_BACKEND": "hailort"}
    server = serve(root, tmp_path, notify, workers=1, env=env, hailo_double=True)
    try:
        server.wait_ready()
        with Traffic(server, old["window"]) as traffic:
            point_current(root, "b")
            os.kill(server.process.pid, signal.SIGUSR2)
            deadline = time.monotonic() + 60
            while "Worker failed to boot" not in server.log() and time.monotonic() < deadline:
                time.sleep(0.1)
        assert "HAILO_OUT_OF_PHYSICAL_DEVICES" in server.log(), server.log()[-3000:]
        assert server.process.poll() is None and main_pid(notify.messages) is None
        health = server.request("GET", "/healthz").json()
        assert health["model_version"] == (root / "releases" / "a" / "bundle").resolve().name, health
    finally:
        server.stop()
    assert traffic.outcomes and all(
        o[0] == 200 and same_latent(o[1], old["latent"]) for o in traffic.outcomes
    )
