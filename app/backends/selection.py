"""Which backend serves a bundle. ``auto``: a bundle without .hef (onnx-only) runs ONNX Runtime on every Pi;
one with .hefs runs HailoRT wherever a Hailo chip is, and a chip Pi that cannot serve its .hef fails its
health check with the reason, unless HAILO_PIPELINE_ALLOW_CPU_FALLBACK lets it serve ONNX Runtime (off by
default: a broken accelerator would otherwise hide behind slower answers). Which .hef: the one for the
chip's family (``HailoRTBackend`` identifies the chip after opening it)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from app.backends.base import Backend, BackendError
from app.config import AppConfig
from bundle_contract.files import ONNX_ONLY, hefs
from bundle_contract.metadata import Metadata

log = logging.getLogger(__name__)

DEVICE_NODE = Path("/dev/hailo0")
FALLBACK_KNOB = "HAILO_PIPELINE_ALLOW_CPU_FALLBACK"


@dataclass(frozen=True)
class Choice:
    backend: str
    reason: str


def choose_backend(config: AppConfig, metadata: Metadata, device_node: Path = DEVICE_NODE) -> Choice:
    files = hefs(metadata)
    if config.backend == "onnxruntime":
        return Choice("onnxruntime", "requested (HAILO_PIPELINE_BACKEND / --backend onnxruntime)")
    if config.backend == "hailort":
        if not files:
            raise BackendError(
                "no_hef",
                f"backend hailort requested but the bundle has no .hef ({ONNX_ONLY}: model.hefs is empty)",
            )
        return Choice("hailort", "requested (HAILO_PIPELINE_BACKEND / --backend hailort)")
    if not files:
        return Choice("onnxruntime", f"{ONNX_ONLY} bundle: built without Hailo's Dataflow Compiler, no .hef")
    listed = ", ".join(f"{arch} {name}" for arch, name in sorted(files.items()))
    try:
        import hailo_platform
    except ImportError as exc:
        if device_node.exists():
            return cpu_fallback(
                config,
                f"{device_node} exists but hailo_platform is not importable ({exc}): install python3-hailort",
            )
        return Choice(
            "onnxruntime", f"no Hailo chip: {device_node} is absent and hailo_platform is not installed"
        )
    if device_node.exists():
        return Choice("hailort", f"the bundle has {listed}, hailo_platform imports and {device_node} exists")
    try:
        found = list(hailo_platform.Device.scan())
    except hailo_platform.HailoRTException as exc:
        return Choice("onnxruntime", f"{device_node} is absent and the HailoRT device scan failed ({exc})")
    if found:
        return Choice(
            "hailort", f"the bundle has {listed}, hailo_platform imports and the scan found {found}"
        )
    return Choice(
        "onnxruntime", f"no Hailo device: {device_node} is absent and the HailoRT device scan found none"
    )


def cpu_fallback(config: AppConfig, why: str) -> Choice:
    """A chip that cannot serve: ONNX Runtime only when the knob allows it, else a health failure."""
    if config.allow_cpu_fallback:
        return Choice("onnxruntime", f"CPU fallback ({FALLBACK_KNOB}=true): {why}")
    raise BackendError(
        "accelerator_unusable", f"{why}; set {FALLBACK_KNOB}=true to serve from the CPU instead"
    )


def create_backend(choice: Choice, config: AppConfig, metadata: Metadata) -> Backend:
    model = metadata["model"]
    if choice.backend == "hailort":
        from app.backends.hailort_backend import HailoRTBackend, hef_z_score

        return HailoRTBackend(
            {arch: config.bundle_dir / name for arch, name in hefs(metadata).items()},
            z_score=hef_z_score(metadata),
            timeout_ms=config.infer_timeout_ms,
            multi_process=config.hailo_multi_process,
            group_id=config.hailo_group_id,
        )
    from app.backends.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(config.bundle_dir / model["onnx"], intra_op_threads=config.ort_threads)
