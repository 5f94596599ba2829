"""Values several pieces share are written once: the app's root, port, metrics port and interpreter and
EdgeInfer's URL in group_vars/pis/main.yml, the app's unit name in the inference_app role's vars. A role,
play, on-Pi tool, script or simulated Pi that spelled one again would drift."""

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PI_VARS = ROOT / "group_vars/pis/main.yml"
OWNERS = {
    "inference_app_root": PI_VARS,
    "inference_app_port": PI_VARS,
    "inference_app_metrics_port": PI_VARS,
    "inference_app_python": PI_VARS,
    "edgeinfer_url": PI_VARS,
    "inference_app_service": ROOT / "roles/inference_app/vars/main.yml",
}
# The Python and tool folders around the roles: the app, the scripts, the control-host library, the simulated
# fleet and the Prometheus tools. Their docs (*.md) describe these values for people; tests are out of scope.
TOOL_FOLDERS = ("app", "scripts", "fleetops", "simfleet", "prometheus")
NOT_SCANNED = ("prometheus/tests/",)  # promtool's unit tests: sample series, like tests/
# Where a tool folder spells a shared value on purpose, and why.
STANDIN = "the EdgeInfer stand-in keeps its own copy on purpose: it checks the contract from outside"
HELP_EXAMPLE = "its --help example of the unit's command line on a Pi"
TOOL_EXCEPTIONS = {
    ("app/config.py", "inference_app_port"): "DEFAULT_BIND, the app's own default when started by hand "
    "(python -m app, as arm64-check and the benchmarks do); the unit always passes --bind",
    ("app/cli.py", "inference_app_port"): HELP_EXAMPLE,
    ("app/cli.py", "inference_app_root"): HELP_EXAMPLE,
    ("simfleet/edgeinfer_standin/server.py", "edgeinfer_port"): STANDIN,
    ("simfleet/edgeinfer_standin/Dockerfile", "edgeinfer_port"): STANDIN,
    ("simfleet/pi_image/pisrv_vapor_docker/docker-compose.yml", "edgeinfer_port"): "EdgeInfer's compose "
    "project as the simulated Pi ships it: what edgeinfer_url describes, not a reader of it",
    ("simfleet/fleet.py", "edgeinfer_port"): "waits for the Pi image's own EdgeInfer, which simfleet builds",
}


def owned_value(name: str) -> object:
    return yaml.safe_load(OWNERS[name].read_text())[name]


def spelling(value: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w.-]){re.escape(value)}(?![\w.-])")


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
    pattern = spelling(value)
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


def tool_values() -> dict[str, str]:
    shared = ("inference_app_root", "inference_app_port", "inference_app_metrics_port")
    values = {name: str(owned_value(name)) for name in shared}
    # EdgeInfer's URL is checked by its port: a URL, a host:port or a bare port all spell it.
    values["edgeinfer_port"] = str(urlsplit(yaml.safe_load(PI_VARS.read_text())["edgeinfer_url"]).port)
    return values


def tool_files() -> list[Path]:
    files = [path for folder in TOOL_FOLDERS for path in (ROOT / folder).rglob("*") if path.is_file()]
    return sorted(
        path
        for path in files
        if path.suffix != ".md"
        and "__pycache__" not in path.parts
        and not str(path.relative_to(ROOT)).startswith(NOT_SCANNED)
    )


@pytest.mark.parametrize("name", sorted(tool_values()))
def test_the_tools_read_a_shared_value_instead_of_spelling_it(name: str) -> None:
    pattern = spelling(tool_values()[name])
    spelled = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in tool_files()
        if (str(path.relative_to(ROOT)), name) not in TOOL_EXCEPTIONS
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if pattern.search(line)
    ]
    assert not spelled, f"{name} is spelled again instead of read from group_vars/pis: {spelled}"


def test_every_exception_is_still_needed() -> None:
    # An exception whose file no longer spells the value would hide the next one that does: drop it then.
    values = tool_values()
    for (relative, name), reason in TOOL_EXCEPTIONS.items():
        assert spelling(values[name]).search((ROOT / relative).read_text()), f"{relative}, {name}: {reason}"


def test_the_metadata_file_name_is_the_contracts_and_no_role_path_spells_it() -> None:
    # Task names and docs name the file for people; a path must read the group var.
    from bundle_contract.files import METADATA_FILE

    assert yaml.safe_load(PI_VARS.read_text())["inference_app_metadata_file"] == METADATA_FILE
    path_spelling = re.compile(rf"/{re.escape(METADATA_FILE)}")
    spelled = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in product_files()
        if path.suffix in (".yml", ".j2")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if path_spelling.search(line)
    ]
    assert not spelled, f"a path spells {METADATA_FILE} instead of inference_app_metadata_file: {spelled}"
