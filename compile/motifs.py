"""Motif head: 12 prototypes fitted with k-means on reference latents;
``motif_scores = softmax(-||z - c_k||^2 / T)``.

In the graph: ``softmax((z - m) W^T + b)``, ``m`` the prototypes' mean, ``W = 2(C - m)/T``,
``b = -||c_k - m||^2/T`` (the same softmax; a Sub, a Gemm and a Softmax the Hailo parser maps). Centered
because uncentered terms are large and cancel, leaving float32 error in the logits.

Temperature ``T``: the median squared distance of a reference latent to its nearest prototype, so scores stay
graded; floored at ``v / 16`` (``v`` the prototypes' mean squared distance from ``m``) so near-duplicate
reference sets cannot make the scores one-hot and the logits large enough for float32 rounding to show."""

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bundle_contract.tensors import MOTIF_COUNT
from compile.errors import CompileError

KMEANS_SEED = 0
KMEANS_RESTARTS = 4
KMEANS_MAX_ITER = 100
# T >= (prototypes' mean squared distance from their mean) / TEMPERATURE_SPREAD_DIVISOR; see the docstring.
TEMPERATURE_SPREAD_DIVISOR = 16.0


@dataclass(frozen=True)
class MotifHead:
    prototypes: np.ndarray  # [K, 64] float32
    temperature: float
    fit: dict[str, Any] = field(default_factory=dict)

    def center(self) -> np.ndarray:
        """``m [64]``: the prototypes' mean, subtracted from the latent before the Gemm."""
        return self.prototypes.astype(np.float64).mean(axis=0).astype(np.float32)

    def linear(self) -> tuple[np.ndarray, np.ndarray]:
        """The equivalent Gemm on the centered latent ``z - center()``: ``(W [K,64], b [K])``."""
        c = self.prototypes.astype(np.float64) - self.center().astype(np.float64)
        weight = 2.0 * c / self.temperature
        bias = -(c**2).sum(axis=1) / self.temperature
        return weight.astype(np.float32), bias.astype(np.float32)

    def scores(self, latents: np.ndarray) -> np.ndarray:
        d2 = ((latents[:, None, :].astype(np.float64) - self.prototypes[None].astype(np.float64)) ** 2).sum(
            -1
        )
        logits = -d2 / self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def to_metadata(self) -> dict[str, Any]:
        return {
            "count": int(self.prototypes.shape[0]),
            "temperature": self.temperature,
            "prototypes": self.prototypes.astype(float).tolist(),
            "score": "softmax(-||z - c_k||^2 / temperature)",
            "fit": self.fit,
        }


def fit_motifs(latents: np.ndarray, labels: list[str] | None = None, k: int = MOTIF_COUNT) -> MotifHead:
    """k-means++ with ``KMEANS_RESTARTS`` seeded restarts (lowest inertia wins); deterministic for equal
    input."""
    if latents.shape[0] < k:
        raise CompileError(f"need at least {k} reference windows to fit {k} motifs, got {latents.shape[0]}")
    x = latents.astype(np.float64)
    rng = np.random.default_rng(KMEANS_SEED)
    best: tuple[float, np.ndarray, np.ndarray, int] | None = None
    for _ in range(KMEANS_RESTARTS):
        centers, assign, iterations = _lloyd(x, _kmeans_plus_plus(x, k, rng))
        inertia = float(((x - centers[assign]) ** 2).sum())
        if best is None or inertia < best[0]:
            best = (inertia, centers, assign, iterations)
    assert best is not None
    inertia, centers, assign, iterations = best
    nearest_d2 = ((x - centers[assign]) ** 2).sum(axis=1)
    median_d2 = float(np.median(nearest_d2))
    spread = float(((centers - centers.mean(axis=0)) ** 2).sum(axis=1).mean())
    floor = spread / TEMPERATURE_SPREAD_DIVISOR
    # 1e-6 only for the degenerate case of identical latents (no spread at all).
    temperature = max(median_d2, floor, 1e-6)
    sizes = np.bincount(assign, minlength=k)
    fit: dict[str, Any] = {
        "method": "kmeans++ (numpy, Lloyd)",
        "seed": KMEANS_SEED,
        "restarts": KMEANS_RESTARTS,
        "iterations": iterations,
        "inertia": inertia,
        "windows": int(x.shape[0]),
        "cluster_sizes": sizes.tolist(),
        "temperature_rule": (
            "max(median squared distance of reference latents to their nearest prototype, "
            f"prototypes' mean squared distance from their mean / {TEMPERATURE_SPREAD_DIVISOR:g})"
        ),
        "temperature_median_d2": median_d2,
        "temperature_floor": floor,
        "temperature_floored": floor > median_d2,
        "centered": "latent minus the prototypes' mean before the Gemm",
    }
    if labels is not None:
        fit["dominant_activity"] = [
            _dominant([labels[i] for i in np.flatnonzero(assign == c)]) for c in range(k)
        ]
    return MotifHead(centers.astype(np.float32), temperature, fit)


def _kmeans_plus_plus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centers = [x[rng.integers(x.shape[0])]]
    d2 = ((x - centers[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        total = d2.sum()
        index = rng.choice(x.shape[0], p=d2 / total) if total > 0 else rng.integers(x.shape[0])
        centers.append(x[index])
        d2 = np.minimum(d2, ((x - x[index]) ** 2).sum(axis=1))
    return np.array(centers)


def _lloyd(x: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    assign = np.full(x.shape[0], -1)
    for iteration in range(1, KMEANS_MAX_ITER + 1):
        d2 = ((x[:, None, :] - centers[None]) ** 2).sum(-1)
        new_assign = d2.argmin(axis=1)
        if np.array_equal(new_assign, assign):
            return centers, assign, iteration
        assign = new_assign
        for c in range(centers.shape[0]):
            members = x[assign == c]
            # An emptied cluster restarts on the point worst served by the others, so all k motifs stay used.
            centers[c] = members.mean(axis=0) if len(members) else x[d2.min(axis=1).argmax()]
    return centers, assign, KMEANS_MAX_ITER


def _dominant(members: list[str]) -> dict[str, Any]:
    if not members:
        return {"activity": None, "share": 0.0}
    activity, count = Counter(members).most_common(1)[0]
    return {"activity": activity, "share": round(count / len(members), 3)}
