"""What a claim's measure receives: the selected samples' latents and labels, the token controls, the budget.

Measures never load a model or touch files; the evaluator selects the samples, checks the claim's
requirements, runs the pipeline gate and applies the rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from benchmark.core.profiles import CI_SIZED
from benchmark.core.schema import Sample
from benchmark.stats import bands as _bands

#: The token-identity control representations (CLAIMS.md), in the order the latents file stores them.
CONTROL_LAYERS: tuple[str, ...] = ("tok_last", "tok_mean")


@dataclass(frozen=True)
class Budget:
    """Resampling sizes. ``ci`` keeps CI fast; ``full`` is what verdicts in reports are computed with.

    ``n_perm`` permutations give the chance level of the full data; each jackknife replicate uses the first
    ``n_perm_replicate`` of the same random keys (common random numbers, :mod:`benchmark.stats.kit`).
    """

    n_perm: int
    n_perm_replicate: int
    name: str

    @classmethod
    def for_profile(cls, profile: str) -> Budget:
        """``ci`` and ``ci-alt`` share the small budget (their verdicts are compared); anything else is full."""
        if profile in CI_SIZED:
            return cls(n_perm=200, n_perm_replicate=20, name="ci")
        return cls(n_perm=1000, n_perm_replicate=40, name="full")


#: A cheap budget for point estimates (planting controls): a stable chance level, no interval needed.
PILOT = Budget(n_perm=48, n_perm_replicate=1, name="pilot")


@dataclass
class ClaimData:
    """Latents ``[n, layers, d]`` of the samples a claim uses, with their labels and token controls.

    ``controls`` maps a control name (``tok_last``, ``tok_mean``) to ``[n, d]`` vectors, NaN rows where the model
    has no such representation for a sample (e.g. speech in Whisper's decoder); ``control_note`` says why.
    """

    latents: np.ndarray
    layers: list[str]
    samples: list[Sample]
    model: str
    model_kind: str
    template: str = "shared-suffix"
    controls: dict[str, np.ndarray] = field(default_factory=dict)
    control_note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def labels(self, axis: str) -> np.ndarray:
        """Label values of ``axis`` as strings; ``modality``/``voice``/``id`` are derived from the sample.

        ``voice`` is the speaker for speech and the literal ``text`` for text (the cell below meaning x language
        x modality). Raises naming the axis and the first samples that lack it.
        """
        if axis == "id":
            return np.array([s.id for s in self.samples], dtype=object)
        if axis == "voice":
            return np.array(
                [s.speaker if s.modality == "speech" else "text" for s in self.samples], dtype=object
            )
        values = [sample.label(axis) for sample in self.samples]
        missing = [s.id for s, v in zip(self.samples, values, strict=True) if v is None]
        if missing:
            raise MissingAxisError(axis, missing)
        return np.asarray(values, dtype=object)

    def factors(self, axes: list[str] | tuple[str, ...] | set[str]) -> dict[str, np.ndarray]:
        return {axis: self.labels(axis) for axis in sorted(set(axes))}

    @property
    def block_names(self) -> list[str]:
        return [name for name in self.layers if name.startswith("block")]

    @property
    def num_blocks(self) -> int:
        return len(self.block_names)

    def layer_index(self, name: str) -> int:
        return self.layers.index(name)

    def bands(self) -> dict[str, np.ndarray]:
        """early / middle / late as indices into ``block0..block{L-1}`` (CLAIMS.md: thirds of the blocks)."""
        return _bands(self.num_blocks)

    def available_controls(self) -> dict[str, np.ndarray]:
        """The controls defined for every sample (no NaN row): those a measure can compute on."""
        return {
            k: v for k, v in self.controls.items() if v.shape[0] == len(self.samples) and np.isfinite(v).all()
        }

    def subset(self, mask: np.ndarray) -> ClaimData:
        mask = np.asarray(mask, dtype=bool)
        return replace(
            self,
            latents=self.latents[mask],
            samples=[s for s, keep in zip(self.samples, mask, strict=True) if keep],
            controls={k: v[mask] for k, v in self.controls.items()},
            extra=dict(self.extra),
        )

    def with_latents(self, latents: np.ndarray, order: np.ndarray | None = None) -> ClaimData:
        """A copy with new latents (controls reordered with ``order`` when rows moved, so they stay each row's)."""
        controls = self.controls if order is None else {k: v[order] for k, v in self.controls.items()}
        return replace(self, latents=latents, controls=dict(controls), extra=dict(self.extra))


class MissingAxisError(ValueError):
    """Samples lack a label the claim needs: the claim is ``n/a`` for this probe set, naming the axis."""

    def __init__(self, axis: str, sample_ids: list[str]) -> None:
        self.axis = axis
        super().__init__(f"needs axis {axis} ({len(sample_ids)} samples lack it, e.g. {sample_ids[:3]})")


def claim_data_from(latent_set: Any, probe_set: Any) -> ClaimData:
    """Join a ``LatentSet`` with its ``ProbeSet`` (by sample id, in latent order)."""
    by_id = {sample.id: sample for sample in probe_set.samples}
    missing = [sample_id for sample_id in latent_set.sample_ids if sample_id not in by_id]
    if missing:
        raise ValueError(
            f"{len(missing)} latent rows have no sample in probe set {probe_set.name!r}: {missing[:3]}"
        )
    manifest = latent_set.manifest
    controls: dict[str, np.ndarray] = {}
    stored = getattr(latent_set, "controls", None)
    names = list(getattr(manifest, "control_layers", None) or [])
    if stored is not None and names:
        controls = {name: np.asarray(stored[:, i], dtype=np.float32) for i, name in enumerate(names)}
    note = str(
        getattr(manifest, "control_note", "") or ("" if controls else "the latents file has no controls")
    )
    return ClaimData(
        latents=latent_set.latents,
        layers=list(manifest.layers),
        samples=[by_id[sample_id] for sample_id in latent_set.sample_ids],
        model=manifest.provenance.model,
        model_kind=manifest.provenance.kind,
        template=manifest.template,
        controls=controls,
        control_note=note,
    )
