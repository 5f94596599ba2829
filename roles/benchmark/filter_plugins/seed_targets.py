"""The seed's resource targets (issue 6) and the benchmark's figures judged against them (Ansible filter).

`benchmark_measurements` turns the on-Pi load run and the hailortcli runs into `fleet_benchmark.measured`:
per target its title, limit, the measured value (or why there is none) and met / not met. The fleet report
shows that as it is; a new target is an entry of SEED_TARGETS and its figure in `_figures`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

try:
    from fleetops.edgeinfer import READ_TIMEOUT_MS
except ImportError as exc:  # Ansible's interpreter is not the project's venv
    raise ImportError(
        "the benchmark role's filters need this project's fleetops package: run ansible-playbook from the "
        "project's venv (make setup)"
    ) from exc

# Measured value `op` `limit` means met.
SEED_TARGETS: tuple[dict[str, Any], ...] = (
    {"key": "latency_p95_ms", "title": "inference < 50 ms per window (p95)", "op": "<", "limit": 50.0},
    {
        "key": "latency_p99_ms",
        "title": f"EdgeInfer budget: p99 <= {READ_TIMEOUT_MS:g} ms",
        "op": "<=",
        "limit": READ_TIMEOUT_MS,
    },
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


def seed_target_status(figures: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Judge each seed target from `figures` = {key: number | {"reason": why not measurable}}.

    Missing keys are "not_measurable" with a generic reason; nothing is guessed.
    """
    status: dict[str, dict[str, Any]] = {}
    for target in SEED_TARGETS:
        value = figures.get(target["key"])
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


def _figures(
    load: Mapping[str, Any] | None,
    hailortcli_run: Mapping[str, Any] | None,
    hailortcli_benchmark: Mapping[str, Any] | None,
    accelerator_present: bool,
    hailortcli_error: str | None,
) -> dict[str, Any]:
    """The figures the seed targets are judged on, each a number or {"reason": why it was not measured}."""
    measured: dict[str, Any] = {}
    no_load = {"reason": "the on-Pi load run did not complete"}
    if load:
        measured["latency_p95_ms"] = load.get("latency_p95_ms") or {"reason": "no successful request"}
        measured["latency_p99_ms"] = load.get("latency_p99_ms") or {"reason": "no successful request"}
        measured["success_pct"] = load.get("success_pct")
        after = load.get("after") or {}
        measured["rss_mb"] = after.get("rss_mb") or {"reason": "the app service's MainPID was not found"}
        measured["soc_temp_c"] = after.get("soc_temp_c") or {
            "reason": "no thermal zone under /sys/class/thermal on this host"
        }
    else:
        for key in ("latency_p95_ms", "latency_p99_ms", "success_pct", "rss_mb", "soc_temp_c"):
            measured[key] = no_load
    if not accelerator_present:
        chip = {"reason": "no Hailo accelerator on this host"}
        measured["hailo_utilization_pct"] = chip
        measured["power_added_w"] = {"reason": "no Hailo accelerator (its power sensor is the only one read)"}
        return measured
    if hailortcli_error:
        failed = {"reason": f"hailortcli failed: {hailortcli_error}"}
        measured["hailo_utilization_pct"] = failed
        measured["power_added_w"] = failed
        return measured
    fps_hw = (hailortcli_benchmark or {}).get("fps_hw_only")
    rate = (load or {}).get("rate_per_s")
    if fps_hw and rate:
        # Share of the chip's hardware-only throughput that the app's load run used.
        measured["hailo_utilization_pct"] = 100.0 * rate / fps_hw
    else:
        measured["hailo_utilization_pct"] = {
            "reason": "needs both hailortcli benchmark FPS and the load-run rate"
        }
    power = (hailortcli_run or {}).get("power_avg_w") or (hailortcli_benchmark or {}).get("power_avg_w")
    measured["power_added_w"] = power or {"reason": "the board has no power sensor hailortcli can read"}
    return measured


def benchmark_measurements(
    load: Mapping[str, Any] | None,
    hailortcli_run: Mapping[str, Any] | None,
    hailortcli_benchmark: Mapping[str, Any] | None,
    accelerator_present: bool,
    hailortcli_error: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Each seed target judged: {key: {title, op, limit, value, status, reason}}.

    `load` is the on-Pi load run's JSON (files/load_run.py); the hailortcli dicts come from the hailort role's
    filters: None when it did not run (no accelerator) or failed (`hailortcli_error`).
    """
    return seed_target_status(
        _figures(load, hailortcli_run, hailortcli_benchmark, accelerator_present, hailortcli_error)
    )


class FilterModule:
    """Ansible entry point for the benchmark role's filter."""

    def filters(self) -> dict[str, Any]:
        return {"benchmark_measurements": benchmark_measurements}
