"""Build the fleet report (JSON + markdown) from what the plays learned about each Pi (Ansible filters).

Inputs per host are facts set by the roles: `health_report` (health), `fleet_deploy` (fleet_run's record of
the Pi's outcome), hailort's accelerator facts and `fleet_benchmark` (benchmark: its seed targets, judged).
A host the run never reached has none of them: it is reported unreachable, never healthy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

try:
    from bundle_contract.files import ONNX_ONLY
    from fleetops.edgeinfer import READ_TIMEOUT_MS
except ImportError as exc:  # Ansible's interpreter is not the project's venv
    raise ImportError(
        "the fleet report needs this project's packages (bundle_contract, fleetops): run ansible-playbook "
        "from the project's venv (make setup)"
    ) from exc

# The report's own outcomes, for a Pi no play left a final record for; roles/fleet_run/meta/argument_specs.yml
# says what they mean, with the outcomes plays record.
CHECKED = "checked"
UNREACHABLE = "unreachable"


def _backend_kind(app_backend: str | None, bundle_kind: str | None = None) -> str | None:
    # The report speaks of the hardware that ran the model: the Hailo chip or the Pi's CPU, and says when the
    # CPU runs because the bundle has no .hef at all (built without Hailo's DFC), not for want of a chip.
    if app_backend is None:
        return None
    if app_backend == "hailort":
        return "hailo"
    return f"cpu ({ONNX_ONLY})" if bundle_kind == ONNX_ONLY else "cpu"


def _p50(latency: Any) -> float | None:
    # The health role reports latency as {"p50": ms, "max": ms}; older facts may carry a bare number.
    if isinstance(latency, Mapping):
        latency = latency.get("p50")
    return float(latency) if isinstance(latency, int | float) and not isinstance(latency, bool) else None


def host_entry(
    host_vars: Mapping[str, Any], built: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """One Pi's row of the report from its hostvars; `built` is this run's releases by kind (build.yml)."""
    health = host_vars.get("health_report") or {}
    deploy = host_vars.get("fleet_deploy") or {}
    benchmark = host_vars.get("fleet_benchmark") or {}
    checks = health.get("checks") or {}
    details = health.get("details") or {}
    # A play that lost the Pi (unreachable) never got to record an outcome after "in_progress".
    lost = deploy.get("outcome") == "in_progress"
    reached = (bool(health) or bool(deploy.get("reached"))) and not lost
    accelerator_present = host_vars.get("hailort_accelerator_present")
    target = host_vars.get("pi_release_target") or {}
    kind = target.get("kind")
    entry: dict[str, Any] = {
        "reachable": reached,
        "os": target.get("os") or None,
        "python": target.get("python"),
        "release_kind": kind,
        "target_release": (built or {}).get(kind or "", {}).get("release"),
        "healthy": bool(health.get("healthy", False)) and not lost,
        "edgeinfer_real_model": bool(health.get("edgeinfer_real_model", False)) and not lost,
        "release": host_vars.get("inference_app_release") or None,
        "previous_release": host_vars.get("inference_app_previous_release") or None,
        "model_version": health.get("model_version"),
        "untrained_default": health.get("untrained_default"),
        # The served model file's sha256 (what /healthz reports) and the bundle's: model_metadata.json's,
        # which lists every file of the bundle with its sha256.
        "sha256": health.get("sha256"),
        "bundle_sha256": host_vars.get("inference_app_bundle_sha256") or None,
        "backend": _backend_kind(health.get("backend"), health.get("bundle_kind")),
        "app_backend": health.get("backend"),
        "backend_reason": health.get("backend_reason") or None,
        "bundle_kind": health.get("bundle_kind"),
        "accelerator": host_vars.get("hailort_device_architecture") if accelerator_present else None,
        "accelerator_present": accelerator_present,
        "accelerator_reason": host_vars.get("hailort_accelerator_reason") or None,
        "firmware": host_vars.get("hailort_firmware_version"),
        "golden_window_ok": checks.get("golden_app"),
        "latency_ms": _p50(health.get("latency_ms")),
        "edgeinfer_latency_ms": _p50(health.get("edgeinfer_latency_ms")),
        "rolled_back": bool(deploy.get("rolled_back", False)),
        "outcome": UNREACHABLE if lost else deploy.get("outcome") or (CHECKED if reached else UNREACHABLE),
        "failure": deploy.get("failure"),
        "problems": [f"{name}: {details.get(name, 'failed')}" for name, ok in checks.items() if not ok],
        "hailort_versions": host_vars.get("hailort_versions") or None,
    }
    versions = entry["hailort_versions"] or {}
    if versions.get(
        "mismatch"
    ):  # libhailort refuses a driver of another version (HAILO_INVALID_DRIVER_VERSION)
        entry["problems"].append(
            "HailoRT versions differ: driver {driver}, firmware {firmware}, library {library}".format(
                **versions
            )
        )
    if benchmark:
        entry["benchmark"] = dict(benchmark)
        entry["targets"] = dict(benchmark.get("measured") or {})
    return entry


def fleet_report(
    hostvars: Mapping[str, Mapping[str, Any]],
    hosts: list[str],
    meta: Mapping[str, Any] | None = None,
    built: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The fleet report: {"hosts": {name: entry}, "summary": counts, "target_releases": {kind: release},
    **meta}; `built` is the release manifests this run built, by kind."""
    entries = {name: host_entry(hostvars.get(name) or {}, built) for name in sorted(hosts)}
    summary = {
        "hosts": len(entries),
        "healthy": sum(entry["healthy"] for entry in entries.values()),
        "edgeinfer_real_model": sum(entry["edgeinfer_real_model"] for entry in entries.values()),
        "rolled_back": sorted(name for name, entry in entries.items() if entry["rolled_back"]),
        "unreachable": sorted(name for name, entry in entries.items() if not entry["reachable"]),
        "unhealthy": sorted(name for name, entry in entries.items() if not entry["healthy"]),
    }
    targets = {kind: manifest.get("release") for kind, manifest in sorted((built or {}).items())}
    return {**dict(meta or {}), "target_releases": targets, "summary": summary, "hosts": entries}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


