"""Make the playbooks' filter plugins and files, and the scripts they use, importable for unit tests."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for folder in (
    ROOT / "playbooks" / "filter_plugins",
    ROOT / "playbooks" / "files",
    ROOT / "roles" / "hailort" / "filter_plugins",  # the report reads what the hailort role's plugins parse
    ROOT / "scripts",  # fleet_runner, which the playbook tests drive ansible-playbook with
):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
