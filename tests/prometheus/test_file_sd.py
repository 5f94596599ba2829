"""file_sd targets generated from a real Ansible inventory (ansible-inventory), and the scrape config
reading them accepted by promtool."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# The port the plays give every Pi: file_sd reads the inventory with the repository's group_vars, as they do.
PORT = yaml.safe_load((ROOT / "group_vars/pis/main.yml").read_text())["inference_app_metrics_port"]
sys.path.insert(0, str(ROOT / "prometheus"))

from file_sd import main, newest_manifest  # noqa: E402  (prometheus/ is a folder of tools, not a package)

INVENTORY = """
all:
  children:
    pis:
      children:
        canary:
          hosts:
            pi-a: {ansible_host: 192.0.2.10}
      hosts:
        pi-b: {ansible_host: 192.0.2.11, inference_app_metrics_port: 9200}
        pi-c: {}
    other:
      hosts:
        laptop: {ansible_host: 192.0.2.99}
"""


def test_one_target_per_pi_with_address_port_and_expected_version(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(INVENTORY)
    release = tmp_path / "release.json"
    release.write_text(json.dumps({"release": "tcn-aaaaaaaaaaaa-0123", "bundle_version": "tcn-aaaaaaaaaaaa"}))
    out = tmp_path / "hailo_pipeline.json"
    assert main(["-i", str(inventory), "--out", str(out), "--release", str(release)]) == 0
    expected = {"expected_version": "tcn-aaaaaaaaaaaa"}
    assert json.loads(out.read_text()) == [
        {"targets": [f"192.0.2.10:{PORT}"], "labels": {"pi": "pi-a", **expected}},
        {"targets": ["192.0.2.11:9200"], "labels": {"pi": "pi-b", **expected}},
        {"targets": [f"pi-c:{PORT}"], "labels": {"pi": "pi-c", **expected}},
    ]
    assert not list(tmp_path.glob("*.tmp"))


def test_a_host_outside_the_pis_needs_a_port_given(tmp_path: Path, capsys) -> None:
    # group_vars/pis sets the port of the Pis only: other hosts take --port, or are refused by name.
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(INVENTORY)
    out = tmp_path / "targets.json"
    assert main(["-i", str(inventory), "--out", str(out), "--group", "other"]) == 1
    assert "laptop has no inference_app_metrics_port" in capsys.readouterr().err
    assert not out.exists()
    assert main(["-i", str(inventory), "--out", str(out), "--group", "other", "--port", "9300"]) == 0
    assert json.loads(out.read_text())[0]["targets"] == ["192.0.2.99:9300"]


def test_the_newest_kind_manifest_names_the_expected_version(tmp_path: Path) -> None:
    # A kind no Pi of the last run had keeps its older manifest; the run's own are written after it.
    build = tmp_path / "build"
    build.mkdir()
    (build / "release-aarch64-cp311.json").write_text(json.dumps({"bundle_version": "tcn-old"}))
    os.utime(build / "release-aarch64-cp311.json", (1, 1))
    (build / "release-aarch64-cp313.json").write_text(json.dumps({"bundle_version": "tcn-new"}))
    assert newest_manifest(build) == build / "release-aarch64-cp313.json"
    assert newest_manifest(tmp_path) is None


def test_without_a_release_there_is_no_expected_version(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(INVENTORY)
    out = tmp_path / "targets.json"
    assert main(["-i", str(inventory), "--out", str(out), "--release", str(tmp_path / "none.json")]) == 0
    assert all(set(group["labels"]) == {"pi"} for group in json.loads(out.read_text()))


def test_an_empty_group_is_a_one_line_error_and_writes_nothing(tmp_path: Path, capsys) -> None:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(INVENTORY)
    assert main(["-i", str(inventory), "--out", str(tmp_path / "t.json"), "--group", "nosuch"]) == 1
    assert "no hosts in group 'nosuch'" in capsys.readouterr().err
    assert not (tmp_path / "t.json").exists()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing: apt-get install prometheus")
def test_scrape_config_reads_the_generated_targets(tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    shutil.copy(ROOT / "prometheus" / "prometheus.yml", config)
    shutil.copy(ROOT / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    (tmp_path / "targets").mkdir()
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(INVENTORY)
    assert main(["-i", str(inventory), "--out", str(tmp_path / "targets" / "hailo_pipeline.json")]) == 0
    result = subprocess.run(
        ["promtool", "check", "config", str(config)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "does not exist" not in result.stdout + result.stderr
