"""Statistics on per-layer latents: distances once per layer, cluster statistics vectorised over permutations,
net effects with design-based intervals, and the pipeline gate.

Public API
----------
Distances (:mod:`.distances`)
    ``pairwise_distances(X, *, metric)`` -- cosine / euclidean / scaled_euclidean, [n, n] or [L, n, n] float64
    (read-only: built valid, so the statistics skip re-checking it).
Cluster statistics (:mod:`.cluster`)
    ``silhouette(D, labels)``, ``silhouette_batch(D, codes)``, ``silhouette_samples_batch(D, codes)``, ``davies_bouldin(D, labels, *, squared)``,
    ``davies_bouldin_batch``, ``group_distance_table(D, labels, *, kind)``, ``pairwise_separability(D, labels)``,
    ``hierarchical(D, labels, *, method)``; statistics for inference: ``silhouette_statistic()``,
    ``davies_bouldin_statistic()``.
Retrieval (:mod:`.retrieval`)
    ``retrieval(D, pairs, groups, *, query, target)``, ``retrieval_statistic(groups, *, query, target, measure)``.
CKA (:mod:`.cka`)
    ``linear_cka(X, Y, *, debiased)``.
Design (:mod:`.design`)
    ``Design(factors, units, strata, nested)`` with ``.permute``; ``permute_within``, ``permutation_indices``.
Inference (:mod:`.kit`, the one inference kit of the claims)
    ``net_curve(stat, D, design, label, *, rng, n_perm, n_perm_replicate, ...) -> NetCurve`` (``.combine`` ->
    ``Estimate`` with jackknife-t ``.bounds``), ``minimum``/``maximum`` (intersection-union), ``Reduction``,
    ``joint_power``; ``p_value`` and ``bands(num_blocks)`` (:mod:`.inference`).
Scores (:mod:`.scores`)
    The statistics of a labelling that claims name in their specs (``SCORES``, ``build_score``).
Gate (:mod:`.gate`)
    ``check_latents(X, *, layer_names, input_ids, labels) -> list[Problem]``.
Figures only (:mod:`.tsne`)
    ``tsne_2d(X, *, rng)``, ``tsne_silhouette(Y, labels)``.

Conventions: distances ``D`` are ``[n, n]`` or ``[L, n, n]``; labellings for batched statistics are integer codes
``[P, n]``; every random draw takes an explicit ``rng: np.random.Generator``.
"""

from ._checks import trust_distances
from .cka import linear_cka
from .cluster import (
    DaviesBouldinResult,
    HierarchyResult,
    SilhouetteResult,
    Statistic,
    davies_bouldin,
    davies_bouldin_batch,
    davies_bouldin_statistic,
    group_distance_table,
    hierarchical,
    pairwise_separability,
    silhouette,
    silhouette_batch,
    silhouette_samples_batch,
    silhouette_statistic,
)
from .design import Design, permutation_indices, permute_within
from .distances import METRICS, distance_rows, pairwise_distances
from .gate import Problem, check_latents
from .inference import bands, p_value
from .retrieval import RetrievalResult, retrieval, retrieval_statistic
from .tsne import tsne_2d, tsne_silhouette

__all__ = [
    "METRICS",
    "DaviesBouldinResult",
    "Design",
    "HierarchyResult",
    "Problem",
    "RetrievalResult",
    "SilhouetteResult",
    "Statistic",
    "bands",
    "check_latents",
    "davies_bouldin",
    "davies_bouldin_batch",
    "davies_bouldin_statistic",
    "distance_rows",
    "group_distance_table",
    "hierarchical",
    "linear_cka",
    "p_value",
    "pairwise_distances",
    "pairwise_separability",
    "permutation_indices",
    "permute_within",
    "retrieval",
    "retrieval_statistic",
    "silhouette",
    "silhouette_batch",
    "silhouette_samples_batch",
    "silhouette_statistic",
    "trust_distances",
    "tsne_2d",
    "tsne_silhouette",
]
