"""Per-Pi latency plot for the fleet report: health-check latency and, where benchmark.yml ran, p50/p95/p99.

The y axis is logarithmic: a Pi answers in a few ms while EdgeInfer's budget (its read timeout) is tens of
ms, and on a linear axis the bars that matter shrink to slivers under the budget line. Every bar is labelled
with its value.

python playbooks/files/plot_fleet_latency.py reports/latest/fleet_report.json reports/latest/latency.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a control host or in CI
import matplotlib.pyplot as plt  # after use(): the backend is chosen before pyplot loads
from matplotlib.figure import Figure

from fleetops.edgeinfer import READ_TIMEOUT_MS

# Lowest y shown: below any real answer time, so every measured bar has a visible height on the log axis.
AXIS_FLOOR_MS = 0.5
SERIES = (
    ("health check", lambda entry: entry.get("latency_ms")),
    ("load p50", lambda entry: _load(entry, "latency_p50_ms")),
    ("load p95", lambda entry: _load(entry, "latency_p95_ms")),
    ("load p99", lambda entry: _load(entry, "latency_p99_ms")),
)


def _load(entry: dict[str, Any], key: str) -> float | None:
    return ((entry.get("benchmark") or {}).get("load") or {}).get(key)


def latency_series(report: dict[str, Any]) -> tuple[list[str], dict[str, list[float | None]]]:
    """Pi names and per series one value per Pi (None: not measured); unmeasured series are dropped."""
    names = sorted(report["hosts"])
    series = {label: [pick(report["hosts"][name]) for name in names] for label, pick in SERIES}
    return names, {label: values for label, values in series.items() if any(v is not None for v in values)}


def y_top(series: dict[str, list[float | None]]) -> float:
    """Top of the axis: room above the budget line and above the slowest bar and its label."""
    measured = [value for values in series.values() for value in values if value is not None]
    return max([READ_TIMEOUT_MS, *measured]) * 2.0


def figure(report: dict[str, Any]) -> Figure:
    names, series = latency_series(report)
    calls = report.get("latency_calls", 5)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(names) + 2) + 2.5, 4.5))
    width = 0.8 / max(1, len(series))
    for index, (label, values) in enumerate(series.items()):
        xs = [pos + index * width for pos in range(len(names))]
        legend = f"health check (median of {calls} calls)" if label == "health check" else label
        heights = [(value or AXIS_FLOOR_MS) - AXIS_FLOOR_MS for value in values]
        ax.bar(xs, heights, width, bottom=AXIS_FLOOR_MS, label=legend)
        for x, value in zip(xs, values, strict=True):
            text = "n/a" if value is None else f"{value:.1f}"
            ax.text(x, value or AXIS_FLOOR_MS * 1.1, text, ha="center", va="bottom", fontsize=7)
    budget = f"EdgeInfer budget {READ_TIMEOUT_MS:g} ms"
    ax.axhline(READ_TIMEOUT_MS, color="red", linestyle="--", linewidth=1, label=budget)
    ax.set_yscale("log")
    top = y_top(series)
    ax.set_ylim(AXIS_FLOOR_MS, top)
    ticks = sorted(tick for tick in {1, 2, 5, 10, 20, READ_TIMEOUT_MS, 100, 200, 500, 1000} if tick < top)
    ax.set_yticks(ticks, [f"{tick:g}" for tick in ticks])
    ax.minorticks_off()
    ax.set_xticks([pos + width * (len(series) - 1) / 2 for pos in range(len(names))], names)
    ax.set_ylabel("latency, ms (log scale)")
    ax.set_title(f"Per-Pi inference latency — run {report.get('run_id', '')}")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def plot(report: dict[str, Any], out: Path) -> None:
    fig = figure(report)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="fleet_report.json")
    parser.add_argument("out", type=Path, help="PNG to write")
    args = parser.parse_args(argv)
    try:
        report = json.loads(args.report.read_text())
        if not isinstance(report.get("hosts"), dict):
            raise ValueError("no 'hosts' object")
    except (OSError, ValueError, AttributeError) as exc:
        print(f"plot_fleet_latency: {args.report} is not a readable fleet report: {exc}", file=sys.stderr)
        return 1
    plot(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
