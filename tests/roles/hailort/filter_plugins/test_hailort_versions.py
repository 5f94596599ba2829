"""What a Pi's apt offers and which HailoRT versions run there (roles/hailort/filter_plugins)."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from hailort_versions import (
    hailort_chip_family,
    hailort_chip_refusal,
    hailort_install_plan,
    hailort_pick_version,
    hailort_versions,
    parse_apt_policy,
    upstream_version,
)
from hef_compat import hailort_hef_refusal

ROLE = Path(__file__).resolve().parents[4] / "roles" / "hailort"
DOCS = Path(__file__).resolve().parents[4] / "docs" / "HEF_COMPAT.md"

# The layout of `apt-cache policy` (apt's own output, as on any Debian host) for a Pi whose repo carries two
# HailoRT releases and a Hailo-10H line, with 4.22 installed; hailo-dkms is known to apt but has no candidate.
POLICY = """\
hailort:
  Installed: 4.22.0-1
  Candidate: 4.99.0-1
  Version table:
     4.99.0-1 500
        500 http://archive.raspberrypi.com/debian bookworm/main arm64 Packages
     4.23.0-2 500
        500 http://archive.raspberrypi.com/debian bookworm/main arm64 Packages
 *** 4.22.0-1 500
        500 http://archive.raspberrypi.com/debian bookworm/main arm64 Packages
        100 /var/lib/dpkg/status
hailo-dkms:
  Installed: (none)
  Candidate: (none)
  Version table:
h10-hailort:
  Installed: (none)
  Candidate: 5.1.1
  Version table:
     5.1.1 500
        500 http://archive.raspberrypi.com/debian trixie/main arm64 Packages
