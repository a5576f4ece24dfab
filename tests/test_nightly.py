"""The nightly: the workflow as GitHub runs it (actionlint with shellcheck, pipefail, lock, hub token, CUDA torch,
matrix from the plan), the plan against its timeouts, the JUnit gate, and the CPU dry run of
``scripts/nightly.sh`` end to end, then with a planted regression and an unmatched baseline.

The dry run takes several minutes (pre-flight, every claim of gemma-3-270m-q4km on ci and ci-alt, the tiny LALMs'
cross-model claims, the report): it runs once per session and the planted cases rerun only its last two steps.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmark.report.walltime import (
    GATED_FROM_THE_START,
    JOB_TIMEOUT_MINUTES,
    SAFETY,
    catalog_rows,
    plan_nightly,
)

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "nightly.sh"
WORKFLOW = REPO / ".github" / "workflows" / "nightly.yml"
STEPS = (
    "plan",
    "lock",
    "setup-torch",
    "check",
    "claims",
    "consistency",
    "cross-model",
    "report",
    "regression",
)


def _tool(name: str) -> str:
    path = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    assert path, f"{name} is not installed; it is a declared dev dependency (pyproject.toml [dev])"
    return path


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _runs(job: dict) -> list[str]:
    return [step.get("run", "") for step in job.get("steps", [])]


def test_workflows_pass_actionlint_with_shellcheck(tmp_path: Path) -> None:
    actionlint, shellcheck = _tool("actionlint"), _tool("shellcheck")
    files = sorted(str(p) for p in (REPO / ".github" / "workflows").glob("*.yml"))
    done = subprocess.run(
        [
            actionlint,
            "-shellcheck",
            shellcheck,
            "-config-file",
            str(REPO / ".github/actionlint.yaml"),
            *files,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "broken.yml"  # the same check catches what GitHub would reject
    broken.write_text(WORKFLOW.read_text().replace("needs: plan\n", "needs: plann\n", 1))
    done = subprocess.run(
        [actionlint, "-shellcheck", shellcheck, str(broken)], capture_output=True, text=True
    )
    assert done.returncode != 0 and "plann" in done.stdout


def test_the_nightly_script_passes_shellcheck() -> None:
    done = subprocess.run([_tool("shellcheck"), str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_every_pipe_runs_under_pipefail_and_the_steps_come_in_order() -> None:
    workflow = _workflow()
    assert workflow["defaults"]["run"]["shell"] == "bash"  # GitHub runs `shell: bash` as bash -eo pipefail
    for job in workflow["jobs"].values():
        assert "shell" not in job.get("defaults", {}).get("run", {})
        for step in job["steps"]:
            assert step.get("shell", "bash") == "bash", step
    assert "set -euo pipefail" in SCRIPT.read_text()
    plan, claims, report = (workflow["jobs"][k] for k in ("plan", "claims", "report"))
    plan_runs = _runs(plan)
    assert plan_runs.index("bash scripts/nightly.sh lock") < next(
        i for i, r in enumerate(plan_runs) if "nightly.sh plan" in r
    )
    assert any(
        "upload-artifact" in s.get("uses", "") and s["with"]["path"] == "artifacts/hub_lock.json"
        for s in plan["steps"]
    )
    assert plan["outputs"]["matrix"] == "${{ steps.plan.outputs.matrix }}"
    names = [s.get("name", "") + s.get("run", "") + s.get("uses", "") for s in claims["steps"]]

    def at(text: str) -> int:
        return next(i for i, n in enumerate(names) if text in n)

    assert (
        at("nightly.sh announce")
        < at("download-artifact")
        < at("nightly.sh setup-torch")
        < at("scripts/install.sh")
        < at("nightly.sh check")
        < at("nightly.sh claims")
    )
    assert at("nightly.sh check") < at("nightly.sh consistency")
    assert claims["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    assert claims["continue-on-error"] == "${{ matrix.allowed_to_fail }}"
    assert claims["timeout-minutes"] == "${{ matrix.timeout_minutes }}"
    assert workflow["env"]["HF_TOKEN"] == "${{ secrets.HF_TOKEN }}"
    last = report["steps"][-1]
    assert "nightly.sh regression" in last["run"] and "continue-on-error" not in last and "if" not in last
    assert "continue-on-error" not in report
    code = [
        line
        for text in (WORKFLOW.read_text(), SCRIPT.read_text())
        for line in text.splitlines()
        if not line.lstrip().startswith("#")
    ]
    assert not [
        line for line in code if "baselines accept" in line or "provisional" in line
    ]  # never writes them


def test_the_plan_covers_the_catalog_and_keeps_every_job_under_its_timeout() -> None:
    rows = catalog_rows()
    lalms = [r["name"] for r in rows if r["hub_id"]]
    big = [  # the 24-30 B entries of the newer catalog, and one that needs two GPUs
        {
            "name": "voxtral-small-24b",
            "hub_id": "mistralai/Voxtral-Small-24B-2507",
            "modalities": ["text", "speech"],
        },
        {
            "name": "qwen3-omni-30b-a3b-instruct",
            "hub_id": "Qwen/Qwen3-Omni-30B-A3B-Instruct",
            "modalities": ["text", "speech"],
        },
        {
            "name": "ultravox-0.6-llama-3.3-70b",
            "hub_id": "fixie-ai/ultravox-v0_6-llama-3_3-70b",
            "modalities": ["text", "speech"],
        },
    ]
    shards = plan_nightly([*rows, *big])
    planned = {s.model for s in shards}
    assert set(lalms) <= planned and {b["name"] for b in big} <= planned
    for shard in shards:
        assert shard.expected_minutes * SAFETY <= shard.timeout_minutes == JOB_TIMEOUT_MINUTES, (
            shard.describe()
        )
        assert shard.allowed_to_fail == (shard.model not in GATED_FROM_THE_START)
    assert {
        s.model: s.gpus for s in shards if s.model in ("voxtral-small-24b", "qwen3-omni-30b-a3b-instruct")
    } == {
        "voxtral-small-24b": 1,
        "qwen3-omni-30b-a3b-instruct": 1,
    }
    huge = [s for s in shards if s.model == "ultravox-0.6-llama-3.3-70b"]
    assert all(s.gpus == 2 and "two H200" in s.notes[0] for s in huge)
    assert sum(s.consistency for s in shards) == len(planned)  # one consistency job per model
    voxtral = [r for r in rows if r["name"] == "voxtral-mini-3b"]
    assert voxtral and all(s.allowed_to_fail for s in plan_nightly(voxtral))
    assert not any(
        s.allowed_to_fail for s in plan_nightly(voxtral, gated=["voxtral-mini-3b"])
    )  # has a baseline


def test_a_slow_model_is_split_by_section_then_template(monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmark.report.walltime as walltime

    row = {"name": "qwen2-audio-7b", "hub_id": "Qwen/Qwen2-Audio-7B", "modalities": ["text", "speech"]}
    walltime.workload.cache_clear()
    monkeypatch.setattr(walltime, "EVAL_SECONDS_FULL", 5.0)
    whole = plan_nightly([row])
    assert [s.shard for s in whole] == ["all", "consistency"]
    assert whole[0].pytest_args.split() == [f"claims/test_{s}.py" for s in walltime.SECTIONS]
    walltime.workload.cache_clear()
    monkeypatch.setattr(walltime, "EVAL_SECONDS_FULL", 900.0)
    split = plan_nightly([row])
    walltime.workload.cache_clear()
    shards = [s.shard for s in split]
    assert "consistency" in shards and len(shards) > 3 and "all" not in shards
    assert any(s.endswith(("-bare", "-shared-suffix")) for s in shards)
    speech = [s for s in split if s.shard.startswith("speech")]
    assert all(s.pytest_args.startswith("claims/test_speech.py") for s in speech)
    assert all(s.expected_minutes * SAFETY <= s.timeout_minutes or s.notes for s in split)


def test_a_cached_config_is_sized_by_the_engines_memory_planner() -> None:
    from benchmark.engine.memory import estimate_memory
    from benchmark.report.walltime import size_from_config
    from tests.tiny_lalms import tiny_qwen2_audio

    model, _ = tiny_qwen2_audio()
    model.config.architectures = ["Qwen2AudioForConditionalGeneration"]  # as a hub config names it
    size = size_from_config(model.config)
    assert round(size.billions * 1e9) == sum(p.numel() for p in model.parameters())  # the audio tower counted
    decoder_only = estimate_memory(model.config, batch_size=64, seq_len=256, parameters=1).activation_bytes
    assert (
        size.activation_gib * 2**30 > decoder_only / 2
    )  # bf16 halves the decoder; the encoder's window adds
    assert size.source == "counted from the config"


def test_the_plan_command_writes_the_github_matrix(tmp_path: Path) -> None:
    output = tmp_path / "github_output"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmark.cli.main",
            "nightly",
            "plan",
            "--model",
            "gemma-3-270m-q4km",
            "--model",
            "qwen2-audio-7b",
            "--github-output",
            str(output),
            "--baselines",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    assert "plan: qwen2-audio-7b [text]: expected" in done.stdout and "weights 15.6 GiB" in done.stdout
    assert "GPU-runner hours" in done.stdout
    line = output.read_text().strip()
    assert line.startswith("matrix=")
    matrix = json.loads(line.removeprefix("matrix="))
    assert {e["model"] for e in matrix["include"]} == {"gemma-3-270m-q4km", "qwen2-audio-7b"}
    assert all(
        {"shard", "pytest_args", "timeout_minutes", "allowed_to_fail", "gpus"} <= e.keys()
        for e in matrix["include"]
    )


JUNIT = """<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="{tests}" failures="{failures}"
errors="{errors}" skipped="0"></testsuite></testsuites>"""


@pytest.mark.parametrize(
    ("failures", "errors", "tests", "code"), [(0, 0, 3, 0), (2, 0, 3, 0), (0, 1, 3, 1), (0, 0, 0, 1)]
)
def test_junit_gate_fails_on_pipeline_errors_only(
    tmp_path: Path, failures: int, errors: int, tests: int, code: int
) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT.format(tests=tests, failures=failures, errors=errors))
    done = subprocess.run(
        [sys.executable, "-m", "benchmark.cli.main", "nightly", "junit", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == code, done.stdout + done.stderr


def _nightly(*args: str, env: dict[str, str], timeout: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **env},
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The whole dry run once, against the committed baselines."""
    root = tmp_path_factory.mktemp("nightly")
    env = {
        "RESULTS": str(root / "results"),
        "REPORT_DIR": str(root / "report"),
        "ARTIFACTS": str(root / "artifacts"),
        "BASELINES": str(REPO / "reports" / "baselines"),
    }
    done = _nightly("dry-run", env=env, timeout=2400)
    return {"root": root, "env": env, "done": done}


