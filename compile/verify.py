"""Numerical checks of the export: structure, ONNX Runtime vs the PyTorch module, and vs the source ONNX."""

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from bundle_contract.normalization import Normalization
from bundle_contract.tensors import INPUT_NAME, LATENT_NAME, MOTIF_NAME
from compile.errors import CompileError
from compile.export import encode_latents
from compile.load import LoadedSource
from compile.motifs import MotifHead
from compile.normalization import z_score

FLOAT_TOLERANCE = 1e-4
MIN_WINDOWS = 64


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_exported(path: Path, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    latent, scores = session(path).run([LATENT_NAME, MOTIF_NAME], {INPUT_NAME: windows.astype(np.float32)})
    return latent, scores


def verify_export(
    onnx_path: Path,
    source: LoadedSource,
    normalization: Normalization,
    motifs: MotifHead,
    windows: np.ndarray,
) -> dict[str, Any]:
    """Raise ``CompileError`` when a figure is out of tolerance; return all figures for the metadata."""
    if windows.shape[0] < MIN_WINDOWS:
        raise CompileError(f"verification needs at least {MIN_WINDOWS} windows, got {windows.shape[0]}")
    try:
        onnx.checker.check_model(str(onnx_path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise CompileError(
            f"{onnx_path}: onnx.checker rejected the export ({str(exc).splitlines()[0]})"
        ) from None
    latent, scores = run_exported(onnx_path, windows)
    single_latent, _ = run_exported(onnx_path, windows[:1])
    ref_latent = encode_latents(source.encoder, normalization, windows)
    ref_scores = motifs.scores(ref_latent)
    figures: dict[str, Any] = {
        "windows": int(windows.shape[0]),
        "tolerance": FLOAT_TOLERANCE,
        "onnx_checker": "passed",
        "onnxruntime_vs_torch": {
            "latent_max_abs": _max_abs(latent, ref_latent),
            "motif_max_abs": _max_abs(scores, ref_scores),
        },
        "batch1_vs_batchN_latent_max_abs": _max_abs(single_latent, latent[:1]),
        "motif_scores_sum_max_dev": float(np.abs(scores.sum(axis=1) - 1.0).max()),
    }
    _require(figures["onnxruntime_vs_torch"]["latent_max_abs"], "ONNX Runtime vs PyTorch latent")
    _require(figures["onnxruntime_vs_torch"]["motif_max_abs"], "ONNX Runtime vs PyTorch motif scores")
    _require(figures["batch1_vs_batchN_latent_max_abs"], "batch of 1 vs batch of N latent")
    if source.kind == "onnx" and source.path is not None:
        source_latent = run_source_onnx(source.path, z_score(normalization, windows))
        figures["source_onnx_vs_export"] = {"latent_max_abs": _max_abs(latent, source_latent)}
        _require(
            figures["source_onnx_vs_export"]["latent_max_abs"], f"source ONNX {source.path.name} vs export"
        )
    return figures


def run_source_onnx(path: Path, z_scored: np.ndarray) -> np.ndarray:
    """The user's trained ONNX on already z-scored windows, in whatever layout and batch size it declares."""
    try:
        sess = session(path)
        spec = sess.get_inputs()[0]
        dims = spec.shape
        windows = z_scored if dims[-1] == z_scored.shape[-1] else z_scored.transpose(0, 2, 1)
        # Static batch (the trained encoder has batch 1): run in chunks of that size.
        step = dims[0] if isinstance(dims[0], int) else len(windows)
        chunks = [sess.run(None, {spec.name: windows[i : i + step]})[0] for i in range(0, len(windows), step)]
    except Exception as exc:  # ONNX Runtime raises its own pybind types (Fail, InvalidArgument, ...)
        raise CompileError(
            f"{path}: source ONNX does not run on [N, 100, 9] z-scored windows ({_first_line(exc)})"
        ) from None
    return np.concatenate(chunks)


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def _require(value: float, what: str) -> None:
    if not value <= FLOAT_TOLERANCE:
        raise CompileError(f"verification failed: {what} max abs diff {value:.3g} > {FLOAT_TOLERANCE:g}")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
