"""Values several roles share are written once: the app's root, port and interpreter in
group_vars/pis/main.yml, its unit name in the inference_app role's vars. A role, play or on-Pi tool that
spelled one again would drift."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
OWNERS = {
    "inference_app_root": ROOT / "group_vars/pis/main.yml",
    "inference_app_port": ROOT / "group_vars/pis/main.yml",
    "inference_app_python": ROOT / "group_vars/pis/main.yml",
    "inference_app_service": ROOT / "roles/inference_app/vars/main.yml",
}


def owned_value(name: str) -> object:
    return yaml.safe_load(OWNERS[name].read_text())[name]


def product_files() -> list[Path]:
    # Task files, templates, plays and the Python that ships to the Pi or runs in the plays. Module docs
    # (roles/*/library) show examples, and role READMEs describe the layout for people.
    files = [*ROOT.glob("roles/**/*.yml"), *ROOT.glob("roles/**/*.j2"), *ROOT.glob("playbooks/**/*.yml")]
    files += [*ROOT.glob("roles/*/files/*.py"), *ROOT.glob("roles/*/filter_plugins/*.py")]
    files += [*ROOT.glob("playbooks/filter_plugins/*.py"), ROOT / "site.yml", ROOT / "rollback.yml"]
    return sorted({path for path in files if path.resolve() not in {p.resolve() for p in OWNERS.values()}})


@pytest.mark.parametrize("name", sorted(OWNERS))
def test_a_shared_value_is_spelled_only_where_it_is_owned(name: str) -> None:
    value = str(owned_value(name))
    pattern = re.compile(rf"(?<![\w.-]){re.escape(value)}(?![\w.-])")
    spelled = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in product_files()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not spelled, f"{value} is spelled again instead of read from {name}: {spelled}"


def test_no_play_resets_the_pending_reboot() -> None:
    # The hailort role's device entry point works it out itself (Debian's /run/reboot-required).
    plays = [*ROOT.glob("playbooks/**/*.yml"), ROOT / "site.yml", ROOT / "rollback.yml"]
    assert not [path.name for path in plays if "hailort_reboot_required" in path.read_text()]
