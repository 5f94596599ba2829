"""End-to-end deploy faults (issue 12): a disk that fills during the copy and a bundle damaged on the control
host after the build.

Each fault hits the canary (hp-pi-1), so a failed canary stops the rollout and the other Pis are left
alone; each test ends with every Pi on a verified release (the new one or the one before), EdgeInfer on the
real model at the app's URL, nothing lost, and a next run that converges. Each test deploys its own model
version (a new bundle is what gets copied).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fleet_runner import PlaybookRun, run_playbook
from fleet_state import E2E_PREFIX, ROOT, Fleet, built_release, write_model_config

pytestmark = pytest.mark.fleet

PI1, PI2, PI3 = (f"{E2E_PREFIX}-pi-{index}" for index in (1, 2, 3))
CANARY = PI1
BUNDLE_FILE = "tcn_encoder.onnx"
APP_URL_SUFFIX = ":8000/infer"


@pytest.fixture(scope="module")
def play(fleet: Fleet) -> Callable[..., PlaybookRun]:
    def run(extravars: dict[str, Any] | None = None, **kwargs: Any) -> PlaybookRun:
        extravars = {"reports_dir": str(fleet.reports_dir), **(extravars or {})}
        return run_playbook("site.yml", inventory=fleet.inventory, extravars=extravars, **kwargs)

    return run


@pytest.fixture(scope="module", autouse=True)
def deployed(fleet: Fleet, play) -> Iterator[None]:
    """A fleet deployed and converged before the first fault (a quick re-run after the rollout story)."""
    assert_clean(play())
    yield


def assert_clean(run: PlaybookRun) -> None:
    assert run.rc == 0, (run.status, run.stats, run.failure_messages())
    assert run.hosts_with("failures") == set() and run.hosts_with("dark") == set()


def task_event(event: dict[str, Any], kind: str, host: str, task_prefix: str) -> bool:
    data = event.get("event_data") or {}
    return (
        event.get("event") == kind
        and data.get("host") == host
        and str(data.get("task", "")).startswith(task_prefix)
    )


def output(fleet: Fleet, pi: str, command: str) -> str:
    """The output of a command that always prints. Docker sometimes loses a quick exec's output (docker-py
    issue 2042, moby issue 27289): an empty answer is asked again, never read as the Pi's state."""
    for _ in range(3):
        code, out = fleet.sh(pi, command)
        assert code == 0, (pi, command, out)
        if out:
            return out
        time.sleep(0.5)
    raise AssertionError(f"{pi}: no output from {command}")


def current(fleet: Fleet, pi: str) -> str:
    return Path(output(fleet, pi, f"readlink {ROOT}/current")).name


def history(fleet: Fleet, pi: str) -> dict[str, Any]:
    return json.loads(output(fleet, pi, f"cat {ROOT}/history.json"))


def snapshot(fleet: Fleet, pi: str) -> dict[str, Any]:
    return {
        "current": current(fleet, pi),
        "history": history(fleet, pi),
        "releases": fleet.listing(pi, "releases"),
        "bundles": fleet.listing(pi, "bundles"),
        "runtimes": fleet.listing(pi, "runtimes"),
    }


