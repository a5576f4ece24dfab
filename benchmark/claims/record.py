"""The one result-record schema: a verdict, the numbers behind it, and what the report draws.

Owned by the claims layer; the report reads records only and never recomputes a statistic.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RECORD_SCHEMA = "2.0"

Verdict = Literal["holds", "fails", "inconclusive", "error", "n/a"]
FINDINGS: tuple[str, ...] = ("holds", "fails")


def opposite_findings(verdicts: Iterable[str]) -> bool:
    """Whether some of ``verdicts`` hold and some fail: the rule behind template and dtype dependence (holds
    against inconclusive is not opposite)."""
    return set(verdicts) >= set(FINDINGS)


class Measurement(BaseModel):
    """What a measure returns: the decided effect with its bounds, and everything reported beside it."""

    model_config = ConfigDict(extra="forbid")

    effect: float = Field(description="the reduced quantity the rule decides, net of the permutation null")
    ci_low: float = Field(
        description="lower bound (one-sided at the rule's alpha; alpha/2 for a two-sided change)"
    )
    ci_high: float
    p_value: float | None = Field(
        default=None, description="p-value against the rule's boundary (studentised)"
    )
    p_fails: float | None = Field(
        default=None,
        description="p-value of the fails side (the opposite one-sided test); the regression gate weighs a flip by it",
    )
    p_structure: float | None = Field(
        default=None, description="permutation p-value of 'no structure at all' (secondary; does not decide)"
    )
    power: float | None = Field(default=None, description="power to detect the margin (absence claims)")
    se: float | None = None
    df: float | None = None
    direction: str | None = Field(default=None, description="change rules: the direction found or tested")
    n_units: dict[str, int] = Field(default_factory=dict, description="levels of each resampling unit")
    n_samples: int
    n_perm: int
    resampling: str = Field(description="how the interval was obtained")
    token_controls: dict[str, float] = Field(
        default_factory=dict,
        description="the per-layer measure at the compared band and on each token-control representation",
    )
    token_margins: dict[str, list[float]] = Field(
        default_factory=dict, description="compared minus control: [estimate, lower bound, upper bound]"
    )
    explained_by_tokens: bool | None = None
    token_note: str = ""
    curves: dict[str, list[float]] = Field(default_factory=dict, description="per-layer values by series")
    numbers: dict[str, float] = Field(default_factory=dict, description="secondary statistics (never decide)")
    payloads: dict[str, Any] = Field(default_factory=dict, description="tables, linkage, t-SNE coordinates")
    gate_problems: list[str] = Field(default_factory=list)


class SecondaryDecision(BaseModel):
    """A decision reported beside the claim's verdict that never decides it (e.g. S2's device absence)."""

    model_config = ConfigDict(extra="forbid")

    title: str
    verdict: Verdict
    reason: str
    effect: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    power: float | None = None


class Expectation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: Literal["holds", "fails"]
    status: Literal["paper-reported", "paper-implied", "measured", "unverified"]
    source: str = Field(description="figure/table, or date and versions of the measurement")


class ClaimRecord(BaseModel):
    """One verdict of one claim on one model (or model pair) and probe set."""

    model_config = ConfigDict(extra="forbid")

    schema_version: str = RECORD_SCHEMA
    claim_id: str
    claim_version: int
    claim_fingerprint: str
    title: str
    paper: str
    section: str
    rule: dict[str, Any]
    model: str
    revision: str
    model_kind: str
    verdict: Verdict
    reason: str = Field(description="one sentence: why this verdict")
    expectation: Expectation | None = None
    expectation_note: str = Field(
        default="", description="why a paper expectation does not apply here, if one"
    )
    meets_expectation: bool | None = None
    synthetic_speech: bool | None = Field(
        default=None, description="whether the probe set's speech is synthetic (None: no speech)"
    )
    measurement: Measurement | None = None
    reference: dict[str, str] | None = Field(
        default=None, description="reference claim ids and their verdicts"
    )
    probe_set: str
    probe_set_hash: str
    profile: str
    template: str
    template_rendered: dict[str, str] = Field(default_factory=dict)
    primary_template: bool = Field(default=True, description="whether this is the paper's reading")
    variant: str | None = None
    primary_variant: bool = Field(
        default=True, description="whether this is the claim's primary probe variant"
    )
    secondary: dict[str, SecondaryDecision] = Field(default_factory=dict)
    template_dependent: bool | None = Field(
        default=None,
        description="holds under one template and fails under another (None: not compared, one template only)",
    )
    dtype_dependent: bool | None = Field(
        default=None,
        description="holds under one dtype and fails under another, same claim, model, revision, probe set, template "
        "and variant (None: not compared, one dtype only); set by the report, which reads both dtypes' records",
    )
    cpu: str | None = Field(default=None, description="the CPU that computed the latents (bf16 speed, drift)")
    dtype: str
    device: str
    seed: int
    calibration: dict[str, Any] = Field(default_factory=dict, description="calibration file and its commit")
    versions: dict[str, str]
    git_commit: str | None = None
    caveats: list[str] = Field(default_factory=list)
    created: str
    seconds: float = 0.0
    evaluation_key: str = Field(default="", description="sha256 of everything the verdict was computed from")

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(".json.tmp")
        temp.write_text(json.dumps(self.model_dump(mode="json"), indent=1, allow_nan=False))
        temp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> ClaimRecord:
        return cls.model_validate_json(Path(path).read_text())
