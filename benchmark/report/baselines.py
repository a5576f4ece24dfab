"""Regression baselines: the accepted numbers of each claim record, committed and reviewable.

Layout: ``reports/baselines/<profile>/<dtype>/<model>.json``, one file per model run setting, holding one entry
per claim, template and probe variant. An entry is keyed by claim, claim version, model, revision, probe-set
hash, template, variant, dtype and profile: the file path and the entry's (claim, template, variant) select it,
and claim version, revision and probe-set hash must then equal the record's, or the baseline *cannot be matched*
(a changed claim, checkpoint or probe set is a new experiment; the regression step fails until it is accepted).

Baselines change only through :func:`accept` (``lalm-bench baselines accept RESULTS --reason ...``), which asks
for a reason and writes it beside the numbers with the date, the commit and the runner. The nightly never writes
them: :func:`accept` refuses to run when ``LALM_BENCH_NIGHTLY`` is set, so a night cannot compare its records
with themselves.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from benchmark.claims.record import ClaimRecord
from benchmark.core.provenance import REPO_ROOT, git_commit, utc_now
from benchmark.report._common import ReportError, slug

BASELINE_SCHEMA = "baselines/2"
DEFAULT_BASELINES_DIR = REPO_ROOT / "reports" / "baselines"
ACCEPT_COMMAND = 'lalm-bench baselines accept RESULTS... --reason "why these numbers are right"'
#: Set by ``scripts/nightly.sh``: a run that compares with baselines must not write them.
NIGHTLY_ENV = "LALM_BENCH_NIGHTLY"


@dataclass(frozen=True)
class Tolerance:
    """How far a statistic may move from its baseline before the regression section lists it as moved."""

    absolute: float
    reason: str


TOLERANCES: dict[str, Tolerance] = {
    "effect": Tolerance(
        0.02,
        "primary effects are bounded, scale-free statistics (net silhouettes, retrieval accuracies, rank "
        "correlations); a seeded rerun on the same weights differs only by kernel and dtype drift, far below "
        "0.02, while the rules' margins are 0.02-0.1",
    ),
    "ci_low": Tolerance(0.03, "the bounds add the jackknife's spread, which drift moves a little more"),
    "ci_high": Tolerance(0.03, "as ci_low"),
    "p_value": Tolerance(
        0.02, "a studentised p-value near 0 or 1 barely moves; 0.02 means the statistic moved"
    ),
    "power": Tolerance(0.05, "power is a fixed-seed Monte-Carlo over the jackknife covariance"),
}

#: Fields that select a baseline entry for a record.
SELECTOR = ("model", "profile", "dtype", "claim_id", "template", "variant")
#: Fields that must then equal the record's, or the baseline cannot be matched.
IDENTITY = ("claim_version", "revision", "probe_set_hash")


class Baseline(BaseModel):
    """The accepted numbers of one claim record, with why, when and where they were accepted."""

    model_config = ConfigDict(extra="forbid")

    claim_id: str
    claim_version: int
    model: str
    revision: str
    probe_set_hash: str
    template: str
    variant: str | None
    dtype: str
    profile: str
    verdict: str
    effect: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    power: float | None = None
    se: float | None = None
    df: float | None = None
    explained_by_tokens: bool | None = None
    probe_set: str
    reason: str
    accepted: str
    git_commit: str | None = None
    runner: str
    device: str
    record_created: str

    def selector(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in SELECTOR)

    def describe(self) -> str:
        variant = f",{self.variant}" if self.variant else ""
        return f"{self.claim_id}@{self.claim_version} on {self.model} [{self.template}{variant}]"


def selector_of(record: ClaimRecord) -> tuple[object, ...]:
    return tuple(getattr(record, name) for name in SELECTOR)


def identity_differences(baseline: Baseline, record: ClaimRecord) -> list[str]:
    """``field baseline -> record`` for each identity field that differs (empty: the baseline matches)."""
    return [
        f"{name} {str(getattr(baseline, name))[:16]} -> {str(getattr(record, name))[:16]}"
        for name in IDENTITY
        if getattr(baseline, name) != getattr(record, name)
    ]


def current_runner() -> str:
    """``$LALM_BENCH_RUNNER``, GitHub's ``$RUNNER_NAME``, else the host name."""
    return (
        os.environ.get("LALM_BENCH_RUNNER") or os.environ.get("RUNNER_NAME") or platform.node() or "unknown"
    )


def baseline_file(baselines_dir: Path, model: str, profile: str, dtype: str) -> Path:
    return Path(baselines_dir) / slug(profile) / slug(dtype) / f"{slug(model)}.json"


