"""Every benchmark module imports: the benchmarks run only on request (``pytest benchmarks/``), so a library
change that breaks one (a renamed statistic, a removed API) would otherwise go unseen until someone measures."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize(
    "module", sorted(p.stem for p in BENCHMARKS.glob("*.py") if p.stem not in ("conftest", "__init__"))
)
def test_benchmark_module_imports(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the bench files import their local _harness module
    try:
        importlib.import_module(module)
    finally:
        sys.modules.pop(module, None)
