"""What is actually on each simulated Pi (read through the docker SDK), and fleet actions for the tests."""

from __future__ import annotations

import io
import json
import os
import platform
import tarfile
import time
from pathlib import Path
from typing import Any

import docker

from simfleet import fleet as simfleet

REPO = Path(__file__).resolve().parents[2]
ROOT = "/opt/hailo_pipeline"
# The end-to-end fleet's names and subnet; overriding them lets two checkouts run their fleets side by side.
E2E_PREFIX = os.environ.get("HP_E2E_PREFIX", "hp-e2e")
E2E_SUBNET = os.environ.get("HP_E2E_SUBNET", "10.213.9.0/24")


def fleet_spec(folder: Path, prefix: str, subnet: str) -> simfleet.FleetSpec:
    """A separate simulated fleet whose inventory (in `folder`) also loads the local fleet's group_vars."""
    (folder / "group_vars").symlink_to(REPO / "inventory" / "local" / "group_vars")
    return simfleet.FleetSpec(prefix=prefix, subnet=subnet, inventory_path=folder / "hosts.yml")


class Fleet:
    def __init__(self, client: docker.DockerClient, spec: simfleet.FleetSpec, count: int) -> None:
        self.client = client
        self.spec = spec
        self.names = [spec.pi_name(index) for index in range(1, count + 1)]
        self.inventory = spec.inventory_path
        # The tests' fleet reports, apart from the demo's reports/.
        self.reports_dir = spec.inventory_path.parent / "reports"

    def kind(self, pi: str) -> str:
        """The kind of release this Pi needs (build.yml's name for it): architecture and CPython."""
        return f"{platform.machine()}-cp{SUITE_CPYTHON[self.spec.suite(pi)].replace('.', '')}"

    def latest_report(self) -> dict[str, Any]:
        return json.loads((self.reports_dir / "latest" / "fleet_report.json").read_text())

    def sh(self, pi: str, command: str) -> tuple[int, str]:
        result = self.client.containers.get(pi).exec_run(["sh", "-c", command], user="root")
        return result.exit_code, result.output.decode(errors="replace").strip()

    def current_release(self, pi: str) -> str:
        code, out = self.sh(pi, f"readlink {ROOT}/current")
        assert code == 0, f"{pi}: no current symlink ({out})"
        return Path(out).name

    def history(self, pi: str) -> dict[str, Any]:
        code, out = self.sh(pi, f"cat {ROOT}/history.json")
        assert code == 0, f"{pi}: no history.json ({out})"
        return json.loads(out)

    def release_complete(self, pi: str, release: str) -> bool:
        return self.sh(pi, f"test -f {ROOT}/releases/{release}/RELEASE.json")[0] == 0

    def app_health(self, pi: str) -> dict[str, Any]:
        code, out = self.sh(pi, "curl -s --max-time 5 http://127.0.0.1:8000/healthz")
        return json.loads(out) if code == 0 and out.startswith("{") else {}

    def edgeinfer_running_env(self, pi: str) -> dict[str, str]:
        """The environment of the running edge-infer container (what it uses, not what .env says)."""
        code, out = self.sh(pi, "docker inspect --format '{{json .Config.Env}}' edge-infer")
        assert code == 0, f"{pi}: edge-infer container not found ({out})"
        return dict(item.split("=", 1) for item in json.loads(out))

    def disk_bytes(self, pi: str) -> int:
        """Bytes under the role's root on the Pi (apparent sizes, what the parts add)."""
        code, out = self.sh(pi, f"du -sb {ROOT} | cut -f1")
        assert code == 0, out
        return int(out)

    def listing(self, pi: str, folder: str) -> list[str]:
        code, out = self.sh(pi, f"ls -A {ROOT}/{folder} 2>/dev/null")
        return sorted(out.split()) if code == 0 else []

    def put_dir(self, pi: str, local: Path, remote: str) -> None:
        """Copy a local folder's files to `remote` on the Pi (created), owned by root."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for path in sorted(local.iterdir()):
                info = archive.gettarinfo(str(path), arcname=path.name)
                info.uid = info.gid = 0
                with path.open("rb") as handle:
                    archive.addfile(info, handle)
        assert self.sh(pi, f"mkdir -p {remote}")[0] == 0
        assert self.client.containers.get(pi).put_archive(remote, buffer.getvalue())

    def stop(self, pi: str) -> None:
        simfleet.stop(self.client, pi, self.spec)

    def start(self, pi: str) -> None:
        simfleet.start(self.client, pi, self.spec)

    def power_cut(self, pi: str) -> None:
        """Pull the Pi's plug: SIGKILL to all its processes at once, no shutdown. Its files stay as written
        (the container's filesystem survives, as a disk does); what fsync adds on real storage only a unit
        test can see."""
        self.client.containers.get(pi).kill()

    def block_ssh(self, pi: str, blocked: bool = True) -> None:
        """Drop every packet to the Pi's sshd (blocked) or stop dropping them: open connections hang until
        ServerAlive gives up and new ones time out, as on a cut cable; `docker exec` still reaches the Pi."""
        code, out = self.sh(pi, f"iptables {'-I' if blocked else '-D'} INPUT -p tcp --dport 22 -j DROP")
        assert code == 0, (pi, out)

    def wait_ssh(self, pi: str, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.sh(pi, "systemctl is-active ssh")[1] == "active":
                return
            time.sleep(1)
        raise AssertionError(f"{pi}: sshd not active after {timeout_s} s")


# What each simulated Pi OS release ships (simfleet/specs.py): the report must say it, the build honour it.
SUITE_CPYTHON = {"bookworm": "3.11", "trixie": "3.13"}
SUITE_OS = {"bookworm": "Debian GNU/Linux 12 (bookworm)", "trixie": "Debian GNU/Linux 13 (trixie)"}


def built_release(fleet: Fleet, pi: str, root: Path = REPO) -> dict[str, Any]:
    """The manifest the last build in `root` made for this Pi's kind (its architecture and CPython)."""
    return json.loads((root / "build" / f"release-{fleet.kind(pi)}.json").read_text())


def built_releases(fleet: Fleet, root: Path = REPO) -> dict[str, str]:
    """Each Pi's release from the last build: bookworm and trixie Pis get different runtimes."""
    return {pi: built_release(fleet, pi, root)["release"] for pi in fleet.names}


def write_model_config(path: Path, std_scale: float) -> Path:
    """A model_config.json for `compile build --config`: other normalization, so a new model version."""
    from compile.normalization import default_normalization

    defaults = default_normalization()
    normalization = {
        "method": "z_score_per_channel",
        "mean": list(defaults.mean),
        "std": [value * std_scale for value in defaults.std],
    }
    path.write_text(json.dumps({"normalization": normalization}))
    return path


def deploy_plays(run: Any, host: str) -> set[str]:
    """The deploy plays whose tasks ran on `host` (the canary play alone, or the rolling batches)."""
    return {
        data["play"]
        for event in run.events
        if (data := event.get("event_data") or {}).get("host") == host
        and data.get("play", "").startswith("Deploy | ")
        and event.get("event") == "runner_on_ok"
    }
