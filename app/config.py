"""Runtime configuration of the inference app, read from the environment (the CLI turns flags into it)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

BACKENDS = ("auto", "hailort", "onnxruntime")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Where the app listens unless told; on a Pi the role passes inference_app_port (group_vars/pis).
DEFAULT_BIND = "127.0.0.1:8000"
LOOPBACK_URL = f"http://{DEFAULT_BIND}"

# Every knob the app reads; `python -m app --help` prints this table.
ENV_DOC = {
    "HAILO_PIPELINE_BUNDLE": "bundle folder holding model_metadata.json (required)",
    "HAILO_PIPELINE_BACKEND": "auto | hailort | onnxruntime (default auto)",
    "HAILO_PIPELINE_LOG_LEVEL": "DEBUG | INFO | WARNING | ERROR (default INFO)",
    "HAILO_PIPELINE_WORKERS": "gunicorn worker processes (default: 2, or 1 for HailoRT without the service)",
    "HAILO_PIPELINE_THREADS": "threads per worker (default 2)",
    "HAILO_PIPELINE_INFER_TIMEOUT_MS": "timeout of one HailoRT run (default 40: EdgeInfer gives up at 45 ms)",
    "HAILO_PIPELINE_HAILO_MULTI_PROCESS": "true: share the chip through hailort.service (default false)",
    "HAILO_PIPELINE_HAILO_GROUP_ID": "VDevice group id with the multi-process service (default SHARED)",
    "HAILO_PIPELINE_ALLOW_CPU_FALLBACK": (
        "true: a Pi with a Hailo chip that cannot serve the bundle's .hef serves ONNX Runtime instead of "
        "failing its health check (default false: a broken accelerator must not hide behind slower answers)"
    ),
    "HAILO_PIPELINE_HAILO_ARCHITECTURE": "chip Device Architecture (HAILO8, HAILO8L) if HailoRT cannot say",
    "HAILO_PIPELINE_WARMUP_RUNS": "golden-window runs before /healthz turns 200 (default 20)",
    "HAILO_PIPELINE_ORT_THREADS": "ONNX Runtime intra-op threads per worker (default 1)",
    "HAILO_PIPELINE_MAX_BODY_BYTES": "largest accepted request body (default 131072)",
    "PROMETHEUS_MULTIPROC_DIR": "metrics folder shared by the workers (default: a fresh temp folder)",
}


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class AppConfig:
    bundle_dir: Path
    backend: str = "auto"
    log_level: str = "INFO"
    infer_timeout_ms: int = 40
    hailo_multi_process: bool = False
    hailo_group_id: str = "SHARED"
    allow_cpu_fallback: bool = False
    warmup_runs: int = 20
    ort_threads: int = 1
    max_body_bytes: int = 128 * 1024
    thermal_root: Path = Path("/sys/class/thermal")

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"HAILO_PIPELINE_BACKEND must be one of {', '.join(BACKENDS)}, got {self.backend!r}"
            )
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"HAILO_PIPELINE_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
        for name, value in (
            ("HAILO_PIPELINE_INFER_TIMEOUT_MS", self.infer_timeout_ms),
            ("HAILO_PIPELINE_WARMUP_RUNS", self.warmup_runs),
            ("HAILO_PIPELINE_ORT_THREADS", self.ort_threads),
            ("HAILO_PIPELINE_MAX_BODY_BYTES", self.max_body_bytes),
        ):
            if value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AppConfig:
        env = os.environ if env is None else env
        bundle = env.get("HAILO_PIPELINE_BUNDLE", "").strip()
        if not bundle:
            raise ConfigError(
                "HAILO_PIPELINE_BUNDLE is not set: point it at the bundle folder (model_metadata.json)"
            )
        return cls(
            bundle_dir=Path(bundle),
            backend=env.get("HAILO_PIPELINE_BACKEND", "auto").strip().lower(),
            log_level=env.get("HAILO_PIPELINE_LOG_LEVEL", "INFO").strip().upper(),
            infer_timeout_ms=env_int(env, "HAILO_PIPELINE_INFER_TIMEOUT_MS", 40),
            hailo_multi_process=env_bool(env, "HAILO_PIPELINE_HAILO_MULTI_PROCESS"),
            hailo_group_id=env.get("HAILO_PIPELINE_HAILO_GROUP_ID", "SHARED"),
            allow_cpu_fallback=env_bool(env, "HAILO_PIPELINE_ALLOW_CPU_FALLBACK"),
            warmup_runs=env_int(env, "HAILO_PIPELINE_WARMUP_RUNS", 20),
            ort_threads=env_int(env, "HAILO_PIPELINE_ORT_THREADS", 1),
            max_body_bytes=env_int(env, "HAILO_PIPELINE_MAX_BODY_BYTES", 128 * 1024),
        )


def env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def env_bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be true or false, got {raw!r}")
