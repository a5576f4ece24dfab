"""Where each verdict stands against its expectation: meets, left, decayed, first run, or not comparable.

Why apart from the writers: the summary, the matrix, the claim sections and the HTML must agree on one reading.
The record carries the expectation its run matched (verdict, status, source); what the record does not carry is
which data the expectation holds for (``holds_for`` in ``reports/baselines/expectations.json``), so that is read
from the expectations file here. Paper expectations hold for the paper's real recordings: a verdict on the shipped
synthetic (eSpeak) speech is shown beside them, never checked against them.

Statuses:

``meets`` / ``left``
    a finding (holds, fails) equal to / opposite to its expectation; ``left`` is what a reader looks at first.
``decayed``
    the expectation is a finding and the verdict is ``inconclusive``: shown with its effect, interval and the
    rule's margin, and whether the point estimate still lies on the expected side (a small move) or has crossed
    the margin (a collapse).
``first run``
    the model has no recorded expectation at all (a new checkpoint); where its family has paper expectations
    (:data:`PAPER_FAMILIES`) the verdict is compared with each of them.
``not comparable``
    the expectation holds for real speech and the record's probe set is synthetic speech.
``no expectation``, ``n/a``, ``error``, ``undecided``
    as named (``undecided``: an expectation exists and the verdict is n/a).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from benchmark.claims.record import FINDINGS, ClaimRecord, Expectation
from benchmark.report._common import fmt, fmt_interval

StatusKind = Literal[
    "meets", "left", "decayed", "first run", "not comparable", "no expectation", "n/a", "error", "undecided"
]

#: The paper's models by family prefix: a first run of a model whose name starts with a prefix is compared with
#: the paper expectations of these models (the paper's three checkpoints).
PAPER_FAMILIES: dict[str, tuple[str, ...]] = {
    "ultravox-0.5-": ("ultravox-0.5-llama-3.2-1b", "ultravox-0.5-llama-3.1-8b"),
    "qwen2-audio-7b": ("qwen2-audio-7b",),
}
WILDCARD = "*"
_KEY_FIELDS = ("claim", "claim_version", "model", "revision", "probe_set_hash", "template", "variant")


def _expectations_path() -> Path:
    from benchmark.claims.expectations import EXPECTATIONS_FILE

    return Path(os.environ.get("LALM_BENCH_EXPECTATIONS", EXPECTATIONS_FILE))


@dataclass(frozen=True)
class ExpectationEntry:
    """One entry of the expectations file with what the record's ``Expectation`` leaves out."""

    model: str
    verdict: str
    status: str
    source: str
    holds_for: dict[str, Any]
    probe_set: str | None

    def holds_for_text(self) -> str:
        if self.holds_for:
            kind = {"real": "real speech", "synthetic": "synthetic speech", None: "text"}.get(
                self.holds_for.get("speech"), str(self.holds_for.get("speech"))
            )
            source = self.holds_for.get("source")
            return f"{kind} ({source})" if source else kind
        if self.probe_set:
            return f"the probe set it was measured on ({self.probe_set})"
        return "not stated"


def load_expectation_entries(path: Path | None = None) -> list[dict[str, Any]]:
    """Entries of the expectations file; empty when it is missing (a report renders without one)."""
    from benchmark.claims.expectations import load_entries

    return load_entries(path or _expectations_path())


def _matches(entry: Mapping[str, Any], key: Mapping[str, Any]) -> bool:
    """The expectations file's wildcard rule: a field equal to the key, ``*``, or absent matches."""
    return all(entry.get(name, WILDCARD) in (WILDCARD, value) for name, value in key.items())


