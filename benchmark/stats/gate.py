"""The pipeline gate: problems that make a measurement broken rather than a finding.

:func:`check_latents` returns a list of :class:`Problem` (empty = pass); the claims layer turns any problem into
the verdict ``error`` (never a pass or a fail). Checked:

``nonfinite``
    NaN or infinite values at a layer.
``identical_latents``
    Distinct inputs with identical latents at a layer after ``emb`` (e.g. audio that never reached the model,
    lmms-eval PR #1081). ``emb`` itself is exempt: the last token's input embedding is the same for every input
    ending in the same token.
``zero_norm``
    All-zero latent vectors (cosine distances undefined).
``collapsed_layer``
    Every sample has the same latent at a layer after ``emb`` (with a shared template suffix every input ends in
    the same token, so ``emb`` is legitimately constant).
``collapsed_clusters``
    With ``labels``: every cluster has ~zero within-scatter, or two label centroids coincide (after ``emb``: at
    ``emb`` the latent is a token's input embedding, and inputs ending in the same token coincide there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .cluster import COLLAPSE_RTOL


@dataclass(frozen=True)
class Problem:
    """One gate problem: a stable ``code``, the ``layer`` name, a readable ``message``, involved sample indices."""

    code: str
    layer: str
    message: str
    samples: tuple[int, ...] = ()


def _duplicate_groups(X: np.ndarray, input_ids: np.ndarray) -> list[np.ndarray]:
    """Groups of samples with byte-identical rows but more than one distinct input id."""
    rows = np.ascontiguousarray(X).view(np.dtype((np.void, X.dtype.itemsize * X.shape[1]))).reshape(-1)
    _, inverse, counts = np.unique(rows, return_inverse=True, return_counts=True)
    out = []
    for g in np.flatnonzero(counts > 1):
        members = np.flatnonzero(inverse.reshape(-1) == g)
        if np.unique(input_ids[members]).size > 1:
            out.append(members)
    return out


def check_latents(
    X: np.ndarray,
    *,
    layer_names: Sequence[str],
    input_ids: Sequence[object] | None = None,
    labels: np.ndarray | None = None,
    exempt: Sequence[str] = ("emb",),
) -> list[Problem]:
    """Gate the latents of one model on one probe set.

    Parameters
    ----------
    X : array [n, L, d]
        Latents (any float dtype; identical means bit-identical in the stored dtype).
    layer_names : sequence of L str
        Layer names in ``X``'s order (``emb``, ``block0``, ..., ``final_norm``).
    input_ids : sequence of n, optional
        Identity of what each sample fed the model (e.g. the content hash of the audio/tokens). Samples with the
        same id may legitimately share latents. Default: every sample distinct.
    labels : array [n], optional
        Cluster labels to check for collapsed clusters.
    exempt : layer names skipped by the identical-latents, collapsed-layer and collapsed-cluster checks.
    """
    arr = np.asarray(X)
    if arr.ndim != 3:
        raise ValueError(f"X must be latents [n, L, d]; got shape {arr.shape}")
    n, L, _ = arr.shape
    names = list(layer_names)
    if len(names) != L:
        raise ValueError(f"layer_names has {len(names)} names but X has {L} layers")
    ids = np.arange(n) if input_ids is None else np.asarray(list(input_ids), dtype=object).astype(str)
    if ids.shape[0] != n:
        raise ValueError(f"input_ids has {ids.shape[0]} entries but X has {n} samples")
    lab = None if labels is None else np.asarray(labels)
    if lab is not None and lab.shape != (n,):
        raise ValueError(f"labels must have shape ({n},); got {lab.shape}")

    problems: list[Problem] = []
    for li, name in enumerate(names):
        layer = arr[:, li, :]
        finite = np.isfinite(layer).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            problems.append(
                Problem(
                    "nonfinite",
                    name,
                    f"{bad.size} sample(s) have NaN or inf at {name}",
                    tuple(bad[:50].tolist()),
                )
            )
            continue
        zero = ~np.any(layer != 0, axis=1)
        if zero.any():
            bad = np.flatnonzero(zero)
            problems.append(
                Problem(
                    "zero_norm",
                    name,
                    f"{bad.size} sample(s) are all-zero at {name}",
                    tuple(bad[:50].tolist()),
                )
            )
        if n > 1 and (layer == layer[0]).all():
            if name not in exempt:
                problems.append(
                    Problem("collapsed_layer", name, f"all {n} samples have the same latent at {name}")
                )
            continue
        if name not in exempt:
            for group in _duplicate_groups(layer, ids):
                problems.append(
                    Problem(
                        "identical_latents",
                        name,
                        f"{group.size} distinct inputs share one latent at {name} (did the input reach the model?)",
                        tuple(group[:50].tolist()),
                    )
                )
        if lab is not None and np.unique(lab).size >= 2 and name not in exempt:
            _, codes = np.unique(lab, return_inverse=True)
            k = int(codes.max()) + 1
            M = np.eye(k)[codes]
            counts = M.sum(axis=0)
            cen = (M.T @ layer.astype(np.float64)) / counts[:, None]
            scatter = np.linalg.norm(layer - cen[codes], axis=1)
            x = layer.astype(np.float64)
            scale = float(
                np.sqrt(2.0 * ((x - x.mean(axis=0)) ** 2).sum(axis=1).mean())
            )  # RMS pairwise distance
            gaps = np.where(np.eye(k, dtype=bool), np.inf, np.linalg.norm(cen[:, None] - cen[None], axis=-1))
            if scatter.max() <= COLLAPSE_RTOL * scale:
                problems.append(
                    Problem("collapsed_clusters", name, f"every cluster has zero within-scatter at {name}")
                )
            elif gaps.min() <= COLLAPSE_RTOL * scale:
                a, b = np.unravel_index(np.argmin(gaps), gaps.shape)
                problems.append(
                    Problem(
                        "collapsed_clusters",
                        name,
                        f"centroids of labels {lab[codes == a][0]!r} and {lab[codes == b][0]!r} coincide at {name}",
                    )
                )
    return problems
