"""The profile-consistency comparison: relations of verdict pairs, missing records, counts, exit code, CLI."""

from __future__ import annotations

import pytest

from benchmark.claims.consistency import (
    ConsistencyError,
    VerdictRow,
    compare_profiles,
    counts,
    exit_code,
    newest_rows,
    relation,
)
from benchmark.cli.main import build_parser, main
from benchmark.report.consistency import consistency_markdown


def _row(
    claim: str, verdict: str, profile: str = "ci", model: str = "m", effect: float | None = 0.1
) -> VerdictRow:
    return VerdictRow(
        claim_id=claim,
        model=model,
        profile=profile,
        verdict=verdict,
        effect=effect,
        ci_low=None if effect is None else effect - 0.05,
        ci_high=None if effect is None else effect + 0.05,
    )


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("holds", "holds", "agree"),
        ("fails", "fails", "agree"),
        ("inconclusive", "inconclusive", "agree"),
        ("n/a", "n/a", "agree"),
        ("holds", "inconclusive", "inconclusive"),
        ("n/a", "fails", "inconclusive"),
        ("inconclusive", "n/a", "inconclusive"),
        ("holds", "error", "error"),
        ("error", "error", "error"),
        ("holds", "fails", "opposite"),
        ("fails", "holds", "opposite"),
    ],
)
def test_relation_of_two_verdicts(a: str, b: str, expected: str) -> None:
    assert relation(a, b) == expected


def test_pairs_counts_and_exit_code() -> None:
    a = [_row("T1", "holds"), _row("T2", "fails"), _row("T3", "inconclusive"), _row("S1", "n/a", effect=None)]
    b = [
        _row(r.claim_id, v, "ci-alt")
        for r, v in zip(a, ["holds", "inconclusive", "inconclusive", "n/a"], strict=True)
    ]
    pairs = compare_profiles(a, b, profile_a="ci", profile_b="ci-alt")
    assert [(p.claim_id, p.relation) for p in pairs] == [
        ("S1", "agree"),
        ("T1", "agree"),
        ("T2", "inconclusive"),
        ("T3", "agree"),
    ]
    assert counts(pairs) == {"agree": 3, "inconclusive": 1, "error": 0, "opposite": 0, "agree_on_finding": 1}
    assert exit_code(pairs) == 0


def test_opposite_verdicts_set_the_exit_code_and_show_their_numbers() -> None:
    pairs = compare_profiles(
        [_row("T4", "holds", effect=0.3)],
        [_row("T4", "fails", "ci-alt", effect=-0.2)],
        profile_a="ci",
        profile_b="ci-alt",
    )
    assert pairs[0].relation == "opposite" and exit_code(pairs) == 1
    text = consistency_markdown(
        pairs, profile_a="ci", profile_b="ci-alt", command="lalm-bench consistency", date="d"
    )
    assert "OPPOSITE" in text and "0.300 [0.250, 0.350]" in text and "-0.200 [-0.250, -0.150]" in text
    assert "1 opposite" in text


def test_an_errored_side_sets_the_exit_code() -> None:
    pairs = compare_profiles(
        [_row("T1", "error")], [_row("T1", "holds", "ci-alt")], profile_a="ci", profile_b="ci-alt"
    )
    assert pairs[0].relation == "error" and exit_code(pairs) == 1


def test_missing_record_names_claim_model_and_profile() -> None:
    with pytest.raises(ConsistencyError, match=r"claim 'T2' on 'm': no 'ci-alt' record"):
        compare_profiles(
            [_row("T1", "holds"), _row("T2", "fails")],
            [_row("T1", "holds", "ci-alt")],
            profile_a="ci",
            profile_b="ci-alt",
        )
    with pytest.raises(
        ConsistencyError, match=r"claim 'T9' on 'm': no 'ci' record.*claim 'T9' on 'm': no 'ci-alt'"
    ):
        compare_profiles(
            [_row("T1", "holds")],
            [_row("T1", "holds", "ci-alt")],
            profile_a="ci",
            profile_b="ci-alt",
            expected=[("m", "T1"), ("m", "T9")],
        )


def test_duplicate_or_misfiled_records_are_refused() -> None:
    with pytest.raises(
        ConsistencyError, match=r"claim 'T1' on 'm' \(no template, no variant\): two 'ci' records"
    ):
        compare_profiles([_row("T1", "holds"), _row("T1", "fails")], [], profile_a="ci", profile_b="ci-alt")
    with pytest.raises(ConsistencyError, match="record of profile 'full' among the 'ci-alt' records"):
        compare_profiles(
            [_row("T1", "holds")], [_row("T1", "holds", "full")], profile_a="ci", profile_b="ci-alt"
        )
    with pytest.raises(ConsistencyError, match="both sides are profile 'ci'"):
        compare_profiles([], [], profile_a="ci", profile_b="ci")


def test_models_are_paired_separately() -> None:
    a = [_row("T1", "holds", model="x"), _row("T1", "fails", model="y")]
    b = [_row("T1", "holds", "ci-alt", model="x"), _row("T1", "holds", "ci-alt", model="y")]
    pairs = compare_profiles(a, b, profile_a="ci", profile_b="ci-alt")
    assert {(p.model, p.relation) for p in pairs} == {("x", "agree"), ("y", "opposite")}


class _Record:
    """The fields of a ClaimRecord that ``newest_rows`` reads."""

    def __init__(self, claim: str, verdict: str, created: str, profile: str = "ci", model: str = "m") -> None:
        self.claim_id, self.verdict, self.created, self.profile, self.model = (
            claim,
            verdict,
            created,
            profile,
            model,
        )
        self.measurement, self.probe_set, self.probe_set_hash, self.reason = None, "p", "h", ""
        self.template, self.variant = "bare", "nopunct"


def test_stored_records_newest_per_claim_of_the_profile_and_models() -> None:
    records = [
        _Record("T1", "fails", "2026-01-01"),
        _Record("T1", "holds", "2026-02-01"),
        _Record("T1", "holds", "2026-03-01", profile="full"),
        _Record("T1", "fails", "2026-03-01", model="z"),
    ]
    rows = newest_rows(records, profile="ci", models=["m"])  # type: ignore[arg-type]
    assert [(r.claim_id, r.verdict) for r in rows] == [("T1", "holds")]


def test_cli_parses_consistency_and_refuses_one_profile_twice(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["consistency", "--model", "m"])
    assert (args.profile, args.against, args.stored) == ("ci", "ci-alt", False)
    assert main(["consistency", "--model", "m", "--profile", "ci", "--against", "ci"]) == 2
    assert "both 'ci'" in capsys.readouterr().err


def test_templates_and_variants_pair_separately() -> None:
    """A claim runs under several templates and variants: each evaluation pairs with its own counterpart."""
    a = [_row("T1", "holds"), _row("T1", "fails")]
    b = [_row("T1", "holds", "ci-alt"), _row("T1", "holds", "ci-alt")]
    for rows in (a, b):
        object.__setattr__(rows[0], "template", "bare")
        object.__setattr__(rows[1], "template", "shared-suffix")
    pairs = compare_profiles(a, b, profile_a="ci", profile_b="ci-alt", expected=[("m", "T1")])
    assert [(p.template, p.relation) for p in pairs] == [("bare", "agree"), ("shared-suffix", "opposite")]
    with pytest.raises(ConsistencyError, match="under shared-suffix"):
        compare_profiles(a, b[:1], profile_a="ci", profile_b="ci-alt")
