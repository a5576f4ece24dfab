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


#: CPU flags (as /proc/cpuinfo spells them) that make bfloat16 matmuls fast on a CPU.
BF16_CPU_FLAGS: tuple[str, ...] = ("amx_bf16", "avx512_bf16")


@functools.cache
def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str | None, dict[str, bool]]:
    """The CPU model and which bfloat16 flags it has: a bf16 run is fast only with them, and a verdict drawn
    from bf16 latents cites the machine they came from. Outside Linux the model is the platform's processor
    string and the flags are unknown (empty)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return (platform.processor() or None), {}
    model, flags = None, set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return model, {flag: flag in flags for flag in BF16_CPU_FLAGS} if flags else {}
