"""execution-environment.yml (AWX's EE) is valid for ansible-builder v3 and pins what the control host runs
here: `ansible-builder create` (offline: it only writes the build context) accepts it, and its Python,
ansible-core and collection pins are the ones pyproject.toml, this venv and requirements.yml hold."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BUILDER = shutil.which("ansible-builder") or str(Path(sys.executable).parent / "ansible-builder")
DEFINITION = yaml.safe_load((REPO / "execution-environment.yml").read_text())


def pyproject_pins() -> dict[str, str]:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pins = {}
    for requirement in (r for group in extras.values() for r in group):
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==([^;\s]+)", requirement.split(";")[0].strip())
        if match:
            pins[match[1].lower()] = match[2]
    return pins


def test_ansible_builder_create_accepts_it(tmp_path: Path) -> None:
    if not Path(BUILDER).exists():
        pytest.skip("ansible-builder missing: pip install -e '.[dev]'")
    context = tmp_path / "context"
    result = subprocess.run(
        [BUILDER, "create", "-f", str(REPO / "execution-environment.yml"), "-c", str(context)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    dockerfile = (context / "Dockerfile").read_text()
    assert DEFINITION["images"]["base_image"]["name"] in dockerfile
    assert "ansible-galaxy collection install" in dockerfile
    assert (context / "_build" / "requirements.yml").read_text() == (REPO / "requirements.yml").read_text()
    wanted = (context / "_build" / "requirements.txt").read_text().split()
    assert wanted == DEFINITION["dependencies"]["python"]


def test_python_pins_are_pyprojects() -> None:
    pins = pyproject_pins()
    for requirement in DEFINITION["dependencies"]["python"]:
        name, version = requirement.split("==")
        assert pins.get(name.lower()) == version, (
            f"{requirement}: pyproject.toml pins {pins.get(name.lower())}"
        )
    runner = DEFINITION["dependencies"]["ansible_runner"]["package_pip"]
    assert runner == f"ansible-runner=={pins['ansible-runner']}"


def test_ansible_core_is_the_one_the_ansible_package_brings() -> None:
    # pyproject pins the `ansible` bundle; the EE installs its ansible-core + requirements.yml's collections.
    assert (
        DEFINITION["dependencies"]["ansible_core"]["package_pip"]
        == f"ansible-core=={metadata.version('ansible-core')}"
    )
    assert DEFINITION["dependencies"]["galaxy"] == "requirements.yml"
