"""The statistics' block paths against the paths they replaced, on claim-shaped designs, same numbers asserted.

Two changes of the scores, both bit for bit (``tests/test_score_blocks.py``), timed here side by side with the
code they replaced, run in the same process:

- ``retrieval`` (M3, S6 and their references): each candidate's count of farther and tied candidates is taken
  once per query block (a sort) and every labelling reads its partner's entry; before, every labelling compared
  its partner with all candidates (``[L, P, q, t]`` differences);
- scores that read blocks (``reads_blocks``: retrieval, cellwise silhouettes, subsets, pair separability) take
  the design's full distance matrix and gather their blocks through the resample's index; before, each
  jackknife replicate first copied the restricted ``[L, m, m]`` matrix.

Design: a crossmodal-shaped set of ``LALM_BENCH_SCORE_MEANINGS`` meanings (38: the full profile) x 8 languages x
(one text + two voices' speech), 7 layers (whisper-base's 6 blocks and its embedding), ``d = 512``; the claims'
``full`` budget by default (``LALM_BENCH_SCORE_PERM`` 1000, ``LALM_BENCH_SCORE_PERM_REP`` 100); rounds
``LALM_BENCH_ROUNDS`` (3), sides interleaved.

    pytest -p no:cacheprovider benchmarks/bench_score_paths.py --benchmark-only
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from _harness import FIGURES, Interleaved, env_int, load_average, threads

from benchmark.stats import Design, pairwise_distances, scores
from benchmark.stats.kit import NetCurve, net_curve

pytestmark = pytest.mark.benchmark

LAYERS, DIM, LANGUAGES = 7, 512, ("en", "fr", "de", "zh", "ja", "id", "vi", "es")
SEED = 7


def crossmodal_design(meanings: int, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Latents ``[n, 7, 512]`` with meaning, language and modality structure, and their factors."""
    rows = [
        (f"m{m:03d}", language, modality, voice)
        for m in range(meanings)
        for language in LANGUAGES
        for modality, voice in (("text", "none"), ("speech", "v1"), ("speech", "v2"))
    ]
    meaning, language, modality, voice = (np.array(c) for c in zip(*rows, strict=True))
    codes = {name: np.unique(v, return_inverse=True)[1] for name, v in (("m", meaning), ("l", language))}
    latents = (
        rng.normal(size=(meanings, 1, DIM))[codes["m"]] * 0.6
        + rng.normal(size=(len(LANGUAGES), 1, DIM))[codes["l"]]
        + (modality == "speech")[:, None, None] * rng.normal(size=(1, LAYERS, DIM)) * 2.0
        + rng.normal(size=(meaning.size, LAYERS, DIM)) * 1.5
    )
    return latents, {"meaning_id": meaning, "language": language, "modality": modality, "voice": voice}


def _direct_rank_score(Dqt: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """The replaced retrieval kernel: every labelling's partner compared with every candidate."""
    t = Dqt.shape[-1]
    q_idx = np.arange(Dqt.shape[1])[None, :]
    d_correct = Dqt[:, q_idx, pos]
    diff = Dqt[:, None, :, :] - d_correct[..., None]
    farther = (diff > 0).sum(axis=-1)
    ties = (diff == 0).sum(axis=-1) - 1
    return 2.0 * (farther + 0.5 * ties) / (t - 1) - 1.0


def _chained_block(
    D: np.ndarray, index: np.ndarray, rows: np.ndarray, cols: np.ndarray | None = None
) -> np.ndarray:
    """The replaced block read: chained indexing of the resample's restricted copy (``index`` unused)."""
    del index
    return D[:, rows][:, :, rows if cols is None else cols]


@contextmanager
def _previous_code() -> Iterator[None]:
    """The scores as they were: the direct kernel, blocks read from each resample's restricted copy."""
    kept = scores._rank_score, scores._block
    scores._rank_score, scores._block = _direct_rank_score, _chained_block
    try:
        yield
    finally:
        scores._rank_score, scores._block = kept


CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "retrieval (M3)": (
        "retrieval",
        dict(
            label="meaning_id",
            query={"modality": "speech"},
            target={"modality": "text"},
            groups="language",
            pairing="same",
            strata=["language", "modality", "voice"],
        ),
    ),
    "cellwise silhouette (language within modality)": (
        "cellwise_silhouette",
        dict(label="language", cells=["modality"], strata=["modality"]),
    ),
}


def _curve(
    kind: str, params: dict[str, Any], D: np.ndarray, factors: dict[str, np.ndarray], *, new: bool
) -> NetCurve:
    plan = scores.build_score(kind, factors, params)
    design = Design(
        factors={**plan.factors, "meaning_id": factors["meaning_id"][plan.rows]},
        units=("meaning_id",),
        strata=plan.strata,
    )

    def run() -> NetCurve:
        return net_curve(
            plan.statistic,
            D,
            design,
            plan.label,
            rng=np.random.default_rng(SEED),
            n_perm=env_int("LALM_BENCH_SCORE_PERM", 1000),
            n_perm_replicate=env_int("LALM_BENCH_SCORE_PERM_REP", 100),
            strata=plan.strata,
            permute_level=plan.permute_level,
            reads_blocks=new and plan.reads_blocks,
        )

    if new:
        return run()
    with _previous_code():
        return run()


def _same(a: NetCurve, b: NetCurve) -> bool:
    return (
        np.array_equal(a.observed, b.observed)
        and np.array_equal(a.null, b.null)
        and all(np.array_equal(a.replicates[u], b.replicates[u]) for u in a.replicates)
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_score_paths(benchmark: Any, case: str) -> None:
    """The block paths against the replaced ones on the same latents and keys: seconds, and equality."""
    kind, params = CASES[case]
    load_before = load_average()
    latents, factors = crossmodal_design(env_int("LALM_BENCH_SCORE_MEANINGS", 38), np.random.default_rng(0))
    D = np.ascontiguousarray(pairwise_distances(latents, metric="cosine"))
    sides: dict[str, Callable[[], NetCurve]] = {
        "before": lambda: _curve(kind, params, D, factors, new=False),
        "blocks": lambda: _curve(kind, params, D, factors, new=True),
    }
    runner = Interleaved(sides, threads=threads())
    benchmark.pedantic(runner.one_round, rounds=env_int("LALM_BENCH_ROUNDS", 3), iterations=1)
    identical = _same(runner.runs["before"][-1].result, runner.runs["blocks"][-1].result)
    figures = {
        "case": case,
        "samples": int(D.shape[-1]),
        "layers": LAYERS,
        "n_perm": env_int("LALM_BENCH_SCORE_PERM", 1000),
        "n_perm_replicate": env_int("LALM_BENCH_SCORE_PERM_REP", 100),
        "before_seconds": runner.median_seconds("before"),
        "blocks_seconds": runner.median_seconds("blocks"),
        "speedup": runner.median_seconds("before") / runner.median_seconds("blocks"),
        "identical": identical,
        "rounds": len(runner.rate),
        "threads": runner.threads,
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    FIGURES[f"analysis/score-paths/{kind}"] = figures
    benchmark.extra_info.update(figures)
    assert identical
