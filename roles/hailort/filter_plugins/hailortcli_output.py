"""Read hailortcli's results into plain facts (Ansible filters): the one place this project parses its output.

`run` and `benchmark` write their figures as CSV to the file `--csv` names, so those are read from it;
`fw-control identify` has no CSV and is read from its text. The CSV columns are hailortcli's own printer's
(hailo-ai/hailort, hailortcli/infer_stats_printer.cpp: print_csv_header, print_benchmark_csv_header). A figure
left empty in the CSV is left out, never defaulted, so the report can say "not measured".
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

# CSV column -> fact key. `run`: one row per network group (status 0 = HAILO_SUCCESS).
_RUN_COLUMNS = {
    "num_of_frames": "frames_count",
    "fps": "fps",
    "send_rate": "send_rate_mbit_s",
    "recv_rate": "recv_rate_mbit_s",
    "hw_latency": "hw_latency_ms",
    "overall_latency": "overall_latency_ms",
    "min_power": "power_min_w",
    "average_power": "power_avg_w",
    "max_power": "power_max_w",
    "max_temp": "chip_temp_max_c",
}
# `benchmark`: one row per network group, its three measurement modes side by side.
_BENCHMARK_COLUMNS = {
    "hw_only_fps": "fps_hw_only",
    "fps": "fps_streaming",
    "hw_latency": "hw_latency_ms",
    "overall_latency": "overall_latency_ms",
    "average_power": "power_avg_w",
    "max_power": "power_max_w",
}


class HailortcliOutputError(ValueError):
    """The text is not a hailortcli result (e.g. the command failed before measuring)."""


def _first_row(text: str, required: str) -> dict[str, str]:
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or required not in rows[0]:
        raise HailortcliOutputError(f"no hailortcli CSV result (header with {required!r} and a row)")
    return rows[0]


def _figures(row: dict[str, str], columns: dict[str, str]) -> dict[str, Any]:
    return {key: float(row[column]) for column, key in columns.items() if (row.get(column) or "").strip()}


def parse_hailortcli_run(text: str) -> dict[str, Any]:
    """The CSV of `hailortcli run <hef> --csv FILE [--measure-latency ...]` → the first network group's
    figures plus its name; raises HailortcliOutputError for a failed run."""
    row = _first_row(text, "status")
    if row["status"].strip() != "0":
        reason = row.get("status_description") or row["status"]
        raise HailortcliOutputError(f"hailortcli run failed: {reason}")
    parsed = _figures(row, _RUN_COLUMNS)
    if "frames_count" in parsed:
        parsed["frames_count"] = int(parsed["frames_count"])
    parsed["network_group"] = row.get("net_name") or None
    return parsed


def parse_hailortcli_benchmark(text: str) -> dict[str, Any]:
    """The CSV of `hailortcli benchmark <hef> --csv FILE` → the first network group's figures."""
    parsed = _figures(_first_row(text, "hw_only_fps"), _BENCHMARK_COLUMNS)
    if "fps_hw_only" not in parsed:
        raise HailortcliOutputError("hailortcli benchmark CSV has no hw_only_fps figure")
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
    """Ansible filters: hailortcli_run, hailortcli_benchmark (of the CSV), hailortcli_identify (of stdout)."""

    def filters(self) -> dict[str, Any]:
        return {
            "hailortcli_run": parse_hailortcli_run,
            "hailortcli_benchmark": parse_hailortcli_benchmark,
            "hailortcli_identify": parse_hailortcli_identify,
        }
