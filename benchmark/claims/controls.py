"""The one planter: semi-synthetic control latents whose population effect is known (CLAIMS.md, "Calibration").

A control population is built from a pool of real latents (a model's full-profile latents):

1. **shuffle** the pool so the structure the claim measures is gone (rows permuted within the design's strata,
   a member that no real probe set puts into the contrast left in place, or a named shuffle: every layer a rescaled copy of ``block0`` for T2, the two versions of a pair swapped for
   S3, whole speakers relabelled for D1); token controls move with their rows;
2. **plant** label-dependent offsets: a random unit direction per level of each key (per layer), times the
   layer's RMS spread, on the declared layers and members;
3. **solve** the offsets' scale so that the *population effect* equals a target size: the claim's point
   estimate averaged over a fixed set of samples of the calibrated size drawn from the pool (a silhouette of 4
   transcripts is another quantity than one of 8, so the population effect is defined at the sample size).

Calibration then draws fresh samples of that size from the planted pool and decides each with the claim's own
rule and interval, so the estimates scatter around the planted value as real data would; a plant is never
solved on the sample that is scored. Distances of ``pool + s * offsets`` for any scale ``s`` come from three
Gram matrices per layer (``(X + sO)(X + sO)^T = XX^T + s(XO^T + OX^T) + s^2 OO^T``), so the solver's many
evaluations cost elementwise work, not a distance computation each.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmark.claims.data import PILOT, ClaimData
from benchmark.claims.shapes import band_contrast, metric_agreement
from benchmark.claims.solve import plant_scale
from benchmark.claims.spec import BandContrast, ClaimSpec, MetricAgreement, Plant, Shuffle
from benchmark.stats import trust_distances
from benchmark.stats.scores import combine_keys

#: Largest offset scale the solver tries (in units of a layer's spread): one limit for every claim.
SCALE_LIMIT = 512.0
#: Standard deviation of the log strength of a planted effect between design units: real effects differ from
#: meaning to meaning and speaker to speaker, and an interval calibrated only on effects that are equal in every
#: unit would hide the skew such differences give an estimate (benchmarks/coverage.py, reports/coverage.md).
UNIT_SPREAD = 0.5


#: Seeds drawn from one population before the next is built, at the ci size; also the size of every entry that
#: does not record its own (all were made so until the full size moved to ``POPULATION_SEEDS["full"]``).
SEEDS_PER_POPULATION = 50
#: Seeds per population by calibrated size. A population costs 3-8 s at the ci size against 0.1-0.4 s a seed,
#: 20-30 s at the full size against 2-6 s a seed; the full size's 200 seeds then span 10 populations, not 4,
#: since a rate's interval rests on the number of populations as much as on the number of seeds.
POPULATION_SEEDS = {"ci": SEEDS_PER_POPULATION, "full": 20}


def seeds_per_population(size_name: str) -> int:
    """Seeds per population at a calibrated size (:data:`POPULATION_SEEDS`)."""
    return POPULATION_SEEDS.get(size_name, SEEDS_PER_POPULATION)


def population_size_of(entry: dict[str, Any]) -> int:
    """The seeds per population an entry was calibrated with."""
    return int(entry.get("seeds_per_population", SEEDS_PER_POPULATION))


def population_seed(spec: ClaimSpec, template: str, index: int) -> list[int]:
    """The generator seed of a claim's ``index``-th calibration population under ``template``."""
    digest = int(hashlib.sha256(f"{spec.id}|{template}|{index}".encode()).hexdigest()[:12], 16)
    return [digest, index]


# ------------------------------------------------------------------------------------------------ shuffles


def _strata_codes(data: ClaimData, axes: Sequence[str]) -> np.ndarray:
    keys = combine_keys(data.factors(list(axes)), list(axes))
    return np.unique(keys.astype(str), return_inverse=True)[1].reshape(-1)


def _kept_rows(data: ClaimData, keep: dict[str, list[str]]) -> np.ndarray:
    """Rows a within-shuffle leaves in place (``Shuffle.keep``); every label named must occur in the pool."""
    kept = np.zeros(len(data.samples), dtype=bool)
    for axis, labels in keep.items():
        values = data.labels(axis).astype(str)
        missing = sorted(set(labels) - set(values.tolist()))
        if missing:
            raise ValueError(f"shuffle keep: {axis} has no rows labelled {missing} in this pool")
        kept |= np.isin(values, labels)
    return kept


