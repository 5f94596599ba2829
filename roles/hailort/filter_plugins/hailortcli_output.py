"""Parse `hailortcli fw-control identify` / `run` / `benchmark` stdout into plain facts (Ansible filters): the
one place this project reads hailortcli output.

hailortcli has no machine-readable stdout (only `--csv` to a file), so the playbook captures the human
summary and these filters turn it into numbers. The line formats follow hailortcli's printer
(hailo-ai/hailort, hailortcli/infer_stats_printer.cpp) and outputs users posted; the tests cite them.
A figure that is not in the output is left out, never defaulted, so the report can say "not measured".
"""

from __future__ import annotations

import re
from typing import Any

_NUMBER = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"

# `hailortcli run` "> Inference result:" block, one "Network group:" per configured network group.
_RUN_FIELDS: dict[str, re.Pattern[str]] = {
    "frames_count": re.compile(rf"^\s*Frames count:\s*{_NUMBER}", re.M),
    "fps": re.compile(rf"^\s*FPS:\s*{_NUMBER}", re.M),
    "send_rate_mbit_s": re.compile(rf"^\s*Send Rate:\s*{_NUMBER}\s*Mbit/s", re.M),
    "recv_rate_mbit_s": re.compile(rf"^\s*Recv Rate:\s*{_NUMBER}\s*Mbit/s", re.M),
    "hw_latency_ms": re.compile(rf"^\s*HW Latency:\s*{_NUMBER}\s*ms", re.M),
    "overall_latency_ms": re.compile(rf"^\s*Overall Latency:\s*{_NUMBER}\s*ms", re.M),
    "power_min_w": re.compile(rf"^\s*Minimum power consumption:\s*{_NUMBER}\s*W", re.M),
    "power_avg_w": re.compile(rf"^\s*Average power consumption:\s*{_NUMBER}\s*W", re.M),
    "power_max_w": re.compile(rf"^\s*Maximum power consumption:\s*{_NUMBER}\s*W", re.M),
    "chip_temp_max_c": re.compile(rf"^\s*Maximum chip temperature:\s*{_NUMBER}\s*C", re.M),
}

# `hailortcli benchmark` "Summary" block. The continuation rows ("(streaming)", "(max)") are printed
# indented under their heading; forum copies often lose that indentation, so the heading is optional.
_BENCHMARK_FIELDS: dict[str, re.Pattern[str]] = {
    "fps_hw_only": re.compile(rf"^\s*FPS\s*\(hw_only\)\s*=\s*{_NUMBER}", re.M),
    "fps_streaming": re.compile(rf"^\s*(?:FPS\s*)?\(streaming\)\s*=\s*{_NUMBER}", re.M),
    "hw_latency_ms": re.compile(rf"^\s*Latency\s*\(hw\)\s*=\s*{_NUMBER}\s*ms", re.M),
    "power_avg_w": re.compile(rf"^\s*Power in streaming mode\s*\(average\)\s*=\s*{_NUMBER}\s*W", re.M),
    "power_max_w": re.compile(rf"^\s*(?:Power in streaming mode\s*)?\(max\)\s*=\s*{_NUMBER}\s*W", re.M),
}

_NETWORK_GROUP = re.compile(r"^\s*Network group:\s*(\S+)", re.M)


class HailortcliOutputError(ValueError):
    """The text is not a hailortcli result (e.g. the command failed before measuring)."""


def _extract(text: str, fields: dict[str, re.Pattern[str]]) -> dict[str, float]:
    found: dict[str, float] = {}
    for key, pattern in fields.items():
        match = pattern.search(text)
        if match:
            found[key] = float(match.group(1))
    return found


def _strip_progress(text: str) -> str:
    # Progress lines are redrawn with carriage returns; keep only what is left on screen.
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.splitlines())


def parse_hailortcli_run(text: str) -> dict[str, Any]:
    """`hailortcli run <hef> [--measure-latency --measure-overall-latency --measure-power]` → dict.

    Returns the first network group's figures plus its name; raises HailortcliOutputError when the output
    has no "Inference result" (the run failed: the text is an error the caller reports as such).
    """
    text = _strip_progress(text)
    marker = text.find("Inference result")
    if marker < 0:
        raise HailortcliOutputError("no '> Inference result:' block in hailortcli run output")
    result_text = text[marker:]
    groups = _NETWORK_GROUP.findall(result_text)
    parsed: dict[str, Any] = _extract(result_text, _RUN_FIELDS)
    if "frames_count" in parsed:
        parsed["frames_count"] = int(parsed["frames_count"])
    parsed["network_group"] = groups[0] if groups else None
    return parsed


def parse_hailortcli_benchmark(text: str) -> dict[str, Any]:
    """`hailortcli benchmark <hef>` → dict of the Summary block; raises HailortcliOutputError without one."""
    text = _strip_progress(text)
    marker = text.find("Summary")
    if marker < 0:
        raise HailortcliOutputError("no 'Summary' block in hailortcli benchmark output")
    parsed = _extract(text[marker:], _BENCHMARK_FIELDS)
    if "fps_hw_only" not in parsed:
        raise HailortcliOutputError("hailortcli benchmark Summary has no 'FPS (hw_only)' line")
    return parsed


_IDENTIFY_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z ]*?)\s*:\s*(\S.*?)\s*$", re.M)


def parse_hailortcli_identify(text: str) -> dict[str, Any]:
    """``hailortcli fw-control identify`` → {fields, architecture, firmware_version}, from lines such as
    ``Firmware Version: 4.23.0 (release,app,extended context switch buffer)`` and
    ``Device Architecture: HAILO8``. Older boards print HAILO8_B0 and Hailo-10H omits "Board Name", so every
    field but the architecture is optional (None when absent)."""
    fields = dict(_IDENTIFY_LINE.findall(text))
    firmware = fields.get("Firmware Version", "").split(" ")[0] or None
    return {"fields": fields, "architecture": fields.get("Device Architecture"), "firmware_version": firmware}


class FilterModule:
    """Ansible filters: `{{ out.stdout | hailortcli_run }}`, hailortcli_benchmark, hailortcli_identify."""

    def filters(self) -> dict[str, Any]:
        return {
            "hailortcli_run": parse_hailortcli_run,
            "hailortcli_benchmark": parse_hailortcli_benchmark,
            "hailortcli_identify": parse_hailortcli_identify,
        }
