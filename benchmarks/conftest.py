"""Collection and shared fixtures of the performance benchmarks (``pytest benchmarks/ --benchmark-only``).

The root pytest configuration collects ``tests`` and ``claims`` only, so a plain ``pytest`` never runs these.
Benchmark files are named ``bench_*.py`` (never ``test_*.py``) and are collected by the hook below only when
``benchmarks/`` is on the command line; every item gets the ``benchmark`` marker so ``-m "not benchmark"``
excludes them anywhere.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the bench files import the local _harness module

from _harness import FIGURES


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    # A file named on the command line is collected by pytest itself; collecting it here too would double it.
    if (
        file_path.suffix == ".py"
        and file_path.name.startswith("bench_")
        and not parent.session.isinitpath(file_path)
    ):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.benchmark)


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get("LALM_BENCH_REPORT")
    if target and FIGURES:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(json.dumps(FIGURES, indent=2, sort_keys=True, default=str) + "\n")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for case, values in FIGURES.items():
        terminalreporter.write_line(f"[lalm-bench] {case}: {json.dumps(values, sort_keys=True, default=str)}")
