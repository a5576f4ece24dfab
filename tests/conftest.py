"""Skip policy of the library's own tests.

In CI (``LALM_BENCH_CI=1``, set by ``.ci/run``) a skipped test fails: a skip there means something the suite
promises (a dependency, a browser, a fixture) is missing, and a skip must never read as a pass. Tests that need
something the default install and the repository do not provide carry ``@pytest.mark.optin`` and run only with
``--optin`` (an option of the root ``conftest.py``); their skips are allowed everywhere.
"""

from __future__ import annotations

import os

import pytest

CI_ENV = "LALM_BENCH_CI"


def in_ci() -> bool:
    return os.environ.get(CI_ENV, "") not in ("", "0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--optin"):
        return
    skip = pytest.mark.skip(reason="opt-in test (needs files outside the repository): run with --optin")
    for item in items:
        if item.get_closest_marker("optin"):
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    report = outcome.get_result()
    if (
        report.skipped
        and in_ci()
        and not item.get_closest_marker("optin")
        and not hasattr(report, "wasxfail")
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI ({CI_ENV}=1), which fails: {reason}"
    return report


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> object:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and in_ci():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"module skipped in CI ({CI_ENV}=1), which fails: {reason}"
    return report