def test_the_dry_run_passes_every_step_against_the_committed_baselines(dry_run: dict) -> None:
    done, root = dry_run["done"], dry_run["root"]
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    positions = [done.stdout.index(f"== nightly {step}:") for step in STEPS]
    assert positions == sorted(positions)
    assert "plan: qwen2-audio-7b [text]: expected" in done.stdout and "plan: voxtral-mini-3b" in done.stdout
    assert json.loads((root / "artifacts" / "check-gemma-3-270m-q4km.json").read_text())["ok"] is True
    assert (root / "artifacts" / "consistency-gemma-3-270m-q4km.md").is_file()
    report = (root / "report" / "report.md").read_text()
    assert "## False-alarm budget of the nightly" in report and "T7-training-mix-shifts-cjk" in report
    assert "Nightly gate (baselines in" in report and "no failure" in report
    assert "regression checks:" in done.stdout and "unchanged" in done.stdout


def _plant(dry_run: dict, tmp_path: Path, change: str) -> tuple[Path, str, str]:
    """A copy of the committed baselines with one gemma entry changed: its verdict turned against tonight's strongest
    finding (``flip``), or its probe-set hash (``unmatch``). Returns the folder, claim and model."""
    from benchmark.report import load_records
    from benchmark.report.alarms import finding_p_value

    planted = tmp_path / "baselines"
    shutil.copytree(REPO / "reports" / "baselines", planted)
    path = planted / "ci" / "float32" / "gemma-3-270m-q4km.json"
    document = json.loads(path.read_text())
    records = [r for r in load_records([dry_run["root"] / "results"]) if r.model == "gemma-3-270m-q4km"]
    findings = [(finding_p_value(r), r) for r in records if r.verdict in ("holds", "fails")]
    _, strongest = min(findings, key=lambda pair: pair[0])
    for entry in document["entries"]:
        if (entry["claim_id"], entry["template"], entry["variant"]) == (
            strongest.claim_id,
            strongest.template,
            strongest.variant,
        ):
            if change == "flip":
                entry["verdict"] = "fails" if strongest.verdict == "holds" else "holds"
            else:
                entry["probe_set_hash"] = "0" * 64
            break
    else:
        pytest.fail(f"no committed baseline for {strongest.claim_id} [{strongest.template}]")
    path.write_text(json.dumps(document, indent=1))
    return planted, strongest.claim_id, strongest.model


def test_a_planted_regression_fails_the_dry_run_naming_claim_and_model(dry_run: dict, tmp_path: Path) -> None:
    planted, claim, model = _plant(dry_run, tmp_path, "flip")
    done = _nightly(
        "dry-run", "--from", "report", env={**dry_run["env"], "BASELINES": str(planted)}, timeout=900
    )
    assert done.returncode != 0
    assert f"REGRESSION GATE: regression: {claim} on {model} [" in done.stderr, done.stderr[-3000:]
    assert "1 failure(s)" in done.stderr


def test_a_baseline_that_cannot_be_matched_fails_the_dry_run(dry_run: dict, tmp_path: Path) -> None:
    planted, claim, model = _plant(dry_run, tmp_path, "unmatch")
    done = _nightly(
        "dry-run", "--from", "regression", env={**dry_run["env"], "BASELINES": str(planted)}, timeout=900
    )
    assert done.returncode != 0
    assert f"unmatched: {claim} on {model} [" in done.stderr and "baseline cannot be matched" in done.stderr
