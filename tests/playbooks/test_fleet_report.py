"""The fleet report: per-Pi rows from hostvars, the benchmark's judged seed targets, markdown rendering."""

from pathlib import Path

import yaml
from fleet_report import CHECKED, COLUMNS, UNREACHABLE, fleet_report, fleet_report_markdown

from fleetops.edgeinfer import READ_TIMEOUT_MS

ROOT = Path(__file__).resolve().parents[2]

# Facts as the roles set them: health_report (health role), inference_app_release (inference_app role).
HEALTHY = {
    "health_report": {
        "healthy": True,
        "checks": {"app_healthz": True, "golden_app": True, "golden_edgeinfer": True},
        "details": {},
        "edgeinfer_real_model": True,
        "model_version": "tcn-0123456789ab",
        "untrained_default": True,
        "sha256": "ab" * 32,
        "backend": "onnxruntime",
        "latency_ms": {"p50": 3.5, "max": 9.0},
        "edgeinfer_latency_ms": {"p50": 6.25, "max": 11.0},
    },
    "inference_app_release": "tcn-0123456789ab-deadbeef",
    "inference_app_bundle_sha256": "cd" * 32,
    "fleet_deploy": {"reached": True, "outcome": "deployed", "rolled_back": False},
    "hailort_accelerator_present": False,
    # What build.yml read from the Pi (playbooks/tasks/release_target.yml).
    "pi_release_target": {
        "platform": "aarch64",
        "python": "3.13",
        "glibc": "2.41",
        "os": "Debian GNU/Linux 13 (trixie)",
        "kind": "aarch64-cp313",
    },
}
ROLLED_BACK = {
    "health_report": HEALTHY["health_report"],
    "inference_app_release": "tcn-old-00000000",
    "fleet_deploy": {
        "reached": True,
        "outcome": "rolled_back",
        "rolled_back": True,
        "failure": "health gate: /healthz unreachable on 127.0.0.1:8000",
    },
    "hailort_accelerator_present": True,
    "hailort_device_architecture": "HAILO8",
    "hailort_firmware_version": "4.23.0",
}


def test_report_marks_unreached_hosts_unreachable_and_unhealthy():
    report = fleet_report(
        {"pi-1": HEALTHY, "pi-2": ROLLED_BACK}, ["pi-3", "pi-1", "pi-2"], {"playbook": "site.yml"}
    )
    assert list(report["hosts"]) == ["pi-1", "pi-2", "pi-3"]
    assert report["hosts"]["pi-3"]["reachable"] is False
    assert report["hosts"]["pi-3"]["healthy"] is False
    assert report["hosts"]["pi-3"]["outcome"] == "unreachable"
    assert report["summary"] == {
        "hosts": 3,
        "healthy": 2,
        "edgeinfer_real_model": 2,
        "rolled_back": ["pi-2"],
        "unreachable": ["pi-3"],
        "unhealthy": ["pi-3"],
    }
    assert report["playbook"] == "site.yml"
    assert report["target_releases"] == {}


def test_each_pi_names_its_os_python_and_the_release_built_for_its_kind():
    trixie = "tcn-0123456789ab-deadbeef"
    built = {"aarch64-cp313": {"release": trixie}, "aarch64-cp311": {"release": "tcn-x-1"}}
    report = fleet_report({"pi-1": HEALTHY, "pi-2": ROLLED_BACK}, ["pi-1", "pi-2"], {}, built)
    assert report["target_releases"] == {"aarch64-cp311": "tcn-x-1", "aarch64-cp313": trixie}
    pi1, pi2 = report["hosts"]["pi-1"], report["hosts"]["pi-2"]
    assert pi1["os"] == "Debian GNU/Linux 13 (trixie)"
    assert (pi1["python"], pi1["release_kind"]) == ("3.13", "aarch64-cp313")
    assert pi1["target_release"] == pi1["release"] == "tcn-0123456789ab-deadbeef"
    # Never probed (preflight left it out, or a report run alone): nothing is guessed.
    assert (pi2["os"], pi2["python"], pi2["release_kind"], pi2["target_release"]) == (None, None, None, None)


