"""Unit tests of benchmark.stats: planted effects, nulls, flags, design resampling, gate, retrieval."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.stats import (
    Design,
    bands,
    check_latents,
    davies_bouldin,
    davies_bouldin_statistic,
    effect,
    equivalence_power,
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


def test_planted_language_clusters_detected() -> None:
    rng = np.random.default_rng(0)
    X, design = crossed(rng, lang_shift=1.0)
    D = pairwise_distances(X, metric="cosine")
    eff = effect(silhouette_statistic(), D, design, "language", rng=rng, n_perm=199, n_resamples=60)
    assert np.all(eff.p < 0.01)
    assert np.all(eff.ci[:, 0] > 0)
    band = eff.band(slice(None))
    assert band.p < 0.01 and band.ci_low > 0


def test_shuffled_labels_give_null_effect() -> None:
    rng = np.random.default_rng(1)
    rejections, nets = 0, []
    for _ in range(20):
        X, design = crossed(rng, n_meaning=10, n_lang=3, L=1, lang_shift=0.0)
        D = pairwise_distances(X, metric="cosine")
        eff = effect(
            silhouette_statistic(),
            D,
            design,
            "language",
            rng=rng,
            n_perm=99,
            n_resamples=10,
            n_perm_resample=5,
        )
        rejections += int(eff.p[0] < 0.05)
        nets.append(eff.net[0])
    assert rejections <= 4  # E = 1 at alpha 0.05; P(>4) < 0.3% under the null
    assert abs(np.mean(nets)) < 0.01


def test_unstratified_null_is_biased_in_crossed_design() -> None:
    """Free permutation of language labels inflates the null (languages balanced over meanings): net < 0."""
    rng = np.random.default_rng(9)
    X, design = crossed(rng, n_meaning=10, n_lang=3, L=1)
    D = pairwise_distances(X, metric="cosine")
    free = effect(
        silhouette_statistic(), D, design, "language", rng=rng, n_perm=199, n_resamples=5, strata=()
    )
    within = effect(silhouette_statistic(), D, design, "language", rng=rng, n_perm=199, n_resamples=5)
    assert free.net[0] < -0.01 and abs(within.net[0]) < abs(free.net[0])


def test_meaning_clusters_within_language_strata() -> None:
    rng = np.random.default_rng(2)
    X, design = crossed(rng, lang_shift=0.3)
    D = pairwise_distances(X, metric="cosine")
    eff = effect(
        silhouette_statistic(), D, design, "meaning", rng=rng, n_perm=99, n_resamples=20, strata=("language",)
    )
    assert np.all(eff.p < 0.02) and np.all(eff.net > 0)


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


def test_design_subsample_never_duplicates() -> None:
    rng = np.random.default_rng(4)
    sentence = np.repeat(np.arange(9), 12)
    speaker = np.tile(np.repeat(np.arange(6), 2), 9)
    device = np.tile(np.arange(2), 54)
    accent = speaker % 2
    design = Design(
        {"sentence": sentence, "speaker": speaker, "device": device, "accent": accent},
        units=("sentence", "speaker"),
        strata=("accent",),
        nested={"speaker": "accent"},
    )
    res = design.subsample(50, rng=rng, fraction=0.5)
    for idx in res.indices:
        assert np.unique(idx).size == idx.size
        assert np.unique(sentence[idx]).size == 4 or np.unique(sentence[idx]).size == 5
        assert np.unique(speaker[idx]).size == 3
    bal = Design({"speaker": speaker, "accent": accent}, units=("speaker",)).subsample(
        20, rng=rng, balance="accent"
    )
    for idx in bal.indices:
        assert set(accent[idx]) == {0, 1} and np.unique(idx).size == idx.size
    assert Design({"m": np.repeat(np.arange(8), 2)}, units=("m",)).subsample(1, rng=rng).correction == 1.0


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


def test_equivalence_power_grows_with_n() -> None:
    rng = np.random.default_rng(5)
    X, design = crossed(rng, n_meaning=12, L=1)
    D = pairwise_distances(X, metric="cosine")
    band = effect(silhouette_statistic(), D, design, "language", rng=rng, n_perm=49, n_resamples=40).band(
        slice(None)
    )
    small = equivalence_power(band, eps=band.se * 2)
    big = equivalence_power(band, eps=band.se * 2, n_units=48, n_units_observed=12)
    assert 0.0 < small < big <= 1.0
    assert equivalence_power(band, eps=band.se * 2, method="empirical") == pytest.approx(small, abs=0.25)


def test_retrieval_planted_and_chance() -> None:
    rng = np.random.default_rng(6)
    X, design = crossed(rng, n_meaning=20, n_lang=2, L=2)
    X[:, 1] = rng.normal(size=X[:, 1].shape)  # layer 1: no shared meaning
    D = pairwise_distances(X, metric="cosine")
    lang = design.factors["language"]
    res = retrieval(D, design.factors["meaning"], lang, query="en", target="de")
    assert res.top1[0] > 0.8 and res.chance_top1 == pytest.approx(0.05)
    d2 = Design(design.factors, units=("meaning",), strata=("language",))
    eff = effect(
        retrieval_statistic(lang, query="en", target="de"),
        D,
        d2,
        "meaning",
        rng=rng,
        n_perm=199,
        n_resamples=20,
    )
    assert eff.p[0] < 0.01 and eff.null_mean[0] == pytest.approx(0.05, abs=0.01)
    flat = retrieval(np.ones((40, 40)) - np.eye(40), design.factors["meaning"], lang, query="en", target="de")
    assert flat.top1 == pytest.approx(res.chance_top1) and flat.mrr == pytest.approx(res.chance_mrr)


def _old_effect_gather(Dl: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The subsample gathering ``effect`` used before ``np.take`` (kept as the reference)."""
    return Dl[:, idx[:, None], idx[None, :]]


