"""The delete-two correction of the jackknife variance that ``benchmarks/jackknife_pairs.py`` tries on the
calibration's populations: unbiased on a degree-2 U-statistic, where the plain delete-one variance counts the
pairwise part about twice; a no-op on a statistic with no pairwise part."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from benchmarks.jackknife_pairs import cross_variance, pair_list, pairwise_excess, u_centre


def _pair_mean(kernel: np.ndarray, keep: list[int]) -> float:
    sub = kernel[np.ix_(keep, keep)]
    m = len(keep)
    return float((sub.sum() - np.trace(sub)) / (m * (m - 1)))


def _variances(n: int, main_sd: float, pair_sd: float, reps: int, seed: int) -> tuple[float, float, float]:
    """True variance of a mean over pairs of ``x_i + x_j + z_i z_j``, and the mean delete-one and corrected
    jackknife variances over ``reps`` samples of ``n`` units."""
    rng = np.random.default_rng(seed)
    values, plain, corrected = [], [], []
    for _ in range(reps):
        x, z = rng.normal(0, main_sd, n), rng.normal(0, pair_sd, n)
        kernel = x[:, None] + x[None, :] + np.outer(z, z)
        units = list(range(n))
        full = _pair_mean(kernel, units)
        singles = np.array([_pair_mean(kernel, [k for k in units if k != i]) for i in units])
        pairs = np.array([_pair_mean(kernel, [k for k in units if k not in (i, j)]) for i, j in pair_list(n)])
        v1 = (n - 1) / n * float(((singles - singles.mean()) ** 2).sum())
        values.append(full)
        plain.append(v1)
        corrected.append(v1 - pairwise_excess(full, singles, pairs, n))
    return float(np.var(values)), float(np.mean(plain)), float(np.mean(corrected))


def test_u_centring_removes_additive_parts_and_keeps_interactions() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=9), rng.normal(size=(9, 9))
    interaction = b + b.T
    additive = a[:, None] + a[None, :] + 2.5
    np.testing.assert_allclose(u_centre(additive), 0.0, atol=1e-12)
    np.testing.assert_allclose(u_centre(interaction + additive), u_centre(interaction), atol=1e-12)
    assert np.abs(u_centre(interaction)).sum() > 1.0


@pytest.mark.parametrize(("n", "main_sd", "pair_sd"), [(12, 0.3, 1.5), (10, 0.3, 1.0)])
def test_correction_is_unbiased_on_a_degree_two_u_statistic(n: int, main_sd: float, pair_sd: float) -> None:
    truth, plain, corrected = _variances(n, main_sd, pair_sd, reps=600, seed=n)
    assert plain > 1.3 * truth  # the delete-one jackknife counts the pairwise part about twice
    assert corrected == pytest.approx(truth, rel=0.15)


def test_correction_leaves_a_statistic_without_pairs_alone() -> None:
    truth, plain, corrected = _variances(12, 1.0, 0.0, reps=300, seed=5)
    assert plain == pytest.approx(truth, rel=0.15) and corrected == pytest.approx(plain, rel=1e-9)


def test_pairs_cover_a_subset_of_at_most_twelve_levels() -> None:
    assert pair_list(5) == list(combinations(range(5), 2))
    assert len(pair_list(38)) == 66


def test_cross_products_of_two_noisy_copies_drop_the_monte_carlo_noise() -> None:
    """The crossfit variant: replicates computed twice with independent chance-level noise. The plain variance
    of one copy counts the noise; the cross-product of the two copies does not, on average."""
    rng = np.random.default_rng(11)
    n, reps = 12, 2000
    signal = rng.normal(0, 1.0, (reps, n))
    plain, cross, clean = [], [], []
    for row in signal:
        a, b = row + rng.normal(0, 0.7, n), row + rng.normal(0, 0.7, n)
        plain.append((n - 1) / n * float(((a - a.mean()) ** 2).sum()))
        cross.append(cross_variance(a, b))
        clean.append((n - 1) / n * float(((row - row.mean()) ** 2).sum()))
    assert np.mean(plain) > 1.3 * np.mean(clean)
    assert np.mean(cross) == pytest.approx(np.mean(clean), rel=0.05)


def test_crossfit_interaction_estimate_ignores_independent_noise() -> None:
    """Delta built from noisy replicates: squares count the noise as interaction, cross-products do not."""
    rng = np.random.default_rng(12)
    n = 12
    x = rng.normal(0, 0.3, n)
    kernel = x[:, None] + x[None, :]  # additive: no interaction at all
    units = list(range(n))
    full = _pair_mean(kernel, units)
    singles = np.array([_pair_mean(kernel, [k for k in units if k != i]) for i in units])
    pairs = np.array([_pair_mean(kernel, [k for k in units if k not in (i, j)]) for i, j in pair_list(n)])
    squares, products = [], []
    for _ in range(300):
        noisy = [
            (singles + rng.normal(0, 0.01, n), pairs + rng.normal(0, 0.01, pairs.size)) for _ in range(2)
        ]
        squares.append(pairwise_excess(full, *noisy[0], n))
        products.append(pairwise_excess(full, noisy[0][0], noisy[0][1], n, noisy[1][0], noisy[1][1]))
    assert np.mean(squares) > 10 * abs(np.mean(products))
    assert abs(np.mean(products)) < 3 * np.std(products) / np.sqrt(len(products))
