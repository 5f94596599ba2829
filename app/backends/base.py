"""The interface every backend implements, and the checks every backend's output must pass."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from bundle_contract.tensors import LATENT_SIZE, MOTIF_COUNT


class BackendError(Exception):
    """An inference failed; `kind` is a short code used in the error answer and the metrics."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Inference:
    latent: np.ndarray  # float32 [64]
    motif_scores: np.ndarray  # float32 [12]


@dataclass(frozen=True)
class ChipStatus:
    device_id: str
    identity: dict[str, str]
    temperatures_c: dict[str, float]  # sensor -> celsius; empty when the chip cannot report it


class Backend(ABC):
    name: str

    @abstractmethod
    def load(self) -> None:
        """Open the runtime and the model; called once, in the worker process that will serve requests."""

    @abstractmethod
    def infer(self, window: np.ndarray) -> Inference:
        """Run one float32 [100, 9] raw window; thread-safe; raises BackendError."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing to release
        """Release the runtime (graceful worker shutdown)."""

    def describe(self) -> dict[str, object]:
        """Extra facts for /healthz (device identity, runtime version)."""
        return {}

    def chip_status(self) -> list[ChipStatus]:
        """Identity and temperature of the accelerator chips this backend drives (none on the CPU)."""
        return []


def checked_inference(latent: np.ndarray, motif_scores: np.ndarray) -> Inference:
    """EdgeInfer rejects other lengths and Swift's decoder rejects NaN/Infinity: never let either through."""
    latent = np.asarray(latent, dtype=np.float32).reshape(-1)
    motif_scores = np.asarray(motif_scores, dtype=np.float32).reshape(-1)
    if latent.size != LATENT_SIZE or motif_scores.size != MOTIF_COUNT:
        raise BackendError(
            "bad_output_shape",
            f"model produced {latent.size} latent values and {motif_scores.size} motif scores, "
            f"expected {LATENT_SIZE} and {MOTIF_COUNT}",
        )
    if not (np.isfinite(latent).all() and np.isfinite(motif_scores).all()):
        raise BackendError("non_finite_output", "model produced NaN or Infinity; refusing to answer with it")
    return Inference(latent=latent, motif_scores=motif_scores)
