"""Verdicts of one claim under two or more dtypes (float32 against bfloat16), compared claim by claim.

A claim whose record holds under one dtype and fails under another (same claim, model, revision, probe set,
template and probe variant) is **dtype-dependent**: the finding rests on numerical precision, not on the model.
Holds (or fails) against inconclusive is shown, not flagged: the same convention as template dependence.

Why in the report: records of two dtypes share one store path (``benchmark.claims.store`` keys it by revision,
probe-set hash, claim, template and variant, not dtype), so they live in two results folders and meet only
when the report reads both. Nothing here recomputes a statistic; the drift of the latents themselves is
``benchmarks/dtype_drift.py`` (``reports/dtype_drift.json``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from benchmark.claims.record import ClaimRecord, opposite_findings
from benchmark.report._common import claim_sort_key, dtype_order, fmt, fmt_interval, template_order

DTYPE_DEPENDENT = "dtype-dependent"

#: (claim, model, revision, probe-set hash, template, variant): what must agree for two records to be compared.
DtypeKey = tuple[str, str, str, str, str, str | None]


def dtype_key(record: ClaimRecord) -> DtypeKey:
    return (
        record.claim_id,
        record.model,
        record.revision,
        record.probe_set_hash,
        record.template,
        record.variant,
    )


def dtypes_of(records: Iterable[ClaimRecord]) -> list[str]:
    """The dtypes present, float32 first."""
    return sorted({r.dtype for r in records}, key=dtype_order)


def dtype_groups(records: Iterable[ClaimRecord]) -> dict[DtypeKey, dict[str, ClaimRecord]]:
    """Records by comparison key, then by dtype (the newest record where a dtype occurs twice)."""
    groups: dict[DtypeKey, dict[str, ClaimRecord]] = {}
    for record in sorted(records, key=lambda r: r.created):
        groups.setdefault(dtype_key(record), {})[record.dtype] = record
    return groups


def dtype_flag(group: dict[str, ClaimRecord]) -> bool | None:
    """True: holds under one dtype and fails under another; False: compared, not opposite; None: one dtype."""
    if len(group) < 2:
        return None
    return opposite_findings(r.verdict for r in group.values())


def dtype_flags(records: Iterable[ClaimRecord]) -> dict[DtypeKey, bool | None]:
    return {key: dtype_flag(group) for key, group in dtype_groups(records).items()}


def mark_dtype_dependence(records: Sequence[ClaimRecord]) -> list[ClaimRecord]:
    """Copies of ``records`` with ``dtype_dependent`` set from the comparison across dtypes; a record whose
    group has one dtype keeps the flag it was saved with (None unless marked elsewhere)."""
    flags = dtype_flags(records)
    out = []
    for record in records:
        flag = flags[dtype_key(record)]
        out.append(record if flag is None else record.model_copy(update={"dtype_dependent": flag}))
    return out


def _ordered(groups: dict[DtypeKey, dict[str, ClaimRecord]]) -> list[tuple[DtypeKey, dict[str, ClaimRecord]]]:
    return sorted(
        groups.items(),
        key=lambda item: (
            claim_sort_key(item[0][0]),
            item[0][1],
            item[0][2],
            template_order(item[0][4]),
            str(item[0][5]),
        ),
    )


def _effect(record: ClaimRecord | None) -> str:
    if record is None or record.measurement is None:
        return "-"
    m = record.measurement
    return f"{fmt(m.effect)} {fmt_interval(m.ci_low, m.ci_high)}"


def flag_cell(flag: bool | None) -> str:
    return {True: DTYPE_DEPENDENT.upper(), False: "no", None: "not compared"}[flag]


def dtype_table(
    records: Sequence[ClaimRecord], *, compared_only: bool = True
) -> tuple[list[str], list[list[str]]]:
    """Headers and rows: claim, model, template, variant, then verdict and effect [low, high] per dtype, and the
    flag; one row per claim x model x template x variant, dtype-dependent rows first. ``compared_only``: leave
    out the groups of one dtype."""
    dtypes = dtypes_of(records)
    headers = ["claim", "model", "template", "variant"]
    for dtype in dtypes:
        headers += [f"verdict {dtype}", f"effect {dtype} [low, high]"]
    headers.append(DTYPE_DEPENDENT)
    rows = []
    ordered = _ordered(dtype_groups(records))
    for (claim_id, model, _rev, _hash, template, variant), group in sorted(
        ordered, key=lambda item: dtype_flag(item[1]) is not True
    ):
        flag = dtype_flag(group)
        if compared_only and flag is None:
            continue
        primary = next(iter(group.values())).primary_variant
        row = [
            claim_id,
            model,
            template,
            (variant or "-") + (" (primary)" if variant and primary else ""),
        ]
        for dtype in dtypes:
            record = group.get(dtype)
            row += [record.verdict if record else "-", _effect(record)]
        row.append(flag_cell(flag))
        rows.append(row)
    return headers, rows


def dtype_summary(records: Sequence[ClaimRecord]) -> str:
    """One line: how many groups were compared and how they relate."""
    groups = list(dtype_groups(records).values())
    flags = [dtype_flag(g) for g in groups]
    compared = [g for g in groups if len(g) > 1]
    same = sum(1 for g in compared if len({r.verdict for r in g.values()}) == 1)
    dependent = sum(1 for f in flags if f)
    alone = sum(1 for f in flags if f is None)
    return (
        f"{len(compared)} claim x model x template x variant compared across {', '.join(dtypes_of(records))}: "
        f"{same} same verdict, {len(compared) - same - dependent} differ without opposing findings (one side "
        f"inconclusive, n/a or error), {dependent} {DTYPE_DEPENDENT}; {alone} of one dtype only, not compared"
    )


def dependent_lines(records: Sequence[ClaimRecord]) -> list[str]:
    """``T3 on gemma [bare,nopunct]: float32 holds, bfloat16 fails`` for every dtype-dependent group."""
    lines = []
    for (claim_id, model, _rev, _hash, template, variant), group in _ordered(dtype_groups(records)):
        if dtype_flag(group):
            where = f"{template},{variant}" if variant else template
            verdicts = ", ".join(f"{d} {group[d].verdict}" for d in sorted(group, key=dtype_order))
            lines.append(f"{claim_id} on {model} [{where}]: {verdicts}")
    return lines


def dtype_verdicts_markdown(
    records: Sequence[ClaimRecord], *, commands: Sequence[str], date: str, cpu: str, notes: Sequence[str] = ()
) -> str:
    """The comparison as a stand-alone Markdown page (``reports/dtype_verdicts.md``)."""
    from tabulate import tabulate

    headers, rows = dtype_table(records, compared_only=False)
    lines = [
        f"# Verdicts by dtype: {' against '.join(dtypes_of(records))}",
        "",
        "Commands:",
        "",
        *(f"    {c}" for c in commands),
        "",
        f"Date: {date}",
        "",
        f"CPU: {cpu}",
        "",
        dtype_summary(records) + ".",
        "",
        f"{DTYPE_DEPENDENT.upper()}: holds under one dtype and fails under another (holds or fails against "
        "inconclusive is shown, not flagged). Effect: the quantity the rule decides, with its "
        "bounds (one-sided at the rule's alpha; alpha/2 each for a two-sided change).",
        "",
        *(f"- {n}" for n in notes),
        *([""] if notes else []),
        tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True),
        "",
    ]
    return "\n".join(lines)
