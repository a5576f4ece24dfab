"""Where a run's outputs live: one folder per model, revision and probe-set hash.

``results/<model>/<revision[:16]>/<probe-hash[:16]>/`` holds ``latents-<template>.safetensors`` and the claim
records ``<claim>@<version>[<template>,<variant>].json`` (one per template and probe variant evaluated). ``lalm-bench run`` and ``pytest claims/`` both write here, so a claim
evaluated by either is found by the report.
"""

from __future__ import annotations

import os
from pathlib import Path


def default_results_dir() -> Path:
    """``$LALM_BENCH_RESULTS`` or ``./results``."""
    return Path(os.environ.get("LALM_BENCH_RESULTS", "results"))


def _slug(value: str) -> str:
    return value.replace("/", "__").replace(":", "_")


def run_folder(root: Path, model: str, revision: str, probe_hash: str) -> Path:
    return root / _slug(model) / _slug(revision)[:16] / probe_hash[:16]


def latents_path(root: Path, model: str, revision: str, probe_hash: str, template: str) -> Path:
    return run_folder(root, model, revision, probe_hash) / f"latents-{template}.safetensors"


def record_path(
    root: Path,
    model: str,
    revision: str,
    probe_hash: str,
    claim_id: str,
    version: int | str,
    template: str,
    variant: str | None = None,
) -> Path:
    tag = f"{template},{variant}" if variant else template
    return run_folder(root, model, revision, probe_hash) / f"{_slug(claim_id)}@{version}[{tag}].json"