def _read(path: Path) -> list[Baseline]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("schema") != BASELINE_SCHEMA:
            raise ValueError(f"schema {data.get('schema')!r}, expected {BASELINE_SCHEMA!r}")
        return [Baseline.model_validate(entry) for entry in data["entries"]]
    except (OSError, ValueError, KeyError, TypeError, ValidationError) as error:
        raise ReportError(
            f"baseline file {path} is unreadable ({error}); fix it or accept new baselines with "
            f"`{ACCEPT_COMMAND}`"
        ) from error


def load_baselines(
    baselines_dir: Path, *, profile: str | None = None, dtype: str | None = None
) -> list[Baseline]:
    """Every accepted baseline under ``baselines_dir`` (optionally of one profile and dtype)."""
    root = Path(baselines_dir)
    pattern = f"{slug(profile) if profile else '*'}/{slug(dtype) if dtype else '*'}/*.json"
    found = []
    for path in sorted(root.glob(pattern)):
        entries = _read(path)
        wrong = [b.describe() for b in entries if baseline_file(root, b.model, b.profile, b.dtype) != path]
        if wrong:
            raise ReportError(f"baseline file {path} holds entries of another model or setting: {wrong[:3]}")
        found += entries
    return found


def _entry(record: ClaimRecord, reason: str, runner: str) -> Baseline:
    m = record.measurement
    return Baseline(
        claim_id=record.claim_id,
        claim_version=record.claim_version,
        model=record.model,
        revision=record.revision,
        probe_set_hash=record.probe_set_hash,
        template=record.template,
        variant=record.variant,
        dtype=record.dtype,
        profile=record.profile,
        verdict=record.verdict,
        effect=m.effect if m else None,
        ci_low=m.ci_low if m else None,
        ci_high=m.ci_high if m else None,
        p_value=m.p_value if m else None,
        power=m.power if m else None,
        se=m.se if m else None,
        df=m.df if m else None,
        explained_by_tokens=m.explained_by_tokens if m else None,
        probe_set=record.probe_set,
        reason=reason,
        accepted=utc_now(),
        git_commit=git_commit(),
        runner=runner,
        device=record.device,
        record_created=record.created,
    )


def _write(path: Path, entries: list[Baseline]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = sorted(entries, key=lambda b: (b.claim_id, b.template, str(b.variant)))
    first = entries[0]
    document = {
        "schema": BASELINE_SCHEMA,
        "model": first.model,
        "profile": first.profile,
        "dtype": first.dtype,
        "entries": [b.model_dump(mode="json") for b in entries],
    }
    temp = path.with_suffix(".json.tmp")
    temp.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    temp.replace(path)
    return path


def accept(
    records: Iterable[ClaimRecord],
    reason: str,
    *,
    baselines_dir: Path = DEFAULT_BASELINES_DIR,
    runner: str | None = None,
) -> list[Path]:
    """Accept these records as baselines (replacing entries of the same claim, template and variant); the only
    way a baseline changes. Refuses an empty reason, pipeline errors, and a nightly run."""
    if os.environ.get(NIGHTLY_ENV, "") not in ("", "0"):
        raise ReportError(
            f"{NIGHTLY_ENV} is set: the nightly compares with baselines and never writes them; accept baselines "
            "from a reviewed run's results with a reason, outside the nightly"
        )
    if not reason or not reason.strip():
        raise ReportError(
            f"accepting baselines needs a reason (what changed and why the new numbers are right): "
            f"{ACCEPT_COMMAND}"
        )
    records = list(records)
    if not records:
        raise ReportError("no records to accept as baselines")
    broken = [f"{r.claim_id} on {r.model} [{r.template}]" for r in records if r.verdict == "error"]
    if broken:
        raise ReportError(
            f"refusing to accept pipeline errors as baselines: {', '.join(broken)}; fix the run or pass only "
            "the records to accept"
        )
    runner = runner or current_runner()
    by_file: dict[Path, list[ClaimRecord]] = {}
    for record in records:
        by_file.setdefault(
            baseline_file(baselines_dir, record.model, record.profile, record.dtype), []
        ).append(record)
    written = []
    for path, group in sorted(by_file.items()):
        kept = {b.selector(): b for b in (_read(path) if path.exists() else [])}
        for record in group:
            kept[selector_of(record)] = _entry(record, reason.strip(), runner)
        written.append(_write(path, list(kept.values())))
    return written


def accepted_models(baselines_dir: Path, *, profile: str, dtype: str) -> set[str]:
    """Models with at least one accepted baseline at this profile and dtype (the nightly gates only those)."""
    return {b.model for b in load_baselines(baselines_dir, profile=profile, dtype=dtype)}
