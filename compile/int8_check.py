"""int8 accuracy without the DFC: ONNX Runtime static QDQ quantization (per-channel int8 weights, per-tensor
uint8 activations, min/max calibrated on the calibration set) as a proxy for what Hailo's optimizer will do.
The DFC's own ``SDK_QUANTIZED`` emulator replaces this when it is installed (see ``hailo_compile``)."""

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

from compile.verify import run_exported

CALIBRATION_BATCH = 16
METHOD = "onnxruntime static QDQ (int8 weights per channel, uint8 activations)"


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
    onnx_path: Path, input_name: str, calibration: np.ndarray, windows: np.ndarray
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="int8-") as tmp:
        quantized = Path(tmp) / "int8.onnx"
        # quantize_static logs a pre-processing hint on the root logger at WARNING; it does not apply here.
        logging.disable(logging.WARNING)
        try:
            _quantize(onnx_path, quantized, input_name, calibration)
        finally:
            logging.disable(logging.NOTSET)
        q_latent, q_scores = run_exported(quantized, windows)
    latent, scores = run_exported(onnx_path, windows)
    return {"method": METHOD} | compare_quantized(latent, scores, q_latent, q_scores)


def _quantize(onnx_path: Path, quantized: Path, input_name: str, calibration: np.ndarray) -> None:
    quantize_static(
        str(onnx_path),
        str(quantized),
        _Windows(input_name, calibration.astype(np.float32)),
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
