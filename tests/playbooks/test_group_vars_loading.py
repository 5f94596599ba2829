"""Root group_vars/ reaches the phase playbooks in playbooks/ (Ansible reads group_vars next to the running
playbook, which for playbooks/*.yml is playbooks/: the playbooks/group_vars symlink makes it the root one)."""

import json

from fleetops import REPO
from fleetops.runner import run_playbook


def test_report_playbook_sees_root_group_vars(tmp_path):
    # reports_dir is only defined in group_vars/all/main.yml, as "{{ project_dir }}/reports".
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  children:\n    pis:\n      hosts: {}\n")
    run = run_playbook("playbooks/report.yml", inventory=inventory, extravars={"project_dir": str(tmp_path)})
    assert run.rc == 0, run.stats
    report = json.loads((tmp_path / "reports" / "latest" / "fleet_report.json").read_text())
    assert report["hosts"] == {}
    assert report["summary"]["hosts"] == 0
    assert (tmp_path / "reports" / "latest" / "latency.png").is_file()


def test_rollout_knobs_come_from_group_vars_all_rollout():
    assert (REPO / "playbooks" / "group_vars").resolve() == (REPO / "group_vars").resolve()
    deploy = (REPO / "playbooks" / "deploy.yml").read_text()
    assert deploy.count("vars_files: ../group_vars/all/rollout.yml") == 2
