"""The exit-code table: the README's copy, and each code produced by the outcome it stands for.

``lalm-bench`` (``benchmark.run.exit_codes``): 0 success, 1 findings off their expectation, 2 bad input or usage,
3 pipeline error, 130 interrupted. ``pytest claims/`` keeps pytest's codes (a bad ``--probes`` folder is its
usage error, 4).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmark.claims.record import ClaimRecord, Expectation
from benchmark.cli.main import main
from benchmark.run import exit_codes
from tests.probe_factory import text_row, write_manifest

REPO = Path(__file__).resolve().parents[1]


def _record(verdict: str, meets: bool | None = None, claim: str = "T1-x") -> ClaimRecord:
    expectation = None if meets is None else Expectation(verdict="holds", status="measured", source="test")
    return ClaimRecord(
        claim_id=claim,
        claim_version=1,
        claim_fingerprint="f",
        title="t",
        paper="p",
        section="text",
        rule={},
        model="m",
        revision="r",
        model_kind="text-lm",
        verdict=verdict,  # type: ignore[arg-type]
        reason="because",
        expectation=expectation,
        meets_expectation=meets,
        probe_set="s",
        probe_set_hash="h",
        profile="ci",
        template="shared-suffix",
        dtype="float32",
        device="cpu",
        seed=1,
        versions={},
        created="2026-01-01T00:00:00Z",
    )


def test_readme_carries_the_table() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert exit_codes.markdown_table() in readme, (
        "README's exit-code table differs from benchmark.run.exit_codes"
    )


def test_codes_are_distinct_and_pytest_rows_match_pytest() -> None:
    codes = [code for code, _cli, _pytest in exit_codes.TABLE]
    assert len(set(codes)) == len(codes)
    assert {int(c) for c in pytest.ExitCode} <= set(codes)


@pytest.mark.parametrize(
    ("records", "code"),
    [
        ([_record("holds", True), _record("n/a"), _record("inconclusive")], exit_codes.OK),
        ([_record("holds", None)], exit_codes.OK),
        ([_record("holds", True), _record("fails", False)], exit_codes.FINDINGS),
        ([_record("fails", False), _record("error")], exit_codes.PIPELINE_ERROR),
        ([_record("error")], exit_codes.PIPELINE_ERROR),
    ],
    ids=["ok", "no-expectation", "finding-off", "error-beats-finding", "error"],
)
def test_run_exit_code_of_records(records: list[ClaimRecord], code: int) -> None:
    assert exit_codes.run_exit_code(records) == code


def _patch_run(monkeypatch: pytest.MonkeyPatch, behaviour: Any) -> None:
    import benchmark.run.main_job as main_job

    monkeypatch.setattr(main_job, "run_main", behaviour)


def test_ctrl_c_is_one_line_and_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(_options: object) -> int:
        raise KeyboardInterrupt

    _patch_run(monkeypatch, interrupted)
    assert main(["run"]) == exit_codes.INTERRUPTED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted" in err and "cache" in err


def test_an_unexpected_exception_is_a_pipeline_error_without_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(_options: object) -> int:
        raise ZeroDivisionError("a bug")

    _patch_run(monkeypatch, broken)
    monkeypatch.delenv("LALM_BENCH_DEBUG", raising=False)
    assert main(["run"]) == exit_codes.PIPELINE_ERROR
    err = capsys.readouterr().err
    assert "ZeroDivisionError: a bug" in err and "Traceback" not in err and "LALM_BENCH_DEBUG" in err


def test_a_pipeline_error_is_3(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmark.core.errors import PipelineError

    def broken(_options: object) -> int:
        raise PipelineError("identical latents for distinct inputs 'a' and 'b'")

    _patch_run(monkeypatch, broken)
    assert main(["run"]) == exit_codes.PIPELINE_ERROR
    assert "identical latents" in capsys.readouterr().err


def test_a_failed_check_is_a_pipeline_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmark.engine.check as check

    monkeypatch.setattr(check, "main_check", lambda _args: 1)
    assert main(["check", "whisper-base-ct2", "--device", "cpu"]) == exit_codes.PIPELINE_ERROR
    monkeypatch.setattr(check, "main_check", lambda _args: 0)
    assert main(["check", "whisper-base-ct2", "--device", "cpu"]) == exit_codes.OK


def test_consistency_error_pairs_are_3_and_opposites_1(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import benchmark.run.session as session

    def records(verdicts: dict[str, str]) -> Any:
        def fake(options: Any, models: list[str]) -> list[ClaimRecord]:
            from benchmark.claims.registry import all_claims

            out = []
            for spec in all_claims():
                if spec.cross_model:
                    continue
                for model in models:
                    verdict = verdicts.get(options.profile, "holds") if spec.id.startswith("T1") else "holds"
                    rec = _record(verdict, claim=spec.id).model_copy(
                        update={"model": model, "profile": options.profile}
                    )
                    out.append(rec)
            return out

        return fake

    argv = ["consistency", "--model", "m", "--results", str(tmp_path)]
    monkeypatch.setattr(session, "_profile_records", records({}))
    assert main(argv) == exit_codes.OK
    monkeypatch.setattr(session, "_profile_records", records({"ci-alt": "fails"}))
    assert main(argv) == exit_codes.FINDINGS
    monkeypatch.setattr(session, "_profile_records", records({"ci-alt": "error"}))
    assert main(argv) == exit_codes.PIPELINE_ERROR
    capsys.readouterr()


def _pytest_claims(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "claims/", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_pytest_claims_refuses_a_bad_probe_folder_with_its_usage_error(tmp_path: Path) -> None:
    folder = write_manifest(tmp_path / "set", [text_row("a", "Fine"), text_row("b", "\u200b", language="xx")])
    result = _pytest_claims("--probes", str(folder), "--batch-size", "0")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "manifest.jsonl:2" in result.stderr and "--batch-size 0" in result.stderr


def test_pytest_claims_refuses_zero_statistics_workers() -> None:
    result = _pytest_claims("--claim-jobs", "0")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "--claim-jobs 0: must be at least 1" in result.stderr and "Traceback" not in result.stderr


def test_ctrl_c_during_extraction_keeps_the_cached_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real extraction interrupted in its second batch: one line, 130, the first batch stays cached and the
    rerun resumes from it."""
    import json

    import benchmark.engine.extract as extract
    from tests.probe_factory import parallel_text_set

    real = extract.LastTokenCapture.run_with_controls
    calls = {"n": 0}

    def interrupting(self: Any, batch: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, batch)

    monkeypatch.setattr(extract.LastTokenCapture, "run_with_controls", interrupting)
    folder = parallel_text_set(tmp_path / "set", meanings=3, languages=("en", "fr", "de", "es"))
    argv = ["extract", "--model", "whisper-base-ct2", "--probes", str(folder), "--profile", "custom"]
    argv += ["--batch-size", "4", "--cache-dir", str(tmp_path / "cache"), "--device", "cpu", "--quiet"]
    assert main(argv) == exit_codes.INTERRUPTED
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.strip()] == [
        "lalm-bench extract: interrupted; every latent computed so far stays in the cache and a rerun "
        "resumes from it"
    ]
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 4
    monkeypatch.setattr(extract.LastTokenCapture, "run", real)
    assert main(argv) == exit_codes.OK
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["cache_hits"] == 4 and summary["samples"] == 12


def test_pytest_claims_refuses_an_unreachable_hub_model_within_seconds(tmp_path: Path) -> None:
    import time

    started = time.monotonic()
    env_model = "hf:nobody/not-a-cached-lalm"
    result = _pytest_claims(
        "--model", env_model, "--model", "no-such-model", "--results", str(tmp_path / "r")
    )
    assert time.monotonic() - started < 120  # the interpreter and collection included
    assert result.returncode == 4, result.stdout + result.stderr
    assert "nobody/not-a-cached-lalm" in result.stderr and "--model no-such-model" in result.stderr
