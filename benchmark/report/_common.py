"""What the Markdown and HTML writers share: row/column order, cell wording, formatting, layer depth.

Everything here reads fields of :class:`ClaimRecord`; nothing recomputes a statistic.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from benchmark.claims.record import ClaimRecord
from benchmark.core.errors import BenchError

VERDICTS: tuple[str, ...] = ("holds", "fails", "inconclusive", "n/a", "error")
_SECTION_ORDER = {"T": 0, "S": 1, "D": 2, "M": 3, "Q": 4}
#: Display order of templates: the paper's reading first (CLAIMS.md, "Template").
TEMPLATE_ORDER: tuple[str, ...] = ("bare", "shared-suffix")
#: Display order of dtypes: the reference precision first.
DTYPE_ORDER: tuple[str, ...] = ("float32", "bfloat16", "float16")


class ReportError(BenchError):
    """The report cannot be written from these records (none given, unreadable file, unknown comparison)."""


def slug(value: str) -> str:
    """A file-name-safe form of a model or claim id (``T7[a~b]`` -> ``T7_a~b_``)."""
    return re.sub(r"[^A-Za-z0-9._~-]+", "_", value)


def claim_sort_key(claim_id: str) -> tuple[int, int, str]:
    """CLAIMS.md order: text, speech, demography, cross-modal, metrics; then the number."""
    match = re.match(r"([A-Z])(\d+)", claim_id)
    if not match:
        return (len(_SECTION_ORDER), 0, claim_id)
    return (_SECTION_ORDER.get(match.group(1), len(_SECTION_ORDER)), int(match.group(2)), claim_id)


def template_order(template: str) -> tuple[int, str]:
    return (TEMPLATE_ORDER.index(template) if template in TEMPLATE_ORDER else len(TEMPLATE_ORDER), template)


def dtype_order(dtype: str) -> tuple[int, str]:
    return (DTYPE_ORDER.index(dtype) if dtype in DTYPE_ORDER else len(DTYPE_ORDER), dtype)


def fmt(value: float | None, digits: int = 3) -> str:
    """Numbers for tables: ``-`` when absent, ``nan`` kept visible (a NaN is a finding, not a blank)."""
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if value != 0 and abs(value) < 10 ** (-digits):
        return f"{value:.1e}"
    return f"{value:.{digits}f}"


def fmt_interval(low: float | None, high: float | None, digits: int = 3) -> str:
    return f"[{fmt(low, digits)}, {fmt(high, digits)}]"


def column_labels(records: Sequence[ClaimRecord]) -> dict[tuple[str, str, str, str], str]:
    """One matrix column per (model, revision, profile, dtype); the revision, profile or dtype is shown only
    when ambiguous (a report over float32 and bfloat16 results shows each model once per dtype)."""
    keys = sorted({column_key(r) for r in records}, key=lambda k: (*k[:3], dtype_order(k[3])))
    seen: dict[str, list[set[str]]] = {}
    for model, revision, profile, dtype in keys:
        parts = seen.setdefault(model, [set(), set(), set()])
        for part, value in zip(parts, (revision, profile, dtype), strict=True):
            part.add(value)
    labels = {}
    for model, revision, profile, dtype in keys:
        revisions, profiles, dtypes = seen[model]
        label = model
        if len(revisions) > 1:
            label += f"@{revision[:8]}"
        if len(profiles) > 1:
            label += f" [{profile}]"
        if len(dtypes) > 1:
            label += f" {dtype}"
        labels[(model, revision, profile, dtype)] = label
    return labels


def column_key(record: ClaimRecord) -> tuple[str, str, str, str]:
    return (record.model, record.revision, record.profile, record.dtype)


def claim_ids(records: Iterable[ClaimRecord]) -> list[str]:
    return sorted({r.claim_id for r in records}, key=claim_sort_key)


def rule_threshold(record: ClaimRecord) -> tuple[str, float] | None:
    """The rule's margin as ("delta"|"epsilon", value), for drawing beside the effect."""
    for name in ("delta", "epsilon"):
        value = record.rule.get(name)
        if isinstance(value, (int, float)):
            return name, float(value)
    return None


