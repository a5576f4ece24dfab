"""Pairwise distance matrices, computed once per layer and shared by every statistic.

All matrices are float64, exactly symmetric, with an exact zero diagonal. Computation goes through one Gram
matrix per layer (torch matmul in float64, one layer at a time), so 800 samples x 30 layers x 2048 dims take about a second
on two CPU cores.

Metrics
-------
``cosine``
    ``1 - cos(x_i, x_j)``, range [0, 2]. Scale-free; undefined for zero vectors (raises).
``euclidean``
    ``||x_i - x_j||``. Grows with the residual norm, so never compare it across depth.
``scaled_euclidean``
    Euclidean distance divided by the layer's mean latent norm ``mean_i ||x_i||``: invariant to a per-layer
    rescaling ``x -> c x`` (``c > 0``), hence comparable across depth (claim T2).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from ._checks import trust_distances

Metric = Literal["cosine", "euclidean", "scaled_euclidean"]
METRICS: tuple[str, ...] = ("cosine", "euclidean", "scaled_euclidean")


def _check_latents(X: object) -> tuple[np.ndarray, bool]:
    arr = np.asarray(X)
    if arr.ndim not in (2, 3):
        raise ValueError(f"X must be latents [n, d] or [n, L, d]; got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"X must be numeric; got dtype {arr.dtype}")
    if arr.shape[0] < 2 or arr.shape[-1] < 1:
        raise ValueError(f"X needs at least 2 samples and 1 dimension; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("X contains NaN or infinite values; run benchmark.stats.gate.check_latents first")
    return arr, arr.ndim == 2


def pairwise_distances(X: np.ndarray, *, metric: Metric = "cosine") -> np.ndarray:
    """Pairwise distances of latents, batched over layers.

    Parameters
    ----------
    X : array [n, d] or [n, L, d]
        Latents of ``n`` samples (one layer, or ``L`` layers as the latents cache stores them).
    metric : {"cosine", "euclidean", "scaled_euclidean"}
        See the module docstring.

    Returns
    -------
    D : float64 array [n, n] for 2-D input, else [L, n, n]
        Symmetric, zero diagonal; read-only (copy it to modify), which lets the statistics trust it without
        re-checking symmetry and diagonal on every call.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}; got {metric!r}")
    arr, single = _check_latents(X)
    layers = arr[:, None, :] if single else arr
    zero = ~np.any(layers != 0, axis=-1)  # [n, L]
    if metric == "cosine" and zero.any():
        sample, layer = (int(v) for v in np.argwhere(zero)[0])
        raise ValueError(
            f"X has a zero vector (sample {sample}, layer {layer}); cosine distance is undefined there"
        )
    if metric == "scaled_euclidean" and zero.all(axis=0).any():
        raise ValueError(
            f"X is all zero at layer {int(np.flatnonzero(zero.all(axis=0))[0])}; scaled_euclidean is undefined there"
        )
    L, n = layers.shape[1], layers.shape[0]
    out = np.empty((n, n) if single else (L, n, n))
    for layer in range(L):  # one layer at a time in float64: bounded memory, BLAS-bound anyway
        (out if single else out[layer])[...] = _one_layer(layers[:, layer, :], metric, layer)
    # Valid by construction: read-only and marked, so the statistics do not re-check it (O(L n^2) per claim).
    return trust_distances(out)


def _one_layer(x: np.ndarray, metric: str, layer: int) -> np.ndarray:
    # float64: float32 Gram matrices lose ~1e-4 relative precision in ||a||^2 + ||b||^2 - 2ab.
    Xt = torch.from_numpy(np.asarray(x, dtype=np.float64))
    norms = torch.linalg.vector_norm(Xt, dim=-1)
    if metric == "cosine":
        zero = norms <= 0
        if bool(zero.any()):
            sample = int(torch.nonzero(zero)[0, 0])
            raise ValueError(
                f"X has a zero vector (sample {sample}, layer {layer}); cosine distance is undefined there"
            )
        U = Xt / norms[:, None]
        D = (1.0 - U @ U.T).clamp_(min=0.0, max=2.0)
    else:
        # Centering leaves Euclidean distances unchanged and removes most of the cancellation.
        Xc = Xt - Xt.mean(dim=0, keepdim=True)
        sq = (Xc * Xc).sum(-1)
        D = (sq[:, None] + sq[None, :] - 2.0 * (Xc @ Xc.T)).clamp_(min=0.0).sqrt_()
        if metric == "scaled_euclidean":
            mean_norm = float(norms.mean())
            if mean_norm <= 0:
                raise ValueError(f"X is all zero at layer {layer}; scaled_euclidean is undefined there")
            D = D / mean_norm
    D = 0.5 * (D + D.T)
    D.fill_diagonal_(0.0)
    return D.numpy()


def mean_norm(X: np.ndarray) -> np.ndarray:
    """Mean latent norm ``mean_i ||x_i||`` per layer: float for [n, d], array [L] for [n, L, d]."""
    arr, single = _check_latents(X)
    norms = np.linalg.norm(np.asarray(arr, dtype=np.float64), axis=-1).mean(axis=0)
    return norms if not single else np.float64(norms)
