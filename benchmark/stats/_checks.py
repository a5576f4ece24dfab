"""Input validation shared by the statistics modules (private).

Every public function validates before doing any work, and every error names the argument and what is wrong.
"""

from __future__ import annotations

import weakref

import numpy as np

#: ``id -> weak reference`` of the distance arrays this package built valid (see :func:`trust_distances`).
_TRUSTED: dict[int, weakref.ref] = {}


def trust_distances(arr: np.ndarray) -> np.ndarray:
    """Mark a distance array built by this package as valid, so :func:`as_layers` need not re-check it.

    For arrays that are valid by construction (float64, finite, exactly symmetric, zero diagonal: the output of
    :func:`benchmark.stats.pairwise_distances`) and own their memory. The array is made read-only, because the
    trust only holds while its values cannot change; it lapses if the array is made writeable again.
    """
    if not (
        isinstance(arr, np.ndarray) and arr.dtype == np.float64 and arr.ndim in (2, 3) and arr.base is None
    ):
        raise ValueError("trust_distances takes a float64 [n, n] or [L, n, n] array that owns its memory")
    arr.flags.writeable = False
    key = id(arr)
    _TRUSTED[key] = weakref.ref(arr, lambda _ref, key=key: _TRUSTED.pop(key, None))
    return arr


def is_trusted(arr: np.ndarray) -> bool:
    """Whether ``arr`` was marked by :func:`trust_distances` and is unchanged (still read-only)."""
    ref = _TRUSTED.get(id(arr))
    return (
        ref is not None
        and ref() is arr
        and not arr.flags.writeable
        and arr.dtype == np.float64
        and arr.ndim in (2, 3)
        and arr.shape[-1] == arr.shape[-2]
    )


def as_layers(D: np.ndarray, *, name: str = "D") -> tuple[np.ndarray, bool]:
    """Return distances as float64 ``[L, n, n]`` and whether the input was a single ``[n, n]`` matrix.

    Checks shape, finiteness, symmetry (to 1e-8 relative) and a zero diagonal, because every statistic here
    assumes a metric-like dissimilarity. Arrays marked by :func:`trust_distances` (still read-only) skip the
    O(L n^2) checks: they were built valid and cannot have changed since.
    """
    arr = np.asarray(D)
    if is_trusted(arr):
        return (arr[None], True) if arr.ndim == 2 else (arr, False)
    if arr.ndim not in (2, 3) or arr.shape[-1] != arr.shape[-2]:
        raise ValueError(
            f"{name} must be a square distance matrix [n, n] or a stack [L, n, n]; got shape {arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must be numeric; got dtype {arr.dtype}")
    single = arr.ndim == 2
    arr = np.asarray(arr[None] if single else arr, dtype=np.float64)
    if arr.shape[-1] < 2:
        raise ValueError(f"{name} needs at least 2 samples; got {arr.shape[-1]}")
    if not np.isfinite(arr).all():
        raise ValueError(
            f"{name} contains NaN or infinite values; run benchmark.stats.gate on the latents first"
        )
    scale = max(float(np.abs(arr).max()), 1e-300)
    diag = np.diagonal(arr, axis1=-2, axis2=-1)
    if np.abs(diag).max() > 1e-8 * scale:
        raise ValueError(
            f"{name} must have a zero diagonal (use np.fill_diagonal(D, 0)); max |diag| = {np.abs(diag).max():.3g}"
        )
    if np.abs(arr - arr.swapaxes(-1, -2)).max() > 1e-8 * scale:
        raise ValueError(
            f"{name} must be symmetric; max |D - D.T| = {np.abs(arr - arr.swapaxes(-1, -2)).max():.3g}"
        )
    return arr, single


def encode(labels: object, n: int | None = None, *, name: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """Encode a 1-D label array as integer codes ``[n]`` in ``0..k-1`` and return ``(codes, levels)``."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries but the distance matrix has {n} samples")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    levels, codes = np.unique(arr, return_inverse=True)
    return codes.astype(np.int64).reshape(-1), levels


def check_codes(codes: np.ndarray, n: int, *, name: str = "codes") -> np.ndarray:
    """Validate a matrix of integer label codes ``[P, n]`` (one labelling per row)."""
    arr = np.asarray(codes)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != n:
        raise ValueError(f"{name} must have shape [P, {n}]; got {np.asarray(codes).shape}")
    if arr.dtype.kind not in "iu":
        raise TypeError(
            f"{name} must hold integer codes (see benchmark.stats.design.encode); got dtype {arr.dtype}"
        )
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be non-negative integer codes")
    return arr.astype(np.int64, copy=False)


def check_rng(rng: object) -> np.random.Generator:
    """Require an explicit ``np.random.Generator`` (never global seeding)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator (np.random.default_rng(seed)); got {type(rng).__name__}"
        )
    return rng


def check_positive_int(value: object, *, name: str, minimum: int = 1) -> int:
    """Require an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)
