"""Tables of a profile-consistency comparison (:mod:`benchmark.claims.consistency`), as text and Markdown.

Why apart from the comparison: the pairing logic stays a pure function over verdicts; this module only words
and lays out its result (claims in CLAIMS.md order, the numbers behind every pair whose verdicts differ).
"""

from __future__ import annotations

from collections.abc import Sequence

from tabulate import tabulate

from benchmark.claims.consistency import Pair, VerdictRow, counts
from benchmark.report._common import claim_sort_key, fmt, fmt_interval


def _ordered(pairs: Sequence[Pair]) -> list[Pair]:
    return sorted(pairs, key=lambda p: (p.model, claim_sort_key(p.claim_id)))


def _relation_cell(pair: Pair) -> str:
    return "OPPOSITE" if pair.relation == "opposite" else pair.relation


def _numbers(row: VerdictRow) -> str:
    if row.effect is None:
        return "-"
    return f"{fmt(row.effect)} {fmt_interval(row.ci_low, row.ci_high)}"


def verdict_table(pairs: Sequence[Pair], *, profile_a: str, profile_b: str, fmt_name: str = "github") -> str:
    """claim | model | verdict A | verdict B | relation, one row per pair."""
    rows = [[p.claim_id, p.model, p.a.verdict, p.b.verdict, _relation_cell(p)] for p in _ordered(pairs)]
    return tabulate(
        rows,
        headers=["claim", "model", f"verdict {profile_a}", f"verdict {profile_b}", "relation"],
        tablefmt=fmt_name,
        disable_numparse=True,
    )


def summary_line(pairs: Sequence[Pair]) -> str:
    """The counts per relation, e.g. ``21 claims: 15 agree (6 on a finding), 6 inconclusive, ...``."""
    c = counts(pairs)
    return (
        f"{len(pairs)} claims: {c['agree']} agree ({c['agree_on_finding']} on a finding), "
        f"{c['inconclusive']} one side inconclusive or n/a, {c['error']} error, {c['opposite']} opposite"
    )


def consistency_markdown(
    pairs: Sequence[Pair], *, profile_a: str, profile_b: str, command: str, date: str
) -> str:
    """The generated part of ``reports/consistency.md``: per model the verdict table and its counts, then
    effect and interval on both profiles for every pair whose verdicts differ (opposite ones first)."""
    lines = [
        f"# Verdict consistency: profile `{profile_a}` against `{profile_b}`",
        "",
        f"Command: `{command}`",
        "",
        f"Date: {date}",
        "",
    ]
    for model in sorted({p.model for p in pairs}):
        mine = [p for p in _ordered(pairs) if p.model == model]
        rows = [[p.claim_id, p.a.verdict, p.b.verdict, _relation_cell(p)] for p in mine]
        lines += [
            f"## {model}",
            "",
            summary_line(mine),
            "",
            tabulate(
                rows,
                headers=["claim", f"verdict {profile_a}", f"verdict {profile_b}", "relation"],
                tablefmt="github",
                disable_numparse=True,
            ),
            "",
        ]
    differing = sorted(
        (p for p in pairs if p.a.verdict != p.b.verdict),
        key=lambda p: (p.relation != "opposite", p.model, claim_sort_key(p.claim_id)),
    )
    if differing:
        rows = [
            [p.claim_id, p.model, _relation_cell(p), p.a.verdict, _numbers(p.a), p.b.verdict, _numbers(p.b)]
            for p in differing
        ]
        lines += [
            "## Pairs whose verdicts differ: effect [interval] on both profiles",
            "",
            tabulate(
                rows,
                headers=[
                    "claim",
                    "model",
                    "relation",
                    profile_a,
                    f"effect {profile_a}",
                    profile_b,
                    f"effect {profile_b}",
                ],
                tablefmt="github",
                disable_numparse=True,
            ),
            "",
        ]
    return "\n".join(lines)
