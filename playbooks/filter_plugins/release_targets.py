"""Group the Pis into kinds of release (Ansible filters): one runtime per architecture and CPython.

Each Pi's `pi_release_target` ({platform, python, glibc, os}) is read from the interpreter its venv is built
with (playbooks/tasks/release_target.yml). Pis of one kind share a runtime, so a fleet of bookworm and trixie
Pis gets two, and build.yml makes one release manifest per kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def release_kind(target: Mapping[str, Any]) -> str:
    """A kind's name, also its manifest's: build/release-<platform>-cp<XY>.json (e.g. aarch64-cp313)."""
    return f"{target['platform']}-cp{str(target['python']).replace('.', '')}"


def _version(value: str) -> tuple[int, ...]:
    return tuple(int(part) for part in str(value).split("."))


def release_kinds(targets: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The distinct kinds among the targets, sorted by name. Wheels are chosen for the lowest glibc of a kind:
    a wheel built for an older glibc runs on a newer one, never the other way round."""
    kinds: dict[str, dict[str, str]] = {}
    for target in targets:
        name = release_kind(target)
        kind = kinds.setdefault(
            name,
            {"kind": name, "platform": target["platform"], "python": str(target["python"]), "glibc": ""},
        )
        if not kind["glibc"] or _version(target["glibc"]) < _version(kind["glibc"]):
            kind["glibc"] = str(target["glibc"])
    return [kinds[name] for name in sorted(kinds)]


class FilterModule:
    """Ansible entry point for the release-kind filters."""

    def filters(self) -> dict[str, Any]:
        return {"release_kind": release_kind, "release_kinds": release_kinds}
