"""Start-up, readiness and the CLI, against the real `python -m app` -> gunicorn process."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from app_server import DOUBLES, REPO, AppServer, free_port, wait_for_state

from app.config import AppConfig, ConfigError


def test_health_before_and_after_warm_up(default_bundle: Path, tmp_path: Path) -> None:
    # Enough golden-window runs (~0.5 ms each) that warm-up is seen from outside.
    server = AppServer(default_bundle, tmp_path, workers=1, env={"HAILO_PIPELINE_WARMUP_RUNS": "5000"})
    with server:
        server.wait_listening()
        body = wait_for_state(server, "warming_up")
        assert body["status"] == "unavailable" and body["reason"].startswith("warming up (")
        # Not ready means no inference, but the process is alive.
        early = server.post_json({"x": [[0.0] * 9] * 100}, content_types=2)
        assert early.status == 503 and early.json()["error"] == "not_ready"
        assert server.request("GET", "/livez").status == 200
        seen = server.wait_ready()
        assert seen[-1].json()["status"] == "ok"
        assert server.post_json({"x": [[0.0] * 9] * 100}).status == 200


def test_tampered_bundle_refuses_ready_and_says_why(tampered_bundle: Path, tmp_path: Path) -> None:
    with AppServer(tampered_bundle, tmp_path, workers=1) as server:
        server.wait_listening()
        body = wait_for_state(server, "failed")
        assert "tcn_encoder.onnx" in body["reason"] and "sha256" in body["reason"]
        answer = server.post_json({"x": [[0.0] * 9] * 100}, content_types=2)
        assert answer.status == 503 and "sha256" in answer.json()["message"]
        assert server.request("GET", "/livez").status == 200
        time.sleep(0.2)  # the log line is flushed by the worker's logging handler
        assert "not ready: bundle" in server.log() and "does not match metadata" in server.log()


def test_each_start_begins_with_empty_metrics(default_bundle: Path, tmp_path: Path) -> None:
    """A reused PROMETHEUS_MULTIPROC_DIR must not add the previous run's counters to this one's."""
    for run in range(2):
        with AppServer(default_bundle, tmp_path, workers=1) as server:
            server.wait_ready()
            assert 'hailo_pipeline_http_requests_total{endpoint="/infer"' not in server.metrics(), run
            assert server.post_json({"x": [[0.0] * 9] * 100}).status == 200
            assert server.stop() == 0  # graceful SIGTERM shutdown


def run_cli(*args: str, with_double: bool = False) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(DOUBLES) if with_double else ""}
    return subprocess.run(
        [sys.executable, "-m", "app", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


def test_help_names_flags_environment_and_install_hint() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for words in ("--bundle", "--bind", "--backend", "--workers", "HAILO_PIPELINE_BUNDLE", "hailo-all"):
        assert words in result.stdout


def test_missing_bundle_is_a_clear_error() -> None:
    result = run_cli("--bind", "127.0.0.1:1")
    assert result.returncode == 2
    assert "HAILO_PIPELINE_BUNDLE is not set" in result.stderr


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda tmp: tmp / "nowhere", "bundle folder does not exist"),
        (lambda tmp: tmp, "model_metadata.json: missing"),
        (lambda tmp: (tmp / "model_metadata.json").write_text("{broken") and tmp, "invalid JSON"),
        (lambda tmp: (tmp / "model_metadata.json").write_text("[1]") and tmp, "must hold a JSON object"),
        (lambda tmp: (tmp / "model_metadata.json").write_text("{}") and tmp, "lacks 'schema_version'"),
        (lambda tmp: (tmp / "file").write_text("x") and tmp / "file", "is not a folder"),
    ],
    ids=["missing", "empty folder", "broken metadata", "metadata not an object", "metadata keys", "a file"],
)
def test_a_path_that_is_no_bundle_exits_naming_it(tmp_path: Path, make: Callable, words: str) -> None:
    path = make(tmp_path)
    started = time.monotonic()
    result = run_cli("--bundle", str(path), "--bind", f"127.0.0.1:{free_port()}")
    assert result.returncode == 2, result.stderr
    assert f"--bundle {path} is not a bundle" in result.stderr and words in result.stderr
    assert "gunicorn" not in result.stderr.lower() and time.monotonic() - started < 30


def test_the_environment_bundle_path_is_checked_too(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": "", "HAILO_PIPELINE_BUNDLE": str(tmp_path / "gone")}
    result = subprocess.run(
        [sys.executable, "-m", "app"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and str(tmp_path / "gone") in result.stderr


def test_hailort_without_hailo_platform_says_what_to_install(hailo_bundle: Path) -> None:
    result = run_cli("--bundle", str(hailo_bundle), "--backend", "hailort")
    assert result.returncode == 2
    assert "sudo apt install hailo-all" in result.stderr and "--system-site-packages" in result.stderr


def test_hailort_refuses_two_workers_without_the_service(hailo_bundle: Path) -> None:
    result = run_cli(
        "--bundle", str(hailo_bundle), "--backend", "hailort", "--workers", "2", with_double=True
    )
    assert result.returncode == 2
    assert "HAILO_PIPELINE_HAILO_MULTI_PROCESS=true" in result.stderr


def test_hailort_requested_for_a_bundle_without_hef(default_bundle: Path) -> None:
    result = run_cli("--bundle", str(default_bundle), "--backend", "hailort", with_double=True)
    assert result.returncode == 2
    assert "no .hef" in result.stderr


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"HAILO_PIPELINE_BACKEND": "tpu"}, "HAILO_PIPELINE_BACKEND must be one of"),
        ({"HAILO_PIPELINE_INFER_TIMEOUT_MS": "fast"}, "HAILO_PIPELINE_INFER_TIMEOUT_MS must be an integer"),
        ({"HAILO_PIPELINE_WARMUP_RUNS": "0"}, "HAILO_PIPELINE_WARMUP_RUNS must be at least 1"),
        (
            {"HAILO_PIPELINE_HAILO_MULTI_PROCESS": "maybe"},
            "HAILO_PIPELINE_HAILO_MULTI_PROCESS must be true or false",
        ),
    ],
)
def test_bad_configuration_names_the_variable(env: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        AppConfig.from_env({"HAILO_PIPELINE_BUNDLE": "/b", **env})


def test_configuration_from_environment() -> None:
    config = AppConfig.from_env(
        {
            "HAILO_PIPELINE_BUNDLE": "/b",
            "HAILO_PIPELINE_BACKEND": "HailoRT",
            "HAILO_PIPELINE_HAILO_MULTI_PROCESS": "true",
            "HAILO_PIPELINE_INFER_TIMEOUT_MS": "25",
        }
    )
    assert (config.bundle_dir, config.backend, config.hailo_multi_process, config.infer_timeout_ms) == (
        Path("/b"),
        "hailort",
        True,
        25,
    )
    assert config.log_level == "INFO" and config.warmup_runs == 20
