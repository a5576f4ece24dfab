"""Debiased linear centered kernel alignment (CKA) between two representations of the same samples.

Linear CKA compares Gram matrices ``K = X X^T`` and ``L = Y Y^T`` (features centred), so it is invariant to
orthogonal transforms and isotropic scaling of either side, and needs no matching dimension. The biased estimator
drifts towards 1 when ``d >> n``; the debiased one replaces HSIC with its unbiased U-statistic estimator (Song et
al. 2012, as used by Nguyen, Raghu & Kornblith 2021), which is unbiased for the population value.

Reference: Kornblith et al., "Similarity of Neural Network Representations Revisited", ICML 2019.
"""

from __future__ import annotations

import numpy as np


def _gram(X: object, name: str, n: int | None) -> np.ndarray:
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D [n, d]; got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite and numeric")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"X and Y must hold the same samples; got {n} and {arr.shape[0]} rows")
    if arr.shape[0] < 4:
        raise ValueError(f"debiased CKA needs n >= 4 samples; {name} has {arr.shape[0]}")
    A = np.asarray(arr, dtype=np.float64)
    A = A - A.mean(axis=0)
    return A @ A.T


def _hsic_unbiased(K: np.ndarray, L: np.ndarray) -> float:
    """Unbiased HSIC estimator (Song et al. 2012, eq. 5) up to a positive constant; diagonals are zeroed."""
    n = K.shape[0]
    K = K.copy()
    L = L.copy()
    np.fill_diagonal(K, 0.0)
    np.fill_diagonal(L, 0.0)
    kl = K.sum(axis=0) @ L.sum(axis=0)
    term = np.sum(K * L) + K.sum() * L.sum() / ((n - 1) * (n - 2)) - 2.0 * kl / (n - 2)
    return float(term / (n * (n - 3)))


def linear_cka(X: np.ndarray, Y: np.ndarray, *, debiased: bool = True) -> float:
    """Linear CKA between ``X [n, d1]`` and ``Y [n, d2]`` (same samples, same order).

    Returns a value that is 1 for identical representations (up to rotation and scale). The biased estimator
    lies in [0, 1]; the debiased one can dip slightly below 0 for unrelated representations. ``nan`` when a
    side has no variance (or, debiased, a non-positive self-HSIC estimate at tiny n).
    """
    K = _gram(X, "X", None)
    L = _gram(Y, "Y", K.shape[0])
    if debiased:
        kl, kk, ll = _hsic_unbiased(K, L), _hsic_unbiased(K, K), _hsic_unbiased(L, L)
    else:
        kl, kk, ll = float(np.sum(K * L)), float(np.sum(K * K)), float(np.sum(L * L))
    if kk <= 0 or ll <= 0:
        return float("nan")
    return kl / np.sqrt(kk * ll)
