"""Which backend serves a bundle: `auto` takes the accelerator only when all three pieces are really there."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.backends.base import Backend, BackendError
from app.config import AppConfig

log = logging.getLogger(__name__)

DEVICE_NODE = Path("/dev/hailo0")


@dataclass(frozen=True)
class Choice:
    backend: str
    reason: str


def choose_backend(config: AppConfig, metadata: dict[str, Any], device_node: Path = DEVICE_NODE) -> Choice:
    hef = metadata.get("model", {}).get("hef")
    if config.backend == "onnxruntime":
        return Choice("onnxruntime", "requested (HAILO_PIPELINE_BACKEND / --backend onnxruntime)")
    if config.backend == "hailort":
        if not hef:
            raise BackendError(
                "no_hef", "backend hailort requested but the bundle has no .hef (model.hef is null)"
            )
        return Choice("hailort", "requested (HAILO_PIPELINE_BACKEND / --backend hailort)")
    if not hef:
        return Choice("onnxruntime", "the bundle has no .hef (compiled without Hailo's Dataflow Compiler)")
    try:
        import hailo_platform
    except ImportError as exc:
        return Choice("onnxruntime", f"the bundle has {hef} but hailo_platform is not importable ({exc})")
    if device_node.exists():
        return Choice("hailort", f"the bundle has {hef}, hailo_platform imports and {device_node} exists")
    try:
        found = list(hailo_platform.Device.scan())
    except hailo_platform.HailoRTException as exc:
        return Choice("onnxruntime", f"{device_node} is absent and the HailoRT device scan failed ({exc})")
    if found:
        return Choice("hailort", f"the bundle has {hef}, hailo_platform imports and the scan found {found}")
    return Choice(
        "onnxruntime", f"no Hailo device: {device_node} is absent and the HailoRT device scan found none"
    )


def create_backend(choice: Choice, config: AppConfig, metadata: dict[str, Any]) -> Backend:
    model = metadata["model"]
    if choice.backend == "hailort":
        from app.backends.hailort_backend import HailoRTBackend, hef_z_score

        return HailoRTBackend(
            config.bundle_dir / model["hef"],
            z_score=hef_z_score(metadata),
            timeout_ms=config.infer_timeout_ms,
            multi_process=config.hailo_multi_process,
            group_id=config.hailo_group_id,
        )
    from app.backends.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(config.bundle_dir / model["onnx"], intra_op_threads=config.ort_threads)
