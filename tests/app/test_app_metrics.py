"""/metrics after real traffic through two gunicorn workers (prometheus_client multiprocess mode)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from app_server import AppServer
from prometheus_client.parser import text_string_to_metric_families

from app import resources
from app.backends.base import BackendError
from app.config import AppConfig
from app.factory import create_app

GOOD = 120
BAD = 7
IMPOSSIBLE = 5  # finite windows outside the physical ranges (issue 12: once 503s counted as failures)


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def value(text: str, name: str, **labels: str) -> float:
    return sum(
        v for n, ls, v in samples(text) if n == name and all(ls.get(k) == w for k, w in labels.items())
    )


@pytest.fixture(scope="module")
def busy_server(default_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    server = AppServer(default_bundle, tmp_path_factory.mktemp("metrics"), workers=2).start()
    try:
        server.wait_ready()
        window = {"x": [[float(c) for c in range(9)]] * 100}
        with ThreadPoolExecutor(8) as pool:
            good = list(pool.map(lambda _: server.post_json(window, content_types=2).status, range(GOOD)))
            bad = list(pool.map(lambda _: server.post_json({"x": [[0.0] * 9] * 99}).status, range(BAD)))
            huge = {"x": [[1e30] * 9] * 100}
            impossible = list(pool.map(lambda _: server.post_json(huge).status, range(IMPOSSIBLE)))
        assert good == [200] * GOOD and bad == [400] * BAD and impossible == [422] * IMPOSSIBLE
        yield server
    finally:
        server.stop()


def test_requests_errors_and_latency_are_summed_over_workers(busy_server: AppServer) -> None:
    text = busy_server.metrics()
    assert value(text, "hailo_pipeline_http_requests_total", endpoint="/infer", status="200") == GOOD
    assert value(text, "hailo_pipeline_http_requests_total", endpoint="/infer", status="400") == BAD
    assert value(text, "hailo_pipeline_client_errors_total", kind="wrong_row_count") == BAD
    assert value(text, "hailo_pipeline_client_errors_total", kind="out_of_range") == IMPOSSIBLE
    assert value(text, "hailo_pipeline_client_errors_total") == BAD + IMPOSSIBLE
    assert value(text, "hailo_pipeline_inferences_total", outcome="success") == GOOD
    # Client errors are no backend fault; the failure series exists (at 0) for rate() all the same.
    assert ("hailo_pipeline_inferences_total", {"outcome": "failure"}, 0.0) in samples(text)
    names = {n for n, _, _ in samples(text)}
    assert (
        "hailo_pipeline_inference_success_ratio" not in names and "hailo_pipeline_errors_total" not in names
    )
    # Model-only time: one observation per answered inference (warm-up runs are not requests).
    assert value(text, "hailo_pipeline_model_inference_duration_seconds_count", backend="onnxruntime") == GOOD
    assert (
        value(text, "hailo_pipeline_http_request_duration_seconds_count", endpoint="/infer")
        == GOOD + BAD + IMPOSSIBLE
    )
    buckets = {
        float(ls["le"])
        for n, ls, _ in samples(text)
        if n == "hailo_pipeline_model_inference_duration_seconds_bucket"
    }
    assert {0.0001, 0.00025, 0.0005, 0.00075} <= buckets  # sub-millisecond resolution


def test_every_worker_reports_model_and_memory(busy_server: AppServer) -> None:
    text = busy_server.metrics()
    rss = {ls["pid"]: v for n, ls, v in samples(text) if n == "hailo_pipeline_worker_resident_memory_bytes"}
    assert len(rss) == 2 and all(20e6 < v < 1e9 for v in rss.values()), rss
    info = [(ls, v) for n, ls, v in samples(text) if n == "hailo_pipeline_model_info"]
    assert len(info) == 1 and info[0][1] == 1  # an info metric: 1 for the Pi, not a worker count
    assert value(text, "hailo_pipeline_workers_ready") == 2
    assert info[0][0]["backend"] == "onnxruntime" and re.fullmatch(r"[0-9a-f]{64}", info[0][0]["sha256"])


def test_absent_sources_are_absent_not_zero(busy_server: AppServer) -> None:
    """This host has no thermal zones and no Hailo chip: no series at all, and the reason logged once."""
    for _ in range(4):
        text = busy_server.metrics()
    names = {n for n, _, _ in samples(text)}
    if not list(Path("/sys/class/thermal").glob("thermal_zone*")):
        assert "hailo_pipeline_soc_temperature_celsius" not in names
        assert 1 <= busy_server.log().count("SoC temperature not exported") <= busy_server.workers
    assert "hailo_pipeline_hailo_chip_temperature_celsius" not in names


def test_dead_worker_leaves_live_gauges_but_not_counters(busy_server: AppServer) -> None:
    before = busy_server.metrics()
    pids = {ls["pid"] for n, ls, _ in samples(before) if n == "hailo_pipeline_worker_resident_memory_bytes"}
    victim = sorted(pids)[0]
    os.kill(int(victim), signal.SIGKILL)
    time.sleep(0.5)
    busy_server.wait_ready()  # gunicorn replaces it; the new worker loads and warms up
    after = busy_server.metrics()
    live = {ls["pid"] for n, ls, _ in samples(after) if n == "hailo_pipeline_worker_resident_memory_bytes"}
    assert victim not in live and len(live) == 2
    assert value(after, "hailo_pipeline_http_requests_total", endpoint="/infer", status="200") == GOOD


def test_only_backend_faults_count_as_inference_failures(
    default_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(AppConfig(bundle_dir=default_bundle, warmup_runs=1))
    service = app.extensions["hailo_pipeline"]
    assert service.wait(30)
    client = app.test_client()

    def counts() -> tuple[float, float, float, float]:
        text = client.get("/metrics").get_data(as_text=True)
        return (
            value(text, "hailo_pipeline_inferences_total", outcome="success"),
            value(text, "hailo_pipeline_inferences_total", outcome="failure"),
            value(text, "hailo_pipeline_client_errors_total", kind="out_of_range"),
            value(text, "hailo_pipeline_server_errors_total", kind="device_error"),
        )

    before = counts()
    assert client.post("/infer", json={"x": [[3e38] * 9] * 100}).status_code == 422
    assert client.post("/infer", json={"x": [[0.5] * 9] * 100}).status_code == 200

    def broken(window: object) -> None:
        raise BackendError("device_error", "the chip stopped answering")

    monkeypatch.setattr(service._served.backend, "infer", broken)
    assert client.post("/infer", json={"x": [[0.5] * 9] * 100}).status_code == 503
    after = counts()
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1, 1]


def test_soc_temperature_read_from_thermal_zones(default_bundle: Path, tmp_path: Path) -> None:
    zone = tmp_path / "thermal_zone0"
    zone.mkdir()
    (zone / "temp").write_text("48312\n")
    (zone / "type").write_text("cpu-thermal\n")
    broken = tmp_path / "thermal_zone1"
    broken.mkdir()
    (broken / "type").write_text("no-temp-file\n")
    app = create_app(AppConfig(bundle_dir=default_bundle, thermal_root=tmp_path))
    assert app.extensions["hailo_pipeline"].wait(30)
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert (
        value(text, "hailo_pipeline_soc_temperature_celsius", zone="thermal_zone0", type="cpu-thermal")
        == 48.312
    )
    assert "no-temp-file" not in text


def test_rss_absent_without_proc(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert resources.worker_rss_bytes(tmp_path / "statm") is None
    assert resources.worker_rss_bytes(tmp_path / "statm") is None
    assert caplog.text.count("worker RSS not exported") == 1
    assert resources.worker_rss_bytes() > 1_000_000  # this process, from the real /proc/self/statm


def test_scrape_while_a_worker_creates_its_metrics_file(busy_server: AppServer) -> None:
    """A starting worker's file exists at 0 bytes before prometheus_client sizes it (client_python#1199);
    a scrape in that instant must still answer 200 with every other worker's series."""
    empty = busy_server.workdir / "metrics" / "counter_4194303.db"
    empty.touch()
    try:
        text = busy_server.metrics()
    finally:
        empty.unlink()
    assert value(text, "hailo_pipeline_inferences_total", outcome="success") == GOOD


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool absent (Debian package prometheus)")
def test_promtool_accepts_the_exposition(busy_server: AppServer) -> None:
    result = subprocess.run(
        ["promtool", "check", "metrics"],
        input=busy_server.metrics(),
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
