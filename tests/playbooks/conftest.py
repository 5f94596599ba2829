"""Make the playbooks' filter plugins and scripts importable as plain modules for unit tests."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for folder in (
    ROOT / "playbooks" / "filter_plugins",
    ROOT / "roles" / "hailort" / "filter_plugins",
    ROOT / "scripts",
):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
