"""Fleet naming, addressing, the generated inventory and the image rebuild decision (no docker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from simfleet.fleet import FleetError, FleetSpec
from simfleet.images import PI_IMAGES, BuildPlan, _base_tag
from simfleet.inventory import render
from simfleet.specs import PI_ROOTFS


def test_pi_names_and_fixed_addresses():
    spec = FleetSpec(prefix="hp", subnet="10.213.7.0/24", inventory_path=Path("/nonexistent"))
    assert spec.pi_name(3) == "hp-pi-3"
    assert spec.network == "hp-fleet"
    assert spec.volume("hp-pi-3") == "hp-pi-3-docker"
    assert spec.pi_index("hp-pi-12") == spec.pi_index("12") == 12
    assert spec.address("hp-pi-1") == "10.213.7.11"
    assert spec.address("2") == "10.213.7.12"


@pytest.mark.parametrize("name", ["hp-mol-hailort-1", "hp-pi-0", "pi-1", "hp-pi-x", "other-pi-1"])
def test_names_outside_the_fleet_are_refused(name):
    # stop/start must never reach another helper's container by a near-miss name.
    with pytest.raises(FleetError, match="not a simulated Pi"):
        FleetSpec(inventory_path=Path("/nonexistent")).pi_index(name)


def test_every_third_pi_runs_trixie_the_others_bookworm():
    spec = FleetSpec(inventory_path=Path("/nonexistent"))
    assert [spec.suite(spec.pi_name(i)) for i in range(1, 7)] == ["bookworm", "bookworm", "trixie"] * 2


def test_each_release_has_its_own_pi_image_and_base_family():
    # The bookworm and trixie bases must not untag each other as "stale recipes" of one tree.
    assert PI_IMAGES == {"bookworm": "local/hp-pi:bookworm", "trixie": "local/hp-pi:trixie"}
    families = {suite: spec.family for suite, spec in PI_ROOTFS.items()}
    assert families == {"bookworm": "pi-bookworm", "trixie": "pi-trixie"}
    for suite, spec in PI_ROOTFS.items():
        assert _base_tag(spec, systemd=True).startswith(f"pi-{suite}-")
        assert spec.path.name.startswith(f"pi-{suite}-")
    assert PI_ROOTFS["bookworm"].key != PI_ROOTFS["trixie"].key
    assert "docker-cli" in PI_ROOTFS["trixie"].packages  # trixie's docker.io only recommends the client


def test_subnet_too_small_for_the_fleet_is_an_error():
    with pytest.raises(FleetError, match="no room"):
        FleetSpec(subnet="10.0.0.0/28", inventory_path=Path("/nonexistent")).address("hp-pi-5")


def test_inventory_groups_pis_with_connection_vars():
    text = render({"hp-pi-10": "10.0.0.20", "hp-pi-2": "10.0.0.12"}, Path("/k/id_ed25519"))
    pis = yaml.safe_load(text)["all"]["children"]["pis"]
    assert list(pis["hosts"]) == ["hp-pi-2", "hp-pi-10"]  # numeric order, not text order
    assert pis["hosts"]["hp-pi-10"] == {"ansible_host": "10.0.0.20"}
    assert pis["vars"]["ansible_user"] == "pi"
    assert pis["vars"]["ansible_ssh_private_key_file"] == "/k/id_ed25519"
    assert "StrictHostKeyChecking=no" in pis["vars"]["ansible_ssh_common_args"]


def test_build_inputs_change_with_any_input_and_only_then():
    def plan(**changes):
        fields = {
            "tag": "t",
            "role": "r",
            "dockerfile": "FROM x",
            "files": {"a": b"1"},
            "extra_inputs": ["e"],
        }
        return BuildPlan(**{**fields, **changes})

    assert plan().inputs() == plan().inputs()
    variants = [
        plan(dockerfile="FROM y"),
        plan(files={"a": b"2"}),
        plan(files={"b": b"1"}),
        plan(files={"a": b"1", "c": b""}),
        plan(extra_inputs=["f"]),
    ]
    assert len({plan().inputs(), *(v.inputs() for v in variants)}) == 1 + len(variants)