def shuffle(data: ClaimData, spec: Shuffle, rng: np.random.Generator) -> ClaimData:
    """Destroy the structure a claim measures (see the module docstring)."""
    n = len(data.samples)
    if spec.within is not None:
        strata = _strata_codes(data, spec.within) if spec.within else np.zeros(n, dtype=np.int64)
        movable = ~_kept_rows(data, spec.keep)
        order = np.arange(n)
        for level in np.unique(strata):
            rows = np.flatnonzero((strata == level) & movable)
            order[rows] = rng.permutation(rows)
        return data.with_latents(np.asarray(data.latents)[order], order)
    if spec.named == "norm_growth":
        X = np.asarray(data.latents, dtype=np.float64)
        x0 = X[:, data.layer_index("block0")]
        scale = np.linalg.norm(X, axis=-1).mean(axis=0) / np.linalg.norm(x0, axis=-1).mean()
        return data.with_latents((x0[:, None, :] * scale[None, :, None]).astype(np.float32))
    if spec.named == "version_swap":
        group = data.labels(str(spec.group)).astype(str)
        order = np.arange(n)
        for level in np.unique(group):
            rows = np.flatnonzero(group == level)
            if rows.size == 2 and rng.random() < 0.5:
                order[rows] = rows[::-1]
        return data.with_latents(np.asarray(data.latents)[order], order)
    # group_relabel: every group's rows go to another group, cell by cell (labels stay on the rows).
    group = data.labels(str(spec.group)).astype(str)
    cells = combine_keys(data.factors(spec.cells), spec.cells).astype(str)
    levels = np.unique(group)
    mapping = dict(zip(levels.tolist(), rng.permutation(levels).tolist(), strict=True))
    where = {(c, g): i for i, (c, g) in enumerate(zip(cells, group, strict=True))}
    try:
        order = np.array([where[(c, mapping[g])] for c, g in zip(cells, group, strict=True)])
    except KeyError as exc:
        raise ValueError(f"group_relabel: {spec.group} x {spec.cells} is not a full grid ({exc})") from None
    return data.with_latents(np.asarray(data.latents)[order], order)


# ------------------------------------------------------------------------------------------------ plants


def layer_weights(data: ClaimData, plant: Plant) -> np.ndarray:
    """Weight per layer of ``data.layers``: 1 on the declared bands/layers (a linear ramp over the blocks with
    ``profile: linear``), 0 elsewhere."""
    bands = data.bands()
    first = data.layer_index("block0")
    w = np.zeros(len(data.layers))
    for name in plant.layers:
        if name in bands:
            w[bands[name] + first] = 1.0
        elif name == "blocks":
            w[first : first + data.num_blocks] = 1.0
        elif name in data.layers:
            w[data.layer_index(name)] = 1.0
        else:
            raise ValueError(f"plant layer {name!r} is neither a band nor a layer of {data.model}")
    if plant.profile == "linear":
        ramp = np.zeros(len(data.layers))
        ramp[first : first + data.num_blocks] = np.linspace(0.0, 1.0, data.num_blocks)
        w = w * ramp
    return w


def offsets(data: ClaimData, plant: Plant, rng: np.random.Generator, units: Sequence[str] = ()) -> np.ndarray:
    """Unit-spread offsets ``[n, L, d]``: per key and level a random unit direction per layer, times the layer's
    RMS spread about its mean and the layer weight, on the members only (summed over keys); each level of the
    first design unit scales its samples' offsets by its own log-normal strength (``UNIT_SPREAD``)."""
    X = np.asarray(data.latents, dtype=np.float64)
    n, L, d = X.shape
    spread = np.sqrt(((X - X.mean(axis=0, keepdims=True)) ** 2).sum(axis=-1).mean(axis=0))  # [L]
    w = layer_weights(data, plant) * spread
    members = np.ones(n, dtype=bool)
    for axis, allowed in plant.members.items():
        members &= np.isin(data.labels(axis).astype(str), [str(v) for v in allowed])
    strength = np.ones(n)
    if units:
        unit_values = data.labels(units[0]).astype(str)
        levels, codes = np.unique(unit_values, return_inverse=True)
        factors = np.exp(rng.normal(0.0, UNIT_SPREAD, levels.size))
        strength = (factors / factors.mean())[codes.reshape(-1)]
    out = np.zeros_like(X)
    for key in plant.keys:
        values = combine_keys(data.factors(key), key).astype(str)
        levels, codes = np.unique(values, return_inverse=True)
        directions = rng.standard_normal((levels.size, L, d))
        directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
        out[members] += directions[codes[members]] * w[None, :, None] * strength[members, None, None]
    return plant.sign * out


