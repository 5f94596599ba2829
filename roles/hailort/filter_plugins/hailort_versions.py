"""Read what a Pi's apt offers for HailoRT and which versions its driver, firmware and library run (Ansible
filters, used by roles/hailort and the fleet report).

Raspberry Pi's repo drops old versions and differs per Raspberry Pi OS release (roles/hailort/README.md),
so the role reads ``apt-cache policy`` instead of pinning a version it hopes is there, and installs the newest
one at or under ``hailort_version``. libhailort refuses a driver of another version
(HAILO_INVALID_DRIVER_VERSION, "Driver version ... is different from library version"), and the firmware comes
from the same release (``hailofw``), so the three must agree.
A chip's family is bundle_contract.chips' (the app picks its .hef by the same table).
"""

from __future__ import annotations

import importlib
import re
from types import ModuleType
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible.module_utils.compat.version import LooseVersion

_PACKAGE = re.compile(r"^(\S+):\s*$")
_INSTALLED = re.compile(r"^\s+Installed:\s*(\S+)\s*$")
_CANDIDATE = re.compile(r"^\s+Candidate:\s*(\S+)\s*$")
_VERSION_ROW = re.compile(r"^\s+(?:\*\*\*\s+)?(\S+)\s+-?\d+\s*$")
_UPSTREAM = re.compile(r"^(?:\d+:)?(\d+(?:\.\d+)*)")


def parse_apt_policy(text: str) -> dict[str, dict[str, Any]]:
    """``apt-cache policy PKG...`` → {package: {installed, candidate, versions}}; ``(none)`` becomes None and
    a package apt does not know is left out (apt prints nothing for it)."""
    packages: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    in_table = False
    for line in text.splitlines():
        if match := _PACKAGE.match(line):
            current = packages.setdefault(
                match.group(1), {"installed": None, "candidate": None, "versions": []}
            )
            in_table = False
        elif current is None:
            continue
        elif match := _INSTALLED.match(line):
            current["installed"] = None if match.group(1) == "(none)" else match.group(1)
        elif match := _CANDIDATE.match(line):
            current["candidate"] = None if match.group(1) == "(none)" else match.group(1)
        elif line.strip() == "Version table:":
            in_table = True
        elif in_table and (match := _VERSION_ROW.match(line)):
            current["versions"].append(match.group(1))
    return packages


def upstream_version(version: str | None) -> str | None:
    """``4.23.0-1`` → ``4.23.0``; ``4.23.0 (release,app,extended context switch buffer)`` → ``4.23.0``."""
    if not version:
        return None
    match = _UPSTREAM.match(str(version).strip())
    return match.group(1) if match else None


def hailort_pick_version(versions: list[str], ceiling: str) -> str | None:
    """The newest apt version whose upstream part is at or under ``ceiling`` (``4.23`` allows every 4.23.x and
    below, ``4.23.0`` that release and below); None when the repo has none."""
    limit = [int(part) for part in ceiling.split(".")]
    allowed = []
    for version in versions:
        upstream = upstream_version(version)
        if upstream is None:
            continue
        parts = [int(part) for part in upstream.split(".")]
        if parts[: len(limit)] <= limit:
            allowed.append(version)
    return max(allowed, key=LooseVersion) if allowed else None


def hailort_versions(driver: str | None, firmware: str | None, library: str | None) -> dict[str, Any]:
    """Driver (``modinfo hailo_pci``), firmware (``hailortcli fw-control identify``) and library (the
    installed ``hailort`` package) by upstream version, and whether the ones known disagree."""
    versions = {
        "driver": upstream_version(driver),
        "firmware": upstream_version(firmware),
        "library": upstream_version(library),
    }
    known = {v for v in versions.values() if v}
    return {**versions, "mismatch": len(known) > 1}


def hailort_install_plan(
    policy: dict[str, dict[str, Any]], packages: list[str], ceiling: str
) -> dict[str, Any]:
    """{install: {package: apt version}, specs: ["package=version"], missing, offered}: each package at the
    newest version the Pi's apt carries at or under ``ceiling``; ``missing``: those it carries none of."""
    install: dict[str, str] = {}
    missing: list[str] = []
    for name in packages:
        version = hailort_pick_version(policy.get(name, {}).get("versions", []), ceiling)
        if version is None:
            missing.append(name)
        else:
            install[name] = version
    offered = {name: entry["versions"] for name, entry in sorted(policy.items()) if entry["versions"]}
    specs = [f"{name}={version}" for name, version in install.items()]
    return {"install": install, "specs": specs, "missing": missing, "offered": offered}


def _chips() -> ModuleType:
    """bundle_contract.chips, the one table of chip families. The filters run on the control host, where the
    project is installed in the venv ansible-playbook runs from (`make setup`)."""
    try:
        return importlib.import_module("bundle_contract.chips")
    except ImportError as exc:
        raise AnsibleFilterError(
            f"the hailort role's chip filters need the project's bundle_contract package ({exc}): run "
            "ansible-playbook from the project's venv (.venv/bin/ansible-playbook after `make setup`)"
        ) from exc


def hailort_chip_family(architecture: str | None) -> str:
    """``HAILO8L`` -> ``hailo8l``: the family whose .hef the bundle has for this chip ('' when unknown)."""
    return _chips().chip_family(architecture) or ""


def hailort_chip_refusal(architecture: str | None, families: list[str] | None) -> str:
    """Why this Pi's chip cannot serve the fleet's bundle ('' when it can, or when there is no chip);
    ``families`` None: the families a build makes by default."""
    if not architecture:
        return ""
    if architecture.upper().startswith("HAILO10"):
        return (
            f"the chip is a {architecture} (Hailo-10H, Raspberry Pi AI HAT+ 2): it runs HailoRT 5.x from its "
            "own packages (h10-hailort, hailo-h10-all) and needs a .hef from DFC 5.x; this project builds "
            "for Hailo-8/8L (DFC 3.33, HailoRT 4.23), so the Pi is refused rather than failing later"
        )
    chips = _chips()
    families = list(chips.DEFAULT_CHIP_FAMILIES) if families is None else families
    family = chips.chip_family(architecture)
    if family is None or family not in families:
        return (
            f"the chip is a {architecture} ({family or 'unknown family'}), not in hailort_chip_families "
            f"{families}: the bundle carries no .hef for it"
        )
    return ""


class FilterModule:
    """Ansible filters: apt_policy, hailort_pick_version, hailort_install_plan, hailort_versions, and more."""

    def filters(self) -> dict[str, Any]:
        return {
            "apt_policy": parse_apt_policy,
            "hailort_pick_version": hailort_pick_version,
            "hailort_install_plan": hailort_install_plan,
            "hailort_versions": hailort_versions,
            "hailort_chip_refusal": hailort_chip_refusal,
            "upstream_version": upstream_version,
            "hailort_chip_family": hailort_chip_family,
        }
