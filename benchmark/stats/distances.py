"""Pairwise distance matrices, computed once per layer and shared by every statistic.

All matrices are float64, exactly symmetric, with an exact zero diagonal. Computation goes through batched Gram
matrices of several layers at a time in float64 (chunks of about 64 MB).

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

from ._checks import is_trusted, trust_distances

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
    L, n, d = layers.shape[1], layers.shape[0], layers.shape[2]
    out = np.empty((L, n, n))
    # Several layers per batched product: on the claims' sizes (a few hundred samples) one small GEMM per layer
    # spends more in call overhead than in arithmetic. Chunks keep the float64 copies under ~64 MB.
    step = max(1, (8 << 20) // max(n * (n + d), 1))
    for start in range(0, L, step):
        chunk = slice(start, min(start + step, L))
        out[chunk] = _layers_chunk(layers[:, chunk, :], metric, start)
    # Valid by construction: read-only and marked, so the statistics do not re-check it (O(L n^2) per claim).
    return trust_distances(out[0].copy() if single else out)


def _layers_chunk(x: np.ndarray, metric: str, first_layer: int) -> np.ndarray:
    """Distances ``[l, n, n]`` of latents ``x [n, l, d]`` in float64 (a float32 Gram matrix loses ~1e-4 relative
    precision in ``|a|^2 + |b|^2 - 2ab``)."""
    X = np.ascontiguousarray(np.asarray(x, dtype=np.float64).transpose(1, 0, 2))  # [l, n, d]
    norms = np.linalg.norm(X, axis=-1)  # [l, n]
    if metric == "cosine":
        U = X / norms[:, :, None]
        D = np.clip(1.0 - U @ U.transpose(0, 2, 1), 0.0, 2.0)
    else:
        Xc = X - X.mean(axis=1, keepdims=True)  # centring removes most of the cancellation
        sq = np.einsum("lnd,lnd->ln", Xc, Xc)
        D = np.sqrt(np.maximum(sq[:, :, None] + sq[:, None, :] - 2.0 * (Xc @ Xc.transpose(0, 2, 1)), 0.0))
        if metric == "scaled_euclidean":
            mean_norm = norms.mean(axis=1)
            if np.any(mean_norm <= 0):
                layer = first_layer + int(np.flatnonzero(mean_norm <= 0)[0])
                raise ValueError(f"X is all zero at layer {layer}; scaled_euclidean is undefined there")
            D = D / mean_norm[:, None, None]
    D = 0.5 * (D + D.transpose(0, 2, 1))
    idx = np.arange(D.shape[1])
    D[:, idx, idx] = 0.0
    return D


def distance_rows(D: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Distances ``[L, n, n]`` restricted to ``rows`` (on both axes), C-contiguous; still trusted if ``D`` was.

    Why one open-mesh index: chained fancy indexing (``D[:, rows][:, :, rows]``) leaves a strided array whose
    contiguous copy cost 4-5x more, and a restriction of a valid distance matrix is itself valid, so a trusted
    input need not be re-checked downstream (the planter scores dozens of such restrictions per solve).
    """
    rows = np.asarray(rows, dtype=np.intp)
    out = D[np.ix_(np.arange(D.shape[0]), rows, rows)]
    if out.base is not None:  # numpy may hand back a view of its own buffer; trust needs an owner
        out = out.copy()
    return trust_distances(out) if is_trusted(D) else out


def mean_norm(X: np.ndarray) -> np.ndarray:
    """Mean latent norm ``mean_i ||x_i||`` per layer: float for [n, d], array [L] for [n, L, d]."""
    arr, single = _check_latents(X)
    norms = np.linalg.norm(np.asarray(arr, dtype=np.float64), axis=-1).mean(axis=0)
    return norms if not single else np.float64(norms)
