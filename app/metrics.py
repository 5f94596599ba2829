"""Prometheus metrics, correct across gunicorn workers (prometheus_client multiprocess mode).

PROMETHEUS_MULTIPROC_DIR must be set before prometheus_client is first imported in a process;
gunicorn.conf.py sees to it. Without it (tests with Flask's client) the metrics live in this process only.
"""

from __future__ import annotations

import glob
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from app.backends.base import ChipStatus
from app.resources import soc_temperatures, worker_rss_bytes

# Sub-millisecond resolution: an ONNX Runtime run of this model takes ~0.3-2 ms, a Hailo run less.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075,
    0.01, 0.015, 0.02, 0.03, 0.045, 0.06, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip

REQUESTS = Counter(
    "hailo_pipeline_http_requests",
    "HTTP requests answered, by endpoint and status",
    ["endpoint", "method", "status"],
)
REQUEST_LATENCY = Histogram(
    "hailo_pipeline_http_request_duration_seconds",
    "End-to-end time inside the worker, from request start to response",
    ["endpoint"],
    buckets=LATENCY_BUCKETS,
)
MODEL_LATENCY = Histogram(
    "hailo_pipeline_model_inference_duration_seconds",
    "Time of the backend run alone",
    ["backend"],
    buckets=LATENCY_BUCKETS,
)
ERRORS = Counter("hailo_pipeline_errors", "Errors answered, by kind", ["kind"])
INFERENCES = Counter(
    "hailo_pipeline_inferences", "Inference attempts by outcome (success|failure)", ["outcome"]
)
MODEL_INFO = Gauge(
    "hailo_pipeline_model_info",
    "The model a worker serves (1 per ready worker's label set)",
    ["version", "backend", "sha256", "untrained_default"],
    multiprocess_mode="livesum",
)
HAILO_CHIP_TEMPERATURE = Gauge(
    "hailo_pipeline_hailo_chip_temperature_celsius",
    "Hailo chip internal temperature sensors (HailoRT device control)",
    ["device_id", "sensor"],
    multiprocess_mode="livemostrecent",
)
HAILO_DEVICE_INFO = Gauge(
    "hailo_pipeline_hailo_device_info",
    "Hailo chip identity (HailoRT device control identify)",
    ["device_id", "board_name", "architecture", "serial_number", "firmware_version"],
    multiprocess_mode="livemax",
)

_rss_gauge: Gauge | None = None
_rss_lock = threading.Lock()
_rss_sampled_at = 0.0
RSS_INTERVAL_S = 1.0


def sample_worker_rss(force: bool = False) -> None:
    """Refresh this worker's RSS gauge at most once a second (sampled after requests, not on a timer)."""
    global _rss_gauge, _rss_sampled_at
    now = time.monotonic()
    if not force and now - _rss_sampled_at < RSS_INTERVAL_S:
        return
    with _rss_lock:
        _rss_sampled_at = now
        rss = worker_rss_bytes()
        if rss is None:
            return
        if _rss_gauge is None:
            # Created on first reading, so a host without /proc exports nothing rather than a fake 0.
            _rss_gauge = Gauge(
                "hailo_pipeline_worker_resident_memory_bytes",
                "Resident memory of each gunicorn worker",
                multiprocess_mode="liveall",
            )
        _rss_gauge.set(rss)


def publish_chips(chips: Iterable[ChipStatus]) -> None:
    for chip in chips:
        HAILO_DEVICE_INFO.labels(device_id=chip.device_id, **chip.identity).set(1)
        for sensor, celsius in chip.temperatures_c.items():
            HAILO_CHIP_TEMPERATURE.labels(device_id=chip.device_id, sensor=sensor).set(celsius)


class ScrapeTimeCollector(Collector):
    """Adds what is computed at scrape time: host-wide SoC temperature, and the inference success ratio over
    all workers (absent until the first inference, since 0/0 is not a ratio)."""

    def __init__(self, source: Collector | CollectorRegistry, thermal_root: Path) -> None:
        self.source = source
        self.thermal_root = thermal_root

    def collect(self) -> Iterator[Metric]:
        outcomes = {"success": 0.0, "failure": 0.0}
        for family in self.source.collect():
            if family.name == "hailo_pipeline_inferences":
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        outcomes[sample.labels["outcome"]] += sample.value
            yield family
        attempts = outcomes["success"] + outcomes["failure"]
        if attempts:
            ratio = GaugeMetricFamily(
                "hailo_pipeline_inference_success_ratio", "Successful inferences / all inference attempts"
            )
            ratio.add_metric([], outcomes["success"] / attempts)
            yield ratio
        readings = soc_temperatures(self.thermal_root)
        if readings:
            soc = GaugeMetricFamily(
                "hailo_pipeline_soc_temperature_celsius",
                "SoC temperature (/sys/class/thermal)",
                labels=["zone", "type"],
            )
            for (zone, kind), celsius in readings.items():
                soc.add_metric([zone, kind], celsius)
            yield soc


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:  # a dead worker's live-gauge file, removed by child_exit
        return 0


class WorkerFilesCollector(MultiProcessCollector):
    """MultiProcessCollector that skips a worker's metrics file while it is still 0 bytes long.

    prometheus_client creates each file before sizing it (prometheus/client_python#1199), so a scrape while a
    worker starts used to fail on the empty file and /metrics answered 500. An empty file holds nothing yet.
    """

    def collect(self) -> Iterable[Metric]:
        files = glob.glob(os.path.join(self._path, "*.db"))
        return self.merge([f for f in files if _file_size(f) > 0], accumulate=True)


def render(thermal_root: Path) -> tuple[bytes, str]:
    registry = CollectorRegistry()
    source: Collector | CollectorRegistry = (
        WorkerFilesCollector(None) if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else REGISTRY
    )
    registry.register(ScrapeTimeCollector(source, thermal_root))
    return generate_latest(registry), CONTENT_TYPE_LATEST