"""


def test_apt_policy_is_read_per_package() -> None:
    policy = parse_apt_policy(POLICY)
    assert policy["hailort"] == {
        "installed": "4.22.0-1",
        "candidate": "4.99.0-1",
        "versions": ["4.99.0-1", "4.23.0-2", "4.22.0-1"],
    }
    assert policy["hailo-dkms"] == {"installed": None, "candidate": None, "versions": []}
    assert policy["h10-hailort"]["versions"] == ["5.1.1"]


@pytest.mark.skipif(shutil.which("apt-cache") is None, reason="no apt on this host")
def test_real_apt_cache_policy_output_parses() -> None:
    """Against the real tool on this (Debian) host: what apt reports installed is what the parser reads."""
    text = subprocess.run(["apt-cache", "policy", "bash"], capture_output=True, text=True, check=True).stdout
    installed = subprocess.run(
        ["dpkg-query", "--showformat=${Version}", "--show", "bash"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    policy = parse_apt_policy(text)["bash"]
    assert policy["installed"] == installed and installed in policy["versions"]


@pytest.mark.parametrize(
    ("ceiling", "expected"),
    [("4.23", "4.23.0-2"), ("4.23.0", "4.23.0-2"), ("4.22.0", "4.22.0-1"), ("4.21", None), ("5", "4.99.0-1")],
)
def test_the_newest_version_at_or_under_the_ceiling(ceiling: str, expected: str | None) -> None:
    versions = parse_apt_policy(POLICY)["hailort"]["versions"]
    assert hailort_pick_version(versions, ceiling) == expected


def test_a_two_digit_minor_is_newer_than_a_one_digit_one() -> None:
    assert hailort_pick_version(["4.9.0-1", "4.10.0-1"], "4.23") == "4.10.0-1"


@pytest.mark.parametrize(
    ("driver", "firmware", "library", "mismatch"),
    [
        ("4.23.0", "4.23.0 (release,app,extended context switch buffer)", "4.23.0-1", False),
        ("4.20.0", "4.23.0 (release,app)", "4.23.0-1", True),  # bookworm's in-kernel driver won
        (None, None, "4.23.0-1", False),  # no chip: nothing to compare
    ],
)
def test_driver_firmware_and_library_must_agree(
    driver: str | None, firmware: str | None, library: str, mismatch: bool
) -> None:
    versions = hailort_versions(driver, firmware, library)
    assert versions["mismatch"] is mismatch
    assert versions["library"] == "4.23.0"


def test_upstream_version() -> None:
    assert upstream_version("1:4.23.0-1") == "4.23.0"
    assert upstream_version(None) is None


def test_the_install_plan_names_what_the_repo_lacks() -> None:
    """A trixie Pi whose repo carries only the Hailo-10H line (frigate-nvr-guide#3): nothing to install for
    Hailo-8, and the plan says what apt does offer."""
    plan = hailort_install_plan(parse_apt_policy(POLICY), ["hailort", "hailo-dkms"], "4.23")
    assert plan["install"] == {"hailort": "4.23.0-2"} and plan["specs"] == ["hailort=4.23.0-2"]
    assert plan["missing"] == ["hailo-dkms"]
    assert plan["offered"]["h10-hailort"] == ["5.1.1"]


@pytest.mark.parametrize(
    ("architecture", "refused"),
    [
        ("HAILO8", ""),
        ("HAILO8L", ""),
        ("HAILO8_B0", ""),
        (None, ""),
        ("HAILO10H", "Hailo-10H"),
        ("HAILO15H", "HAILO15H"),
    ],
)
def test_a_chip_outside_the_bundles_families_is_refused(architecture: str | None, refused: str) -> None:
    reason = hailort_chip_refusal(architecture, ["hailo8", "hailo8l"])
    assert (refused in reason) if refused else reason == ""


def test_a_fleet_built_only_for_hailo8l_refuses_a_hailo8() -> None:
    assert "not in hailort_chip_families ['hailo8l']" in hailort_chip_refusal("HAILO8", ["hailo8l"])


def test_without_a_list_the_families_a_build_makes_are_allowed() -> None:
    # The role's default (null): bundle_contract.chips' defaults, Hailo-8 and Hailo-8L.
    assert hailort_chip_refusal("HAILO8L", None) == hailort_chip_refusal("HAILO8", None) == ""
    assert "not in hailort_chip_families ['hailo8', 'hailo8l']" in hailort_chip_refusal("HAILO15H", None)


@pytest.mark.parametrize(
    ("architecture", "family"),
    [("HAILO8_B0", "hailo8"), ("hailo8l", "hailo8l"), ("HAILO15H", ""), (None, "")],
)
def test_a_chip_is_named_by_its_family(architecture: str | None, family: str) -> None:
    assert hailort_chip_family(architecture) == family


def test_without_the_project_installed_the_chip_filters_say_to_use_its_venv(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "bundle_contract.chips", None)  # makes the import fail
    with pytest.raises(AnsibleFilterError, match=r"bundle_contract.*project's venv"):
        hailort_chip_refusal("HAILO8", ["hailo8"])


# --- The .hef's DFC against the Pi's HailoRT (issue 11 point 2; roles/hailort/defaults, docs/HEF_COMPAT.md)

COMPAT = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["hailort_dfc_compat"]


@pytest.mark.parametrize(
    ("dfc", "hailort"),
    [("3.33.0", "4.23.0"), ("3.33.1", "4.23.1"), ("3.31.0", "4.21.0"), ("3.27.0", "4.18.0")],
)
def test_a_dfc_and_its_paired_hailort_pass(dfc: str, hailort: str):
    assert hailort_hef_refusal(dfc, hailort, COMPAT) == ""


def test_an_onnx_only_bundle_needs_no_particular_hailort():
    assert hailort_hef_refusal(None, "4.20.0", COMPAT) == ""
    assert hailort_hef_refusal("None", None, COMPAT) == ""  # as Ansible hands over an unset value


def test_a_mismatch_names_both_versions():
    refusal = hailort_hef_refusal("3.33.0", "4.20.0", COMPAT)
    assert "DFC 3.33.0" in refusal and "HailoRT 4.23.x" in refusal and "runs HailoRT 4.20.0" in refusal


def test_an_unlisted_dfc_and_a_pi_without_hailort_are_refused():
    assert "pairs with no HailoRT release" in hailort_hef_refusal("3.99.0", "4.23.0", COMPAT)
    assert "no HailoRT installed" in hailort_hef_refusal("3.33.0", None, COMPAT)
    assert "no HailoRT installed" in hailort_hef_refusal("3.33.0", "None", COMPAT)


def test_the_docs_table_and_the_role_default_agree():
    """docs/HEF_COMPAT.md is what a user reads; the role's default is what preflight checks."""
    rows = re.findall(r"^\| (\d+\.\d+)\.x \| (\d+\.\d+)\.x \|", DOCS.read_text(), re.M)
    assert dict(rows) == {str(k): str(v) for k, v in COMPAT.items()}
