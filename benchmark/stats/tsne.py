"""Seeded 2-D t-SNE and the paper's silhouette on it: for figures only, never the basis of a verdict.

t-SNE distorts global distances and its silhouette depends on perplexity and seed; verdicts use statistics in
the original space (:mod:`benchmark.stats.inference`). This module reproduces the paper's plots.
"""

from __future__ import annotations

import numpy as np
from sklearn.manifold import TSNE

from ._checks import check_rng
from .cluster import silhouette
from .distances import pairwise_distances


def tsne_2d(
    X: np.ndarray, *, rng: np.random.Generator, perplexity: float = 30.0, max_iter: int = 1000
) -> np.ndarray:
    """2-D t-SNE embedding ``[n, 2]`` of one layer's latents ``X [n, d]`` (PCA init, seed drawn from ``rng``).

    ``perplexity`` must be below ``n``; a smaller one is used only if you pass it (no silent change).
    """
    rng = check_rng(rng)
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 3:
        raise ValueError(f"X must be [n, d] with n >= 3; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("X contains NaN or infinite values")
    if not 0 < perplexity < arr.shape[0]:
        raise ValueError(f"perplexity must lie in (0, n={arr.shape[0]}); got {perplexity}")
    seed = int(rng.integers(0, 2**31 - 1))
    model = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, max_iter=max_iter)
    return model.fit_transform(arr)


def tsne_silhouette(Y: np.ndarray, labels: np.ndarray) -> float:
    """Euclidean silhouette of a 2-D embedding ``Y [n, 2]`` (the number the paper reports on its t-SNE plots)."""
    arr = np.asarray(Y)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"Y must be a 2-D embedding [n, 2]; got shape {arr.shape}")
    return float(silhouette(pairwise_distances(arr, metric="euclidean"), labels).mean)
