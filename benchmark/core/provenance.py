"""Library versions, git commit and time stamps recorded with every latents file and result record."""

from __future__ import annotations

import datetime as _dt
import functools
import importlib.metadata
import platform
import subprocess
from pathlib import Path

_TRACKED = (
    "lalm-bench",
    "torch",
    "transformers",
    "tokenizers",
    "numpy",
    "scipy",
    "scikit-learn",
    "safetensors",
    "gguf",
    "soxr",
    "espeakng-loader",
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def library_versions() -> dict[str, str]:
    """Installed versions of the packages that change a latent or a statistic."""
    versions = {"python": platform.python_version()}
    for name in _TRACKED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


@functools.cache
def git_commit(path: Path = REPO_ROOT) -> str | None:
    """The checkout's HEAD commit, with ``+dirty`` when tracked files differ; None outside git."""
    try:
        head = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