# Column header -> what it is, printed under the table so no column has to be guessed.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("Pi", "inventory name"),
    ("OS", "the Pi's operating system (its /etc/os-release), as read by the run"),
    ("Python", "the CPython its venvs are built with: with the architecture, which runtime the Pi gets"),
    ("outcome", "what this run did to the Pi (roles/fleet_run/meta/argument_specs.yml says what each means)"),
    ("healthy", "every health check passed (app /healthz, golden window through the app and EdgeInfer)"),
    (
        "EdgeInfer real model",
        "EdgeInfer answered the golden window with the app's latent, not its random stub",
    ),
    ("release", "release the Pi's `current` points at"),
    ("model", "bundle version (a hash of the model's inputs)"),
    ("untrained default", "yes: seeded weights, not a trained encoder"),
    (
        "bundle sha256",
        "sha256 of the bundle's model_metadata.json (it lists every file's sha256), first 12 hex",
    ),
    (
        "backend",
        "hailo: the Hailo chip (the .hef for its family); cpu: ONNX Runtime on the Pi's CPU; "
        f"cpu ({ONNX_ONLY}): the bundle was built without Hailo's DFC, so every Pi runs ONNX Runtime",
    ),
    ("accelerator", "Hailo device found on PCIe, or none"),
    ("firmware", "Hailo firmware version"),
    ("golden window", "the app's latent for the bundle's golden window is within the bundle's tolerance"),
    ("app latency ms", "median of {calls} health-check calls to the app's /infer, on the Pi"),
    (
        "EdgeInfer latency ms",
        f"median of {{calls}} health-check calls through EdgeInfer (read timeout {READ_TIMEOUT_MS:g} ms)",
    ),
    ("rolled back", "this run put the Pi back on its previous release (or EdgeInfer on its stub)"),
)


