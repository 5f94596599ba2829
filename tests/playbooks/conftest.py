"""Make the playbooks' filter plugins and files importable for unit tests."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
for folder in (
    ROOT / "playbooks" / "filter_plugins",
    ROOT / "playbooks" / "files",
    ROOT / "playbooks" / "library",
    ROOT / "roles" / "hailort" / "filter_plugins",  # the report reads what the hailort role's plugins parse
):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


@pytest.fixture(scope="session")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One "Pi": the control host over a local connection, enough for the control-host phases."""
    path = tmp_path_factory.mktemp("inventory") / "hosts.yml"
    pi = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        # Its kind of release is this interpreter's too (the tests name it from sys.version_info).
        "inference_app_python": sys.executable,
        "ansible_become": False,
    }
    path.write_text(json.dumps({"all": {"children": {"pis": {"hosts": {"pi-local": pi}}}}}))
    return path
