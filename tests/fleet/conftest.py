"""The simulated 3-Pi fleet for the end-to-end tests, and the playbook driver (ansible-runner) they use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from fleet_state import Fleet  # noqa: E402 - after the path setup above


@pytest.fixture(scope="session")
def fleet() -> Fleet:
    """A fresh fleet: `simfleet down` then `up --pis 3`, so the first deploy starts from clean Pis."""
    for args in (["down"], ["up", "--pis", "3"]):
        proc = subprocess.run(
            [sys.executable, "-m", "simfleet", *args], cwd=REPO, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            pytest.fail(f"simfleet {' '.join(args)} failed: {proc.stdout}{proc.stderr}")
    return Fleet(["hp-pi-1", "hp-pi-2", "hp-pi-3"])