def _short(digest: Any) -> Any:
    return digest[:12] if isinstance(digest, str) else digest


def _model_lines(hosts: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per distinct deployed bundle: version, trained or not, full sha256s, which Pis run it."""
    bundles: dict[tuple[Any, Any, Any, Any], list[str]] = {}
    for name, entry in hosts.items():
        if entry["model_version"] is None:
            continue
        key = (entry["model_version"], entry["untrained_default"], entry["bundle_sha256"], entry["sha256"])
        bundles.setdefault(key, []).append(name)
    lines = []
    for (version, untrained, bundle_sha, model_sha), names in sorted(
        bundles.items(), key=lambda kv: str(kv[0])
    ):
        kind = (
            "**UNTRAINED DEFAULT** (seeded weights, not a trained encoder; -e model_source=FILE deploys one)"
            if untrained
            else "trained model"
            if untrained is False
            else "trained or not: unknown"
        )
        lines.append(
            f"- bundle {version}: {kind}; bundle sha256 (model_metadata.json) {bundle_sha or '-'}; "
            f"served model file sha256 {model_sha or '-'}; on {', '.join(names)}"
        )
    return lines or ["- no Pi reported a deployed bundle"]


def fleet_report_markdown(report: Mapping[str, Any]) -> str:
    """Render the report for people: the bundles, one table row per Pi with a legend, then problems and the
    seed targets where a benchmark ran."""
    summary = report["summary"]
    calls = report.get("latency_calls", 5)
    lines = [
        f"# Fleet report — {report.get('playbook', 'site.yml')} — {report.get('generated_at', '')}".rstrip(
            " —"
        ),
        "",
        f"{summary['healthy']}/{summary['hosts']} healthy, "
        f"{summary['edgeinfer_real_model']}/{summary['hosts']} with EdgeInfer on the real model, "
        f"rolled back: {', '.join(summary['rolled_back']) or 'none'}, "
        f"unreachable: {', '.join(summary['unreachable']) or 'none'}.",
        "",
        "## Model",
        "",
        *_model_lines(report["hosts"]),
        "",
        "## Pis",
        "",
        "| " + " | ".join(header for header, _ in COLUMNS) + " |",
        "| " + " | ".join("---" for _ in COLUMNS) + " |",
    ]
    for name, entry in report["hosts"].items():
        cells = [
            name,
            entry["os"],
            entry["python"],
            entry["outcome"],
            entry["healthy"],
            entry["edgeinfer_real_model"],
            entry["release"],
            entry["model_version"],
            entry["untrained_default"],
            _short(entry["bundle_sha256"]),
            entry["backend"],
            entry["accelerator"] or "none",
            entry["firmware"],
            entry["golden_window_ok"],
            entry["latency_ms"],
            entry["edgeinfer_latency_ms"],
            entry["rolled_back"],
        ]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    lines += ["", "Columns:", ""]
    lines += [f"- **{header}**: {meaning.format(calls=calls)}" for header, meaning in COLUMNS]
    problems = [
        (name, entry) for name, entry in report["hosts"].items() if entry["failure"] or entry["problems"]
    ]
    if problems:
        lines += ["", "## Problems", ""]
        for name, entry in problems:
            for text in ([entry["failure"]] if entry["failure"] else []) + entry["problems"]:
                lines.append(f"- {name}: {text}")
    benchmarked = [(name, entry) for name, entry in report["hosts"].items() if "targets" in entry]
    if benchmarked:
        lines += [
            "",
            "## Seed targets (benchmark.yml)",
            "",
            "| Pi | target | status | value | why not measurable |",
        ]
        lines.append("| --- | --- | --- | --- | --- |")
        for name, entry in benchmarked:
            for target in entry["targets"].values():
                cells = [
                    name,
                    target["title"],
                    target["status"].replace("_", " "),
                    target["value"],
                    target["reason"],
                ]
                lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


class FilterModule:
    """Ansible entry point for the report filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "fleet_report": fleet_report,
            "fleet_report_markdown": fleet_report_markdown,
        }
