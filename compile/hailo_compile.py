"""ONNX -> .hef with Hailo's Dataflow Compiler (``hailo_sdk_client``), when it is installed.

The DFC is not on PyPI (a wheel from Hailo's Developer Zone, x86_64 Linux), so it is imported only here,
lazily. Flow (ClientRunner): translate the z-scored NCHW graph -> model script (calibration size) -> optimize
(quantize) with z-scored NHWC ``(N, 1, 100, 9)`` calibration windows -> compile -> .hef, with a HAR per stage.
The HEF's input is NHWC ``(1, 100, 9)`` z-scored values (``HEF_INPUT``); the app z-scores each raw
``imu_window [100, 9]`` on the host (same memory layout) before handing it to HailoRT.

Why not fold the z-score on chip (the model script's ``normalization`` command): the chip's input layer
quantizes the tensor it receives per tensor to 8 bits, so raw values would share one step set by the
magnetometer's range (tens of uT) and small gyro/accelerometer signals would lose resolution."""

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.backends.hailort_backend import HEF_INPUT_Z_SCORED
from compile.errors import CompileError
from compile.export import HAILO_INPUT_NAME, LATENT_NODE, MOTIF_NODE, hailo_input
from compile.hw_arch import HW_ARCHS
from compile.int8_check import compare_quantized
from compile.model import INPUT_CHANNELS, LATENT_DIM, WINDOW_LENGTH
from compile.normalization import Normalization

NET_NAME = "tcn_encoder"
DFC_INSTALL_HINT = (
    "install Hailo's Dataflow Compiler 3.33 for Hailo-8/8L "
    "(hailo_dataflow_compiler-3.33.*-py3-none-linux_x86_64.whl "
    "from the Hailo Developer Zone) into this venv"
)
CALIBSET_SIZE = 64
EMULATOR_WINDOWS = 64
# model.hef_input in the bundle metadata: what the app must hand HailoRT (it refuses any other "values").
HEF_INPUT = {
    "layout": "NHWC (1, 100, 9)",
    "dtype": "float32",
    "values": HEF_INPUT_Z_SCORED,
    "z_score": "per channel (x - normalization.mean) / normalization.std, on the host",
}


@dataclass
class HefResult:
    hef: Path
    hars: list[Path]
    dfc_version: str
    int8: dict[str, Any] = field(default_factory=dict)


def dfc_version() -> str | None:
    """The installed DFC's version, or None when ``hailo_sdk_client`` cannot be imported."""
    try:
        client = importlib.import_module("hailo_sdk_client")
    except ImportError:
        return None
    return str(getattr(client, "__version__", "unknown"))


def skip_notice() -> str:
    return f"hailo_sdk_client is not importable: no .hef built (ONNX only); {DFC_INSTALL_HINT}"


def model_script(calibset_size: int) -> str:
    """Model script lines as Hailo's model zoo writes them. No ``normalization`` line: the translated graph
    starts at the z-scored tensor and the host z-scores (see the module docstring)."""
    return f"model_optimization_config(calibration, batch_size=8, calibset_size={calibset_size})\n"


def compile_hef(
    hailo_onnx: Path,
    normalization: Normalization,
    calibration: np.ndarray,
    hw_arch: str,
    out_dir: Path,
    float_outputs: tuple[np.ndarray, np.ndarray],
) -> HefResult:
    """Run the ClientRunner flow on raw ``calibration`` windows (z-scored here with ``normalization``);
    ``float_outputs`` are the float model's (latent, scores) on ``calibration[:EMULATOR_WINDOWS]``, to compare
    the DFC's quantized emulator against."""
    if hw_arch not in HW_ARCHS:
        raise CompileError(f"hw arch {hw_arch!r} is not one of {', '.join(HW_ARCHS)}")
    version = dfc_version()
    if version is None:
        raise CompileError(skip_notice())
    from hailo_sdk_client import (
        ClientRunner,
        InferenceContext,
    )  # the DFC: optional, imported only when present

    calib_nhwc = hailo_input(normalization, calibration)
    hars = [out_dir / f"{NET_NAME}_{stage}.har" for stage in ("parsed", "optimized", "compiled")]
    try:
        runner = ClientRunner(hw_arch=hw_arch)
        runner.translate_onnx_model(
            str(hailo_onnx),
            NET_NAME,
            start_node_names=[HAILO_INPUT_NAME],
            end_node_names=[LATENT_NODE, MOTIF_NODE],
            net_input_shapes={HAILO_INPUT_NAME: [1, INPUT_CHANNELS, 1, WINDOW_LENGTH]},
        )
        runner.save_har(str(hars[0]))
        runner.load_model_script(model_script(min(CALIBSET_SIZE, len(calib_nhwc))))
        runner.optimize(calib_nhwc)
        runner.save_har(str(hars[1]))
        with runner.infer_context(InferenceContext.SDK_QUANTIZED) as context:
            emulated = runner.infer(context, calib_nhwc[:EMULATOR_WINDOWS])
        hef_bytes = runner.compile()
        runner.save_har(str(hars[2]))
    except CompileError:
        raise
    except Exception as exc:  # the DFC raises its own exception types; any of them ends the stage
        raise CompileError(
            f"Hailo DFC failed on {hailo_onnx.name}: {type(exc).__name__}: {_first_line(exc)}"
        ) from None
    hef = out_dir / f"{NET_NAME}.hef"
    hef.write_bytes(hef_bytes)
    q_latent, q_scores = _split_outputs(emulated)
    latent, scores = float_outputs
    int8 = {"method": f"Hailo DFC {version} SDK_QUANTIZED emulator"} | compare_quantized(
        latent, scores, q_latent, q_scores
    )
    return HefResult(hef, hars, version, int8)


def _split_outputs(emulated: Any) -> tuple[np.ndarray, np.ndarray]:
    """The emulator returns one array per output layer, shaped NHWC; tell them apart by width (64 vs 12)."""
    arrays = emulated if isinstance(emulated, list | tuple) else [emulated]
    flat = [np.asarray(a, np.float32).reshape(len(a), -1) for a in arrays]
    latent = next((a for a in flat if a.shape[1] == LATENT_DIM), None)
    scores = next((a for a in flat if a.shape[1] != LATENT_DIM), None)
    if latent is None or scores is None:
        shapes = [list(np.shape(a)) for a in arrays]
        raise CompileError(
            f"Hailo DFC emulator returned outputs of shapes {shapes}, expected [N,64] and [N,12]"
        )
    return latent, scores


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else ""