def wait_healthy(fleet: Fleet, pi: str, timeout_s: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        health = fleet.app_health(pi)
        if health.get("status") == "ok":
            return health
        time.sleep(1)
    raise AssertionError(f"{pi}: the app is not healthy after {timeout_s} s")


def assert_verified(fleet: Fleet, pi: str) -> str:
    """The Pi serves a complete, verified release that current, history.json and RELEASE.json all name."""
    release = current(fleet, pi)
    folder = f"{ROOT}/releases/{release}"
    assert fleet.release_complete(pi, release), f"{pi}: current points at incomplete {release}"
    assert history(fleet, pi)["current"] == release, (pi, history(fleet, pi))
    assert json.loads(output(fleet, pi, f"cat {folder}/RELEASE.json"))["release"] == release, pi
    # No part the release links to is a partial copy, and its bundle checks out file by file.
    links = output(fleet, pi, f"readlink {folder}/bundle {folder}/venv")
    assert ".tmp-" not in links, (pi, links)
    code, out = fleet.sh(pi, f"{folder}/venv/bin/python -m app.bundle {folder}/bundle")
    assert code == 0, (pi, out)
    assert wait_healthy(fleet, pi)["model_version"] == release.rsplit("-", 1)[0], pi
    inspect = "docker inspect --format '{{json .Config.Env}}' edge-infer"
    env = dict(item.split("=", 1) for item in json.loads(output(fleet, pi, inspect)))
    assert env.get("USE_REAL_MODEL") == "true", (pi, env)
    assert env.get("MODEL_BACKEND_URL", "").endswith(APP_URL_SUFFIX), (pi, env)
    return release


def assert_no_partial_parts(fleet: Fleet, pi: str) -> None:
    for folder in ("releases", "bundles", "runtimes"):
        assert not [name for name in fleet.listing(pi, folder) if name.startswith(".tmp-")], (pi, folder)


def assert_refused_on_canary(fleet: Fleet, run: PlaybookRun, before: dict[str, dict[str, Any]]) -> None:
    """The canary failed and was left where it was; the rollout stopped, so the other Pis are untouched."""
    assert run.rc != 0
    assert CANARY in run.hosts_with("failures")
    assert run.hosts_with("dark") == set()
    for pi in fleet.names:
        assert snapshot(fleet, pi) == before[pi], pi
        assert_no_partial_parts(fleet, pi)
        assert_verified(fleet, pi)


def converge(fleet: Fleet, play, extravars: dict[str, Any], limit: str | None = CANARY) -> str:
    """The next run, fault gone: the new release lands where it was refused, nothing left half done."""
    run = play(extravars, limit=limit)
    assert_clean(run)
    release = built_release()["release"]
    for pi in limit.split(",") if limit else fleet.names:
        assert assert_verified(fleet, pi) == release, pi
        assert_no_partial_parts(fleet, pi)
    return release


def new_model(tmp_path: Path, scale: float) -> dict[str, Any]:
    return {"model_config": str(write_model_config(tmp_path / "model_config.json", std_scale=scale))}


def started(run: PlaybookRun, host: str, task_prefix: str) -> list[dict[str, Any]]:
    return [event for event in run.events if task_event(event, "runner_on_start", host, task_prefix)]


def failed(run: PlaybookRun, host: str, task_prefix: str) -> list[dict[str, Any]]:
    return [event for event in run.events if task_event(event, "runner_on_failed", host, task_prefix)]


def test_a_disk_that_fills_during_the_bundle_copy_refuses_the_release_and_gives_the_space_back(
    fleet: Fleet, play, tmp_path
):
    extravars = new_model(tmp_path, 1.11)
    before = {pi: snapshot(fleet, pi) for pi in fleet.names}
    bundles = f"{ROOT}/bundles"
    small = "/run/hp-faults-bundles"
    # bundles/ moves onto a small filesystem of its own (a copy of what it holds, bind-mounted over it),
    # filled until less than the new bundle is free. The root filesystem keeps its free space, so preflight's
    # check passes and the copy itself runs out of room.
    used = output(fleet, CANARY, f"du -s --block-size=1 {bundles} | cut -f1")
    size = int(used) + 64 * 1024 * 1024
    mount = (
        f"mkdir -p {small} && mount -t tmpfs -o size={size} tmpfs {small} && cp -a {bundles}/. {small}/"
        f" && mount --bind {small} {bundles}"
    )
    try:
        assert fleet.sh(CANARY, mount)[0] == 0
        free = f"df --output=avail --block-size=1 {bundles} | tail -n 1"
        avail = output(fleet, CANARY, free)
        # 256 KiB stays free: less than any real bundle (checked below, once the build play made this one).
        filler = int(avail) - 256 * 1024
        assert fleet.sh(CANARY, f"head -c {filler} /dev/zero > {small}/.filler")[0] == 0
        avail_before = output(fleet, CANARY, free)

        run = play(extravars)

        assert built_release()["bundle_bytes"] > 256 * 1024
        copy_failures = failed(run, CANARY, "Bundle | copy the model bundle")
        assert copy_failures and "no space left" in str(copy_failures[-1]).lower(), copy_failures
        # The rescue removed the partial copy: all the room it took is free again.
        assert output(fleet, CANARY, free) == avail_before
    finally:
        fleet.sh(CANARY, f"umount -l {bundles}; umount -l {small} && rmdir {small}")
    assert_refused_on_canary(fleet, run, before)
    converge(fleet, play, extravars)


def test_a_bundle_damaged_on_the_control_host_after_the_build_is_refused_before_any_pi_changes(
    fleet: Fleet, play, tmp_path
):
    extravars = new_model(tmp_path, 1.12)
    before = {pi: snapshot(fleet, pi) for pi in fleet.names}
    damaged: list[Path] = []

    def flip_a_byte(event: dict[str, Any]) -> None:
        # The build play is done once the canary's deploy starts: damage what it built, once.
        if not damaged and task_event(event, "runner_on_start", CANARY, "Deploy | mark this Pi in progress"):
            path = Path(built_release()["bundle_dir"]) / BUNDLE_FILE
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0xFF
            path.write_bytes(bytes(data))
            damaged.append(path)

    try:
        run = play(extravars, on_event=flip_a_byte)
    finally:
        for path in damaged:  # put the byte back, so the content-addressed build folder is whole again
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0xFF
            path.write_bytes(bytes(data))
    assert damaged
    refusals = failed(run, CANARY, "Preflight | every control-host bundle file matches")
    assert refusals, run.failure_messages()
    refusal = str((refusals[-1].get("event_data") or {}).get("res", {}).get("msg", ""))
    assert BUNDLE_FILE in refusal and "sha256" in refusal and "refused" in refusal, refusal
    # Refused on the control host: nothing was ever copied to the canary, not even a copy later removed.
    assert not started(run, CANARY, "Bundle |") and not started(run, CANARY, "Release | the root folder")
    assert_refused_on_canary(fleet, run, before)
    # The whole fleet this time, so the next file starts from one release.
    converge(fleet, play, extravars, limit=None)
