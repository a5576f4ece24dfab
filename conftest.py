"""pytest options and the claim session shared by ``claims/`` (one code path with ``lalm-bench run``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.core.profiles import PROFILE_CHOICES
from benchmark.models.catalog import DEFAULT_MODELS


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lalm-bench", "lalm-bench claims")
    group.addoption(
        "--model",
        action="append",
        default=None,
        help=f"model to evaluate claims on (repeatable). Default: {list(DEFAULT_MODELS)!r}",
    )
    group.addoption(
        "--probes", default=None, help="probe-set folder replacing each claim's shipped set. Default: None"
    )
    group.addoption("--profile", default="ci", choices=PROFILE_CHOICES, help="Default: 'ci'")
    group.addoption("--device", default="auto", help="cpu, cuda or auto. Default: 'auto'")
    group.addoption(
        "--device-map",
        default=None,
        help="accelerate placement for models larger than one GPU, e.g. 'auto'. Default: None",
    )
    group.addoption("--dtype", default="auto", help="float32, bfloat16 or auto. Default: 'auto'")
    group.addoption(
        "--batch-size", type=int, default=None, help="Default: chosen from free memory on a GPU, 8 on the CPU"
    )  # a value < 1 is refused in pytest_configure
    group.addoption(
        "--cache-dir",
        type=Path,
        default=None,
        help="latent cache. Default: $LALM_BENCH_CACHE or ~/.cache/lalm-bench/latents",
    )
    group.addoption("--results", type=Path, default=Path("results"), help="record store. Default: 'results'")
    group.addoption(
        "--template",
        action="append",
        dest="template_filter",
        default=None,
        choices=["bare", "shared-suffix"],
        help="restrict claims to this template (repeatable). Default: every template each claim runs under",
    )
    group.addoption(
        "--strict-claims",
        action="store_true",
        default=False,
        help="a finding that decays from its expectation to inconclusive fails (the nightly runs strict). "
        "Default: False",
    )
    parser.addoption(
        "--optin",
        action="store_true",
        default=False,
        help="also run tests marked optin (they need what the default install and the repository do not "
        "provide). Default: False",
    )
    group.addoption(
        "--claim-seed", type=int, default=None, help="resampling seed. Default: the suite's fixed seed"
    )
    group.addoption(
        "--claim-jobs",
        type=int,
        default=None,
        help="worker processes for the claims' statistics, computed for every collected claim test before the "
        "first one runs (records equal a serial run's). Default: one per CPU core, at most 8",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--profile") == "custom" and not config.getoption("--probes"):
        raise pytest.UsageError("--profile custom needs --probes PATH")
    from benchmark.run.validate import pytest_usage_problems  # reads the options claims/conftest.py builds

    problems = pytest_usage_problems(config)
    if problems:  # pytest's usage error (exit 4), before any collection or model load
        raise pytest.UsageError("\n".join(problems))


def pytest_report_header(config: pytest.Config) -> list[str]:
    models = config.getoption("--model") or list(DEFAULT_MODELS)
    return [
        f"lalm-bench: models={models} profile={config.getoption('--profile')} "
        f"device={config.getoption('--device')} dtype={config.getoption('--dtype')}"
    ]