#: Memory the planter may keep for the probes' restricted Gram matrices (per population being solved).
GRAM_CACHE_BYTES = 1 << 30


class ScaledDistances:
    """Distances of ``X + s * step`` for any ``s`` from three Gram matrices per layer (module docstring)."""

    def __init__(self, X: np.ndarray, step: np.ndarray, metric: str) -> None:
        if metric not in ("cosine", "euclidean", "scaled_euclidean"):
            raise ValueError(f"unknown metric {metric!r}")
        Xl = np.ascontiguousarray(np.asarray(X, dtype=np.float64).transpose(1, 0, 2))  # [L, n, d]
        Sl = np.ascontiguousarray(np.asarray(step, dtype=np.float64).transpose(1, 0, 2))
        self.g0 = Xl @ Xl.transpose(0, 2, 1)
        cross = Xl @ Sl.transpose(0, 2, 1)
        self.g1 = cross + cross.transpose(0, 2, 1)
        self.g2 = Sl @ Sl.transpose(0, 2, 1)
        self.metric = metric
        #: restricted Gram triples of the probe samples, kept while they fit: the solver asks for the same fixed
        #: probes at every scale it tries (about 20), and the gather was half of each call's time.
        self._restricted: dict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._cached_bytes = 0

    def __call__(self, s: float, rows: np.ndarray | None = None) -> np.ndarray:
        g0, g1, g2 = (self.g0, self.g1, self.g2) if rows is None else self._grams_of(rows)
        G = g0 + s * g1 + (s * s) * g2
        diag = np.einsum("lii->li", G)
        if self.metric == "cosine":
            norm = np.sqrt(np.maximum(diag, 1e-300))
            D = np.clip(1.0 - G / (norm[:, :, None] * norm[:, None, :]), 0.0, 2.0)
        else:
            D = np.sqrt(np.maximum(diag[:, :, None] + diag[:, None, :] - 2.0 * G, 0.0))
            if self.metric == "scaled_euclidean":
                D = D / np.sqrt(np.maximum(diag, 0.0)).mean(axis=1)[:, None, None]
        D = 0.5 * (D + D.transpose(0, 2, 1))
        idx = np.arange(D.shape[1])
        D[:, idx, idx] = 0.0
        if not np.isfinite(D).all():
            raise ValueError(f"planted distances at scale {s:g} are not finite (a zero-norm latent?)")
        # Symmetric with a zero diagonal by construction: marked so the statistics skip their O(L n^2) checks.
        return trust_distances(D)

    def _grams_of(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The three Gram matrices restricted to ``rows`` (one open-mesh index each: chained fancy indexing cost
        4-5x more on the full pools), cached up to ``GRAM_CACHE_BYTES``."""
        key = np.asarray(rows, dtype=np.int64).tobytes()
        if key in self._restricted:
            return self._restricted[key]
        mesh = np.ix_(np.arange(self.g0.shape[0]), rows, rows)
        grams = (self.g0[mesh], self.g1[mesh], self.g2[mesh])
        size = sum(g.nbytes for g in grams)
        if self._cached_bytes + size <= GRAM_CACHE_BYTES:
            self._restricted[key] = grams
            self._cached_bytes += size
        return grams


# ------------------------------------------------------------------------------------------------ samples


def unit_levels(data: ClaimData, units: Sequence[str]) -> dict[str, np.ndarray]:
    return {u: np.unique(data.labels(u).astype(str)) for u in units}


def draw_sample(data: ClaimData, sizes: dict[str, int], rng: np.random.Generator) -> np.ndarray:
    """Rows of a fresh sample of design units: ``sizes[u]`` levels of each unit factor, without replacement."""
    keep = np.ones(len(data.samples), dtype=bool)
    for unit, k in sizes.items():
        values = data.labels(unit).astype(str)
        levels = np.unique(values)
        if k > levels.size:
            raise ValueError(f"a sample of {k} {unit} levels cannot be drawn from a pool of {levels.size}")
        keep &= np.isin(values, rng.choice(levels, size=k, replace=False))
    return np.flatnonzero(keep)


# ------------------------------------------------------------------------------------------------ population


def _units(spec: ClaimSpec) -> list[str]:
    measure = spec.measure
    if isinstance(measure, BandContrast | MetricAgreement):
        return list(measure.units)
    raise TypeError(f"claim {spec.id}: a cross-model claim has no single-model control")


def _metric(spec: ClaimSpec) -> str:
    return spec.measure.metric  # type: ignore[union-attr]


def _controls_as_layers(data: ClaimData) -> tuple[np.ndarray, int]:
    """Latents with the available token controls appended (the layout the shapes' distances use)."""
    available = data.available_controls()
    X = np.asarray(data.latents, dtype=np.float64)
    if not available:
        return X, 0
    extra = np.stack(list(available.values()), axis=1).astype(np.float64)
    return np.concatenate([X, extra], axis=1), extra.shape[1]


def point_value(
    spec: ClaimSpec, data: ClaimData, rng: np.random.Generator, D: np.ndarray | None = None
) -> float:
    """The claim's point estimate with the pilot budget (no interval)."""
    if isinstance(spec.measure, BandContrast):
        return band_contrast.point_value(spec.measure, data, PILOT, rng, D)
    if isinstance(spec.measure, MetricAgreement):
        return metric_agreement.point_value(spec.measure, data, rng, D)
    raise TypeError(f"claim {spec.id}: no point value for shape {spec.measure.shape!r}")


@dataclass
class Population:
    """A shuffled pool with its planted offsets, ready to be scaled to a target population effect."""

    spec: ClaimSpec
    base: ClaimData
    offsets: np.ndarray
    sizes: dict[str, int]
    probes: list[np.ndarray]
    #: the probe samples' labels (their latents are never read: the distances carry the offsets)
    probe_data: list[ClaimData]
    seed: int

    @classmethod
    def build(
        cls,
        spec: ClaimSpec,
        pool: ClaimData,
        sizes: dict[str, int],
        rng: np.random.Generator,
        n_probes: int = 24,
    ) -> Population:
        """Shuffle the pool, draw the plant's directions and the fixed samples the population effect averages."""
        if spec.control is None:
            raise ValueError(f"claim {spec.id} declares no control")
        shuffled = shuffle(pool, spec.control.shuffle, rng)
        step = sum(offsets(shuffled, plant, rng, _units(spec)) for plant in spec.control.plant)
        full = all(
            k == pool_levels.size
            for k, pool_levels in zip(sizes.values(), unit_levels(pool, list(sizes)).values(), strict=True)
        )
        probes = (
            [np.arange(len(pool.samples))]
            if full
            else [draw_sample(shuffled, sizes, rng) for _ in range(n_probes)]
        )
        n = len(pool.samples)
        probe_data = [shuffled.subset(np.isin(np.arange(n), rows)) for rows in probes]
        return cls(spec, shuffled, step, sizes, probes, probe_data, int(rng.integers(2**31 - 1)))

    def _distances(self) -> ScaledDistances:
        X, n_ctl = _controls_as_layers(self.base)
        step = self.offsets
        if n_ctl:
            step = np.concatenate([step, np.zeros((step.shape[0], n_ctl, step.shape[2]))], axis=1)
        return ScaledDistances(X, step, _metric(self.spec))

    def effect(self, scale: float, distances: ScaledDistances | None = None) -> float:
        """Population effect at ``scale``: the claim's reduction of each part's mean point estimate over the
        fixed probe samples.

        Why parts first: a ``max`` (or ``min``) reduction is an intersection-union test of its parts, so the
        truth it is calibrated against is the largest part's population effect. The mean of the sample maxima
        adds the chance maximum of noisy parts (D1, 15 parts: about +0.13 on shuffled speakers, above its
        epsilon of 0.1), which would make true absence unplantable. Single and difference reductions are
        linear and give the same value either way. Q1's minimum over metric pairs is reduced the same way: the
        mean of sample minima sat below every pair's mean, so its boundary null planted agreement above delta
        (19% false positives under shared-suffix)."""
        dist = distances or self._distances()
        measure = self.spec.measure
        if isinstance(measure, BandContrast):
            parts = [
                band_contrast.point_parts(
                    measure, sub, PILOT, np.random.default_rng(self.seed), dist(scale, rows)
                )
                for rows, sub in zip(self.probes, self.probe_data, strict=True)
            ]
            return band_contrast.reduce_values(measure.reduce, np.mean(parts, axis=0))
        if isinstance(measure, MetricAgreement):  # min over metric pairs: the smallest pair's mean
            pairs = [
                metric_agreement.point_parts(
                    measure, sub, np.random.default_rng(self.seed), dist(scale, rows)
                )
                for rows, sub in zip(self.probes, self.probe_data, strict=True)
            ]
            return float(np.min(np.mean(pairs, axis=0)))
        values = []
        for rows, sub in zip(self.probes, self.probe_data, strict=True):
            values.append(point_value(self.spec, sub, np.random.default_rng(self.seed), dist(scale, rows)))
        return float(np.mean(values))

    def at(self, scale: float) -> ClaimData:
        if scale == 0.0:
            return self.base
        return self.base.with_latents(
            (np.asarray(self.base.latents, dtype=np.float64) + scale * self.offsets).astype(np.float32)
        )

    def solve(self, target: float) -> tuple[float, float]:
        """The scale whose population effect is ``target`` (within the solver's tolerance), and that effect.

        An absence claim's target of 0 (true absence) plants nothing: the shuffled pool is the population. A
        presence claim whose delta is 0 (M4: parts already net of their thresholds) is planted up to 0 like any
        other boundary; left unplanted, its boundary null sat at the shuffled pool's -0.12 and could not fail."""
        dist = self._distances()
        if target == 0.0 and self.spec.rule.kind == "absence":
            return 0.0, self.effect(0.0, dist)
        cache: dict[float, float] = {}

        def effect_at(s: float) -> float:
            if s not in cache:
                cache[s] = self.effect(s, dist)
            return cache[s]

        what = f"{self.spec.id} ({[p.keys for p in self.spec.control.plant]})"  # type: ignore[union-attr]
        scale = plant_scale(effect_at, target, what=what, limit=SCALE_LIMIT)
        reached = effect_at(scale)
        if scale == 0.0 and reached > target + 0.02 * max(abs(target), 1e-3):
            raise ShuffleAboveTarget(
                f"plant for {what}: the shuffled pool's effect {reached:.4g} already exceeds the target "
                f"{target:.4g}; the shuffle leaves the measured structure in place"
            )
        return scale, reached


class ShuffleAboveTarget(ValueError):
    """The shuffled pool's chance structure already exceeds a target, so nothing can be planted to reach it."""


#: A target of 0 (an absence claim's positive control: true absence) plants nothing, so the population is the
#: shuffled pool itself; its chance effect must stay below this share of the largest target (epsilon), else the
#: "true absence" would sit at the margin and power would be measured against an effect that is not absent.
ZERO_SLACK = 0.5


def _check_true_absence(
    spec: ClaimSpec, targets: dict[str, float], solved: dict[str, tuple[float, float]]
) -> None:
    top = max(targets.values())
    for name, target in targets.items():
        effect = solved[name][1]
        if spec.rule.kind == "absence" and target == 0.0 and top > 0 and effect > ZERO_SLACK * top:
            raise ShuffleAboveTarget(
                f"{spec.id}: {name}'s true absence has the shuffled pool's chance effect {effect:.4g}, above "
                f"{ZERO_SLACK:g} x {top:.4g}"
            )


#: How many shuffles a population may take before its controls are given up (each one is recorded).
SHUFFLE_ATTEMPTS = 6


def solved_population(
    spec: ClaimSpec,
    pool: ClaimData,
    sizes: dict[str, int],
    seed: Sequence[int],
    targets: dict[str, float],
    *,
    n_probes: int = 24,
    attempts: int = SHUFFLE_ATTEMPTS,
) -> tuple[Population, dict[str, tuple[float, float]], list[str]]:
    """A population whose every target is reached: ``(population, {target name: (scale, effect)}, redraws)``.

    Why redraw: a finite pool, once shuffled, keeps chance structure of its own (T6 on 12 meanings: population
    effects of +0.08, -0.02 and 0.00 for three shuffles against delta 0.02). Where that chance structure already
    exceeds a target nothing can be planted down to it, so the shuffle is drawn again; every redraw is returned
    (and recorded in the calibration entry), and after ``attempts`` shuffles the error is raised. The estimand is
    unchanged by the redraw: each control's population effect is its target whichever shuffle is kept.
    """
    redraws: list[str] = []
    for attempt in range(attempts):
        rng = np.random.default_rng(list(seed) if attempt == 0 else [*seed, attempt])
        population = Population.build(spec, pool, sizes, rng, n_probes=n_probes)
        try:
            solved = {name: population.solve(target) for name, target in targets.items()}
            _check_true_absence(spec, targets, solved)
        except ShuffleAboveTarget as exc:
            redraws.append(f"shuffle {attempt}: {exc}")
            continue
        return population, solved, redraws
    raise ShuffleAboveTarget(
        f"{spec.id}: every one of {attempts} shuffles exceeded a target; last: {redraws[-1]}"
    )
