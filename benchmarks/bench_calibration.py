"""Calibration's planter: the population effect at a trial scale, as the solver asks for it ~20 times per population.

Why this case: a calibration entry of 500 seeds builds 10 populations and solves each for both controls, and on the
speech-grid pool the solving, not the seeds, was most of the time (S7 in a profile: 84 s per population before the
planter kept its probes' Gram matrices and marked its distances valid, about 25 s after, with identical estimates).

Data: a synthetic pool shaped like text-parallel's ``full`` profile (38 meanings x 8 languages; gemma-3-270m's 19
layers x 640), T3's control (language shuffled within meaning, language offsets planted), 24 fixed probe samples
of the ``ci`` size (12 meanings).

The suite side is :meth:`benchmark.claims.controls.Population.effect` (distances of ``X + s * step`` from three Gram
matrices per layer, restricted to each probe once and kept; distances marked valid). The baseline plants the
latents and measures each probe from scratch, as a plant-then-measure loop would: latents in float64, distances
recomputed and re-checked, the claim's own point estimate. Both give the same effect (asserted to 1e-9).

Sizes: ``LALM_BENCH_PLANT_MEANINGS`` (38), ``LALM_BENCH_PLANT_SCALES`` (20 trial scales per round, about what
one solve asks for), ``LALM_BENCH_ROUNDS`` (3).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from _harness import FIGURES, Interleaved, env_int, load_average, threads

from benchmark.claims import registry
from benchmark.claims.controls import Population
from benchmark.claims.data import PILOT, ClaimData
from benchmark.claims.evaluate import select
from benchmark.claims.shapes import band_contrast
from benchmark.core.schema import Sample

pytestmark = pytest.mark.benchmark

LAYERS, DIM, LANGUAGES = 19, 640, ("en", "fr", "de", "zh", "ja", "id", "vi", "es")
CLAIM = "T3-text-language-early-late"
SIZES = {"meaning_id": 12}


def synthetic_pool(meanings: int, rng: np.random.Generator) -> ClaimData:
    """``[meanings x 8, 21, 640]`` text latents (emb, 19 blocks, final_norm) with language and meaning structure."""
    names = ["emb", *(f"block{i}" for i in range(LAYERS)), "final_norm"]
    lang_dir = rng.normal(size=(len(LANGUAGES), DIM))
    meaning_dir = rng.normal(size=(meanings, DIM))
    depth = np.linspace(0.0, 1.0, len(names))[:, None]
    samples, rows = [], []
    for m in range(meanings):
        for i, lang in enumerate(LANGUAGES):
            samples.append(
                Sample(
                    id=f"m{m}-{lang}",
                    modality="text",
                    text=f"{m} {lang}",
                    language=lang,
                    meaning_id=f"m{m}",
                    variant="nopunct",
                )
            )
            rows.append(
                (1.2 - depth) * lang_dir[i]
                + (0.2 + depth) * meaning_dir[m]
                + rng.normal(size=(len(names), DIM))
            )
    return ClaimData(
        latents=np.asarray(rows, dtype=np.float32),
        layers=names,
        samples=samples,
        model="synthetic",
        model_kind="text-lm",
        template="bare",
    )


def naive_effect(population: Population, scale: float) -> float:
    """Plant, then measure every probe from its latents (distances recomputed and checked each time); the parts
    are averaged over the probes before the claim's reduction, as the population effect is defined."""
    planted = np.asarray(population.base.latents, dtype=np.float64) + scale * population.offsets
    n = len(population.base.samples)
    measure = population.spec.measure
    parts = [
        band_contrast.point_parts(
            measure,  # type: ignore[arg-type]
            population.base.with_latents(planted).subset(np.isin(np.arange(n), rows)),
            PILOT,
            np.random.default_rng(population.seed),
        )
        for rows in population.probes
    ]
    return band_contrast.reduce_values(measure.reduce, np.mean(parts, axis=0))  # type: ignore[union-attr]


def test_planter_population_effect(benchmark: Any) -> None:
    """Population effects at several trial scales: the planter's Gram path against plant-then-measure.

    No speed target: the planter is not a user-facing figure. The case checks that the fast path gives the same
    numbers and records by how much it is faster on a text-sized pool; the gain is largest on the speech pools,
    where distances, not the statistic, dominated (S7's profile above)."""
    load_before = load_average()
    spec = registry.get_claim(CLAIM)
    pool = select(
        spec, synthetic_pool(env_int("LALM_BENCH_PLANT_MEANINGS", 38), np.random.default_rng(0)), "nopunct"
    )
    population = Population.build(spec, pool, SIZES, np.random.default_rng(1))
    scales = np.linspace(0.0, 0.5, env_int("LALM_BENCH_PLANT_SCALES", 20))

    def suite() -> list[float]:
        distances = population._distances()  # built once per solve, as Population.solve does
        return [population.effect(float(s), distances) for s in scales]

    def naive() -> list[float]:
        return [naive_effect(population, float(s)) for s in scales]

    runner = Interleaved({"naive": naive, "suite": suite}, threads=threads())
    benchmark.pedantic(runner.one_round, rounds=env_int("LALM_BENCH_ROUNDS", 3), iterations=1)
    difference = float(
        np.max(np.abs(np.subtract(runner.runs["suite"][-1].result, runner.runs["naive"][-1].result)))
    )
    speedup = runner.median_seconds("naive") / runner.median_seconds("suite")
    figures = {
        "claim": CLAIM,
        "pool_samples": len(pool.samples),
        "layers": len(pool.layers),
        "dim": DIM,
        "probes": len(population.probes),
        "scales": len(scales),
        "naive_seconds": runner.median_seconds("naive"),
        "suite_seconds": runner.median_seconds("suite"),
        "speedup": speedup,
        "max_abs_difference": difference,
        "rounds": len(runner.rate),
        "threads": runner.threads,
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    FIGURES[f"calibration/planter/{len(pool.samples)}x{len(pool.layers)}x{DIM}"] = figures
    benchmark.extra_info.update(figures)
    assert difference < 1e-9, difference
