"""The runbook's tags against the real playbooks (no fleet): `--list-tags` / `--list-tasks` name each
phase and role, and a phase run alone on a fresh checkout finds what it needs itself. The "Pi" in the runs
below is the control host over a local connection: enough for the control-host phases (build, report)."""

import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PHASES = {"preflight", "build", "deploy", "report"}
ROLES = {"hailort", "inference_app", "edgeinfer_backend", "health"}


def ansible_playbook(inventory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def play_tags(output: str) -> dict[str, set[str]]:
    """{play name: its task tags} from `--list-tags` output."""
    plays: dict[str, set[str]] = {}
    name = ""
    for line in output.splitlines():
        if match := re.match(r"\s*play #\d+ \([^)]*\): (.+?)\tTAGS:", line):
            name = match.group(1)
        elif match := re.match(r"\s*TASK TAGS: \[(.*)\]", line):
            plays[name] = {tag.strip() for tag in match.group(1).split(",") if tag.strip()}
    return plays


def listed_tasks(output: str) -> list[str]:
    return [
        line.strip().split("\t")[0]
        for line in output.splitlines()
        if "\tTAGS: [" in line and "play #" not in line
    ]


def test_site_lists_a_tag_per_phase_and_per_role(inventory: Path) -> None:
    result = ansible_playbook(inventory, "site.yml", "--list-tags")
    assert result.returncode == 0, result.stderr
    plays = play_tags(result.stdout)
    assert "preflight" in plays["Preflight | every Pi is reachable and fit for a release"]
    assert "build" in plays["Build | model bundle and app release on the control host"]
    assert {"deploy"} | ROLES <= plays["Deploy | canary"]
    assert {"deploy"} | ROLES <= plays["Deploy | rolling batches"]
    assert "report" in plays["Report | fleet report"]
    assert PHASES | ROLES | {"benchmark", "never"} == set().union(*plays.values())


def test_rollback_lists_its_phases_and_roles(inventory: Path) -> None:
    result = ansible_playbook(inventory, "rollback.yml", "--list-tags")
    assert result.returncode == 0, result.stderr
    plays = play_tags(result.stdout)
    assert {"deploy", "rollback"} | ROLES <= plays["Rollback | targeted Pis"]
    assert "report" in plays["Report | fleet report"]


@pytest.mark.parametrize(
    ("tag", "prefix"), [("preflight", "Preflight |"), ("build", "Build |"), ("report", "Report |")]
)
def test_a_phase_tag_selects_only_that_phase(inventory: Path, tag: str, prefix: str) -> None:
    result = ansible_playbook(inventory, "site.yml", "--list-tasks", "--tags", tag)
    assert result.returncode == 0, result.stderr
    tasks = listed_tasks(result.stdout)
    assert tasks, result.stdout
    assert all(task.startswith(prefix) for task in tasks), tasks


def test_a_role_tag_selects_only_that_roles_includes(inventory: Path) -> None:
    result = ansible_playbook(inventory, "site.yml", "--list-tasks", "--tags", "inference_app")
    assert result.returncode == 0, result.stderr
    tasks = listed_tasks(result.stdout)
    assert "Deploy | the inference app release" in tasks
    assert "Deploy | HailoRT runtime and accelerator facts" not in tasks
    assert not [task for task in tasks if task.startswith(("Preflight |", "Build |"))]


def test_build_alone_in_check_mode_on_a_fresh_checkout_writes_nothing(
    inventory: Path, tmp_path: Path
) -> None:
    build_dir = tmp_path / "build"
    result = ansible_playbook(
        inventory, "site.yml", "--tags", "build", "--check", "--diff", "-e", f"build_dir={build_dir}"
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert not build_dir.exists()
    # The version it names is the one a real build would write (a hash of the inputs), for the kind of Pi it
    # read itself, preflight not having run.
    planned = subprocess.run(
        [sys.executable, "-m", "compile", "build", "--out", str(tmp_path / "plan"), "--plan"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    version = Path(planned.stdout.strip().splitlines()[-1]).name
    shown = " ".join(result.stdout.split())  # the callback wraps long messages
    kind = f"{platform.machine()}-cp{sys.version_info.major}{sys.version_info.minor}"
    assert f"{kind}: release {version}-" in shown and f"(bundle {version}, CPython" in shown
    assert "— predicted" in shown


def test_report_alone_reads_what_each_pi_runs(inventory: Path, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    result = ansible_playbook(inventory, "site.yml", "--tags", "report", "-e", f"reports_dir={reports}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    host = json.loads((reports / "latest" / "fleet_report.json").read_text())["hosts"]["pi-local"]
    # Reached and checked in this run (no app on the control host), not "unreachable" for want of earlier
    # facts.
    assert host["reachable"] is True
    assert host["outcome"] == "check_failed"
    assert "a bundle is deployed" in host["failure"]
    assert host["accelerator_reason"]
