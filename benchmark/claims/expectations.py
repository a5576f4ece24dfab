"""Expected verdicts, keyed by (claim, claim version, model, revision, probe-set hash, template, variant).

One committed file, ``reports/baselines/expectations.json``. The paper's models carry the paper's findings
(``paper-reported`` / ``paper-implied``) with ``*`` for revision and probe-set hash, since the paper fixes
neither; the offline models carry what was ``measured``, keyed exactly. Only a change between ``holds`` and
``fails`` fails a test; a run with no matching entry reports without asserting. ``record_measured`` is the one
regeneration path and refuses to run without a reason.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from benchmark.claims.record import ClaimRecord, Expectation
from benchmark.claims.spec import ClaimSpec
from benchmark.core.provenance import REPO_ROOT, git_commit, library_versions, utc_now

EXPECTATIONS_FILE = REPO_ROOT / "reports" / "baselines" / "expectations.json"
WILDCARD = "*"


def _path() -> Path:
    return Path(os.environ.get("LALM_BENCH_EXPECTATIONS", EXPECTATIONS_FILE))


def load_entries(path: Path | None = None) -> list[dict[str, Any]]:
    path = path or _path()
    if not path.exists():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("schema") != "expectations/1":
        raise ValueError(f"{path}: unknown expectations schema {data.get('schema')!r}")
    return list(data["entries"])


def _matches(entry: dict[str, Any], key: dict[str, Any]) -> bool:
    """An entry matches when every key field equals it or is the wildcard; a field the entry does not carry
    (e.g. ``variant`` in entries older than variants) counts as the wildcard."""
    for field, value in key.items():
        stored = entry.get(field, WILDCARD)
        if stored != WILDCARD and stored != value:
            return False
    return True


def lookup_expectation(
    spec: ClaimSpec,
    model: str,
    revision: str,
    probe_set_hash: str,
    template: str,
    *,
    variant: str | None = None,
    synthetic_speech: bool | None = None,
    path: Path | None = None,
) -> Expectation | None:
    """The most specific matching entry (exact key before wildcards), or None."""
    key = {
        "claim": spec.id,
        "claim_version": spec.version,
        "model": model,
        "revision": revision,
        "probe_set_hash": probe_set_hash,
        "template": template,
        "variant": variant,
        "synthetic_speech": synthetic_speech,
    }
    candidates = [entry for entry in load_entries(path) if _matches(entry, key)]
    if not candidates:
        return None
    best = min(candidates, key=lambda e: sum(e.get(f, WILDCARD) == WILDCARD for f in key))
    return Expectation(verdict=best["verdict"], status=best["status"], source=best["source"])


def unmatched_paper_expectation(
    spec: ClaimSpec, model: str, template: str, *, synthetic_speech: bool | None, path: Path | None = None
) -> str:
    """Why a paper expectation of this claim and model does not apply here (e.g. it holds for recorded speech and
    this run used synthetic speech); empty when there is none or it applies."""
    if synthetic_speech is None:
        return ""
    for entry in load_entries(path):
        if (
            entry.get("claim") == spec.id
            and entry.get("model") == model
            and entry.get("status") in ("paper-reported", "paper-implied")
            and entry.get("template", WILDCARD) in (template, WILDCARD)
            and entry.get("synthetic_speech", WILDCARD) not in (synthetic_speech, WILDCARD)
        ):
            kind = "recorded" if entry["synthetic_speech"] is False else "synthetic"
            return (
                f"the paper's expectation ({entry['verdict']}, {entry['status']}: {entry['source']}) holds for "
                f"{kind} speech; this probe set's speech is {'synthetic' if synthetic_speech else 'recorded'}, so "
                "it is not checked here"
            )
    return ""


def record_measured(records: list[ClaimRecord], *, reason: str, path: Path | None = None) -> int:
    """Write ``measured`` expectations from findings (holds/fails) in ``records``; returns entries written.

    Replaces entries with the same exact key; never touches paper entries. Refuses an empty reason.
    """
    if not reason or not reason.strip():
        raise ValueError(
            "recording expectations needs a reason (what changed and why the new verdicts are right)"
        )
    path = path or _path()
    entries = load_entries(path)
    written = 0
    for record in records:
        if record.verdict not in ("holds", "fails"):
            continue
        key = {
            "claim": record.claim_id,
            "claim_version": record.claim_version,
            "model": record.model,
            "revision": record.revision,
            "probe_set_hash": record.probe_set_hash,
            "template": record.template,
            "variant": record.variant,
            "synthetic_speech": record.synthetic_speech,
        }
        entries = [
            e
            for e in entries
            if not (e.get("status") == "measured" and all(e.get(k) == v for k, v in key.items()))
        ]
        versions = library_versions()
        entries.append(
            {
                **key,
                "probe_set": record.probe_set,
                "profile": record.profile,
                "verdict": record.verdict,
                "status": "measured",
                "source": f"measured {utc_now()[:10]} (torch {versions.get('torch')}, transformers "
                f"{versions.get('transformers')}, commit {(git_commit() or 'unknown')[:12]})",
                "reason": reason.strip(),
            }
        )
        written += 1
    entries.sort(key=lambda e: (e["model"], e["claim"], str(e.get("probe_set_hash"))))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        json.dump({"schema": "expectations/1", "entries": entries}, stream, indent=1, ensure_ascii=False)
        stream.write("\n")
    os.replace(temp, path)
    return written
