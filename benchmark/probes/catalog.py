"""The shipped probe sets, and resolving a ``--probes`` argument to a loaded set.

Shipped sets are the folders under the repository's ``fixtures/`` that hold a ``probeset.json``; they are
found by scanning, not by a hand-kept list, so a new fixture cannot be forgotten here. ``--probes`` takes a
shipped name or any probe-set folder (see ``benchmark.probes.io`` for the format).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.core.errors import ProbeSetError, UnknownNameError
from benchmark.core.schema import ProbeSet
from benchmark.probes.io import HEADER_NAME, load_probe_set, read_header

#: Where the shipped sets live: ``<repo>/fixtures``.
FIXTURES_DIR = Path(__file__).resolve().parents[2] / "fixtures"


def shipped_probe_sets(root: Path | None = None) -> dict[str, Path]:
    """Name -> folder of every shipped set; two folders declaring one name is an error."""
    root = FIXTURES_DIR if root is None else Path(root)
    found: dict[str, Path] = {}
    if not root.is_dir():
        return found
    for header in sorted(root.rglob(HEADER_NAME)):
        folder = header.parent
        name = read_header(folder).name
        if name in found:
            raise ProbeSetError(f"two shipped probe sets are named {name!r}: {found[name]} and {folder}")
        found[name] = folder
    return found


def _describe(folder: Path) -> dict[str, Any]:
    header = read_header(folder)
    entry: dict[str, Any] = {
        "name": header.name,
        "path": str(folder),
        "version": header.version,
        "description": header.description,
        "caveats": list(header.caveats),
        "profiles": {},
    }
    for profile in header.profiles or {"custom": []}:
        # Hashes verify the audio bytes; decoding every clip is left to `lalm-bench check`/extraction.
        probe_set = load_probe_set(folder, profile=profile, decode_audio=False, confine_audio=False)
        entry["profiles"][profile] = {
            "n_samples": len(probe_set.samples),
            "content_hash": probe_set.content_hash(),
            "label_axes": probe_set.label_axes,
            "modalities": sorted({s.modality for s in probe_set.samples}),
            "languages": sorted({s.language for s in probe_set.samples}),
        }
    widest = max(entry["profiles"].values(), key=lambda p: p["n_samples"])
    entry["label_axes"] = widest["label_axes"]
    entry["modalities"] = widest["modalities"]
    entry["languages"] = widest["languages"]
    return entry


def list_probe_sets(root: Path | None = None) -> list[dict[str, Any]]:
    """One JSON-ready entry per shipped set (for ``lalm-bench probes --json``).

    A set that fails to load is listed with an ``error`` field instead of being left out.
    """
    entries = []
    for name, folder in shipped_probe_sets(root).items():
        try:
            entries.append(_describe(folder))
        except ProbeSetError as exc:
            entries.append({"name": name, "path": str(folder), "error": str(exc)})
    return entries


def resolve_probes(
    name_or_path: str | Path, profile: str | None = None, *, root: Path | None = None
) -> ProbeSet:
    """Load a shipped set by name, or any probe-set folder (or manifest file) by path.

    A user's folder is confined: its audio may not leave the folder, also through symlinks. A shipped set (by
    name, or by its path) is not, because its clips are pinned by committed sha256 hashes and a checkout may
    share them with another through a symlinked ``audio`` folder.
    """
    candidate = Path(name_or_path)
    shipped = shipped_probe_sets(root)
    if candidate.exists():
        folder = candidate.parent if candidate.is_file() else candidate
        trusted = folder.resolve() in {path.resolve() for path in shipped.values()}
        return load_probe_set(candidate, profile=profile, confine_audio=not trusted)
    if str(name_or_path) in shipped:
        return load_probe_set(shipped[str(name_or_path)], profile=profile, confine_audio=False)
    known = ", ".join(sorted(shipped)) or "none (fixtures/ has no probeset.json yet)"
    raise UnknownNameError(
        f"unknown probe set {str(name_or_path)!r}: not a folder and not a shipped set; shipped: {known}"
    )
