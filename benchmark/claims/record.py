"""The one result-record schema: a verdict, the numbers behind it, and what the report draws.

Owned by the claims layer; the report reads records only and never recomputes a statistic.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RECORD_SCHEMA = "1.0"

Verdict = Literal["holds", "fails", "inconclusive", "error", "n/a"]
FINDINGS: tuple[str, ...] = ("holds", "fails")


class Measurement(BaseModel):
    """What a measure returns: the primary effect with its interval, and everything reported beside it."""

    model_config = ConfigDict(extra="forbid")

    effect: float = Field(description="primary effect, net of the permutation null")
    ci_low: float
    ci_high: float
    p_value: float | None = None
    power: float | None = Field(default=None, description="power to detect the margin (absence claims)")
    n_units: int = Field(description="top-level resampling units")
    n_samples: int
    n_boot: int
    n_perm: int
    resampling: str = Field(description="how the interval was obtained")
    token_control: float | None = Field(
        default=None, description="the same statistic on the last token's input embedding (layer emb) alone"
    )
    explained_by_last_token: bool | None = None
    curves: dict[str, list[float]] = Field(default_factory=dict, description="per-layer values by series")
    numbers: dict[str, float] = Field(default_factory=dict, description="secondary statistics (never decide)")
    payloads: dict[str, Any] = Field(default_factory=dict, description="tables, linkage, t-SNE coordinates")
    gate_problems: list[str] = Field(default_factory=list)


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
    meets_expectation: bool | None = None
    measurement: Measurement | None = None
    reference: dict[str, str] | None = Field(default=None, description="reference claim id and its verdict")
    probe_set: str
    probe_set_hash: str
    profile: str
    template: str
    template_rendered: dict[str, str] = Field(default_factory=dict)
    variant: str | None = None
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
