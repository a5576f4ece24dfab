"""What the default install promises is importable: every declared dependency, GGUF loading and the report.

CI installs into a fresh virtual environment (``.ci/run``), so this fails there when pyproject.toml forgets a
package the code needs (it once did: accelerate, which transformers requires to load GGUF weights).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import shutil
import sys
from pathlib import Path

import pytest
import tomllib

from tests.conftest import in_ci

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: The extras ``scripts/install.sh`` installs: the default install.
DEFAULT_EXTRAS = ("offline", "dev")


def _requirement_names() -> list[str]:
    project = PYPROJECT["project"]
    requirements = list(project["dependencies"])
    for extra in DEFAULT_EXTRAS:
        requirements += project["optional-dependencies"][extra]
    return sorted({re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].strip() for r in requirements})


def _import_names(distribution: str) -> list[str]:
    """Top-level import names of an installed distribution (from its file list)."""
    dist = importlib.metadata.distribution(distribution)
    top = dist.read_text("top_level.txt")
    if top:
        names = [name.split("/")[0] for name in top.split()]
        return sorted({name for name in names if name and not name.startswith("_")})
    names = set()
    for file in dist.files or []:
        parts = Path(str(file)).parts
        if len(parts) > 1 and parts[1] == "__init__.py" and not parts[0].endswith((".dist-info", ".data")):
            names.add(parts[0])
        elif len(parts) == 1 and parts[0].endswith(".py") and not parts[0].startswith("_"):
            names.add(parts[0][:-3])
    return sorted(names)


@pytest.mark.parametrize("distribution", _requirement_names())
def test_every_declared_dependency_is_installed_and_imports(distribution: str) -> None:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"{distribution} is declared in pyproject.toml but not installed: run scripts/install.sh")
    for name in _import_names(distribution):
        importlib.import_module(name)


def test_transformers_can_load_gguf_weights() -> None:
    from transformers.utils import is_accelerate_available, is_gguf_available

    assert is_gguf_available(), "transformers cannot read GGUF files (the gguf package is missing)"
    assert is_accelerate_available(), "transformers refuses GGUF files without accelerate"


def test_report_dependencies_import() -> None:
    import matplotlib
    import tabulate  # noqa: F401

    matplotlib.use("Agg")
    import matplotlib.pyplot


def test_runs_inside_a_virtual_environment_in_ci() -> None:
    if not in_ci():
        pytest.skip("only checked in CI (LALM_BENCH_CI=1), which installs into a fresh venv")
    assert sys.prefix != sys.base_prefix, "CI must run inside the virtual environment .ci/run creates"


def test_ci_has_the_report_browser() -> None:
    if not in_ci():
        pytest.skip("only checked in CI (LALM_BENCH_CI=1), which installs Debian's chromium")
    assert shutil.which("chromium"), "CI must install chromium for tests/test_report_browser.py"