def find_entry(
    entries: Iterable[Mapping[str, Any]], record: ClaimRecord, model: str
) -> ExpectationEntry | None:
    """The most specific entry for ``record``'s claim, version, template and variant on ``model`` (the record's
    own revision and probe-set hash when ``model`` is the record's model, else any)."""
    own = model == record.model
    key = {
        "claim": record.claim_id,
        "claim_version": record.claim_version,
        "model": model,
        "revision": record.revision if own else WILDCARD,
        "probe_set_hash": record.probe_set_hash if own else WILDCARD,
        "template": record.template,
        "variant": record.variant,
    }
    if not own:  # a family member's entries: any revision and probe set (the paper fixes neither)
        key = {k: v for k, v in key.items() if v != WILDCARD}
    candidates = [e for e in entries if _matches(e, key)]
    if not candidates:
        return None
    best = min(candidates, key=lambda e: sum(e.get(f, WILDCARD) == WILDCARD for f in _KEY_FIELDS))
    return ExpectationEntry(
        model=str(best["model"]),
        verdict=str(best["verdict"]),
        status=str(best["status"]),
        source=str(best["source"]),
        holds_for=dict(best.get("holds_for") or {}),
        probe_set=best.get("probe_set"),
    )


@cache
def _manifest_speech(path: str) -> str:
    """'synthetic', 'real', 'mixed' or 'none': whether a manifest's speech samples are synthesised."""
    flags = set()
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            if line.strip():
                row = json.loads(line)
                if row.get("modality") == "speech":
                    flags.add(bool(row.get("synthetic")))
    if not flags:
        return "none"
    return "mixed" if len(flags) > 1 else ("synthetic" if flags == {True} else "real")


@cache
def _shipped() -> dict[str, Path]:
    from benchmark.probes.catalog import shipped_probe_sets

    return shipped_probe_sets()


def speech_origin(record: ClaimRecord) -> str:
    """Whether the record's probe set holds synthetic or real speech (``none`` for text, ``unknown`` when the set
    is not a shipped one). Read from the shipped manifest's ``synthetic`` flags; records do not carry it."""
    folder = _shipped().get(record.probe_set)
    manifest = Path(folder) / "manifest.jsonl" if folder is not None else None
    if manifest is None or not manifest.is_file():
        return "unknown"
    return _manifest_speech(str(manifest))


def holding_side(record: ClaimRecord) -> bool | None:
    """Whether the point estimate lies on the side of the rule's margin where the claim holds (None: no effect)."""
    m, rule = record.measurement, record.rule
    if m is None:
        return None
    kind = rule.get("kind")
    if kind == "absence" and isinstance(rule.get("epsilon"), (int, float)):
        return m.effect < float(rule["epsilon"])
    delta = rule.get("delta")
    if not isinstance(delta, (int, float)):
        return None
    if kind == "change":
        if m.direction == "decrease":
            return m.effect < -float(delta)
        if m.direction == "increase":
            return m.effect > float(delta)
        return abs(m.effect) > float(delta)
    return m.effect > float(delta)


def margin_text(record: ClaimRecord) -> str:
    rule = record.rule
    if rule.get("kind") == "absence":
        return f"epsilon={rule.get('epsilon')}"
    return f"delta={rule.get('delta')}"


def decay_text(record: ClaimRecord, expected: str) -> str:
    """Effect, interval and margin of a decayed finding, and whether it moved a little or collapsed."""
    m = record.measurement
    if m is None:
        return "no effect stored"
    side = holding_side(record)
    expected_side = side if expected == "holds" else (None if side is None else not side)
    reading = {
        True: "the estimate is still on the expected side, only the interval reaches across the margin (a small "
        "move)",
        False: "the estimate has crossed the margin (a collapse)",
        None: "side of the margin unknown",
    }[expected_side]
    return f"effect {fmt(m.effect)} {fmt_interval(m.ci_low, m.ci_high)}, {margin_text(record)}: {reading}"


