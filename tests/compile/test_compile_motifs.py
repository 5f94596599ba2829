"""The motif head: k-means prototypes, temperature, and the Gemm + Softmax form used in the graph."""

import numpy as np
import pytest

from compile.errors import CompileError
from compile.motifs import MOTIF_COUNT, TEMPERATURE_SPREAD_DIVISOR, MotifHead, fit_motifs


def _clusters(seed: int = 0, per_cluster: int = 20) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 10, size=(MOTIF_COUNT, 64))
    points = np.concatenate([c + rng.normal(0, 0.3, size=(per_cluster, 64)) for c in centers])
    return points.astype(np.float32), centers


def test_recovers_well_separated_clusters():
    points, centers = _clusters()
    head = fit_motifs(points)
    assert head.prototypes.shape == (MOTIF_COUNT, 64)
    # Every cluster got its own prototype, and that prototype is the mean of the cluster's points.
    distances = np.linalg.norm(centers[:, None] - head.prototypes[None], axis=-1)
    owner = distances.argmin(axis=1)
    assert sorted(owner.tolist()) == list(range(MOTIF_COUNT))
    cluster_means = points.reshape(MOTIF_COUNT, 20, 64).mean(axis=1)
    np.testing.assert_allclose(head.prototypes[owner], cluster_means, atol=1e-4)
    assert head.fit["cluster_sizes"] == [20] * MOTIF_COUNT


def test_fit_is_deterministic():
    points, _ = _clusters(seed=1)
    first, second = fit_motifs(points), fit_motifs(points)
    np.testing.assert_array_equal(first.prototypes, second.prototypes)
    assert first.temperature == second.temperature


def _spread_floor(head: MotifHead) -> float:
    c = head.prototypes.astype(np.float64)
    return float(((c - c.mean(axis=0)) ** 2).sum(axis=1).mean()) / TEMPERATURE_SPREAD_DIVISOR


def _near_duplicates(seed: int) -> np.ndarray:
    """Latents of a still-heavy recording: a few tight groups of near-identical points far from the origin."""
    rng = np.random.default_rng(seed)
    groups = rng.normal(0, 1, size=(5, 64)) + 20.0
    return np.concatenate([g + rng.normal(0, 1e-3, size=(20, 64)) for g in groups]).astype(np.float32)


def test_temperature_is_the_median_squared_distance_to_the_nearest_prototype():
    # Overlapping clusters: the within-motif spread is above the floor, so the median sets the temperature.
    rng = np.random.default_rng(2)
    points = rng.normal(0, 1, size=(MOTIF_COUNT, 64))[:, None] + rng.normal(0, 1, size=(MOTIF_COUNT, 20, 64))
    points = points.reshape(-1, 64).astype(np.float32)
    head = fit_motifs(points)
    d2 = ((points[:, None].astype(np.float64) - head.prototypes[None]) ** 2).sum(-1).min(axis=1)
    assert float(np.median(d2)) > _spread_floor(head)
    assert head.temperature == pytest.approx(float(np.median(d2)), rel=1e-5)
    assert not head.fit["temperature_floored"]


def test_near_duplicate_latents_get_the_spread_floor_not_a_collapsed_temperature():
    points = _near_duplicates(seed=6)
    head = fit_motifs(points)
    assert head.fit["temperature_median_d2"] < 1e-3 * _spread_floor(head)
    assert head.temperature == pytest.approx(_spread_floor(head), rel=1e-6)
    assert head.fit["temperature_floored"]


def test_float32_gemm_form_stays_within_tolerance_on_near_duplicates():
    # The graph computes the logits in float32; centering plus the floor keep the rounding out of the scores.
    points = _near_duplicates(seed=7)
    head = fit_motifs(points)
    weight, bias = head.linear()
    logits = (points - head.center()) @ weight.T + bias
    logits -= logits.max(axis=1, keepdims=True)
    scores32 = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert np.abs(scores32 - head.scores(points)).max() < 1e-5


def test_scores_are_a_distribution_peaking_at_the_nearest_prototype():
    points, _ = _clusters(seed=3)
    head = fit_motifs(points)
    scores = head.scores(points)
    assert scores.shape == (len(points), MOTIF_COUNT)
    assert np.all((scores >= 0) & (scores <= 1))
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-6)
    nearest = ((points[:, None] - head.prototypes[None]) ** 2).sum(-1).argmin(axis=1)
    np.testing.assert_array_equal(scores.argmax(axis=1), nearest)


def test_linear_form_equals_the_distance_softmax():
    rng = np.random.default_rng(4)
    head = MotifHead(rng.normal(size=(MOTIF_COUNT, 64)).astype(np.float32), temperature=7.5)
    z = rng.normal(size=(32, 64)).astype(np.float32)
    weight, bias = head.linear()
    logits = (z - head.center()).astype(np.float64) @ weight.T.astype(np.float64) + bias
    logits -= logits.max(axis=1, keepdims=True)
    linear_scores = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(linear_scores, head.scores(z), atol=1e-5)


def test_labels_give_each_motif_its_dominant_activity():
    points, _ = _clusters(seed=5, per_cluster=4)
    labels = [f"activity{i // 4}" for i in range(len(points))]
    head = fit_motifs(points, labels)
    dominant = head.fit["dominant_activity"]
    assert sorted(d["activity"] for d in dominant) == sorted({*labels})
    assert all(d["share"] == 1.0 for d in dominant)


def test_too_few_windows():
    with pytest.raises(CompileError, match="at least 12 reference windows"):
        fit_motifs(np.zeros((5, 64), np.float32))


def test_identical_windows_keep_a_positive_temperature():
    head = fit_motifs(np.ones((20, 64), np.float32))
    assert head.temperature > 0
    assert np.isfinite(head.scores(np.ones((2, 64), np.float32))).all()
