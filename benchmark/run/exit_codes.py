"""The one table of exit codes of ``lalm-bench`` (every subcommand); README "Exit codes" prints it.

Why a table: CI and shell scripts branch on the code, so "a finding moved" (look at the science), "the pipeline
broke" (look at the code or the machine) and "the input is wrong" (fix the command) must never share one.
``pytest claims/`` keeps pytest's own codes (0 passed, 1 a claim left its expectation or hit a pipeline error, 2
interrupted, 4 usage error such as a bad ``--probes`` folder, 5 nothing collected).
"""

from __future__ import annotations

from collections.abc import Iterable

from benchmark.claims.record import ClaimRecord

#: Everything ran; every finding with a recorded expectation meets it (n/a and inconclusive are not failures).
OK = 0
#: A finding (holds/fails) leaves its recorded expectation (run), or two profiles give opposite verdicts
#: (consistency).
FINDINGS = 1
#: Bad input or usage, found before any compute: options, probe-set rows, audio, paths, unknown names,
#: weights or hub out of reach. Nothing was computed or lost.
BAD_INPUT = 2
#: A pipeline error: a claim's record is ``error`` (extraction or statistics broke), a pre-flight ``check``
#: failed, or the report could not be written. A run still goes on and writes what it can.
PIPELINE_ERROR = 3
#: Interrupted (Ctrl-C): every latent computed so far stays in the cache and a rerun resumes from it.
INTERRUPTED = 130

#: (code, ``lalm-bench`` meaning, ``pytest claims/`` meaning), in the order the README shows them; pytest's
#: codes are its own (``pytest.ExitCode``), listed so one table answers "what does this code mean".
TABLE: tuple[tuple[int, str, str], ...] = (
    (
        OK,
        "success: every finding with a recorded expectation meets it (n/a and inconclusive do not fail)",
        "all passed (n/a, inconclusive and findings without expectation are skips with the reason)",
    ),
    (
        FINDINGS,
        "a finding leaves its expectation (`run`); opposite verdicts (`consistency`)",
        "a claim left its expectation (failed) or recorded `error` (a pytest error)",
    ),
    (
        BAD_INPUT,
        "bad input or usage, found before any compute: one line per problem (`FILE:ROW: field: problem`)",
        "interrupted (Ctrl-C)",
    ),
    (
        PIPELINE_ERROR,
        "pipeline error: a claim recorded `error`, a failed `check`, or the report could not be written",
        "pytest's internal error",
    ),
    (4, "-", "usage error: a bad option value or `--probes` folder, one line per problem"),
    (5, "-", "no tests collected (e.g. `-k` matched nothing)"),
    (INTERRUPTED, "interrupted (Ctrl-C): cached latents are kept; a rerun resumes", "-"),
)


def run_exit_code(records: Iterable[ClaimRecord]) -> int:
    """The code of a finished run: pipeline errors first (they hide findings), then findings off expectation."""
    records = list(records)
    if any(r.verdict == "error" for r in records):
        return PIPELINE_ERROR
    if any(r.meets_expectation is False for r in records):
        return FINDINGS
    return OK


def markdown_table() -> str:
    """The table as Markdown (the README's copy is checked against it)."""
    lines = ["| code | `lalm-bench` (every subcommand) | `pytest claims/` |", "|---|---|---|"]
    lines += [f"| {code} | {cli} | {pytest} |" for code, cli, pytest in TABLE]
    return "\n".join(lines)
