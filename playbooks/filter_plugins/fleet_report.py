"""Build the fleet report (JSON + markdown) from what the plays learned about each Pi (Ansible filters).

Inputs per host are facts set by the plays and roles: `health_report` (health role), `fleet_deploy`
(deploy.yml / rollback.yml outcome), the hailort role's accelerator facts and `fleet_benchmark`
(benchmark.yml). A host the run never reached has none of them: it is reported unreachable, never healthy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The seed's resource targets (issue 6): measured value `op` `limit` means met.
SEED_TARGETS: tuple[dict[str, Any], ...] = (
    {"key": "latency_p95_ms", "title": "inference < 50 ms per window (p95)", "op": "<", "limit": 50.0},
    {"key": "latency_p99_ms", "title": "EdgeInfer budget: p99 <= 45 ms", "op": "<=", "limit": 45.0},
    {"key": "rss_mb", "title": "app memory < 512 MB", "op": "<", "limit": 512.0},
    {"key": "hailo_utilization_pct", "title": "Hailo utilization > 80% under load", "op": ">", "limit": 80.0},
    {"key": "power_added_w", "title": "power < 5 W added", "op": "<", "limit": 5.0},
    {"key": "soc_temp_c", "title": "SoC temperature < 70 °C", "op": "<", "limit": 70.0},
    {"key": "success_pct", "title": "99%+ successful inferences", "op": ">=", "limit": 99.0},
)

_COMPARE = {
    "<": lambda value, limit: value < limit,
    "<=": lambda value, limit: value <= limit,
    ">": lambda value, limit: value > limit,
    ">=": lambda value, limit: value >= limit,
}


def _backend_kind(app_backend: str | None) -> str | None:
    # The report speaks of the hardware that ran the model: the Hailo chip or the Pi's CPU.
    if app_backend is None:
        return None
    return "hailo" if app_backend == "hailort" else "cpu"


def seed_target_status(measured: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Judge each seed target from `measured` = {key: number | {"reason": why not measurable}}.

    Missing keys are "not_measurable" with a generic reason; nothing is guessed.
    """
    status: dict[str, dict[str, Any]] = {}
    for target in SEED_TARGETS:
        value = measured.get(target["key"])
        entry: dict[str, Any] = {"title": target["title"], "limit": target["limit"], "op": target["op"]}
        if isinstance(value, bool) or not isinstance(value, int | float):
            reason = value.get("reason") if isinstance(value, Mapping) else None
            entry.update(
                status="not_measurable", value=None, reason=reason or "no measurement from this host"
            )
        else:
            met = _COMPARE[target["op"]](float(value), target["limit"])
            entry.update(status="met" if met else "not_met", value=float(value), reason=None)
        status[target["key"]] = entry
    return status


def host_entry(host_vars: Mapping[str, Any]) -> dict[str, Any]:
    """One Pi's row of the report from its hostvars."""
    health = host_vars.get("health_report") or {}
    deploy = host_vars.get("fleet_deploy") or {}
    benchmark = host_vars.get("fleet_benchmark") or {}
    reached = bool(health) or bool(deploy.get("reached"))
    accelerator_present = host_vars.get("hailort_accelerator_present")
    entry: dict[str, Any] = {
        "reachable": reached,
        "healthy": bool(health.get("healthy", False)),
        "edgeinfer_real_model": bool(health.get("edgeinfer_real_model", False)),
        "edgeinfer_stub_mode": health.get("edgeinfer_stub_mode"),
        "release": health.get("release"),
        "model_version": health.get("model_version"),
        "sha256": health.get("sha256"),
        "backend": _backend_kind(health.get("backend")),
        "app_backend": health.get("backend"),
        "accelerator": host_vars.get("hailort_device_arch") if accelerator_present else None,
        "accelerator_present": accelerator_present,
        "firmware": host_vars.get("hailort_firmware_version"),
        "golden_window_ok": health.get("golden_window_ok"),
        "latency_ms": health.get("latency_ms"),
        "rolled_back": bool(deploy.get("rolled_back", False)),
        "outcome": deploy.get("outcome") or ("checked" if reached else "unreachable"),
        "failure": deploy.get("failure"),
        "problems": list(health.get("problems") or []),
    }
    if benchmark:
        entry["benchmark"] = dict(benchmark)
        entry["targets"] = seed_target_status(benchmark.get("measured") or {})
    return entry


def fleet_report(
    hostvars: Mapping[str, Mapping[str, Any]], hosts: list[str], meta: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The fleet report: {"hosts": {name: entry}, "summary": counts, **meta}."""
    entries = {name: host_entry(hostvars.get(name) or {}) for name in sorted(hosts)}
    summary = {
        "hosts": len(entries),
        "healthy": sum(entry["healthy"] for entry in entries.values()),
        "edgeinfer_real_model": sum(entry["edgeinfer_real_model"] for entry in entries.values()),
        "rolled_back": sorted(name for name, entry in entries.items() if entry["rolled_back"]),
        "unreachable": sorted(name for name, entry in entries.items() if not entry["reachable"]),
        "unhealthy": sorted(name for name, entry in entries.items() if not entry["healthy"]),
    }
    return {**dict(meta or {}), "summary": summary, "hosts": entries}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def fleet_report_markdown(report: Mapping[str, Any]) -> str:
    """Render the report for people: one table row per Pi, then the seed targets where a benchmark ran."""
    summary = report["summary"]
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
        "| Pi | outcome | healthy | EdgeInfer real model | release | backend | accelerator | firmware "
        "| golden window | latency ms | rolled back |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, entry in report["hosts"].items():
        cells = [
            name,
            entry["outcome"],
            entry["healthy"],
            entry["edgeinfer_real_model"],
            entry["release"],
            entry["backend"],
            entry["accelerator"] or "none",
            entry["firmware"],
            entry["golden_window_ok"],
            entry["latency_ms"],
            entry["rolled_back"],
        ]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
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
    """Ansible entry point: `fleet_report`, `fleet_report_markdown`, `seed_target_status`."""

    def filters(self) -> dict[str, Any]:
        return {
            "fleet_report": fleet_report,
            "fleet_report_markdown": fleet_report_markdown,
            "seed_target_status": seed_target_status,
        }
