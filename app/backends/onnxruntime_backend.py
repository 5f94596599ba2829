"""ONNX Runtime on the CPU: development hosts and Pis without a working accelerator (degraded mode)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from app.backends.base import Backend, BackendError, Inference, checked_inference
from bundle_contract.tensors import INPUT_NAME, LATENT_NAME, MOTIF_NAME

OUTPUT_NAMES = [LATENT_NAME, MOTIF_NAME]


def session_options(intra_op_threads: int) -> ort.SessionOptions:
    """Sized for one gunicorn worker on a 4-core Pi 5: parallelism comes from workers x threads, so each run
    stays on the calling thread instead of fanning out to a pool every concurrent request would fight over."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning threads burn the cores the other workers need; a 1 ms model does not benefit from them.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, onnx_path: Path, intra_op_threads: int = 1) -> None:
        self.onnx_path = onnx_path
        self.intra_op_threads = intra_op_threads
        self._session: ort.InferenceSession | None = None

    def load(self) -> None:
        session = ort.InferenceSession(
            str(self.onnx_path),
            sess_options=session_options(self.intra_op_threads),
            providers=["CPUExecutionProvider"],
        )
        inputs = {i.name for i in session.get_inputs()}
        outputs = {o.name for o in session.get_outputs()}
        if INPUT_NAME not in inputs or not set(OUTPUT_NAMES) <= outputs:
            raise BackendError(
                "bad_model",
                f"{self.onnx_path.name} has inputs {sorted(inputs)} and outputs {sorted(outputs)}; "
                f"expected {INPUT_NAME} -> {', '.join(OUTPUT_NAMES)}",
            )
        self._session = session

    def infer(self, window: np.ndarray) -> Inference:
        if self._session is None:
            raise BackendError("not_loaded", "ONNX Runtime session is not loaded")
        try:
            latent, motifs = self._session.run(OUTPUT_NAMES, {INPUT_NAME: window[np.newaxis]})
        except Exception as exc:  # ORT raises its own exception types from C++
            raise BackendError("runtime_error", f"ONNX Runtime failed: {exc}") from exc
        return checked_inference(latent, motifs)

    def describe(self) -> dict[str, object]:
        return {"onnxruntime": ort.__version__, "intra_op_threads": self.intra_op_threads}
