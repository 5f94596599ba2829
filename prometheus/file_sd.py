"""Write Prometheus file_sd targets for the Pis of an Ansible inventory (one target group per Pi).

    python prometheus/file_sd.py -i inventory/production --out /etc/prometheus/targets/hailo_pipeline.json

Each Pi becomes `<ansible_host or name>:<inference_app_metrics_port>` with the labels `pi` (inventory name)
and, when a release manifest is there, `expected_version` (the bundle version the last build deployed; the
HailoPipelineUnexpectedModel alert compares it with what the Pi serves). build.yml writes one manifest per
kind of Pi (build/release-<kind>.json), all naming the run's one bundle: the newest is read. The inventory is
read with `ansible-inventory --list` and this repository as the playbook folder, so every inventory format
works and each Pi's vars are the plays' own: the port comes from group_vars/pis/main.yml unless the
inventory sets another.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

# Where the playbooks are: ansible-inventory reads its group_vars/ as the plays do.
REPO = Path(__file__).resolve().parent.parent


def read_inventory(inventory: str) -> dict[str, Any]:
    tool = shutil.which("ansible-inventory") or str(Path(sys.executable).parent / "ansible-inventory")
    result = subprocess.run(
        [tool, "-i", inventory, "--playbook-dir", str(REPO), "--list"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise ValueError(f"ansible-inventory -i {inventory} failed: {result.stderr.strip()[-300:]}")
    return json.loads(result.stdout)


def group_hosts(inventory: dict[str, Any], group: str) -> list[str]:
    """Hosts of `group` and of its child groups, sorted."""
    hosts: set[str] = set()
    pending = [group]
    while pending:
        entry = inventory.get(pending.pop()) or {}
        hosts.update(entry.get("hosts", []))
        pending.extend(entry.get("children", []))
    return sorted(hosts)


def targets(
    inventory: dict[str, Any], group: str, expected_version: str | None, default_port: int | None = None
) -> list[dict[str, Any]]:
    """One target group per host of `group`; ValueError names a host with no metrics port."""
    hostvars = (inventory.get("_meta") or {}).get("hostvars") or {}
    groups = []
    for name in group_hosts(inventory, group):
        host_vars = hostvars.get(name) or {}
        port = host_vars.get("inference_app_metrics_port", default_port)
        if port is None:
            raise ValueError(f"{name} has no inference_app_metrics_port (outside group pis? pass --port)")
        labels = {"pi": name}
        if expected_version:
            labels["expected_version"] = expected_version
        groups.append({"targets": [f"{host_vars.get('ansible_host', name)}:{int(port)}"], "labels": labels})
    return groups


def newest_manifest(build_dir: Path) -> Path | None:
    """The manifest the last build wrote or changed (a kind's is rewritten only when its release is new)."""
    manifests = sorted(build_dir.glob("release-*.json"), key=lambda path: path.stat().st_mtime)
    return manifests[-1] if manifests else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", required=True, help="Ansible inventory (file or folder)")
    parser.add_argument("--out", type=Path, required=True, help="file_sd JSON file to write")
    parser.add_argument("--group", default="pis", help="inventory group of the Pis (default pis)")
    parser.add_argument(
        "--release", type=Path, help="release manifest (default: the newest build/release-*.json)"
    )
    parser.add_argument(
        "--port", type=int, help="metrics port of hosts whose vars set no inference_app_metrics_port"
    )
    args = parser.parse_args(argv)
    try:
        inventory = read_inventory(args.inventory)
        expected = None
        release = args.release or newest_manifest(Path("build"))
        if release is not None and release.is_file():
            expected = json.loads(release.read_text()).get("bundle_version")
        found = targets(inventory, args.group, expected, args.port)
    except (OSError, ValueError) as exc:
        print(f"file_sd: {exc}", file=sys.stderr)
        return 1
    if not found:
        print(f"file_sd: no hosts in group {args.group!r} of {args.inventory}", file=sys.stderr)
        return 1
    # Written whole then renamed: Prometheus re-reads the file on change and must never see half of it.
    partial = args.out.with_name(args.out.name + ".tmp")
    partial.write_text(json.dumps(found, indent=2) + "\n")
    partial.replace(args.out)
    print(f"file_sd: {len(found)} targets -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
