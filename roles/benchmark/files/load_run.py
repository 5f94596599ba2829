"""Bounded load run against the deployed inference app, from the Pi itself (copied there by roles/benchmark).

Posts real raw windows (the bundle's calibration set, else its golden window) to the app's /infer with a
fixed request count, a fixed concurrency and a hard time limit, and prints one JSON object: latency
percentiles, rate, success ratio, and the service's RSS and the SoC temperature before and after.
Runs with the release venv's python: numpy reads the calibration set, bundle_contract (in the app wheel)
names the bundle's files and the answer's sizes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from bundle_contract.files import CALIBRATION_FILE, METADATA_FILE
from bundle_contract.tensors import LATENT_SIZE, MOTIF_COUNT

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an ascending list; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(latencies_ms: list[float], failures: int, wall_s: float) -> dict[str, Any]:
    """Latency percentiles (successful requests), request rate and success ratio (%)."""
    ordered = sorted(latencies_ms)
    total = len(ordered) + failures
    return {
        "requests": total,
        "succeeded": len(ordered),
        "failed": failures,
        "success_pct": 100.0 * len(ordered) / total if total else None,
        "rate_per_s": total / wall_s if wall_s > 0 else None,
        "wall_s": wall_s,
        "latency_p50_ms": percentile(ordered, 50),
        "latency_p95_ms": percentile(ordered, 95),
        "latency_p99_ms": percentile(ordered, 99),
        "latency_max_ms": ordered[-1] if ordered else None,
    }


def load_windows(bundle: Path, limit: int) -> list[list[list[float]]]:
    """Real windows from the bundle: its calibration set when numpy can read it, else the golden window."""
    try:
        windows = np.load(bundle / CALIBRATION_FILE)[:limit]
        if len(windows):
            return [window.tolist() for window in windows]
    except (OSError, ValueError):
        pass
    metadata = json.loads((bundle / METADATA_FILE).read_text())
    return [metadata["golden"]["window"]]


def service_rss_mb(main_pid: int) -> float | None:
    """Resident memory of the service's main process and its direct children (gunicorn workers), in MB."""
    if main_pid <= 0:
        return None
    pids = [main_pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == main_pid:
            pids.append(int(stat.parent.name))
    total_kb = 0
    for pid in pids:
        try:
            total_kb += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KB
        except (OSError, IndexError, ValueError):
            continue
    return total_kb / 1024.0


def soc_temperature_c() -> float | None:
    """The SoC's thermal zone (cpu-thermal on a Pi 5) in °C; None where the kernel exposes no thermal zone."""
    zones = sorted(Path("/sys/class/thermal").glob("thermal_zone*"))
    preferred = [zone for zone in zones if "cpu" in _read(zone / "type")] or zones
    for zone in preferred:
        raw = _read(zone / "temp")
        if raw.lstrip("-").isdigit():
            return int(raw) / 1000.0
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def run_load(
    url: str, windows: list[list[list[float]]], count: int, concurrency: int, max_s: float
) -> dict[str, Any]:
    """POST `count` requests with `concurrency` threads, stopping early at `max_s` seconds."""
    bodies = [json.dumps({"x": window}).encode() for window in windows]
    latencies: list[float] = []
    failures = 0
    errors: dict[str, int] = {}
    lock = threading.Lock()
    next_index = 0
    deadline = time.monotonic() + max_s

    def worker() -> None:
        nonlocal next_index, failures
        while True:
            with lock:
                if next_index >= count or time.monotonic() >= deadline:
                    return
                index = next_index
                next_index += 1
            request = urllib.request.Request(
                url, data=bodies[index % len(bodies)], headers={"Content-Type": "application/json"}
            )
            started = time.perf_counter()
            error = None
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    answer = json.loads(response.read())
                latent, motifs = answer.get("latent", []), answer.get("motif_scores", [])
                if len(latent) != LATENT_SIZE or len(motifs) != MOTIF_COUNT:
                    error = "bad answer shape"
            except (urllib.error.URLError, OSError, ValueError) as exc:
                error = type(exc).__name__
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            with lock:
                if error is None:
                    latencies.append(elapsed_ms)
                else:
                    failures += 1
                    errors[error] = errors.get(error, 0) + 1

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = summarize(latencies, failures, time.monotonic() - started)
    result["errors"] = errors
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True, help="the app's /infer URL on this Pi")
    parser.add_argument(
        "--bundle", type=Path, required=True, help="the deployed bundle folder (real windows)"
    )
    parser.add_argument("--count", type=int, default=500, help="requests to send (upper bound)")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=30.0, help="hard stop for the whole run")
    parser.add_argument("--warmup", type=int, default=10, help="requests sent first and not counted")
    parser.add_argument("--main-pid", type=int, default=0, help="the app service's MainPID, for RSS")
    args = parser.parse_args(argv)
    if args.count < 1 or args.concurrency < 1 or args.max_seconds <= 0:
        parser.error("--count, --concurrency and --max-seconds must be positive")
    windows = load_windows(args.bundle, limit=64)
    before = {"rss_mb": service_rss_mb(args.main_pid), "soc_temp_c": soc_temperature_c()}
    if args.warmup:
        run_load(args.url, windows, args.warmup, 1, args.max_seconds)
    result = run_load(args.url, windows, args.count, args.concurrency, args.max_seconds)
    after = {"rss_mb": service_rss_mb(args.main_pid), "soc_temp_c": soc_temperature_c()}
    result.update(windows=len(windows), concurrency=args.concurrency, before=before, after=after)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