@pytest.mark.parametrize("statistic", ["silhouette", "davies_bouldin", "retrieval"])
def test_effect_bit_identical_with_trusted_stacks_and_take(
    statistic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Skipping re-validation of ``pairwise_distances`` stacks and gathering subsamples with ``np.take`` change
    no bit of ``effect``: same seed, same null, draws, intervals as the validated, fancy-indexed path."""
    import benchmark.stats.inference as inference
    from benchmark.stats import _checks

    X, design = crossed(np.random.default_rng(31), n_meaning=14, n_lang=3, L=4, d=20, lang_shift=0.4)
    metric = "euclidean" if statistic == "davies_bouldin" else "cosine"
    D = pairwise_distances(X, metric=metric)
    assert not D.flags.writeable and _checks._is_trusted(D)
    writable = D.copy()  # an equal array the module did not build: validated on every call
    assert writable.flags.writeable and not _checks._is_trusted(writable)
    lang = design.factors["language"]
    stat, label = {
        "silhouette": (silhouette_statistic(), "language"),
        "davies_bouldin": (davies_bouldin_statistic(), "language"),
        "retrieval": (retrieval_statistic(lang, query="en", target="de"), "meaning"),
    }[statistic]
    if statistic == "retrieval":
        design = Design(design.factors, units=("meaning",), strata=("language",))
    kwargs = {"n_perm": 29, "n_resamples": 7, "n_perm_resample": 4}

    new = effect(stat, D, design, label, rng=np.random.default_rng(5), **kwargs)
    checked: list[bool] = []
    real_as_layers = inference.as_layers

    def spy(arr: np.ndarray, **kw: object) -> tuple[np.ndarray, bool]:
        checked.append(_checks._is_trusted(np.asarray(arr)))
        return real_as_layers(arr, **kw)

    monkeypatch.setattr(inference, "_subsample", _old_effect_gather)
    monkeypatch.setattr(inference, "as_layers", spy)
    old = effect(stat, writable, design, label, rng=np.random.default_rng(5), **kwargs)
    assert checked == [False]  # the reference run really validated
    for name in ("observed", "null_mean", "net", "p", "ci", "se", "null", "draws"):
        assert np.array_equal(getattr(new, name), getattr(old, name), equal_nan=True), name
    assert new.n_units == old.n_units


def test_trusted_distances_lapse_when_writeable_and_subsample_matches_fancy_index() -> None:
    from benchmark.stats import _checks
    from benchmark.stats.inference import _subsample

    rng = np.random.default_rng(3)
    D = pairwise_distances(rng.normal(size=(9, 2, 5)), metric="euclidean")
    single = pairwise_distances(rng.normal(size=(9, 5)))
    assert _checks._is_trusted(D) and _checks._is_trusted(single)
    assert _checks.as_layers(single)[0].shape == (1, 9, 9) and _checks.as_layers(single)[1]
    with pytest.raises(ValueError, match="read-only"):
        D[0, 1, 2] = 5.0
    D.flags.writeable = True
    D[0, 1, 2] = 5.0  # now asymmetric: no longer trusted, so validation catches it
    assert not _checks._is_trusted(D)
    with pytest.raises(ValueError, match="symmetric"):
        _checks.as_layers(D)
    idx = np.array([0, 2, 3, 7])
    got = _subsample(D, idx)
    assert got.flags.c_contiguous and np.array_equal(got, _old_effect_gather(D, idx))


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
