"""The inference kit on synthetic designs with known answers (benchmark/stats/kit.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sp

from benchmark.stats import Design, kit, pairwise_distances, silhouette_statistic
from benchmark.stats.kit import (
    Estimate,
    Reduction,
    apply,
    joint_power,
    layer_weights,
    maximum,
    minimum,
    net_curve,
    restricted_permutations,
)


def unit_mean_statistic(values: np.ndarray):
    """A statistic that is the mean over samples of a fixed per-sample value (per layer): linear in the units,
    so its jackknife standard error is exactly the textbook one."""

    def stat(D: np.ndarray, codes: np.ndarray, index: np.ndarray) -> np.ndarray:
        return np.repeat(values[index].mean(axis=0)[None], codes.shape[0], axis=0)

    return stat


def test_jackknife_of_a_mean_is_the_textbook_standard_error() -> None:
    rng = np.random.default_rng(0)
    n_units = 9
    per_unit = rng.normal(size=(n_units, 3))
    values = np.repeat(per_unit, 4, axis=0)  # 4 samples per unit, all alike
    design = Design({"unit": np.repeat(np.arange(n_units), 4).astype(str)}, units=("unit",))
    D = np.zeros((3, 36, 36))
    curve = net_curve(unit_mean_statistic(values), D, design, None, rng=rng, n_perm=5, n_perm_replicate=5)
    est = curve.combine(np.array([1.0, 0.0, 0.0]))
    assert est.value == pytest.approx(per_unit[:, 0].mean())
    assert est.se == pytest.approx(per_unit[:, 0].std(ddof=1) / np.sqrt(n_units))
    assert est.df == pytest.approx(n_units - 1)
    low, high = est.bounds(0.05)
    t = sp.t.ppf(0.95, n_units - 1)
    u = per_unit[:, 0] - per_unit[:, 0].mean()  # a mean's influence values
    a = (u**3).sum() / (6 * (u**2).sum() ** 1.5)
    assert est.skew == pytest.approx(a)
    widen = (2 * t * t + 1) * est.se
    assert low == pytest.approx(est.value - t * est.se - max(-a, 0) * widen)
    assert high == pytest.approx(est.value + t * est.se + max(a, 0) * widen)


def test_skewed_units_widen_only_the_side_they_point_to() -> None:
    """Right-skewed unit effects (log-normal) widen the upper bound (Johnson's modified t) and leave the lower
    bound at the plain studentised one; p-values are the levels at which the bounds meet a threshold."""
    x = np.random.default_rng(3).lognormal(0.0, 0.8, size=12)
    reps = np.array([(x.sum() - xi) / (x.size - 1) for xi in x])
    est = kit.Estimate(value=float(x.mean()), replicates={"unit": reps}, null=np.zeros(1))
    t = sp.t.ppf(0.95, x.size - 1)
    assert est.skew > 0
    low, high = est.bounds(0.05)
    assert low == pytest.approx(est.value - t * est.se)
    assert high - est.value > t * est.se
    assert est.p_greater(low) == pytest.approx(0.05)
    assert est.p_less(high) == pytest.approx(0.05)
    mirrored = kit.Estimate(value=-est.value, replicates={"unit": -reps}, null=np.zeros(1))
    assert mirrored.bounds(0.05) == pytest.approx((-high, -low))


def test_restricted_bounds_are_the_inverted_score_test() -> None:
    """An equivalence test's bounds (``restricted``) invert the score test: the replicates' variance about the
    value tested, ``se^2 + (value - theta)^2 / df``, puts them ``t / sqrt(1 - t^2 / df)`` standard errors out
    (plus the same one-sided skew widening); p-values are the levels at which they meet a threshold, and too few
    units for any sample to reach the bound give an infinite one."""
    x = np.random.default_rng(3).lognormal(0.0, 0.8, size=12)
    reps = np.array([(x.sum() - xi) / (x.size - 1) for xi in x])
    plain = kit.Estimate(value=float(x.mean()), replicates={"unit": reps}, null=np.zeros(1))
    score = kit.Estimate(value=plain.value, replicates={"unit": reps}, null=np.zeros(1), restricted=True)
    t = sp.t.ppf(0.95, 11)
    inflated = t / np.sqrt(1 - t * t / 11)
    low, high = score.bounds(0.05)
    assert low == pytest.approx(score.value - inflated * score.se)
    widen = max(score.skew, 0.0) * (2 * t * t + 1)
    assert high == pytest.approx(score.value + (inflated + widen) * score.se)
    assert high - plain.bounds(0.05)[1] == pytest.approx((inflated - t) * score.se)
    for theta, bound in ((high, "upper"), (low, "lower")):
        p = score.p_less(theta) if bound == "upper" else score.p_greater(theta)
        assert p == pytest.approx(0.05), bound
    # the score statistic itself, without skew: (theta - value) / sqrt(se^2 + (theta - value)^2 / df)
    flat = kit.Estimate(0.0, {"unit": np.linspace(-1, 1, 12)}, np.zeros(1), restricted=True)
    d = 3 * flat.se
    assert flat.p_less(d) == pytest.approx(sp.t.sf(d / np.sqrt(flat.se**2 + d * d / 11), 11))
    assert flat.power(10 * flat.se, 0.05) < kit.Estimate(0.0, flat.replicates, flat.null).power(
        10 * flat.se, 0.05
    )
    few = kit.Estimate(0.0, {"unit": np.array([-1.0, 0.0, 1.0, 0.5])}, np.zeros(1), restricted=True)
    assert (
        few.bounds(0.05)[1] == np.inf
    )  # t(3) = 2.35, t^2 > 3: four units never show an effect below a margin
    both = Reduction("max", (plain, plain), ("a", "b")).restricted()
    assert all(part.restricted for part in both.parts)
    assert apply(np.subtract, score, plain).restricted


def test_two_crossed_units_add_their_variances() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=6), rng.normal(size=5)
    grid = np.array([[x + y for y in b] for x in a]).reshape(-1, 1)  # additive: no interaction
    design = Design(
        {"a": np.repeat(np.arange(6), 5).astype(str), "b": np.tile(np.arange(5), 6).astype(str)},
        units=("a", "b"),
    )
    curve = net_curve(
        unit_mean_statistic(grid), np.zeros((1, 30, 30)), design, None, rng=rng, n_perm=3, n_perm_replicate=3
    )
    est = curve.combine(np.ones(1))
    expected = np.var(a, ddof=1) / 6 + np.var(b, ddof=1) / 5
    assert est.se**2 == pytest.approx(expected)
    assert 4 <= est.df <= 9  # Satterthwaite between the two factors' n - 1 and their sum


def _language_design(n_meanings: int, strength: float, rng: np.random.Generator):
    n_lang, d = 4, 8
    lang = rng.normal(size=(n_lang, d))
    meaning = rng.normal(size=(n_meanings, d))
    m = np.repeat(np.arange(n_meanings), n_lang)
    lab = np.tile(np.arange(n_lang), n_meanings)
    X = (strength * lang[lab] + meaning[m] + 0.5 * rng.normal(size=(m.size, d)))[:, None, :]
    design = Design(
        {"meaning": m.astype(str), "language": lab.astype(str)}, units=("meaning",), strata=("meaning",)
    )
    return pairwise_distances(X), design


def test_planted_language_structure_is_found_and_its_absence_is_bounded() -> None:
    rng = np.random.default_rng(2)
    D, design = _language_design(16, 3.0, rng)
    strong = net_curve(
        silhouette_statistic(), D, design, "language", rng=rng, n_perm=200, n_perm_replicate=20
    )
    est = strong.combine(np.ones(1))
    assert est.bounds(0.05)[0] > 0.2
    assert est.p_structure() < 0.01
    D0, design0 = _language_design(16, 0.0, rng)
    null = net_curve(
        silhouette_statistic(), D0, design0, "language", rng=rng, n_perm=200, n_perm_replicate=20
    )
    low, high = null.combine(np.ones(1)).bounds(0.05)
    assert low < 0.0 < high or abs(null.net[0]) < 0.02


def test_net_effect_is_zero_at_chance() -> None:
    """Shuffled labels: the observed silhouette sits inside its null, so the net effect is near 0."""
    rng = np.random.default_rng(3)
    D, design = _language_design(12, 0.0, rng)
    curve = net_curve(silhouette_statistic(), D, design, "language", rng=rng, n_perm=400, n_perm_replicate=20)
    assert abs(curve.net[0]) < 3 * curve.null.std(axis=0)[0]


def test_permuting_by_group_keeps_a_groups_label_whole() -> None:
    rng = np.random.default_rng(4)
    speakers = np.repeat(np.arange(6), 3)
    gender = np.array(["f", "f", "m", "m", "f", "m"])[speakers]
    design = Design({"speaker": speakers.astype(str), "gender": gender}, units=("speaker",))
    seen = []

    def stat(D: np.ndarray, codes: np.ndarray, index: np.ndarray) -> np.ndarray:
        spk = speakers[index]
        for row in codes:
            for s in np.unique(spk):
                assert np.unique(row[spk == s]).size == 1  # one label per speaker in every labelling
        seen.append(codes.shape[0])
        return np.zeros((codes.shape[0], 1))

    net_curve(
        stat,
        np.zeros((1, 18, 18)),
        design,
        "gender",
        rng=rng,
        n_perm=30,
        n_perm_replicate=5,
        permute_level="speaker",
    )
    assert seen[0] == 31 and len(seen) == 1 + 6  # full data, then one replicate per speaker


def test_permute_level_refuses_a_label_that_varies_within_a_group() -> None:
    design = Design(
        {"speaker": np.array(["a", "a", "b", "b"]), "x": np.array(["1", "2", "1", "2"])}, units=("speaker",)
    )
    with pytest.raises(ValueError, match="not constant within each 'speaker'"):
        net_curve(
            lambda D, c, i: np.zeros((c.shape[0], 1)),
            np.zeros((1, 4, 4)),
            design,
            "x",
            rng=np.random.default_rng(0),
            n_perm=3,
            n_perm_replicate=3,
            permute_level="speaker",
        )


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 3), min_size=4, max_size=30),
    st.integers(0, 2**31 - 1),
)
def test_restricted_permutations_stay_within_strata(strata_list: list[int], seed: int) -> None:
    strata = np.array(strata_list)
    rng = np.random.default_rng(seed)
    keys = rng.random((7, strata.size))
    keep = rng.random(strata.size) < 0.7
    if keep.sum() < 2:
        keep[:2] = True
    perm = restricted_permutations(keys, strata, keep)
    kept = strata[keep]
    for row in perm:
        assert sorted(row.tolist()) == list(range(keep.sum()))
        assert np.array_equal(kept[row], kept)  # each position receives a sample of its own stratum


def _estimate(value: float, reps: np.ndarray) -> Estimate:
    return Estimate(value=value, replicates={"u": np.asarray(reps, dtype=float)}, null=np.zeros(10))


def test_minimum_and_maximum_are_intersection_union_bounds() -> None:
    a = _estimate(0.3, np.array([0.29, 0.31, 0.30, 0.32, 0.28]))
    b = _estimate(0.1, np.array([0.05, 0.15, 0.10, 0.12, 0.08]))
    low, high = minimum([a, b], 0.05).low, minimum([a, b], 0.05).high
    assert low == pytest.approx(min(a.bounds(0.05)[0], b.bounds(0.05)[0]))
    assert high == pytest.approx(min(a.bounds(0.025)[1], b.bounds(0.025)[1]))
    mx = maximum([a, b], 0.05)
    assert mx.value == 0.3 and mx.high == pytest.approx(max(a.bounds(0.05)[1], b.bounds(0.05)[1]))
    assert Reduction("min", (a, b), ("a", "b")).value == 0.1


def test_smooth_reductions_apply_to_every_replicate() -> None:
    a = _estimate(2.0, np.array([1.9, 2.1, 2.0, 2.2]))
    b = _estimate(1.0, np.array([1.0, 1.1, 0.9, 1.0]))
    diff = Reduction("difference", (a, b), ("a", "b")).combined
    assert diff is not None and diff.value == 1.0
    assert np.allclose(diff.replicates["u"], a.replicates["u"] - b.replicates["u"])
    log_ratio = Reduction("log_ratio", (a, b), ("a", "b")).combined
    assert log_ratio is not None and log_ratio.value == pytest.approx(np.log(2.0))
    with pytest.raises(ValueError, match="different designs"):
        apply(np.subtract, a, Estimate(1.0, {"v": np.ones(4)}, np.zeros(3)))


def test_joint_power_is_below_each_parts_power() -> None:
    rng = np.random.default_rng(5)
    reps = rng.normal(0.0, 0.01, size=(3, 12))
    parts = [_estimate(0.0, reps[i]) for i in range(3)]
    joint = joint_power(parts, 0.05, 0.05)
    assert 0.0 < joint <= min(p.power(0.05, 0.05) for p in parts) + 0.01
    assert joint_power(parts[:1], 0.05, 0.05) == pytest.approx(parts[0].power(0.05, 0.05), abs=0.03)


def test_power_grows_with_the_margin_and_p_values_are_one_sided() -> None:
    est = _estimate(0.0, np.linspace(-0.02, 0.02, 10))
    assert est.power(0.02, 0.05) < est.power(0.05, 0.05) < est.power(0.2, 0.05)
    up = _estimate(0.3, np.linspace(0.29, 0.31, 10))
    assert up.p_greater(0.1) < 0.01 and up.p_less(0.1) > 0.99


def test_layer_weights_mean_and_contrast() -> None:
    w = layer_weights(5, [0, 1], [3])
    assert np.allclose(w, [0.5, 0.5, 0.0, -1.0, 0.0])
    with pytest.raises(ValueError):
        layer_weights(3, [])


def test_an_absence_verdict_reads_the_score_bound() -> None:
    """An upper bound that the plain interval puts below epsilon but the score test does not leaves the absence
    inconclusive; the decision's bounds and p-value are the score test's."""
    from benchmark.claims.registry import get_claim
    from benchmark.claims.verdict import decide

    rule = get_claim("S6-speech-no-crosslingual-semantics").rule
    reps = np.linspace(0.06, 0.08, 12)
    plain = Estimate(0.058, {"unit": reps}, np.zeros(3))
    room = (rule.epsilon - plain.value) / plain.se  # the plain bound sits t(11) = 1.80 se out
    assert sp.t.ppf(0.95, 11) < room < sp.t.ppf(0.95, 11) / np.sqrt(1 - sp.t.ppf(0.95, 11) ** 2 / 11)
    assert plain.bounds(rule.alpha)[1] < rule.epsilon
    decision = decide(rule, Reduction("single", (plain,), ("middle",)), reference_verdict="holds")
    assert decision.verdict == "inconclusive" and decision.bounds.high >= rule.epsilon
    assert decision.p_value == pytest.approx(Estimate(0.058, plain.replicates, plain.null, True).p_less(0.1))


def test_too_few_units_leave_an_absence_inconclusive_with_finite_numbers() -> None:
    """Four units (t(3)^2 > 3): the score bound is unbounded, so the verdict is inconclusive, never an error,
    and the record keeps the plain bounds (JSON has no infinity)."""
    from benchmark.claims.registry import get_claim
    from benchmark.claims.verdict import decide

    rule = get_claim("S6-speech-no-crosslingual-semantics").rule
    few = Estimate(0.01, {"unit": np.array([0.0, 0.01, 0.02, 0.01])}, np.zeros(3))
    decision = decide(rule, Reduction("single", (few,), ("middle",)), reference_verdict="holds")
    assert decision.verdict == "inconclusive" and "unbounded" in decision.reason
    assert np.isfinite([decision.bounds.low, decision.bounds.high, decision.p_value, decision.power]).all()
    assert decision.bounds.high < rule.epsilon  # the plain bound alone would have passed it
