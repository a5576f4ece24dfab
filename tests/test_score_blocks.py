"""The statistics' faster paths give the same numbers to the bit as the direct ones.

Calibration entries are carried across a change of verdict code only when a replay reproduces their decisions bit
for bit, so a speed-up of a score must not move any value: these tests hold the candidate-score table of
``retrieval`` to the direct all-pairs comparison, and every score that reads blocks of the full distance matrix
(``reads_blocks``) to the restricted-copy path it replaces, on designs with unit levels left out.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.stats import Design, pairwise_distances
from benchmark.stats.cluster import silhouette_samples_batch
from benchmark.stats.kit import net_curve
from benchmark.stats.scores import _block, _rank_score, build_score


def _direct_rank_score(Dqt: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Every query's partner compared with every candidate, once per labelling (the definition)."""
    t = Dqt.shape[-1]
    q_idx = np.arange(Dqt.shape[1])[None, :]
    d_correct = Dqt[:, q_idx, pos]
    diff = Dqt[:, None, :, :] - d_correct[..., None]
    farther = (diff > 0).sum(axis=-1)
    ties = (diff == 0).sum(axis=-1) - 1
    return 2.0 * (farther + 0.5 * ties) / (t - 1) - 1.0


@settings(max_examples=60, deadline=None)
@given(
    layers=st.integers(1, 3),
    queries=st.integers(1, 12),
    candidates=st.integers(2, 9),
    labellings=st.integers(1, 12),
    levels=st.sampled_from([0, 2, 3]),
    seed=st.integers(0, 2**32 - 1),
)
def test_candidate_table_gives_the_direct_rank_scores(
    layers: int, queries: int, candidates: int, labellings: int, levels: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    n = queries + candidates
    D = rng.random((layers, n, n))
    if levels:  # a few distinct values: many ties
        D = np.floor(D * levels) / levels
    q, t = np.arange(queries), np.arange(queries, n)
    pos = rng.integers(0, candidates, size=(labellings, queries))
    # the statistic's previous call: blocks by chained indexing (a column-major result), summed over queries
    direct = _direct_rank_score(D[:, q][:, :, t], pos)
    table = _rank_score(_block(D, np.arange(n), q, t), pos)
    assert table.shape == direct.shape
    assert np.array_equal(table, direct)
    # a sum's last bit depends on the order numpy adds in, which follows the memory layout
    assert np.array_equal(table.sum(axis=2), direct.sum(axis=2))


def test_a_block_reads_the_same_values_from_the_full_or_the_restricted_matrix() -> None:
    rng = np.random.default_rng(3)
    D = rng.random((2, 9, 9))
    index = np.array([0, 2, 3, 5, 8])
    restricted = D[np.ix_(np.arange(2), index, index)]
    rows, cols = np.array([1, 4]), np.array([0, 2, 3])
    assert np.array_equal(_block(D, index, rows, cols), restricted[:, rows][:, :, cols])
    assert np.array_equal(_block(restricted, index, rows, cols), restricted[:, rows][:, :, cols])
    assert np.array_equal(_block(D, np.arange(9), rows), D[:, rows][:, :, rows])


def _factors(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A crossed design: 6 meanings x 3 languages x {text, speech} x 2 voices (speech only), shuffled."""
    rows = []
    for meaning in range(6):
        for language in ("en", "de", "fr"):
            rows.append((f"m{meaning}", language, "text", "none"))
            rows.extend((f"m{meaning}", language, "speech", voice) for voice in ("v1", "v2"))
    order = rng.permutation(len(rows))
    columns = list(zip(*[rows[i] for i in order], strict=True))
    return {
        name: np.array(values)
        for name, values in zip(("meaning", "language", "modality", "voice"), columns, strict=True)
    }


#: every score that reads blocks, with parameters its design carries
BLOCK_SCORES = {
    "retrieval": dict(
        label="meaning",
        query={"modality": "speech"},
        target={"modality": "text"},
        groups="language",
        pairing="same",
        strata=["language", "modality", "voice"],
    ),
    "cellwise_silhouette": dict(label="language", cells=["modality"], strata=["modality"]),
    "subset_difference": dict(label="language", axis="modality", first="text", second="speech"),
    "by_subset": dict(label="language", axis="modality", values=["text", "speech"]),
    "pair_separability": dict(axis="language", pairs=[["en", "de"], ["de", "fr"]]),
}


@pytest.mark.parametrize("kind", sorted(BLOCK_SCORES))
def test_reading_blocks_of_the_full_matrix_changes_no_bit_of_a_net_curve(kind: str) -> None:
    rng = np.random.default_rng(11)
    factors = _factors(rng)
    latents = rng.standard_normal((len(factors["meaning"]), 3, 16))
    plan = build_score(kind, factors, BLOCK_SCORES[kind])
    assert plan.reads_blocks
    D = np.ascontiguousarray(pairwise_distances(latents[plan.rows], metric="cosine"))
    design = Design(
        factors={**plan.factors, "meaning": np.asarray(factors["meaning"])[plan.rows]},
        units=("meaning",),
        strata=plan.strata,
    )
    curves = [
        net_curve(
            plan.statistic,
            D,
            design,
            plan.label,
            rng=np.random.default_rng(5),
            n_perm=40,
            n_perm_replicate=10,
            strata=plan.strata,
            permute_level=plan.permute_level,
            reads_blocks=reads_blocks,
        )
        for reads_blocks in (False, True)
    ]
    copied, blocks = curves
    assert np.array_equal(copied.observed, blocks.observed)
    assert np.array_equal(copied.null, blocks.null)
    assert copied.replicates.keys() == blocks.replicates.keys()
    for unit, values in copied.replicates.items():
        assert np.array_equal(values, blocks.replicates[unit]), unit


def test_silhouettes_with_few_labels_match_scikit_learn() -> None:
    """The whole-array minima used for few labels give scikit-learn's silhouette samples."""
    from sklearn.metrics import silhouette_samples

    rng = np.random.default_rng(2)
    X = rng.standard_normal((30, 5))
    D = pairwise_distances(X, metric="euclidean")
    for k in (2, 3, 9):
        labels = np.arange(30) % k
        ours = silhouette_samples_batch(D, labels[None])[0, 0]
        assert np.allclose(ours, silhouette_samples(D, labels, metric="precomputed"), atol=1e-12)
