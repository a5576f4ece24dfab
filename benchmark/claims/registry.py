"""Loads claim files into one registry: the shipped specs, a user folder, and entry points."""

from __future__ import annotations

import functools
import importlib.metadata
import os
from pathlib import Path

import yaml

from benchmark.claims.spec import ClaimSpec
from benchmark.core.errors import UnknownNameError
from benchmark.core.registry import Registry

SPEC_DIR = Path(__file__).parent / "specs"


def _load_folder(folder: Path) -> list[ClaimSpec]:
    specs = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            specs.append(ClaimSpec.model_validate(yaml.safe_load(path.read_text(encoding="utf-8"))))
        except Exception as error:
            raise ValueError(f"claim file {path}: {error}") from error
    return specs


def _extra_folders() -> list[Path]:
    folders = []
    if os.environ.get("LALM_BENCH_CLAIMS_DIR"):
        folders += [Path(p) for p in os.environ["LALM_BENCH_CLAIMS_DIR"].split(os.pathsep) if p]
    for entry in importlib.metadata.entry_points(group="lalm_bench.claims"):
        folders.append(Path(entry.load()))
    return folders


@functools.cache
def claim_registry() -> Registry[ClaimSpec]:
    registry: Registry[ClaimSpec] = Registry("claim")
    for folder in (SPEC_DIR, *_extra_folders()):
        for spec in _load_folder(folder):
            registry.register(spec.id, spec)
    return registry


def get_claim(claim_id: str) -> ClaimSpec:
    try:
        return claim_registry().get(claim_id)
    except UnknownNameError:
        raise


def all_claims() -> list[ClaimSpec]:
    registry = claim_registry()
    return [registry.get(name) for name in registry.names()]
