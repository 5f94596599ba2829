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
from functools import lru_cache
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
# Alerts rate() these: a misbehaving client shows up here by kind, never as a backend failure.
CLIENT_ERRORS = Counter(
    "hailo_pipeline_client_errors", "4xx answers by error code (invalid_json, out_of_range, ...)", ["kind"]
)
SERVER_ERRORS = Counter(
    "hailo_pipeline_server_errors",
    "5xx answers by error code (not_ready, timeout, internal_error, ...)",
    ["kind"],
)
INFERENCES = Counter(
    "hailo_pipeline_inferences",
    "Inferences run on the backend by outcome: success, or failure = a backend fault (never a client error)",
    ["outcome"],
)
MODEL_INFO = Gauge(
    "hailo_pipeline_model_info",
    "The model this Pi serves: 1 per label set, however many workers serve it",
    ["version", "backend", "sha256", "untrained_default"],
    multiprocess_mode="livemax",
)
WORKERS_READY = Gauge(
    "hailo_pipeline_workers_ready",
    "gunicorn workers whose model is loaded and warmed up",
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

# Both outcomes exist at 0 from the start, so rate() and ratios see a series before the first failure.
INFERENCE_SUCCESS = INFERENCES.labels(outcome="success")
INFERENCE_FAILURE = INFERENCES.labels(outcome="failure")


# labels() costs several times the increment it serves (it formats and checks every label value on each
# call), so the request path looks each label set up once. Bounded: a client picks the method it sends.
@lru_cache(maxsize=256)
def request_series(endpoint: str, method: str, status: int) -> tuple[Counter, Histogram]:
    return (
        REQUESTS.labels(endpoint=endpoint, method=method, status=str(status)),
        REQUEST_LATENCY.labels(endpoint=endpoint),
    )


@lru_cache(maxsize=4)
def model_latency(backend: str) -> Histogram:
    return MODEL_LATENCY.labels(backend=backend)


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


def count_error(status: int, kind: str) -> None:
    (CLIENT_ERRORS if status < 500 else SERVER_ERRORS).labels(kind=kind).inc()


def publish_chips(chips: Iterable[ChipStatus]) -> None:
    for chip in chips:
        HAILO_DEVICE_INFO.labels(device_id=chip.device_id, **chip.identity).set(1)
        for sensor, celsius in chip.temperatures_c.items():
            HAILO_CHIP_TEMPERATURE.labels(device_id=chip.device_id, sensor=sensor).set(celsius)


class ScrapeTimeCollector(Collector):
    """Adds what is computed at scrape time: the host-wide SoC temperature."""

    def __init__(self, source: Collector | CollectorRegistry, thermal_root: Path) -> None:
        self.source = source
        self.thermal_root = thermal_root

    def collect(self) -> Iterator[Metric]:
        yield from self.source.collect()
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
