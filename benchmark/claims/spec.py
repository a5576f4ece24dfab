"""A claim is versioned data: one primary statistic, a rule over its effect, constants with reasons.

Claim files (YAML) live in ``benchmark/claims/specs/``; users add their own through a folder
(``LALM_BENCH_CLAIMS_DIR``) or the ``lalm_bench.claims`` entry point. Changing a rule or a constant means
bumping ``version``, which voids the expectations recorded under the old one (they are keyed by version).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from benchmark.core.schema import Modality

Section = Literal["text", "speech", "crossmodal", "demography", "metrics"]
RuleKind = Literal["presence", "absence"]


class RuleSpec(BaseModel):
    """The decision rule over the primary effect and its interval.

    presence: ``holds`` when the lower bound of the effect's interval exceeds ``delta``, ``fails`` when the
    upper bound is at or below it. absence (equivalence): ``holds`` when the upper bound is below ``epsilon``,
    the power to detect ``epsilon`` is at least ``min_power`` and the positive reference holds; ``fails`` when
    the lower bound exceeds ``epsilon``.
    """

    model_config = ConfigDict(extra="forbid")

    kind: RuleKind
    formula: str = Field(description="the rule in words/maths, shown in reports")
    delta: float | None = None
    epsilon: float | None = None
    alpha: float = 0.05
    min_power: float = 0.8
    power_at: float | None = Field(
        default=None,
        description="presence claims: the planted effect at which power >= min_power is required (the positive "
        "control); absence claims plant 0 (true absence) and the boundary null plants epsilon",
    )
    reasons: dict[str, str] = Field(description="one sentence per constant: why this value")

    @model_validator(mode="after")
    def _constants(self) -> RuleSpec:
        if self.kind == "presence" and self.delta is None:
            raise ValueError("a presence rule needs delta")
        if self.kind == "absence" and self.epsilon is None:
            raise ValueError("an absence rule needs epsilon")
        if self.kind == "presence" and (self.power_at is None or self.power_at <= (self.delta or 0.0)):
            raise ValueError("a presence rule needs power_at above delta (the planted positive control)")
        for constant in ("delta", "epsilon", "alpha", "power_at"):
            if getattr(self, constant) is not None and constant not in self.reasons:
                raise ValueError(f"rule constant {constant!r} has no reason")
        return self


class ClaimSpec(BaseModel):
    """One finding of the paper as data."""

    model_config = ConfigDict(extra="forbid")

    id: str
    version: int = Field(ge=1)
    title: str
    paper: str = Field(description="figure / table / section of the paper")
    section: Section
    finding: str
    probe_set: str
    requires_axes: list[str]
    requires_modalities: list[Modality]
    requires_languages: list[str] = Field(default_factory=list)
    min_languages: int = 1
    template: str = "shared-suffix"
    variant: str | None = Field(default=None, description="probe variant, e.g. nopunct")
    sample_filter: dict[str, list[str]] = Field(default_factory=dict, description="axis -> allowed values")
    statistic: str = Field(description="name of the measure in benchmark.claims.measures")
    params: dict[str, Any] = Field(default_factory=dict)
    rule: RuleSpec
    reference: str | None = Field(default=None, description="positive reference claim (absence claims)")
    cross_model: bool = False
    caveats: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _absence_has_reference(self) -> ClaimSpec:
        if self.rule.kind == "absence" and not self.reference:
            raise ValueError(f"claim {self.id}: an absence claim needs a positive reference")
        return self

    @model_validator(mode="after")
    def _params_agree_with_rule(self) -> ClaimSpec:
        for name in ("alpha", "epsilon", "delta"):
            constant = getattr(self.rule, name)
            if name in self.params and constant is not None and float(self.params[name]) != float(constant):
                raise ValueError(
                    f"claim {self.id}: params.{name}={self.params[name]} disagrees with rule.{name}={constant}; "
                    "the rule's constant is the one the verdict reads"
                )
        return self

    @property
    def measure_params(self) -> dict[str, Any]:
        """The measure's parameters with the rule's constants injected, so measure and verdict read one alpha."""
        out = {**self.params, "alpha": self.rule.alpha}
        if self.rule.epsilon is not None:
            out["epsilon"] = self.rule.epsilon
        return out

    def fingerprint(self) -> str:
        """Hash of the claim's definition, recorded with every result."""
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
