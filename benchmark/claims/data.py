"""What a measure receives: the claim's latents and labels, the compute budget and the seed.

Measures (``benchmark/claims/measures_*.py``) are pure functions ``(ClaimData, params, rng, budget) ->
Measurement`` registered by name in ``MEASURES``. They never load a model or touch files; the evaluator
selects the samples, runs the pipeline gate and applies the rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmark.claims.record import Measurement
from benchmark.core.profiles import CI_SIZED
from benchmark.core.registry import Registry
from benchmark.core.schema import Sample
from benchmark.stats import bands as _bands


@dataclass(frozen=True)
class Budget:
    """Resampling sizes. ``ci`` keeps CI fast; ``full`` is what verdicts in reports are computed with."""

    n_perm: int
    n_resamples: int
    n_perm_resample: int
    name: str

    @classmethod
    def for_profile(cls, profile: str) -> Budget:
        """``ci`` and ``ci-alt`` share the small budget (their verdicts are compared); anything else is full."""
        if profile in CI_SIZED:
            return cls(n_perm=200, n_resamples=60, n_perm_resample=10, name="ci")
        return cls(n_perm=1000, n_resamples=200, n_perm_resample=20, name="full")


@dataclass
class ClaimData:
    """Latents ``[n, layers, d]`` of the samples a claim uses, with their labels."""

    latents: np.ndarray
    layers: list[str]
    samples: list[Sample]
    last_token_ids: np.ndarray
    model: str
    model_kind: str
    extra: dict[str, Any] = field(default_factory=dict)

    def labels(self, axis: str) -> np.ndarray:
        """Label values along ``axis`` as an object array; raises when any sample lacks it."""
        values = [sample.label(axis) for sample in self.samples]
        missing = [s.id for s, v in zip(self.samples, values, strict=True) if v is None]
        if missing:
            raise ValueError(f"{len(missing)} samples lack label {axis!r} (first: {missing[:3]})")
        return np.asarray(values, dtype=object)

    @property
    def block_names(self) -> list[str]:
        return [name for name in self.layers if name.startswith("block")]

    @property
    def num_blocks(self) -> int:
        return len(self.block_names)

    def layer_index(self, name: str) -> int:
        return self.layers.index(name)

    def block_slice(self) -> slice:
        """Columns of ``block0..block{L-1}`` in ``latents``."""
        first = self.layers.index("block0")
        return slice(first, first + self.num_blocks)

    def bands(self) -> dict[str, np.ndarray]:
        """early / middle / late as indices into ``block0..block{L-1}`` (CLAIMS.md: thirds of the blocks)."""
        return _bands(self.num_blocks)

    def subset(self, mask: np.ndarray) -> ClaimData:
        mask = np.asarray(mask, dtype=bool)
        return ClaimData(
            latents=self.latents[mask],
            layers=self.layers,
            samples=[s for s, keep in zip(self.samples, mask, strict=True) if keep],
            last_token_ids=self.last_token_ids[mask],
            model=self.model,
            model_kind=self.model_kind,
            extra=dict(self.extra),
        )


MeasureFn = Callable[[ClaimData, dict[str, Any], np.random.Generator, Budget], Measurement]

#: name -> measure function. Registered by the ``measures_*`` modules (imported lazily by the evaluator).
MEASURES: Registry[MeasureFn] = Registry("measure")


def measure(name: str) -> Callable[[MeasureFn], MeasureFn]:
    """Decorator: register a measure under ``name``."""

    def register(fn: MeasureFn) -> MeasureFn:
        MEASURES.register(name, fn)
        return fn

    return register


ControlFn = Callable[[ClaimData, dict[str, Any], float, np.random.Generator], ClaimData]


@dataclass(frozen=True)
class Controls:
    """Semi-synthetic controls of one measure, built from real latents (CLAIMS.md, "Calibration").

    ``shuffle(base, params, rng)`` destroys the structure the claim measures (labels shuffled within the
    design), and ``plant(base, params, size, rng)`` then adds label-dependent offsets, scaled to the
    within-class spread, so that the measure's *expected effect* equals ``size``: the boundary null is
    ``plant(..., delta)`` (presence; must not hold) or ``plant(..., epsilon)`` (absence; must not hold), the
    positive control ``plant(..., power_at)`` (presence; must hold) or ``plant(..., 0)`` (absence; must hold).
    """

    shuffle: Callable[[ClaimData, dict[str, Any], np.random.Generator], ClaimData]
    plant: ControlFn


#: measure name -> its controls (registered beside the measure).
CONTROLS: Registry[Controls] = Registry("control")


def controls(name: str, value: Controls) -> Controls:
    CONTROLS.register(name, value)
    return value


MEASURE_MODULES: tuple[str, ...] = (
    "benchmark.claims.measures_text",
    "benchmark.claims.measures_speech",
    "benchmark.claims.measures_crossmodal",
)


def load_measures() -> Registry[MeasureFn]:
    """Import every measure module once so its decorators run."""
    import importlib

    for module in MEASURE_MODULES:
        importlib.import_module(module)
    return MEASURES


def claim_data_from(latent_set: Any, probe_set: Any) -> ClaimData:
    """Join a ``LatentSet`` with its ``ProbeSet`` (by sample id, in latent order)."""
    by_id = {sample.id: sample for sample in probe_set.samples}
    missing = [sample_id for sample_id in latent_set.sample_ids if sample_id not in by_id]
    if missing:
        raise ValueError(
            f"{len(missing)} latent rows have no sample in probe set {probe_set.name!r}: {missing[:3]}"
        )
    provenance = latent_set.manifest.provenance
    return ClaimData(
        latents=latent_set.latents,
        layers=list(latent_set.manifest.layers),
        samples=[by_id[sample_id] for sample_id in latent_set.sample_ids],
        last_token_ids=np.asarray(latent_set.manifest.last_token_ids),
        model=provenance.model,
        model_kind=provenance.kind,
    )
