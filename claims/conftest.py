"""Parametrises every claim over the selected models; maps verdicts to pytest outcomes.

Outcome mapping (the claims issue): a verdict that leaves its expectation fails; a pipeline/extraction problem
(`error`) is a pytest error (raised during setup); `n/a`, `inconclusive` and a finding with no recorded
expectation are skips that say why, never passes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmark.claims.record import ClaimRecord
from benchmark.claims.registry import all_claims
from benchmark.models.catalog import DEFAULT_MODELS
from benchmark.run.options import resolve_jobs, session_options_from_pytest
from benchmark.run.session import ClaimSession

_SESSION_KEY = pytest.StashKey[ClaimSession]()
_CASES_KEY = pytest.StashKey[list[tuple[str, str, str, "str | None"]]]()


def selected_models(config: pytest.Config) -> list[str]:
    return config.getoption("--model") or list(DEFAULT_MODELS)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cross_case" in metafunc.fixturenames:
        cases, ids = cross_model_cases(metafunc.config)
        metafunc.parametrize("cross_case", cases, ids=ids)
        return
    if "claim_case" not in metafunc.fixturenames:
        return
    section = getattr(metafunc.module, "SECTION", None)
    templates = metafunc.config.getoption("--template")
    cases, ids = [], []
    for spec in all_claims():
        if spec.section != section or spec.cross_model:
            continue
        for model in selected_models(metafunc.config):
            for template in spec.templates.run:
                if templates and template not in templates:
                    continue
                variants = [spec.select.variant]
                if template == "bare":
                    variants += spec.select.secondary_variants
                for variant in variants:
                    cases.append((spec.id, model, template, variant))
                    suffix = "" if variant == spec.select.variant else f",{variant}"
                    ids.append(f"{spec.id}[{model},{template}{suffix}]")
    metafunc.parametrize("claim_case", cases, ids=ids)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark claim tests (``-m claim``) and cross-model ones (``-m cross_model``, the nightly's post-matrix job)."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "claim_case" in names:
            item.add_marker(pytest.mark.claim)
        if "cross_case" in names:
            item.add_marker(pytest.mark.cross_model)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Keep the claim cases that will run (after ``-k``/``-m`` deselection) for the statistics workers."""
    session.config.stash[_CASES_KEY] = [
        item.callspec.params["claim_case"]  # type: ignore[attr-defined]
        for item in session.items
        if "claim_case" in getattr(item, "fixturenames", ())
    ]


@pytest.fixture(scope="session")
def claim_session(pytestconfig: pytest.Config) -> Iterator[ClaimSession]:
    if _SESSION_KEY not in pytestconfig.stash:
        options = session_options_from_pytest(pytestconfig)  # the one builder (benchmark.run.options)
        pytestconfig.stash[_SESSION_KEY] = ClaimSession(options)
    session = pytestconfig.stash[_SESSION_KEY]
    jobs = resolve_jobs(pytestconfig.getoption("--claim-jobs"))
    cases = pytestconfig.stash.get(_CASES_KEY, [])
    try:
        if jobs > 1:  # every selected case's statistics in workers, one model at a time (its latents first)
            for model in dict.fromkeys(case[1] for case in cases):
                session.evaluate_many([case for case in cases if case[1] == model], jobs)
        yield session
    finally:
        session.close()


class ClaimPipelineError(Exception):
    """The claim's measurement is broken (pipeline gate): reported as a pytest error, not a failure."""


@pytest.fixture
def claim_record(claim_case: tuple[str, str, str, str | None], claim_session: ClaimSession) -> ClaimRecord:
    claim_id, model, template, variant = claim_case
    claim_session.claim_records(claim_id, model)  # every template: marks template-dependent findings
    record = claim_session.record(claim_id, model, template, variant)
    if record.verdict == "error":
        raise ClaimPipelineError(f"{claim_id} on {model} ({template}): {record.reason}")
    return record


def _family(model: str) -> str:
    from benchmark.models.catalog import get_adapter

    return get_adapter(model).spec.family


def cross_model_cases(config: pytest.Config) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """(claim, model A, model B) for every cross-model claim and fitting pair of the selected models."""
    from benchmark.run.cross_model import cross_model_pairs, cross_model_specs

    cases, ids = [], []
    templates = config.getoption("--template")
    for spec in cross_model_specs():
        for a, b in cross_model_pairs(spec, selected_models(config), _family):
            for template in spec.templates.run:
                if templates and template not in templates:
                    continue
                cases.append((spec.id, a, b, template))
                ids.append(f"{spec.id}[{a}~{b},{template}]")
    return cases, ids


@pytest.fixture
def cross_record(cross_case: tuple[str, str, str, str], claim_session: ClaimSession) -> ClaimRecord:
    from benchmark.claims.registry import get_claim
    from benchmark.run.cross_model import evaluate_cross_pair

    claim_id, a, b, template = cross_case
    record = evaluate_cross_pair(claim_session, get_claim(claim_id), a, b, template)
    if record.verdict == "error":
        raise ClaimPipelineError(f"{record.claim_id}: {record.reason}")
    return record
