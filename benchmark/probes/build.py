"""Write and check the shipped offline probe sets under ``fixtures/`` (``lalm-bench fixtures build``).

Why this shape: the manifests (one ``Sample`` per line, with a sha256 per clip) and ``probeset.json`` are
committed; the audio is not. A rebuild regenerates every clip from its recipe (:mod:`benchmark.probes.recipes`)
and, by default when a manifest exists, checks it against the committed hash, failing with the names of the
clips that differ. Rewriting the hashes needs ``--update``, asked for explicitly.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmark.core.audio import pcm16_wav_bytes
from benchmark.core.hashing import sha256_file
from benchmark.core.schema import SCHEMA_VERSION, Sample
from benchmark.probes import synth
from benchmark.probes.recipes import (
    _RECIPES,
    GENERATOR,
    RECIPE_VERSION,
    RENDER_CHUNK,
    SEED,
    SET_NAMES,
    SetSpec,
    _Synth,
)


class FixtureMismatch(RuntimeError):
    """A rebuilt probe set differs from its committed manifest; the message names the samples."""


def _file_name(sample_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in sample_id)
    return f"audio/{safe}.wav"


def _profiles(spec: SetSpec, ids: list[str]) -> dict[str, list[str]]:
    """``ci``, ``ci-alt`` (when the source has a whole second block), ``full`` and ``pool`` (where the set has
    one), each in manifest order.

    Adding a profile changes only ``probeset.json``: the manifest rows of the other profiles and so their
    content hashes stay as they were (the hash covers a profile's samples, not the profile lists). ``full``
    is every sample unless the recipe names it (the sets whose manifest also holds pool-only items); the
    nesting ci, ci-alt <= full <= pool is checked here so that no recipe can ship a pool that misses a full
    sample or a full that misses a ci sample.
    """
    known = set(ids)
    full = set(ids if spec.full is None else spec.full)
    named = (("ci", spec.ci), ("ci-alt", spec.ci_alt), ("full", full), ("pool", spec.pool))
    for name, members in named:
        missing = sorted(set(members) - known)
        if missing:
            raise ValueError(f"probe set {spec.name!r}: {name} profile names unknown samples {missing[:5]}")
    shared = sorted(set(spec.ci) & set(spec.ci_alt))
    if shared:
        raise ValueError(f"probe set {spec.name!r}: ci-alt shares samples with ci: {shared[:5]}")
    for name, members in (("ci", spec.ci), ("ci-alt", spec.ci_alt)):
        outside = sorted(set(members) - full)
        if outside:
            raise ValueError(f"probe set {spec.name!r}: {name} samples outside full: {outside[:5]}")
    profiles = {"ci": [i for i in ids if i in set(spec.ci)]}
    if spec.ci_alt and len(spec.ci_alt) == len(spec.ci):
        profiles["ci-alt"] = [i for i in ids if i in set(spec.ci_alt)]
    profiles["full"] = [i for i in ids if i in full]
    if spec.pool:
        missed = sorted(full - set(spec.pool))
        if missed:
            raise ValueError(f"probe set {spec.name!r}: pool misses full samples {missed[:5]}")
        profiles["pool"] = [i for i in ids if i in set(spec.pool)]
    return profiles


def _probeset_json(spec: SetSpec, samples: list[Sample]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "name": spec.name,
        "version": spec.version,
        "description": spec.description,
        "caveats": spec.caveats,
        "profiles": _profiles(spec, [s.id for s in samples]),
        "build": {
            "generator": GENERATOR,
            "espeak_version": synth.espeak_version(),
            "seed": SEED,
            "recipe_version": RECIPE_VERSION,
            **spec.extra_build,
        },
    }


def _manifest_text(samples: list[Sample]) -> str:
    return "".join(
        json.dumps(s.model_dump(mode="json"), ensure_ascii=False, sort_keys=True) + "\n" for s in samples
    )


def _read_manifest(path: Path) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            row = json.loads(line)
            if "id" not in row:
                raise ValueError(f"{path}:{n}: manifest row has no 'id'")
            rows[row["id"]] = row
    return rows


def _compare(set_name: str, committed: dict[str, dict[str, Any]], built: list[Sample]) -> list[str]:
    problems = []
    built_ids = {s.id for s in built}
    for sid in sorted(set(committed) - built_ids):
        problems.append(f"{sid}: in the committed manifest but no longer built")
    for sample in built:
        row = sample.model_dump(mode="json")
        old = committed.get(sample.id)
        if old is None:
            problems.append(f"{sample.id}: built but not in the committed manifest")
            continue
        if old.get("audio_sha256") != row["audio_sha256"]:
            problems.append(
                f"{sample.id}: audio sha256 {row['audio_sha256']} != committed {old.get('audio_sha256')}"
            )
        differing = sorted(
            k for k in row.keys() | old.keys() if k != "audio_sha256" and row.get(k) != old.get(k)
        )
        if differing:
            problems.append(f"{sample.id}: fields differ from the committed manifest: {', '.join(differing)}")
    return problems


def build_set(
    spec: SetSpec, set_dir: Path, *, check: bool, written: dict[str, Path], synth_: _Synth
) -> dict[str, Any]:
    """Render one set's audio, then check it against (or write) its manifest and probeset.json."""
    started = time.perf_counter()
    set_dir.mkdir(parents=True, exist_ok=True)
    if any(item.render is not None for item in spec.items):
        (set_dir / "audio").mkdir(exist_ok=True)
    samples = []
    for start in range(0, len(spec.items), RENDER_CHUNK):
        chunk = spec.items[start : start + RENDER_CHUNK]
        synth_.prefetch(req for item in chunk if item.render_key not in written for req in item.needs)
        for item in chunk:
            fields = dict(item.fields)
            if item.render is not None:
                rel = _file_name(fields["id"])
                target = set_dir / rel
                source = written.get(item.render_key or "")
                if source is not None and source.exists():
                    data = (
                        source.read_bytes()
                    )  # the same clip in another set: identical bytes by construction
                else:
                    data = pcm16_wav_bytes(item.render())
                target.write_bytes(data)
                if item.render_key:
                    written[item.render_key] = target
                fields.update(audio_path=rel, audio_sha256=hashlib.sha256(data).hexdigest())
            samples.append(Sample(**fields))
        synth_.clear()  # bounded memory: a chunk's syntheses are not needed by later chunks
    meta = _probeset_json(spec, samples)
    manifest_path, meta_path = set_dir / "manifest.jsonl", set_dir / "probeset.json"
    mode = "check" if check and manifest_path.exists() else "write"
    if mode == "check":
        problems = _compare(spec.name, _read_manifest(manifest_path), samples)
        if meta_path.exists():
            old_meta = json.loads(meta_path.read_text(encoding="utf-8"))
            for key in sorted(meta.keys() | old_meta.keys()):
                if meta.get(key) != old_meta.get(key):
                    problems.append(f"probeset.json field {key!r} differs from the committed one")
        if problems:
            shown = "\n  ".join(problems[:20])
            more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
            raise FixtureMismatch(
                f"probe set {spec.name!r} ({set_dir}) does not reproduce its committed manifest "
                f"({len(problems)} problems; eSpeak {synth.espeak_version()}):\n  {shown}{more}\n"
                "If the change is intended, rebuild with --update and commit the new manifest."
            )
    else:
        manifest_path.write_text(_manifest_text(samples), encoding="utf-8")
        meta_path.write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    n_clips = sum(1 for s in samples if s.audio_path)
    return {
        "set": spec.name,
        "mode": mode,
        "samples": len(samples),
        "ci": len(meta["profiles"]["ci"]),
        "ci-alt": len(meta["profiles"].get("ci-alt", [])),
        "full": len(meta["profiles"]["full"]),
        "pool": len(meta["profiles"].get("pool", [])),
        "clips": n_clips,
        "seconds": round(time.perf_counter() - started, 2),
    }


def verify_set(set_dir: Path) -> None:
    """Hash the audio on disk against the committed manifest without rebuilding; raise naming bad clips."""
    manifest = set_dir / "manifest.jsonl"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} is missing")
    problems = []
    for sid, row in _read_manifest(manifest).items():
        if not row.get("audio_path"):
            continue
        path = set_dir / row["audio_path"]
        if not path.is_file():
            problems.append(f"{sid}: {path} is missing (run lalm-bench fixtures build)")
        elif sha256_file(path) != row.get("audio_sha256"):
            problems.append(f"{sid}: {path} does not match its committed sha256")
    if problems:
        raise FixtureMismatch(
            f"probe set {set_dir.name!r}: {len(problems)} clips fail verification:\n  "
            + "\n  ".join(problems[:20])
        )


def build_all(
    out_dir: Path | str,
    *,
    check: bool = True,
    sets: Sequence[str] | None = None,
    source_dir: Path | str | None = None,
) -> list[dict[str, Any]]:
    """Build (and by default check) the named probe sets under ``out_dir``; all of them when ``sets`` is None."""
    out = Path(out_dir)
    src = Path(source_dir) if source_dir is not None else out / "source"
    chosen = list(SET_NAMES) if sets is None else list(sets)
    unknown = [s for s in chosen if s not in _RECIPES]
    if unknown:
        raise ValueError(f"unknown probe set(s) {unknown}; known: {', '.join(SET_NAMES)}")
    synth_ = _Synth()
    written: dict[str, Path] = {}
    reports = []
    for name in SET_NAMES:  # fixed order: crossmodal reuses speech-parallel's files when both are built
        if name not in chosen:
            continue
        recipe = _RECIPES[name]
        spec = recipe(src) if name.startswith("text-") else recipe(src, synth_)
        reports.append(build_set(spec, out / name, check=check, written=written, synth_=synth_))
    return reports
