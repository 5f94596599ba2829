"""int8 accuracy without the DFC: ONNX Runtime static QDQ quantization (per-channel int8 weights, per-tensor
uint8 activations, min/max calibrated on the calibration set) as a proxy for what Hailo's optimizer will do.
It quantizes the graph the DFC translates (from the z-scored ``imu_nchw`` on) and feeds it z-scored windows,
as the app feeds the HEF, so the 8-bit input step it models is the chip's. The DFC's own ``SDK_QUANTIZED``
emulator replaces this when it is installed (see ``hailo_compile``)."""

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)

from bundle_contract.normalization import Normalization
from bundle_contract.tensors import LATENT_NAME, MOTIF_NAME
from compile.export import HAILO_INPUT_NAME, hailo_input
from compile.verify import run_exported, session

CALIBRATION_BATCH = 16
METHOD = (
    "onnxruntime static QDQ from the z-scored input (int8 weights per channel, uint8 activations per tensor)"
)


class _Windows(CalibrationDataReader):
    def __init__(self, input_name: str, windows: np.ndarray) -> None:
        self._batches = iter(
            [
                {input_name: windows[i : i + CALIBRATION_BATCH]}
                for i in range(0, len(windows), CALIBRATION_BATCH)
            ]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def int8_proxy(
    served_onnx: Path,
    dfc_onnx: Path,
    normalization: Normalization,
    calibration: np.ndarray,
    windows: np.ndarray,
) -> dict[str, Any]:
    """Quantize ``dfc_onnx`` (z-scored NCHW in) on the raw ``calibration`` windows z-scored, and compare it
    on ``windows`` against the float ``served_onnx`` (raw in)."""
    with tempfile.TemporaryDirectory(prefix="int8-") as tmp:
        quantized = Path(tmp) / "int8.onnx"
        # quantize_static logs a pre-processing hint on the root logger at WARNING; it does not apply here.
        logging.disable(logging.WARNING)
        try:
            quantize_dfc_input(dfc_onnx, quantized, normalization, calibration)
        finally:
            logging.disable(logging.NOTSET)
        q_latent, q_scores = session(quantized).run(
            [LATENT_NAME, MOTIF_NAME], {HAILO_INPUT_NAME: _nchw(normalization, windows)}
        )
    latent, scores = run_exported(served_onnx, windows)
    return {"method": METHOD} | compare_quantized(latent, scores, q_latent, q_scores)


def _nchw(normalization: Normalization, windows: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(hailo_input(normalization, windows).transpose(0, 3, 1, 2))


def quantize_dfc_input(
    dfc_onnx: Path, quantized: Path, normalization: Normalization, calibration: np.ndarray
) -> None:
    """Write the int8 QDQ model of ``dfc_onnx``, calibrated on the raw ``calibration`` windows z-scored."""
    quantize_static(
        str(dfc_onnx),
        str(quantized),
        _Windows(HAILO_INPUT_NAME, _nchw(normalization, calibration)),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )


def compare_quantized(
    latent: np.ndarray, scores: np.ndarray, q_latent: np.ndarray, q_scores: np.ndarray
) -> dict[str, Any]:
    cosine = (latent * q_latent).sum(1) / (
        np.linalg.norm(latent, axis=1) * np.linalg.norm(q_latent, axis=1) + 1e-12
    )
    return {
        "windows": int(latent.shape[0]),
        "latent_cosine_mean": float(cosine.mean()),
        "latent_cosine_min": float(cosine.min()),
        "latent_max_abs": float(np.abs(latent - q_latent).max()),
        "top_motif_agreement": float((scores.argmax(1) == q_scores.argmax(1)).mean()),
        "motif_scores_max_abs": float(np.abs(scores - q_scores).max()),
    }