def test_host_row_maps_backend_accelerator_and_rollback():
    hosts = fleet_report({"pi-1": HEALTHY, "pi-2": ROLLED_BACK}, ["pi-1", "pi-2"])["hosts"]
    assert hosts["pi-1"]["backend"] == "cpu"
    assert hosts["pi-1"]["accelerator"] is None
    assert hosts["pi-2"]["accelerator"] == "HAILO8"
    assert hosts["pi-2"]["firmware"] == "4.23.0"
    assert hosts["pi-2"]["rolled_back"] is True
    assert hosts["pi-2"]["release"] == "tcn-old-00000000"
    assert hosts["pi-1"]["latency_ms"] == 3.5
    assert hosts["pi-1"]["golden_window_ok"] is True
    hailo = fleet_report({"pi": {"health_report": {"backend": "hailort"}}}, ["pi"])["hosts"]["pi"]
    assert hailo["backend"] == "hailo"
    onnx_only = {
        "backend": "onnxruntime",
        "bundle_kind": "onnx-only",
        "backend_reason": "onnx-only bundle: ...",
    }
    entry = fleet_report({"pi": {"health_report": onnx_only}}, ["pi"])["hosts"]["pi"]
    assert entry["backend"] == "cpu (onnx-only)" and entry["backend_reason"] == "onnx-only bundle: ..."
    with_hefs = {"backend": "onnxruntime", "bundle_kind": "hef"}
    assert fleet_report({"pi": {"health_report": with_hefs}}, ["pi"])["hosts"]["pi"]["backend"] == "cpu"


# fleet_benchmark.measured as the benchmark role sets it: each seed target already judged.
MEASURED = {
    "latency_p95_ms": {
        "title": "inference < 50 ms per window (p95)",
        "limit": 50.0,
        "op": "<",
        "status": "met",
        "value": 4.0,
        "reason": None,
    },
    "soc_temp_c": {
        "title": "SoC temperature < 70 °C",
        "limit": 70.0,
        "op": "<",
        "status": "not_measurable",
        "value": None,
        "reason": "no thermal zone under /sys/class/thermal on this host",
    },
}


def test_markdown_has_a_row_per_pi_problems_and_targets():
    benchmarked = {**HEALTHY, "fleet_benchmark": {"measured": MEASURED}}
    report = fleet_report({"pi-1": benchmarked, "pi-2": ROLLED_BACK}, ["pi-1", "pi-2", "pi-3"])
    text = fleet_report_markdown(report)
    rows = [line for line in text.splitlines() if line.startswith("| pi-")]
    assert rows[0].startswith(
        "| pi-1 | Debian GNU/Linux 13 (trixie) | 3.13 | deployed | yes | yes | tcn-0123456789ab-deadbeef "
        "| tcn-0123456789ab |"
    )
    assert "| pi-2 | - | - | rolled_back |" in rows[1] and rows[1].endswith("| yes |")
    assert rows[2].startswith("| pi-3 | - | - | unreachable | no | no |")
    assert "- pi-2: health gate: /healthz unreachable on 127.0.0.1:8000" in text
    assert (
        "| pi-1 | Debian GNU/Linux 13 (trixie) | 3.13 | deployed | yes | yes | tcn-0123456789ab-deadbeef "
        "| tcn-0123456789ab | yes | cdcdcdcdcdcd "
        "| cpu | none | - | yes | 3.50 | 6.25 | no |" in text
    )
    assert "| pi-1 | inference < 50 ms per window (p95) | met | 4.00 |  |" not in text
    assert "| pi-1 | inference < 50 ms per window (p95) | met | 4.00 | - |" in text
    assert "| pi-1 | SoC temperature < 70 °C | not measurable | - | no thermal zone under" in text
    assert report["hosts"]["pi-1"]["targets"] == MEASURED
    assert "rolled back: pi-2, unreachable: pi-3." in text


