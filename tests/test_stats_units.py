"""Unit tests of benchmark.stats: planted effects, nulls, flags, design resampling, gate, retrieval."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from benchmark.stats import (
    Design,
    bands,
    check_latents,
    davies_bouldin,
    davies_bouldin_statistic,
    group_distance_table,
    hierarchical,
    p_value,
    pairwise_distances,
    pairwise_separability,
    permutation_indices,
    retrieval,
    retrieval_statistic,
    silhouette,
    silhouette_statistic,
    tsne_2d,
    tsne_silhouette,
)
from benchmark.stats.kit import net_curve


def crossed(
    rng: np.random.Generator,
    *,
    n_meaning: int = 16,
    n_lang: int = 4,
    L: int = 3,
    d: int = 24,
    lang_shift: float = 0.0,
):
    """meaning x language latents [n, L, d]: meaning component shared across languages, optional language offsets."""
    meaning = np.repeat(np.arange(n_meaning), n_lang)
    lang = np.tile(np.array(["en", "de", "fr", "ja", "zh", "es"][:n_lang]), n_meaning)
    base = rng.normal(size=(n_meaning, 1, d))[meaning]
    shift = rng.normal(size=(n_lang, 1, d))[np.unique(lang, return_inverse=True)[1]]
    X = base + lang_shift * shift + rng.normal(size=(meaning.size, L, d))
    # Language clustering is permuted within meaning: the crossed design puts one sample of every meaning in
    # each language, and a free permutation breaks that balance (see test_unstratified_null_is_biased).
    return X.astype(np.float32), Design(
        {"meaning": meaning, "language": lang}, units=("meaning",), strata=("meaning",)
    )


def _curve(stat, D, design, label, rng, *, n_perm=199, n_rep=20, strata=None):
    return net_curve(stat, D, design, label, rng=rng, n_perm=n_perm, n_perm_replicate=n_rep, strata=strata)


def _p_values(curve) -> np.ndarray:
    return np.array([curve.combine(np.eye(curve.net.size)[i]).p_structure() for i in range(curve.net.size)])


def test_planted_language_clusters_detected() -> None:
    rng = np.random.default_rng(0)
    X, design = crossed(rng, lang_shift=1.0)
    D = pairwise_distances(X, metric="cosine")
    curve = _curve(silhouette_statistic(), D, design, "language", rng)
    assert np.all(_p_values(curve) < 0.01)
    band = curve.combine(np.full(curve.net.size, 1.0 / curve.net.size))
    assert band.p_structure() < 0.01 and band.bounds(0.05)[0] > 0


def test_shuffled_labels_give_null_effect() -> None:
    rng = np.random.default_rng(1)
    rejections, nets = 0, []
    for _ in range(20):
        X, design = crossed(rng, n_meaning=10, n_lang=3, L=1, lang_shift=0.0)
        D = pairwise_distances(X, metric="cosine")
        curve = _curve(silhouette_statistic(), D, design, "language", rng, n_perm=99, n_rep=5)
        rejections += int(_p_values(curve)[0] < 0.05)
        nets.append(curve.net[0])
    assert rejections <= 4  # E = 1 at alpha 0.05; P(>4) < 0.3% under the null
    assert abs(np.mean(nets)) < 0.01


def test_unstratified_null_is_biased_in_crossed_design() -> None:
    """Free permutation of language labels inflates the null (languages balanced over meanings): net < 0."""
    rng = np.random.default_rng(9)
    X, design = crossed(rng, n_meaning=10, n_lang=3, L=1)
    D = pairwise_distances(X, metric="cosine")
    free = _curve(silhouette_statistic(), D, design, "language", rng, n_rep=5, strata=())
    within = _curve(silhouette_statistic(), D, design, "language", rng, n_rep=5)
    assert free.net[0] < -0.01 and abs(within.net[0]) < abs(free.net[0])


def test_meaning_clusters_within_language_strata() -> None:
    rng = np.random.default_rng(2)
    X, design = crossed(rng, lang_shift=0.3)
    D = pairwise_distances(X, metric="cosine")
    curve = _curve(silhouette_statistic(), D, design, "meaning", rng, n_perm=99, strata=("language",))
    assert np.all(_p_values(curve) < 0.02) and np.all(curve.net > 0)


def test_collapsed_clusters_flagged_not_perfect() -> None:
    X = np.repeat(np.eye(3) * 5.0, 4, axis=0)  # each cluster a single point: zero within-scatter
    labels = np.repeat([0, 1, 2], 4)
    res = davies_bouldin(pairwise_distances(X, metric="euclidean"), labels)
    assert res.collapsed and np.isnan(res.score)
    coincide = np.random.default_rng(0).normal(size=(12, 4))
    coincide -= coincide.mean(axis=0)
    both = np.vstack([coincide, -coincide])  # two clusters with the same centroid (0)
    res2 = davies_bouldin(pairwise_distances(both, metric="euclidean"), np.repeat([0, 1], 12))
    assert res2.collapsed and np.isnan(res2.score)
    with pytest.raises(ValueError, match="collapsed"):
        davies_bouldin_statistic()(pairwise_distances(X, metric="euclidean"), labels[None], np.arange(12))
    problems = check_latents(
        np.stack([both, both], axis=1), layer_names=["emb", "block0"], labels=np.repeat([0, 1], 12)
    )
    assert {p.code for p in problems} == {"collapsed_clusters"}


def test_singletons_flagged() -> None:
    X = np.random.default_rng(3).normal(size=(7, 3))
    res = silhouette(pairwise_distances(X, metric="euclidean"), np.array(["a", "a", "a", "b", "b", "b", "c"]))
    assert res.singletons == ("c",) and res.per_sample[-1] == 0.0


def test_design_validation_messages() -> None:
    with pytest.raises(ValueError, match="unknown factors"):
        Design({"a": np.arange(4)}, units=("b",))
    with pytest.raises(ValueError, match="one length"):
        Design({"a": np.arange(4), "b": np.arange(5)}, units=("a",))
    with pytest.raises(ValueError, match="nested"):
        Design({"a": np.arange(4), "b": np.array([0, 1, 0, 1])}, units=("a",), nested={"b": "a"})
    with pytest.raises(TypeError, match="Generator"):
        permutation_indices(None, 3, rng=0, n=4)  # type: ignore[arg-type]


def test_p_value_and_bands() -> None:
    assert p_value(1.0, np.zeros(99)) == pytest.approx(0.01)
    assert p_value(-1.0, np.zeros(99)) == 1.0
    b = bands(28)
    assert [v.size for v in b.values()] == [9, 10, 9]
    assert np.array_equal(np.concatenate(list(b.values())), np.arange(28))
    assert [v.size for v in bands(32).values()] == [11, 10, 11]
    with pytest.raises(ValueError, match="num_blocks"):
        bands(2)


def test_retrieval_planted_and_chance() -> None:
    rng = np.random.default_rng(6)
    X, design = crossed(rng, n_meaning=20, n_lang=2, L=2)
    X[:, 1] = rng.normal(size=X[:, 1].shape)  # layer 1: no shared meaning
    D = pairwise_distances(X, metric="cosine")
    lang = design.factors["language"]
    res = retrieval(D, design.factors["meaning"], lang, query="en", target="de")
    assert res.top1[0] > 0.8 and res.chance_top1 == pytest.approx(0.05)
    d2 = Design(design.factors, units=("meaning",), strata=("language",))
    curve = _curve(retrieval_statistic(lang, query="en", target="de"), D, d2, "meaning", rng)
    assert _p_values(curve)[0] < 0.01 and curve.null_mean[0] == pytest.approx(0.05, abs=0.01)
    flat = retrieval(np.ones((40, 40)) - np.eye(40), design.factors["meaning"], lang, query="en", target="de")
    assert flat.top1 == pytest.approx(res.chance_top1) and flat.mrr == pytest.approx(res.chance_mrr)


def test_gate_problems() -> None:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(6, 3, 5)).astype(np.float32)
    X[1, 1:] = X[0, 1:]  # distinct inputs, identical latents after emb
    X[:, 0] = X[0, 0]  # same last-token embedding: allowed at emb
    X[4, 2, 0] = np.nan
    names = ["emb", "block0", "final_norm"]
    codes = [(p.code, p.layer) for p in check_latents(X, layer_names=names)]
    assert ("identical_latents", "block0") in codes and ("nonfinite", "final_norm") in codes
    assert not any(layer == "emb" and code == "identical_latents" for code, layer in codes)
    same_input = check_latents(X, layer_names=names, input_ids=["a", "a", "b", "c", "d", "e"])
    assert not any(p.code == "identical_latents" for p in same_input)
    assert check_latents(rng.normal(size=(6, 3, 5)), layer_names=names) == []


def test_tables_hierarchy_and_tsne() -> None:
    rng = np.random.default_rng(8)
    X, design = crossed(rng, n_meaning=10, n_lang=3, L=1, lang_shift=3.0)
    lang = design.factors["language"]
    De = pairwise_distances(X[:, 0], metric="euclidean")
    levels, table = group_distance_table(De, lang, kind="centroid")
    cen = np.stack([X[lang == v, 0].mean(axis=0) for v in levels]).astype(np.float64)
    np.testing.assert_allclose(table, np.linalg.norm(cen[:, None] - cen[None], axis=-1), atol=1e-6)
    _, sep = pairwise_separability(De, lang)
    assert np.all(np.isnan(np.diag(sep))) and np.nanmin(sep) > 0.1
    tree = hierarchical(De, lang)
    assert tree.linkage.shape == (29, 4) and tree.purity == 1.0 and 0 < tree.cophenetic <= 1
    Y = tsne_2d(X[:, 0], rng=np.random.default_rng(0), perplexity=5.0, max_iter=250)
    assert Y.shape == (30, 2) and tsne_silhouette(Y, lang) > 0.3


def test_trusted_distances_lapse_when_writeable() -> None:
    from benchmark.stats import _checks

    rng = np.random.default_rng(3)
    D = pairwise_distances(rng.normal(size=(9, 2, 5)), metric="euclidean")
    single = pairwise_distances(rng.normal(size=(9, 5)))
    assert _checks.is_trusted(D) and _checks.is_trusted(single)
    assert _checks.as_layers(single)[0].shape == (1, 9, 9) and _checks.as_layers(single)[1]
    with pytest.raises(ValueError, match="read-only"):
        D[0, 1, 2] = 5.0
    D.flags.writeable = True
    D[0, 1, 2] = 5.0  # now asymmetric: no longer trusted, so validation catches it
    assert not _checks.is_trusted(D)
    with pytest.raises(ValueError, match="symmetric"):
        _checks.as_layers(D)


def test_distance_rows_restricts_both_axes_and_keeps_trust_only_for_trusted_input() -> None:
    from benchmark.stats import _checks, distance_rows

    rng = np.random.default_rng(4)
    D = pairwise_distances(rng.normal(size=(12, 3, 5)), metric="cosine")
    rows = np.array([7, 1, 4, 10])
    sub = distance_rows(D, rows)
    assert sub.shape == (3, 4, 4) and sub.flags.c_contiguous
    np.testing.assert_array_equal(sub, D[:, rows][:, :, rows])
    assert _checks.is_trusted(sub)  # a restriction of a valid matrix is valid
    plain = np.array(D)  # a writeable copy: never marked
    assert not _checks.is_trusted(distance_rows(plain, rows))


def test_cophenetic_separation_reads_weak_clustering_continuously() -> None:
    """Q1's dendrogram score: near 1 for separated labels, near 0 for labels the tree ignores, and it moves
    a little (not in purity's steps of 1/n) when the clustering strengthens a little."""
    from benchmark.claims.shapes.metric_agreement import _cophenetic_separation, _purity

    rng = np.random.default_rng(3)
    codes = np.repeat(np.arange(4), 12)
    centres = rng.normal(size=(4, 16))
    noise = rng.normal(size=(codes.size, 16))

    def score(shift: float, fn) -> float:  # type: ignore[no-untyped-def]
        X = noise + shift * centres[codes]
        return fn(pairwise_distances(X, metric="euclidean"), codes)

    assert score(8.0, _cophenetic_separation) > 0.9
    assert abs(score(0.0, _cophenetic_separation)) < 0.2
    weak = [score(s, _cophenetic_separation) for s in (0.30, 0.35, 0.40, 0.45)]
    assert all(b > a for a, b in itertools.pairwise(weak))  # strictly rises with a weak effect
    purity = [score(s, _purity) for s in (0.30, 0.35, 0.40, 0.45)]
    assert min(np.diff(purity)) <= 0  # on the same data purity stalls or falls back: rank noise in a curve