@dataclass(frozen=True)
class FamilyComparison:
    """A first run's verdict against one paper model's expectation of the same claim, template and variant."""

    paper_model: str
    entry: ExpectationEntry
    relation: str  # agrees, opposite, decayed, undecided, not comparable

    def text(self) -> str:
        return (
            f"{self.paper_model} expects {self.entry.verdict} ({self.entry.status}, {self.entry.source}; holds "
            f"for {self.entry.holds_for_text()}): {self.relation}"
        )


@dataclass(frozen=True)
class FindingStatus:
    """A record's standing against its expectation, with the words the report shows."""

    kind: StatusKind
    expectation: Expectation | None
    entry: ExpectationEntry | None
    detail: str = ""
    family: list[FamilyComparison] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        """What a reader must look at first: a finding that left its expectation, or a pipeline error."""
        return self.kind in ("left", "error")

    def cell(self) -> str:
        """Short text for a matrix cell (beside the verdict)."""
        exp = self.expectation
        if self.kind in ("meets", "left"):
            return f"expected {exp.verdict}, {exp.status}"  # type: ignore[union-attr]
        if self.kind == "decayed":
            return f"decayed from {exp.verdict}, {exp.status}"  # type: ignore[union-attr]
        if self.kind == "not comparable":
            return f"paper: {exp.verdict} on real speech; not compared"  # type: ignore[union-attr]
        if self.kind == "first run":
            agree = sum(f.relation == "agrees" for f in self.family)
            return "first run" + (f"; family: {agree}/{len(self.family)} agree" if self.family else "")
        if self.kind == "undecided":
            return f"expected {exp.verdict}, {exp.status}"  # type: ignore[union-attr]
        return "no expectation" if self.kind in ("no expectation", "n/a", "error") else self.kind


def _relation(verdict: str, expected: str) -> str:
    if verdict == expected:
        return "agrees"
    if verdict in FINDINGS:
        return "opposite"
    if verdict == "inconclusive":
        return "decayed"
    return "undecided"


def _comparable(entry: ExpectationEntry | None, origin: str) -> bool:
    return not (entry is not None and entry.holds_for.get("speech") == "real" and origin == "synthetic")


def finding_status(
    record: ClaimRecord, entries: list[dict[str, Any]], models_with_expectations: set[str]
) -> FindingStatus:
    """The record's status (see the module docstring)."""
    exp = record.expectation
    entry = find_entry(entries, record, record.model) if exp is not None else None
    if exp is None:
        if record.verdict == "error":
            return FindingStatus("error", None, None)
        if record.model in models_with_expectations:
            return FindingStatus("no expectation" if record.verdict != "n/a" else "n/a", None, None)
        origin = speech_origin(record)
        family = []
        for prefix, paper_models in PAPER_FAMILIES.items():
            if not record.model.startswith(prefix):
                continue
            for paper_model in paper_models:
                found = find_entry(entries, record, paper_model)
                if found is None:
                    continue
                relation = (
                    _relation(record.verdict, found.verdict)
                    if _comparable(found, origin)
                    else "not comparable (real speech expected, synthetic speech run)"
                )
                family.append(FamilyComparison(paper_model, found, relation))
        return FindingStatus("first run", None, None, family=family)
    if record.verdict == "error":
        return FindingStatus("error", exp, entry)
    origin = speech_origin(record)
    if not _comparable(entry, origin):
        return FindingStatus(
            "not comparable",
            exp,
            entry,
            f"the expectation holds for {entry.holds_for_text()}; this run's probe set "  # type: ignore[union-attr]
            f"{record.probe_set} is synthetic speech",
        )
    if record.verdict == exp.verdict:
        return FindingStatus("meets", exp, entry)
    if record.verdict in FINDINGS:
        return FindingStatus("left", exp, entry)
    if record.verdict == "inconclusive":
        return FindingStatus("decayed", exp, entry, decay_text(record, exp.verdict))
    return FindingStatus("undecided", exp, entry, record.reason)


def models_with_expectations(entries: Iterable[Mapping[str, Any]]) -> set[str]:
    return {str(e.get("model")) for e in entries}