def test_failed_health_checks_become_problems_with_their_details():
    unhealthy = {
        "health_report": {
            "healthy": False,
            "checks": {"app_healthz": True, "golden_app": True, "golden_edgeinfer": False},
            "details": {"golden_edgeinfer": "EdgeInfer latent differs from the app's (stub output?)"},
            "edgeinfer_real_model": False,
        }
    }
    entry = fleet_report({"pi-1": unhealthy}, ["pi-1"])["hosts"]["pi-1"]
    assert entry["problems"] == ["golden_edgeinfer: EdgeInfer latent differs from the app's (stub output?)"]
    assert entry["healthy"] is False
    assert entry["outcome"] == "checked"


def test_a_pi_lost_mid_deploy_is_unreachable_even_with_earlier_health_facts():
    lost = {**HEALTHY, "fleet_deploy": {"reached": True, "outcome": "in_progress", "rolled_back": False}}
    entry = fleet_report({"pi-1": lost}, ["pi-1"])["hosts"]["pi-1"]
    assert entry["outcome"] == "unreachable"
    assert entry["reachable"] is False
    assert entry["healthy"] is False
    assert fleet_report({"pi-1": lost}, ["pi-1"])["summary"]["unreachable"] == ["pi-1"]


def test_markdown_says_untrained_default_with_full_sha256s_and_explains_every_column():
    trained = {
        **HEALTHY,
        "health_report": {
            **HEALTHY["health_report"],
            "model_version": "tcn-trained00000",
            "untrained_default": False,
        },
        "inference_app_bundle_sha256": "ef" * 32,
    }
    report = fleet_report({"pi-1": HEALTHY, "pi-2": trained}, ["pi-1", "pi-2", "pi-3"], {"latency_calls": 7})
    text = fleet_report_markdown(report)
    model = text.split("## Model", 1)[1].split("## Pis", 1)[0]
    assert "- bundle tcn-0123456789ab: **UNTRAINED DEFAULT**" in model
    assert f"bundle sha256 (model_metadata.json) {'cd' * 32}" in model and f"file sha256 {'ab' * 32}" in model
    assert "on pi-1\n" in model
    assert "- bundle tcn-trained00000: trained model;" in model and "on pi-2\n" in model
    header = next(line for line in text.splitlines() if line.startswith("| Pi |"))
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    legend = text.split("Columns:", 1)[1]
    for column in columns:
        assert f"- **{column}**: " in legend, column
    assert "app latency ms**: median of 7 health-check calls" in legend
    assert f"read timeout {READ_TIMEOUT_MS:g} ms" in legend
    row = next(line for line in text.splitlines() if line.startswith("| pi-3 |"))
    assert len(row.strip("|").split("|")) == len(columns)


def test_markdown_with_no_deployed_bundle_says_so():
    text = fleet_report_markdown(fleet_report({}, ["pi-1"]))
    assert "- no Pi reported a deployed bundle" in text


def test_every_outcome_the_report_gives_is_one_fleet_run_documents():
    # fleet_run's spec holds every outcome with its meaning: the ones plays record (its choices) and the
    # report's own for a Pi without a final record, which no play may record. The legend points there.
    specs = yaml.safe_load((ROOT / "roles/fleet_run/meta/argument_specs.yml").read_text())["argument_specs"]
    option = specs["record"]["options"]["fleet_run_outcome"]
    documented = " ".join(option["description"])
    assert all(f"C({outcome})" in documented for outcome in (CHECKED, UNREACHABLE))
    assert {CHECKED, UNREACHABLE}.isdisjoint(option["choices"])
    legend = dict(COLUMNS)["outcome"]
    assert "roles/fleet_run/meta/argument_specs.yml" in legend
    outcomes = (*option["choices"], CHECKED, UNREACHABLE)
    assert not [outcome for outcome in outcomes if outcome in legend.split()]
