"""Regression baselines: one reviewable JSON per (model, claim) with the numbers, tolerances and provenance.

``reports/baselines/<model-slug>/<claim-id>.json`` holds the effect, its interval, the verdict and the
per-statistic tolerances in force when it was accepted. Baselines never change silently: :func:`regenerate`
is the one way to accept new numbers and refuses to run without a reason, which it writes beside the numbers
with the date and the git commit. A model's first run on a runner with no baseline writes a *provisional* one
(:func:`write_provisional`): reported against, never trusted, until accepted with ``regenerate``.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from benchmark.claims.record import ClaimRecord
from benchmark.core.provenance import REPO_ROOT, git_commit, utc_now
from benchmark.report._common import ReportError, slug

BASELINE_SCHEMA = "baseline/1"
DEFAULT_BASELINES_DIR = REPO_ROOT / "reports" / "baselines"
REGENERATE_COMMAND = 'lalm-bench baselines accept RESULTS... --reason "why these numbers are right"'


@dataclass(frozen=True)
class Tolerance:
    """How far a statistic may move from its baseline before the regression section lists it."""

    absolute: float
    reason: str


TOLERANCES: dict[str, Tolerance] = {
    "effect": Tolerance(
        0.02,
        "primary effects are bounded, scale-free statistics (net silhouettes, retrieval "
        "accuracies, rank correlations); a seeded rerun on the same weights differs only "
        "by kernel and dtype drift, far below 0.02, while the rules' margins are ~0.05",
    ),
    "ci_low": Tolerance(
        0.03,
        "bootstrap bounds add resampling noise on top of the effect's drift when the "
        "number of draws changes between runners",
    ),
    "ci_high": Tolerance(0.03, "as ci_low"),
    "p_value": Tolerance(
        0.02,
        "with p = (b+1)/(B+1) at B >= 999 a p-value moves in steps of 0.001; 0.02 "
        "means the permutation null itself moved",
    ),
    "power": Tolerance(
        0.05,
        "power comes from a seeded simulation at the shipped n; 0.05 is beyond its "
        "Monte-Carlo spread at the simulated seed counts",
    ),
    "token_control": Tolerance(
        0.02,
        "the token-identity control is the same statistic on layer emb: same scale and drift as the effect",
    ),
}
EXACT: dict[str, str] = {
    "verdict": "any verdict change is listed: holds <-> fails changes a finding, and a move to or from "
    "inconclusive/error changes what the run can say",
}


class Baseline(BaseModel):
    """The accepted (or provisional) numbers of one claim on one model, with why and when."""

    model_config = ConfigDict(extra="forbid")

    schema_version: str = BASELINE_SCHEMA
    model: str
    revision: str
    claim_id: str
    claim_version: int
    probe_set_hash: str
    template: str
    profile: str
    variant: str | None = None
    verdict: str
    effect: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    power: float | None = None
    token_control: float | None = None
    tolerances: dict[str, float]
    provisional: bool
    reason: str
    accepted: str | None = None
    git_commit: str | None = None
    runner: str
    device: str
    dtype: str
    record_created: str
    written: str

    def key(self) -> dict[str, object]:
        return {
            "revision": self.revision,
            "claim_version": self.claim_version,
            "probe_set_hash": self.probe_set_hash,
            "template": self.template,
            "profile": self.profile,
        }


def record_key(record: ClaimRecord) -> dict[str, object]:
    """The fields that must match for a record to be compared with a baseline."""
    return {
        "revision": record.revision,
        "claim_version": record.claim_version,
        "probe_set_hash": record.probe_set_hash,
        "template": record.template,
        "profile": record.profile,
    }


def current_runner() -> str:
    """The runner's name: ``$LALM_BENCH_RUNNER``, GitHub's ``$RUNNER_NAME``, else the host name."""
    return (
        os.environ.get("LALM_BENCH_RUNNER") or os.environ.get("RUNNER_NAME") or platform.node() or "unknown"
    )


def baseline_path(baselines_dir: Path, model: str, claim_id: str) -> Path:
    return Path(baselines_dir) / slug(model) / f"{slug(claim_id)}.json"


def load_baseline(baselines_dir: Path, model: str, claim_id: str) -> Baseline | None:
    path = baseline_path(baselines_dir, model, claim_id)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Baseline.model_validate(data)
    except (ValueError, TypeError) as error:
        raise ReportError(
            f"baseline {path} is unreadable ({error}); fix it or regenerate it with `{REGENERATE_COMMAND}`"
        ) from error


def _baseline(record: ClaimRecord, *, provisional: bool, reason: str, runner: str) -> Baseline:
    m = record.measurement
    return Baseline(
        model=record.model,
        revision=record.revision,
        claim_id=record.claim_id,
        claim_version=record.claim_version,
        probe_set_hash=record.probe_set_hash,
        template=record.template,
        profile=record.profile,
        variant=record.variant,
        verdict=record.verdict,
        effect=m.effect if m else None,
        ci_low=m.ci_low if m else None,
        ci_high=m.ci_high if m else None,
        p_value=m.p_value if m else None,
        power=m.power if m else None,
        token_control=m.token_control if m else None,
        tolerances={name: tol.absolute for name, tol in TOLERANCES.items()},
        provisional=provisional,
        reason=reason,
        accepted=None if provisional else utc_now(),
        git_commit=git_commit(),
        runner=runner,
        device=record.device,
        dtype=record.dtype,
        record_created=record.created,
        written=utc_now(),
    )


def _write(path: Path, baseline: Baseline) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".json.tmp")
    temp.write_text(
        json.dumps(baseline.model_dump(mode="json"), indent=1, allow_nan=False) + "\n", encoding="utf-8"
    )
    temp.replace(path)
    return path


def regenerate(
    records: Iterable[ClaimRecord],
    reason: str,
    *,
    baselines_dir: Path = DEFAULT_BASELINES_DIR,
    runner: str | None = None,
) -> list[Path]:
    """Accept these records as the baselines (no longer provisional); the only way a baseline changes.

    Refuses an empty reason. Records with verdict ``error`` are refused too: a broken pipeline is never a
    baseline. Returns the written paths.
    """
    if not reason or not reason.strip():
        raise ReportError(
            f"regenerating baselines needs a reason (what changed and why the new numbers are "
            f"right): {REGENERATE_COMMAND}"
        )
    records = list(records)
    if not records:
        raise ReportError("no records to accept as baselines")
    broken = [f"{r.claim_id} on {r.model}" for r in records if r.verdict == "error"]
    if broken:
        raise ReportError(
            f"refusing to accept pipeline errors as baselines: {', '.join(broken)}; fix the "
            f"run or pass only the records to accept"
        )
    runner = runner or current_runner()
    return [
        _write(
            baseline_path(baselines_dir, r.model, r.claim_id),
            _baseline(r, provisional=False, reason=reason.strip(), runner=runner),
        )
        for r in records
    ]


def write_provisional(
    records: Iterable[ClaimRecord],
    *,
    baselines_dir: Path = DEFAULT_BASELINES_DIR,
    runner: str | None = None,
) -> list[Path]:
    """First baselines for (model, claim) pairs that have none; existing baselines are never touched."""
    runner = runner or current_runner()
    written = []
    for record in records:
        path = baseline_path(baselines_dir, record.model, record.claim_id)
        if path.exists() or record.verdict == "error":
            continue
        reason = f"first run on runner {runner!r}: provisional until accepted with `{REGENERATE_COMMAND}`"
        written.append(_write(path, _baseline(record, provisional=True, reason=reason, runner=runner)))
    return written