def confidence_level(record: ClaimRecord) -> float:
    alpha = record.rule.get("alpha", 0.05)
    return 1.0 - float(alpha if isinstance(alpha, (int, float)) else 0.05)


def _is_table(value: object) -> bool:
    return (
        isinstance(value, dict)
        and {"rows", "cols", "values"} <= value.keys()
        and isinstance(value["values"], list)
    )


def distance_tables(record: ClaimRecord) -> list[dict[str, Any]]:
    """Every stored table (Tables 1 and 2, separability tables): dicts with rows, cols, values, found at the top
    of ``payloads`` or one level down (``{"table2": {layer: table}}``), titled by their key path."""
    payloads = record.measurement.payloads if record.measurement else {}
    found: list[tuple[str, dict[str, Any]]] = []
    for key, value in payloads.items():
        if _is_table(value):
            found.append((str(key), value))
        elif isinstance(value, dict):
            found += [(f"{key}/{inner}", table) for inner, table in value.items() if _is_table(table)]
    tables = []
    for title, table in found:
        values = table["values"]
        rows = [str(x) for x in table["rows"]]
        cols = [str(x) for x in table["cols"]]
        if len(values) != len(rows) or any(len(row) != len(cols) for row in values):
            continue  # a malformed table is left out rather than drawn misaligned
        note = " ".join(str(table[k]) for k in ("note", "metric") if table.get(k))
        tables.append({"title": title, "note": note, "rows": rows, "cols": cols, "values": values})
    return tables


def _joined(values: Iterable[object]) -> str:
    return ", ".join(dict.fromkeys(str(v) for v in values if v not in (None, ""))) or "-"


def provenance_rows(records: Sequence[ClaimRecord]) -> tuple[list[str], list[list[str]]]:
    """One row per (model, revision): what ran, on what, with which code, and how long it took."""
    headers = [
        "model",
        "revision",
        "kind",
        "probe sets (hash)",
        "profiles",
        "templates",
        "dtype",
        "device",
        "cpu",
        "calibration",
        "git commit",
        "versions",
        "created",
        "run time (s)",
    ]
    rows = []
    for model, revision in sorted({(r.model, r.revision) for r in records}):
        group = [r for r in records if r.model == model and r.revision == revision]
        versions: dict[str, set[str]] = {}
        for r in group:
            for name, version in r.versions.items():
                versions.setdefault(name, set()).add(version)
        created = sorted(r.created for r in group)
        calibration = _joined(
            r.calibration.get("commit")
            or r.calibration.get("file")
            or (str(r.calibration) if r.calibration else None)
            for r in group
        )
        rows.append(
            [
                model,
                revision,
                _joined(r.model_kind for r in group),
                _joined(f"{r.probe_set} ({r.probe_set_hash[:12]})" for r in group),
                _joined(r.profile for r in group),
                _joined(r.template for r in group),
                _joined(r.dtype for r in group),
                _joined(r.device for r in group),
                _joined(r.cpu for r in group),
                calibration,
                _joined(r.git_commit for r in group),
                " ".join(f"{name}={'|'.join(sorted(v))}" for name, v in sorted(versions.items())),
                f"{created[0]} .. {created[-1]}" if created[0] != created[-1] else created[0],
                f"{sum(r.seconds for r in group):.1f}",
            ]
        )
    return headers, rows


def template_rows(records: Sequence[ClaimRecord]) -> list[tuple[str, str, str]]:
    """(model, template/modality, rendered text): the exact inputs' wrapping, recorded in every record."""
    seen: dict[tuple[str, str], str] = {}
    for r in records:
        for modality, text in r.template_rendered.items():
            seen.setdefault((r.model, f"{r.template}/{modality}"), text)
    return [(model, name, text) for (model, name), text in sorted(seen.items())]
