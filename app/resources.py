"""Host readings for /metrics: this worker's resident memory and the SoC temperature, from the kernel."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from app.log_once import log_once

log = logging.getLogger(__name__)

STATM = Path("/proc/self/statm")


def worker_rss_bytes(statm: Path = STATM) -> int | None:
    """Resident set size of the calling process, or None (reason logged once) where /proc is not there."""
    try:
        resident_pages = int(statm.read_text().split()[1])
    except (OSError, IndexError, ValueError) as exc:
        log_once(log, "rss", f"worker RSS not exported: cannot read {statm} ({exc})")
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def soc_temperatures(thermal_root: Path) -> dict[tuple[str, str], float]:
    """(zone, type) -> degrees Celsius for every readable thermal zone; on a Pi 5 that is `cpu-thermal`."""
    readings: dict[tuple[str, str], float] = {}
    problems: list[str] = []
    for zone in sorted(thermal_root.glob("thermal_zone*")):
        try:
            millidegrees = int((zone / "temp").read_text().strip())
            kind = (zone / "type").read_text().strip()
        except (OSError, ValueError) as exc:
            problems.append(f"{zone.name}: {exc}")
            continue
        readings[(zone.name, kind)] = millidegrees / 1000.0
    if not readings:
        detail = "; ".join(problems) if problems else "no thermal_zone* entries"
        log_once(
            log,
            "soc-temperature",
            f"SoC temperature not exported: {thermal_root} has no readable zone ({detail})",
        )
    return readings
