"""roles/fleet_run: the run's start facts and each Pi's record, run by ansible-playbook on this host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
SPECS = yaml.safe_load((REPO / "roles/fleet_run/meta/argument_specs.yml").read_text())["argument_specs"]
OUTCOMES = SPECS["record"]["options"]["fleet_run_outcome"]["choices"]


def run_role(tmp_path: Path, tasks: list[dict]) -> tuple[subprocess.CompletedProcess[str], dict]:
    """Run `tasks` in a play on two local "Pis", then return the run and the facts the role left."""
    out = tmp_path / "facts.json"
    dump = {
        "name": "Dump what the role set",
        "ansible.builtin.copy": {
            "content": "{{ {'localhost': {'id': hostvars.localhost.fleet_run_id | default(none),"
            " 'started': hostvars.localhost.fleet_run_started | default(none),"
            " 'targets': hostvars.localhost.fleet_targets | default(none)},"
            " 'pi-1': hostvars['pi-1'].fleet_deploy | default(none),"
            " 'pi-2': hostvars['pi-2'].fleet_deploy | default(none)} | to_json }}",
            "dest": str(out),
            "mode": "0644",
        },
        "delegate_to": "localhost",
        "run_once": True,
    }
    play = [{"name": "Fleet run", "hosts": "pis", "gather_facts": False, "tasks": [*tasks, dump]}]
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump(play))
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        json.dumps(
            {
                "all": {
                    "hosts": {"localhost": local},
                    "children": {"pis": {"hosts": {"pi-1": local, "pi-2": local}}},
                }
            }
        )
    )
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
    }
    run = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(playbook)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    return run, json.loads(out.read_text()) if out.exists() else {}


def literal_outcomes(node: object) -> list[str]:
    """Every fleet_run_outcome value written in a parsed playbook or task file."""
    if isinstance(node, dict):
        found = [node["fleet_run_outcome"]] if isinstance(node.get("fleet_run_outcome"), str) else []
        return found + [value for child in node.values() for value in literal_outcomes(child)]
    if isinstance(node, list):
        return [value for child in node for value in literal_outcomes(child)]
    return []


def record(outcome: str, **more: object) -> dict:
    return {
        "name": f"Record {outcome}",
        "ansible.builtin.include_role": {"name": "fleet_run", "tasks_from": "record"},
        "vars": {"fleet_run_outcome": outcome, **more},
    }


def test_the_outcomes_are_the_ones_the_report_and_the_plays_use() -> None:
    # The report treats in_progress as "lost mid-run"; deploy.yml's canary check compares against deployed.
    assert {"in_progress", "deployed", "rolled_back", "stub_mode", "check_failed"} <= set(OUTCOMES)
    assert len(OUTCOMES) == len(set(OUTCOMES))
    used: set[str] = set()
    for path in REPO.glob("playbooks/**/*.yml"):
        used |= {value for value in literal_outcomes(yaml.safe_load(path.read_text())) if "{{" not in value}
    # Every outcome a play writes literally is in the spec; rollback_hosts.yml picks the rest by mode.
    assert used and used <= set(OUTCOMES), used - set(OUTCOMES)


def test_start_and_record_set_the_record_the_report_reads(tmp_path: Path) -> None:
    run, facts = run_role(
        tmp_path,
        [
            {
                "name": "Start",
                "ansible.builtin.include_role": {"name": "fleet_run", "tasks_from": "start"},
            },
            record("in_progress"),
            {**record("deployed"), "when": "inventory_hostname == 'pi-1'"},
            {
                **record("stub_mode", fleet_run_rolled_back=True, fleet_run_failure="health gate: boom"),
                "when": "inventory_hostname == 'pi-2'",
            },
        ],
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    assert facts["pi-1"] == {"reached": True, "outcome": "deployed", "rolled_back": False, "failure": None}
    assert facts["pi-2"] == {
        "reached": True,
        "outcome": "stub_mode",
        "rolled_back": True,
        "failure": "health gate: boom",
    }
    assert facts["localhost"]["targets"] == ["pi-1", "pi-2"]
    assert len(facts["localhost"]["id"]) == len("20261202T051000Z")
    assert facts["localhost"]["id"].endswith("Z")
    assert facts["localhost"]["started"].startswith(facts["localhost"]["id"][:4])


@pytest.mark.parametrize("outcome", ["deployed_ok", "unreachable", ""])
def test_an_outcome_outside_the_spec_is_refused(tmp_path: Path, outcome: str) -> None:
    run, facts = run_role(tmp_path, [record(outcome)])
    assert run.returncode != 0
    assert "fleet_run_outcome must be one of" in run.stdout
    assert facts == {}  # the play stopped at the record: nothing was written for the report


def test_a_record_without_an_outcome_is_refused(tmp_path: Path) -> None:
    task = {
        "name": "Record nothing",
        "ansible.builtin.include_role": {"name": "fleet_run", "tasks_from": "record"},
    }
    run, _ = run_role(tmp_path, [task])
    assert run.returncode != 0
    assert "missing required arguments: fleet_run_outcome" in run.stdout
