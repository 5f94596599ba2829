"""End-to-end deploy faults (issue 12): a disk that fills during the copy, a bundle damaged on the control
host after the build, a Pi that loses power right after the `current` switch and an SSH connection cut in the
middle of the bundle copy.

Each fault hits the canary (hp-pi-1), so a failed canary stops the rollout and the other Pis are left
alone; each test ends with every Pi on a verified release (the new one or the one before), EdgeInfer on the
real model at the app's URL, nothing lost, and a next run that converges. Each test deploys its own model
version (a new bundle is what gets copied).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fleet_state import E2E_PREFIX, ROOT, Fleet, built_release, write_model_config

from fleetops.runner import PlaybookRun, run_playbook

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
    release = built_release(fleet, CANARY)["release"]
    for pi in limit.split(",") if limit else fleet.names:
        assert assert_verified(fleet, pi) == built_release(fleet, pi)["release"], pi
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

        assert built_release(fleet, CANARY)["bundle_bytes"] > 256 * 1024
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
            path = Path(built_release(fleet, CANARY)["bundle_dir"]) / BUNDLE_FILE
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


def test_a_pi_that_loses_power_right_after_the_switch_boots_on_the_new_release_and_the_next_run_converges(
    fleet: Fleet, play, tmp_path
):
    extravars = new_model(tmp_path, 1.13)
    before = {pi: snapshot(fleet, pi) for pi in fleet.names}
    switched_to: list[dict[str, Any]] = []  # the switch module's result, once the plug is pulled

    def pull_the_plug(event: dict[str, Any]) -> None:
        # The switch module has returned: current and history.json are written. The restart onto the new
        # release, EdgeInfer and the health gate have not run, so the Pi is cut in the middle of its deploy.
        if not switched_to and task_event(event, "runner_on_ok", CANARY, "Activate | switch current"):
            fleet.power_cut(CANARY)
            switched_to.append((event.get("event_data") or {}).get("res") or {})

    run = play(extravars, on_event=pull_the_plug)

    assert switched_to, "the deploy never switched the canary"
    assert switched_to[0].get("switched") is True, switched_to
    assert run.rc != 0 and CANARY in run.hosts_with("dark"), (run.status, run.stats)
    # The rollout stopped at the canary: the other Pis are as they were.
    for pi in (PI2, PI3):
        assert snapshot(fleet, pi) == before[pi], pi
        assert_verified(fleet, pi)

    fleet.start(CANARY)
    # The Pi boots on what the switch wrote: the new release, complete, recorded as current with the one it
    # came from as previous, no half-written link or history beside them, and nothing it had before lost.
    new, old = switched_to[0]["current"], before[CANARY]["current"]
    after = snapshot(fleet, CANARY)
    assert after["current"] == new != old
    assert after["history"]["current"] == new and after["history"]["previous"] == old, after["history"]
    assert after["history"]["entries"][-1]["release"] == new, after["history"]
    assert after["history"]["entries"][-2] == before[CANARY]["history"]["entries"][-1], after["history"]
    assert set(before[CANARY]["releases"]) < set(after["releases"]), after["releases"]
    top = fleet.listing(CANARY, "")
    assert not [name for name in top if name.endswith(".tmp")], top
    assert_no_partial_parts(fleet, CANARY)
    # systemd started the app on its own from current; EdgeInfer came back with the env pointing at it.
    assert assert_verified(fleet, CANARY) == new

    assert converge(fleet, play, extravars, limit=None) == new
    again = play(extravars)
    assert_clean(again)
    changed = {host: again.count("changed", host) for host in fleet.names}
    assert changed == dict.fromkeys(fleet.names, 0), changed


def test_an_ssh_connection_cut_mid_copy_leaves_the_pi_on_its_release_and_the_next_run_converges(
    fleet: Fleet, play, tmp_path
):
    extravars = new_model(tmp_path, 1.14)
    before = {pi: snapshot(fleet, pi) for pi in fleet.names}
    partial = f"{ROOT}/bundles/.tmp-*"
    landed: list[str] = []  # the partial copy's files when the connection was cut
    watching: list[threading.Thread] = []
    blocked: list[bool] = []

    def cut_once_a_file_landed() -> None:
        # The copy's first file is in place and the others are still to come: the cut lands mid-copy.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            code, out = fleet.sh(CANARY, f"ls -A {partial}")
            if code == 0 and out:
                fleet.block_ssh(CANARY)
                blocked.append(True)
                landed.extend(out.split())
                return
            time.sleep(0.1)

    def watch(event: dict[str, Any]) -> None:
        if not watching and task_event(event, "runner_on_start", CANARY, "Bundle | copy the model bundle"):
            watching.append(threading.Thread(target=cut_once_a_file_landed, daemon=True))
            watching[0].start()
        # Ansible gave the Pi up (ServerAlive, then a reconnect timing out): the cable is plugged back in.
        if blocked and event.get("event") == "runner_on_unreachable":
            fleet.block_ssh(CANARY, blocked=False)
            blocked.clear()

    try:
        run = play(extravars, on_event=watch)
    finally:
        if watching:
            watching[0].join(timeout=130)
        if blocked:
            fleet.block_ssh(CANARY, blocked=False)

    assert landed, "the canary's bundle copy never wrote a file"
    lost = [event for event in run.events if task_event(event, "runner_on_unreachable", CANARY, "Bundle |")]
    assert lost, (run.status, run.stats, run.failure_messages())
    assert run.rc != 0 and CANARY in run.hosts_with("dark"), (run.status, run.stats)
    # The canary keeps what it had: same current, history, releases and runtimes. The partial copy sits under
    # its .tmp- name (a lost Pi runs no rescue), which no release links to; the next run removes it first.
    after = snapshot(fleet, CANARY)
    partials = [name for name in after["bundles"] if name.startswith(".tmp-")]
    assert len(partials) == 1, after["bundles"]
    assert {**after, "bundles": [name for name in after["bundles"] if name not in partials]} == before[CANARY]
    links = output(fleet, CANARY, f"readlink {ROOT}/current {ROOT}/releases/*/bundle {ROOT}/releases/*/venv")
    assert ".tmp-" not in links, links
    assert assert_verified(fleet, CANARY) == before[CANARY]["current"]
    for pi in (PI2, PI3):
        assert snapshot(fleet, pi) == before[pi], pi
        assert_verified(fleet, pi)

    converge(fleet, play, extravars, limit=None)
