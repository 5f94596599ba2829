"""Run this repository's playbooks through ansible-runner and read results from its event stream and stats.

Shared by scripts/validate_deployment.py, scripts/benchmark_fleet.py and the end-to-end fleet tests,
so none of them parses ansible-playbook's text output.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

from fleetops import REPO

DEFAULT_INVENTORY = REPO / "inventory" / "local"


@dataclass
class PlaybookRun:
    """Outcome of one ansible-playbook run: exit code, per-host stats and every event."""

    playbook: str
    rc: int
    status: str
    wall_s: float
    stats: dict[str, dict[str, int]]
    events: list[dict[str, Any]] = field(repr=False)

    def count(self, stat: str, host: str) -> int:
        """A PLAY RECAP column (ok, changed, failures, dark, rescued, skipped...) for one host."""
        return int((self.stats.get(stat) or {}).get(host, 0))

    def hosts_with(self, stat: str) -> set[str]:
        return {host for host, value in (self.stats.get(stat) or {}).items() if value}

    def failure_messages(self) -> dict[str, str]:
        """The message of each host's last failed (not ignored, not rescued later) task."""
        messages: dict[str, str] = {}
        for event in self.events:
            data = event.get("event_data") or {}
            if event.get("event") == "runner_on_failed" and not data.get("ignore_errors"):
                result = data.get("res") or {}
                messages[data.get("host", "?")] = str(result.get("msg") or result.get("stderr") or "failed")
        return messages

    def facts(self, name: str) -> dict[str, Any]:
        """The last value each host got for fact `name` from set_fact (or any module returning it)."""
        found: dict[str, Any] = {}
        for event in self.events:
            if event.get("event") != "runner_on_ok":
                continue
            data = event.get("event_data") or {}
            facts = (data.get("res") or {}).get("ansible_facts") or {}
            if name in facts:
                found[data.get("host", "?")] = facts[name]
        return found


def yield_cpu_to_simulated_pis() -> None:
    """Run this process, and the ansible-playbook runs it starts, at the lowest CPU priority.

    On a real fleet the control host is another machine. Here its processes share the simulated Pis' cores,
    and on a cgroup v1 host each of them weighs as much as the whole /docker group all Pis run in, so a busy
    controller would starve the Pis' apps as no real controller can.
    """
    os.nice(19 - os.nice(0))


def run_playbook(
    playbook: str,
    *,
    inventory: Path | str = DEFAULT_INVENTORY,
    extravars: Mapping[str, Any] | None = None,
    limit: str | None = None,
    tags: str | None = None,
    check: bool = False,
    cancel_when: Callable[[], bool] | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    root: Path = REPO,
) -> PlaybookRun:
    """Run `playbook` (relative to `root`, the repository by default) with that tree's ansible.cfg.

    `cancel_when` is polled while the run is going; when it returns True ansible-runner kills the
    ansible-playbook process group (SIGKILL), as an operator's kill -9 or a dropped control host would.
    """
    events: list[dict[str, Any]] = []

    def handle(event: dict[str, Any]) -> bool:
        events.append(event)
        if on_event:
            on_event(event)
        return True

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hp-runner-") as private:
        runner = ansible_runner.run(
            private_data_dir=private,
            project_dir=str(root),
            playbook=playbook,
            inventory=str(Path(inventory).resolve()),
            extravars=dict(extravars or {}),
            limit=limit,
            tags=tags,
            # --check --diff: what an operator runs to see what a real run would change.
            cmdline="--check --diff" if check else None,
            envvars={
                "ANSIBLE_CONFIG": str(root / "ansible.cfg"),
                # That tree's own packages (its compile/, app/), not the ones the venv's editable install maps
                "PYTHONPATH": str(root),
                "ANSIBLE_FORCE_COLOR": "0",
                # The ansible-playbook next to this interpreter (the venv's) first, whatever PATH says.
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            },
            event_handler=handle,
            cancel_callback=cancel_when,
            quiet=not os.environ.get("FLEET_RUNNER_VERBOSE"),
        )
        # stats are read from the artifacts under the private folder: before it goes away.
        stats = dict(runner.stats or {}) if runner.status != "canceled" else {}
        return PlaybookRun(
            playbook=playbook,
            rc=int(runner.rc),
            status=str(runner.status),
            wall_s=time.monotonic() - started,
            stats=stats,
            events=events,
        )
