"""Reading and writing probe-set folders, and reading their audio.

A probe set on disk is a folder with ``probeset.json`` (name, version, caveats, profiles, build record) and
one manifest: ``manifest.jsonl`` (what the suite writes), ``manifest.csv`` or ``manifest.parquet`` (for
sets people make by hand or with pandas). A folder without ``probeset.json`` is accepted as a user set:
its name is the folder's name and its only profile is ``custom`` (every row).

Loading checks every row and collects *all* problems into one ``ProbeSetError`` whose lines read
``FILE:ROW: field 'NAME': what is wrong``, so a user fixes a manifest in one pass. Rows are dropped only
when the caller asks (``on_error="skip"``), and then the skipped rows come back with their reasons.

Order: samples come back sorted by id. The probe set is a *set*: re-ordering the rows of a manifest must
not change its content hash (expectations and baselines are keyed by that hash), so the loader puts the
rows in one canonical order. Audio hashes missing from a manifest are computed at load, so the content hash
always covers the audio bytes.

CSV encoding (one row per sample, header = field names):
- an empty cell is "not given" (``None`` for optional fields, the default otherwise);
- ``preprocessing`` is ``;``-separated steps in order (``"resample 44100->16000;peak-normalise"``);
- ``synthetic`` is ``true``/``false`` (also ``1``/``0``, ``yes``/``no``), ``gain_db`` a decimal number;
- ``extra`` is either one ``extra`` column holding a JSON object of strings, or one ``extra.<key>`` column per
  key (cells left empty mean the key is absent for that row); both at once is allowed when the keys differ.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import soundfile as sf
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from benchmark.core.audio import SAMPLE_RATE
from benchmark.core.errors import ProbeSetError
from benchmark.core.hashing import sha256_file
from benchmark.core.profiles import PROFILE_NAMES  # re-exported: the names a header may declare
from benchmark.core.schema import LABEL_AXES, SCHEMA_VERSION, ProbeSet, Sample

#: Sampling rate every waveform is delivered at: what Whisper-style encoders (Whisper, Qwen2-Audio,
#: Ultravox) expect, so the resampling happens once, here, and is recorded.

#: Longest accepted text, in characters. A probe is one sentence or one question: the longest rows of the
#: supported sources (M-Vicuna's questions, PAWS sentences, FLEURS transcripts) stay well under 600
#: characters. Anything longer is almost always a wrong column or merged fields, and it would dominate the
#: prompt's token budget and the last-token latent.
MAX_TEXT_CHARS = 1000

#: A clip whose peak absolute amplitude is below this is treated as silent (-80 dBFS, about 3 steps of
#: 16-bit quantisation): it carries no speech, and latents of silent clips make distinct samples identical,
#: which the pipeline gate would later report as an error far from its cause.
SILENCE_PEAK = 1e-4

#: Shortest accepted clip: one 25 ms analysis window of the encoders' log-mel front end (400 samples at 16 kHz).
#: A shorter clip fills no feature frame; it would be padded to the encoder's window and give a latent of
#: padding only (a one-sample clip is the usual accident).
MIN_AUDIO_SECONDS = 0.025

#: Sampling rates accepted in a file's header (Hz). Telephone audio is 8 kHz and studio audio tops out at
#: 384 kHz; a rate outside these is a corrupt or mislabelled header, and resampling from it would invent audio.
MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 384_000

#: Unicode categories that draw nothing: controls, format characters (zero-width space, BOM, joiners),
#: separators, surrogates, private use and unassigned code points.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})
#: Letters and symbols that render as blanks (Hangul fillers, the braille blank).
_INVISIBLE_CHARS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
#: Control characters a text may hold (line structure); any other C0/C1 control is a problem.
_ALLOWED_CONTROLS = frozenset("\t\n\r")

MANIFEST_NAMES = ("manifest.jsonl", "manifest.csv", "manifest.parquet")
HEADER_NAME = "probeset.json"

_BOOL_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_SAMPLE_FIELDS = tuple(Sample.model_fields)


class AudioReadError(ProbeSetError):
    """An audio file that cannot serve as model input: unreadable, empty, non-finite or silent."""


class ProbeSetHeader(BaseModel):
    """The on-disk ``probeset.json`` (what a folder declares about itself; the samples live in the manifest)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: str = SCHEMA_VERSION
    name: str = Field(min_length=1)
    version: str = "1"
    description: str = ""
    caveats: list[str] = Field(default_factory=list)
    profiles: dict[str, list[str]] = Field(default_factory=dict)
    build: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class WaveformNote:
    """What ``read_waveform`` did to a file, to store next to results (the cache key hashes the output)."""

    path: str
    source_sample_rate: int
    source_channels: int
    source_frames: int
    sample_rate: int
    frames: int
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SkippedRow:
    """A manifest row left out because the caller asked for ``on_error="skip"``."""

    file: str
    row: int
    sample_id: str | None
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        who = f" (id {self.sample_id!r})" if self.sample_id else ""
        return f"{self.file}:{self.row}{who}: " + "; ".join(self.reasons)


@dataclass
class _Problems:
    """Collects row problems so one error can list them all."""

    file: str
    by_row: dict[int, list[str]] = field(default_factory=dict)

    def add(self, row: int, where: str, message: str) -> None:
        self.by_row.setdefault(row, []).append(f"{where}: {message}" if where else message)

    def lines(self) -> list[str]:
        return [f"{self.file}:{row}: {msg}" for row in sorted(self.by_row) for msg in self.by_row[row]]


# --------------------------------------------------------------------------------------------- audio


def _wav_truncation(path: Path) -> str | None:
    """For a RIFF/WAVE file, why its data chunk is cut short (header declares more bytes than the file holds).

    libsndfile reads a truncated WAV without complaint and returns fewer frames than the header announces, so a
    clip cut by an interrupted copy would reach the model as a shorter clip; the header walk here catches it.
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        offset = 12
        while offset + 8 <= size:
            handle.seek(offset)
            chunk = handle.read(8)
            name, length = chunk[:4], int.from_bytes(chunk[4:8], "little")
            if name == b"data":
                present = size - offset - 8
                if length != 0xFFFFFFFF and length > present:
                    return (
                        f"truncated: the WAV header declares {length} bytes of audio, the file holds {present} "
                        "(an interrupted copy or download?)"
                    )
                return None
            offset += 8 + length + (length & 1)
    return "truncated: the WAV file ends before its data chunk"


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """Decode any libsndfile format (WAV, FLAC, OGG, MP3) to float32 frames x channels."""
    if not path.is_file():
        raise AudioReadError(f"{path}: audio file does not exist")
    if path.stat().st_size == 0:
        raise AudioReadError(f"{path}: audio file is empty (0 bytes)")
    truncated = _wav_truncation(path)
    if truncated:
        raise AudioReadError(f"{path}: {truncated}")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        raise AudioReadError(f"{path}: not a readable audio file ({exc})") from exc
    return data, int(rate)


def check_frames(path: Path, data: np.ndarray, rate: int) -> None:
    """Reject audio no model should receive: empty, too short, absurd rate, non-finite, silent or DC only.

    Silence is judged on what the model receives, the mono downmix with its mean removed: antiphase stereo
    cancels to nothing and a constant offset carries no sound, though both have a large raw peak.
    """
    if data.shape[0] == 0:
        raise AudioReadError(f"{path}: audio has no samples (zero length)")
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioReadError(
            f"{path}: sampling rate {rate} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz "
            "(a corrupt or mislabelled header?)"
        )
    seconds = data.shape[0] / rate
    if seconds < MIN_AUDIO_SECONDS:
        raise AudioReadError(
            f"{path}: clip is {data.shape[0]} sample(s) ({seconds:.4f} s) long; at least {MIN_AUDIO_SECONDS} s "
            "is needed for speech"
        )
    finite = np.isfinite(data)
    if not finite.all():
        bad = int((~finite).sum())
        raise AudioReadError(f"{path}: audio has {bad} NaN or infinite sample(s)")
    peak = float(np.max(np.abs(data)))
    if peak < SILENCE_PEAK:
        raise AudioReadError(
            f"{path}: audio is silent (peak {peak:.2e} below the threshold {SILENCE_PEAK:.0e}, -80 dBFS)"
        )
    mono = data.mean(axis=1, dtype=np.float64)
    swing = float(np.max(np.abs(mono - mono.mean())))
    if swing < SILENCE_PEAK:
        if data.shape[1] > 1 and float(np.max(np.abs(mono))) < SILENCE_PEAK:
            raise AudioReadError(
                f"{path}: audio is silent after the downmix to mono: its {data.shape[1]} channels cancel "
                f"(antiphase stereo?), peak {peak:.2e} per channel"
            )
        raise AudioReadError(
            f"{path}: audio is a constant (DC-only) signal at {float(mono.mean()):+.3g}: no sound "
            f"(variation {swing:.2e} below {SILENCE_PEAK:.0e})"
        )


def inspect_audio(path: str | Path) -> None:
    """Decode a file and check it is usable, without resampling (what loading a probe set runs per clip)."""
    path = Path(path)
    data, rate = _decode(path)
    check_frames(path, data, rate)


def read_waveform_with_note(path: str | Path) -> tuple[np.ndarray, WaveformNote]:
    """Float32 mono at 16 kHz plus the record of what was done to get there."""
    path = Path(path)
    data, rate = _decode(path)
    check_frames(path, data, rate)
    frames, channels = data.shape
    notes: list[str] = []
    if channels > 1:
        mono = data.mean(axis=1)
        notes.append(f"downmixed {channels} channels to mono (mean)")
    else:
        mono = data[:, 0]
    if rate != SAMPLE_RATE:
        import soxr

        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
        notes.append(f"resampled from {rate} Hz to {SAMPLE_RATE} Hz with soxr (HQ)")
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if mono.size == 0:
        raise AudioReadError(f"{path}: audio is too short to resample to {SAMPLE_RATE} Hz")
    note = WaveformNote(
        path=str(path),
        source_sample_rate=rate,
        source_channels=channels,
        source_frames=frames,
        sample_rate=SAMPLE_RATE,
        frames=int(mono.size),
        notes=tuple(notes),
    )
    return mono, note


def read_waveform(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Float32 mono at 16 kHz and the notes of what was done (resampling, downmix); raises AudioReadError."""
    wave, note = read_waveform_with_note(path)
    return wave, list(note.notes)


# ------------------------------------------------------------------------------------------ manifests


def _find_manifest(folder: Path) -> Path:
    present = [folder / name for name in MANIFEST_NAMES if (folder / name).is_file()]
    if not present:
        raise ProbeSetError(f"{folder}: no manifest; expected one of {', '.join(MANIFEST_NAMES)}")
    if len(present) > 1:
        names = ", ".join(p.name for p in present)
        raise ProbeSetError(f"{folder}: more than one manifest ({names}); keep exactly one")
    return present[0]


def _read_jsonl(path: Path, problems: _Problems) -> list[tuple[int, dict[str, Any] | None]]:
    rows: list[tuple[int, dict[str, Any] | None]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ProbeSetError(f"{path}: not UTF-8 text ({exc})") from exc
    # Split on "\n" only: str.splitlines() also breaks at U+2028 and friends, which JSON strings may hold raw.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.add(number, "", f"not valid JSON ({exc.msg} at column {exc.colno})")
            rows.append((number, None))
            continue
        if not isinstance(obj, dict):
            problems.add(number, "", f"expected a JSON object, got {type(obj).__name__}")
            rows.append((number, None))
            continue
        rows.append((number, obj))
    return rows


def _csv_cell(name: str, value: str, number: int, problems: _Problems) -> Any:
    """Turn one CSV cell into the Python value the Sample field takes (see the module docstring)."""
    if name == "preprocessing":
        return tuple(step.strip() for step in value.split(";") if step.strip())
    if value == "" and name not in {"id", "text", "modality", "language"}:
        return None
    if name == "synthetic":
        word = value.strip().lower()
        if word not in _BOOL_WORDS:
            problems.add(number, f"field {name!r}", f"expected true/false, got {value!r}")
            return value
        return _BOOL_WORDS[word]
    if name == "gain_db":
        try:
            return float(value)
        except ValueError:
            problems.add(number, f"field {name!r}", f"expected a number, got {value!r}")
            return value
    return value


def _read_csv(path: Path, problems: _Problems) -> list[tuple[int, dict[str, Any] | None]]:
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            return _parse_csv(path, handle, problems)
    except OSError as exc:
        raise ProbeSetError(f"{path}: cannot open ({exc})") from exc


def _parse_csv(path: Path, handle: Any, problems: _Problems) -> list[tuple[int, dict[str, Any] | None]]:
    rows: list[tuple[int, dict[str, Any] | None]] = []
    reader = csv.DictReader(handle)
    try:
        header = reader.fieldnames
        if not header:
            raise ProbeSetError(f"{path}: empty CSV (no header row)")
        if len(set(header)) != len(header):
            dup = sorted({h for h in header if header.count(h) > 1})
            raise ProbeSetError(f"{path}: duplicate column(s) {dup}")
        for record in reader:
            number = reader.line_num
            if None in record:
                problems.add(number, "", f"{len(record[None])} more cell(s) than header columns")
                rows.append((number, None))
                continue
            if any(v is None for v in record.values()):
                problems.add(number, "", "fewer cells than header columns")
                rows.append((number, None))
                continue
            out: dict[str, Any] = {}
            extra: dict[str, Any] = {}
            for name, value in record.items():
                if name.startswith("extra."):
                    if value != "":
                        extra[name[len("extra.") :]] = value
                elif name == "extra":
                    if value.strip():
                        try:
                            parsed = json.loads(value)
                        except json.JSONDecodeError as exc:
                            problems.add(number, "field 'extra'", f"not a JSON object ({exc.msg})")
                            continue
                        if not isinstance(parsed, dict):
                            problems.add(number, "field 'extra'", "expected a JSON object")
                            continue
                        for key, item in parsed.items():
                            if key in extra:
                                problems.add(number, f"field 'extra.{key}'", "given twice")
                            extra[key] = item
                else:
                    out[name] = _csv_cell(name, value, number, problems)
            if extra:
                out["extra"] = extra
            rows.append((number, out))
    except csv.Error as exc:
        raise ProbeSetError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise ProbeSetError(f"{path}: not UTF-8 text ({exc})") from exc
    return rows


def _read_parquet(path: Path, problems: _Problems) -> list[tuple[int, dict[str, Any] | None]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise ProbeSetError(f"{path}: not a readable parquet file ({exc})") from exc
    rows: list[tuple[int, dict[str, Any] | None]] = []
    for number, record in enumerate(table.to_pylist(), start=1):
        out = {k: v for k, v in record.items() if v is not None}
        if isinstance(out.get("preprocessing"), str):
            out["preprocessing"] = tuple(s.strip() for s in out["preprocessing"].split(";") if s.strip())
        if isinstance(out.get("extra"), str):
            try:
                out["extra"] = json.loads(out["extra"]) if out["extra"].strip() else {}
            except json.JSONDecodeError as exc:
                problems.add(number, "field 'extra'", f"not a JSON object ({exc.msg})")
                rows.append((number, None))
                continue
        elif isinstance(out.get("extra"), list):  # an arrow map arrives as key/value pairs
            out["extra"] = dict(out["extra"])
        rows.append((number, out))
    return rows


def _read_rows(path: Path, problems: _Problems) -> list[tuple[int, dict[str, Any] | None]]:
    if path.suffix == ".jsonl":
        return _read_jsonl(path, problems)
    if path.suffix == ".csv":
        return _read_csv(path, problems)
    return _read_parquet(path, problems)


def _field_of(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) if loc else ""


def _validate_row(raw: dict[str, Any], number: int, problems: _Problems) -> Sample | None:
    before = len(problems.by_row.get(number, []))
    try:
        sample = Sample(**raw)
    except ValidationError as exc:
        for err in exc.errors():
            where = _field_of(err["loc"])
            message = err["msg"]
            if err["type"] == "extra_forbidden":
                message = f"unknown field (known: {', '.join(_SAMPLE_FIELDS)})"
            elif err["type"] == "missing":
                message = "required field is missing"
            problems.add(number, f"field {where!r}" if where else "", message)
        return None
    except TypeError as exc:
        problems.add(number, "", f"cannot build a sample ({exc})")
        return None
    why_not = text_problem(sample.text)
    if why_not:
        problems.add(number, "field 'text'", why_not)
    if len(sample.text) > MAX_TEXT_CHARS:
        problems.add(
            number, "field 'text'", f"{len(sample.text)} characters, over the limit of {MAX_TEXT_CHARS}"
        )
    if sample.gain_db is not None and not math.isfinite(sample.gain_db):
        problems.add(number, "field 'gain_db'", f"must be a finite number, got {sample.gain_db}")
    if sample.audio_sha256 is not None and not _is_sha256(sample.audio_sha256):
        problems.add(number, "field 'audio_sha256'", "expected 64 lower-case hex digits")
    if sample.audio_path is not None and Path(sample.audio_path).is_absolute():
        problems.add(number, "field 'audio_path'", "must be relative to the probe-set folder")
    elif sample.audio_path is not None and ".." in Path(sample.audio_path).parts:
        problems.add(
            number,
            "field 'audio_path'",
            f"{sample.audio_path!r} leaves the probe-set folder ('..' is refused)",
        )
    return sample if len(problems.by_row.get(number, [])) == before else None


def text_problem(text: str) -> str | None:
    """Why a text cannot be a probe: it draws nothing, or it holds a control character; None when fine.

    Why: a text of zero-width spaces passes a ``strip()`` test yet tokenises to format tokens only, and a stray
    control character (a NUL, an escape) is always an encoding accident in a probe sentence.
    """
    import unicodedata

    for index, char in enumerate(text):
        if unicodedata.category(char) == "Cc" and char not in _ALLOWED_CONTROLS:
            return f"holds the control character U+{ord(char):04X} at position {index}"
    if all(unicodedata.category(c) in _INVISIBLE_CATEGORIES or c in _INVISIBLE_CHARS for c in text):
        shown = ", ".join(sorted({f"U+{ord(c):04X}" for c in text})[:5])
        return f"has no visible character (only {shown})"
    return None


def _is_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _outside(audio: Path, root: Path) -> Path | None:
    """Where ``audio`` really points when that is outside ``root`` (through a symlink), else None."""
    try:
        target = audio.resolve()
        target.relative_to(root.resolve())
    except ValueError:
        return target
    except OSError:  # a symlink loop: treat as leaving the folder
        return audio
    return None


def _check_audio(
    sample: Sample, root: Path, number: int, problems: _Problems, *, decode: bool, confine: bool = True
) -> Sample:
    """Existence, hash and (optionally) decodability of a sample's audio; fills a missing hash.

    ``confine``: refuse (before reading a byte) audio that a symlink places outside the probe-set folder, so a
    manifest can make the suite read nothing but its own folder. Only the shipped sets, whose clips are pinned by
    committed hashes, are loaded with ``confine=False``.
    """
    if sample.audio_path is None:
        return sample
    audio = root / sample.audio_path
    outside = _outside(audio, root) if confine else None
    if outside is not None:
        problems.add(
            number,
            "field 'audio_path'",
            f"{sample.audio_path!r} resolves to {outside}, outside the probe-set folder {root}; "
            "audio must live inside the folder (no symlinks out of it)",
        )
        return sample
    try:
        exists = audio.is_file()
        actual = sha256_file(audio) if exists else ""
    except (OSError, ValueError) as exc:
        problems.add(number, "field 'audio_path'", f"cannot read {audio} ({exc})")
        return sample
    if not exists:
        problems.add(number, "field 'audio_path'", f"audio file {audio} does not exist (or is not a file)")
        return sample
    if sample.audio_sha256 is not None and sample.audio_sha256 != actual:
        problems.add(
            number,
            "field 'audio_sha256'",
            f"{sample.audio_path} has sha256 {actual}, the manifest says {sample.audio_sha256}",
        )
        return sample
    if decode:
        try:
            inspect_audio(audio)
        except AudioReadError as exc:
            problems.add(number, "field 'audio_path'", str(exc))
            return sample
    return sample if sample.audio_sha256 else sample.model_copy(update={"audio_sha256": actual})


def read_header(folder: Path) -> ProbeSetHeader:
    """The folder's header, or a default one (name = folder name) for a user folder without one."""
    header_path = folder / HEADER_NAME
    if not header_path.is_file():
        return ProbeSetHeader(name=folder.resolve().name or "probes", profiles={})
    try:
        data = json.loads(header_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProbeSetError(f"{header_path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ProbeSetError(f"{header_path}: expected a JSON object")
    try:
        header = ProbeSetHeader(**data)
    except ValidationError as exc:
        lines = [f"{header_path}: field {_field_of(e['loc'])!r}: {e['msg']}" for e in exc.errors()]
        raise ProbeSetError("invalid probe-set header:\n  " + "\n  ".join(lines)) from exc
    if header.schema_version != SCHEMA_VERSION:
        raise ProbeSetError(
            f"{header_path}: field 'schema_version': {header.schema_version!r}, this suite reads {SCHEMA_VERSION!r}"
        )
    unknown = sorted(set(header.profiles) - set(PROFILE_NAMES))
    if unknown:
        raise ProbeSetError(
            f"{header_path}: field 'profiles': unknown profile name(s) {unknown}; allowed: {', '.join(PROFILE_NAMES)}"
        )
    for name, ids in header.profiles.items():
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ProbeSetError(f"{header_path}: field 'profiles.{name}': id(s) listed twice: {dup[:10]}")
    return header


def _choose_profile(
    header: ProbeSetHeader, folder: Path, profile: str | None
) -> tuple[str, list[str] | None]:
    """The profile name to load and its ids (``None`` = every row)."""
    if profile is None:
        if "full" in header.profiles:
            return "full", header.profiles["full"]
        return "custom", None
    if profile == "custom":
        return "custom", None
    if profile not in header.profiles:
        known = ", ".join([*header.profiles, "custom"])
        raise ProbeSetError(
            f"{folder}: unknown profile {profile!r} for probe set {header.name!r}; known: {known}"
        )
    return profile, header.profiles[profile]


@overload
def load_probe_set(
    path: str | Path,
    *,
    profile: str | None = ...,
    on_error: Literal["raise"] = ...,
    decode_audio: bool = ...,
    confine_audio: bool = ...,
) -> ProbeSet: ...


@overload
def load_probe_set(
    path: str | Path,
    *,
    profile: str | None = ...,
    on_error: Literal["skip"],
    decode_audio: bool = ...,
    confine_audio: bool = ...,
) -> tuple[ProbeSet, list[SkippedRow]]: ...


def load_probe_set(
    path: str | Path,
    *,
    profile: str | None = None,
    on_error: Literal["raise", "skip"] = "raise",
    decode_audio: bool = True,
    confine_audio: bool = True,
) -> ProbeSet | tuple[ProbeSet, list[SkippedRow]]:
    """Load and validate a probe-set folder (or a manifest file inside one).

    ``profile``: ``ci``, ``ci-alt``, ``full``, ``pool``, or ``custom`` (every row); default ``full`` when declared,
    else ``custom``.
    ``on_error="skip"`` leaves bad rows out and returns ``(probe_set, skipped_rows)``; file-level problems
    (header, unknown profile, a profile naming an id absent from the manifest) always raise.
    ``decode_audio`` decodes each clip to reject corrupt, truncated, too short, non-finite, silent or DC-only
    audio at load. ``confine_audio=False`` allows audio that symlinks place outside the folder (shipped sets only).
    """
    path = Path(path)
    if path.is_file() and path.name in MANIFEST_NAMES:
        folder, manifest = path.parent, path
    elif path.is_dir():
        folder, manifest = path, _find_manifest(path)
    else:
        raise ProbeSetError(f"{path}: not a probe-set folder or manifest file")
    header = read_header(folder)
    profile_name, wanted = _choose_profile(header, folder, profile)

    problems = _Problems(file=str(manifest))
    rows = _read_rows(manifest, problems)
    first_row: dict[str, int] = {}
    kept: list[tuple[int, Sample]] = []
    ids_by_row: dict[int, str] = {}
    for number, raw in rows:
        if raw is None:
            continue
        if isinstance(raw.get("id"), str):
            ids_by_row[number] = raw["id"]
        sample = _validate_row(raw, number, problems)
        if sample is None:
            continue
        if sample.id in first_row:
            problems.add(
                number, "field 'id'", f"duplicate id {sample.id!r} (first in row {first_row[sample.id]})"
            )
            continue
        first_row[sample.id] = number
        kept.append((number, sample))

    all_ids = set(ids_by_row.values())
    if wanted is not None:
        missing = sorted(set(wanted) - all_ids)
        if missing:
            raise ProbeSetError(
                f"{folder / HEADER_NAME}: field 'profiles.{profile_name}': {len(missing)} id(s) not in "
                f"{manifest.name}: {missing[:10]}"
            )
        wanted_set = set(wanted)
        kept = [(n, s) for n, s in kept if s.id in wanted_set]
    checked: list[Sample] = []
    for number, sample in kept:
        before = len(problems.by_row.get(number, []))
        sample = _check_audio(sample, folder, number, problems, decode=decode_audio, confine=confine_audio)
        if len(problems.by_row.get(number, [])) == before:
            checked.append(sample)

    # Rows outside the chosen profile do not block it; rows whose id is unknown might belong to it, so they do.
    if wanted is None:
        in_profile_rows = {n for n, _ in rows}
    else:
        in_profile_rows = {n for n, _ in rows if ids_by_row.get(n) is None or ids_by_row[n] in wanted_set}
    blocking = {n: msgs for n, msgs in problems.by_row.items() if n in in_profile_rows}
    if blocking and on_error == "raise":
        lines = [f"{manifest}:{n}: {m}" for n in sorted(blocking) for m in blocking[n]]
        raise ProbeSetError(
            f"probe set {header.name!r} ({manifest}): {len(lines)} problem(s) in {len(blocking)} row(s):\n  "
            + "\n  ".join(lines)
        )
    skipped = [
        SkippedRow(file=str(manifest), row=n, sample_id=ids_by_row.get(n), reasons=tuple(problems.by_row[n]))
        for n in sorted(problems.by_row)
    ]
    if not checked:
        detail = "\n  ".join(problems.lines()) or "the manifest has no rows"
        raise ProbeSetError(f"probe set {header.name!r} ({manifest}): no valid samples left:\n  {detail}")
    checked.sort(key=lambda s: s.id)
    try:
        probe_set = ProbeSet(
            schema_version=header.schema_version,
            name=header.name,
            version=header.version,
            profile=profile_name,  # type: ignore[arg-type]
            description=header.description,
            caveats=list(header.caveats),
            samples=checked,
            root=str(folder.resolve()),
        )
    except ValidationError as exc:  # pragma: no cover - rows were validated one by one above
        raise ProbeSetError(f"{manifest}: {exc}") from exc
    if on_error == "skip":
        return probe_set, skipped
    return probe_set


def manifest_rows(probe_set: ProbeSet) -> tuple[str, dict[str, int]]:
    """The manifest file of a loaded set and each sample id's row in it, so later checks (model limits at
    validation) can name ``FILE:ROW`` like the loader does; ``("<probe set NAME>", {})`` for an in-memory set."""
    if not probe_set.root:
        return f"<probe set {probe_set.name}>", {}
    try:
        manifest = _find_manifest(Path(probe_set.root))
        rows = _read_rows(manifest, _Problems(file=str(manifest)))
    except ProbeSetError:
        return f"<probe set {probe_set.name}>", {}
    return str(manifest), {
        raw["id"]: n for n, raw in rows if raw is not None and isinstance(raw.get("id"), str)
    }


# -------------------------------------------------------------------------------------------- writing


def _sample_record(sample: Sample) -> dict[str, Any]:
    return sample.model_dump(mode="json", exclude_none=True)


def write_manifest(path: str | Path, samples: Sequence[Sample]) -> Path:
    """Write samples as ``.jsonl``, ``.csv`` (encoding of the module docstring) or ``.parquet`` by suffix."""
    path = Path(path)
    records = [_sample_record(s) for s in samples]
    if path.suffix == ".jsonl":
        lines = [json.dumps(r, ensure_ascii=False) for r in records]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif path.suffix == ".csv":
        keys = sorted({k for s in samples for k in s.extra})
        columns = [f for f in _SAMPLE_FIELDS if f != "extra"] + [f"extra.{k}" for k in keys]
        with open(path, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for sample in samples:
                row = []
                for column in columns:
                    if column.startswith("extra."):
                        row.append(sample.extra.get(column[len("extra.") :], ""))
                        continue
                    value = getattr(sample, column)
                    if column == "preprocessing":
                        if any(";" in step for step in value):
                            raise ProbeSetError(f"sample {sample.id!r}: a preprocessing step contains ';'")
                        row.append(";".join(value))
                    elif value is None:
                        row.append("")
                    elif isinstance(value, bool):
                        row.append("true" if value else "false")
                    else:
                        row.append(repr(value) if isinstance(value, float) else str(value))
                writer.writerow(row)
    elif path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(
            [
                {
                    **{f: getattr(s, f) for f in _SAMPLE_FIELDS if f not in {"extra", "preprocessing"}},
                    "preprocessing": list(s.preprocessing),
                    "extra": json.dumps(s.extra, ensure_ascii=False, sort_keys=True),
                }
                for s in samples
            ]
        )
        pq.write_table(table, path)
    else:
        raise ProbeSetError(f"{path}: unknown manifest format; use one of {', '.join(MANIFEST_NAMES)}")
    return path


def write_probe_set(
    folder: str | Path,
    probe_set: ProbeSet,
    profiles: Mapping[str, Iterable[str]] | None = None,
    build: Mapping[str, Any] | None = None,
    *,
    manifest_format: Literal["jsonl", "csv", "parquet"] = "jsonl",
) -> Path:
    """Write a probe set as a folder: header, manifest, and its audio copied beside them.

    ``profiles`` maps ``ci``/``ci-alt``/``full``/``pool`` to sample ids (default: ``full`` = every sample).
    Audio hashes are filled in, so the written set verifies its own audio at load.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ids = [s.id for s in probe_set.samples]
    chosen = {name: list(members) for name, members in (profiles or {"full": ids}).items()}
    for name, members in chosen.items():
        if name not in PROFILE_NAMES:
            raise ProbeSetError(f"profile {name!r}: allowed profile names are {', '.join(PROFILE_NAMES)}")
        missing = sorted(set(members) - set(ids))
        if missing:
            raise ProbeSetError(
                f"profile {name!r} names id(s) not in probe set {probe_set.name!r}: {missing[:10]}"
            )
    source_root = Path(probe_set.root) if probe_set.root else Path.cwd()
    written: list[Sample] = []
    for sample in probe_set.samples:
        if sample.audio_path is None:
            written.append(sample)
            continue
        source = source_root / sample.audio_path
        target = folder / sample.audio_path
        if not source.is_file():
            raise ProbeSetError(f"sample {sample.id!r}: audio file {source} does not exist")
        if source.resolve() != target.resolve():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        digest = sha256_file(target)
        if sample.audio_sha256 is not None and sample.audio_sha256 != digest:
            raise ProbeSetError(
                f"sample {sample.id!r}: {source} has sha256 {digest}, the sample says {sample.audio_sha256}"
            )
        written.append(sample.model_copy(update={"audio_sha256": digest}))
    for name in MANIFEST_NAMES:
        (folder / name).unlink(missing_ok=True)
    write_manifest(folder / f"manifest.{manifest_format}", written)
    header = ProbeSetHeader(
        schema_version=SCHEMA_VERSION,
        name=probe_set.name,
        version=probe_set.version,
        description=probe_set.description,
        caveats=list(probe_set.caveats),
        profiles=chosen,
        build=dict(build or {}),
    )
    text = json.dumps(header.model_dump(mode="json"), indent=2, ensure_ascii=False, sort_keys=False)
    (folder / HEADER_NAME).write_text(text + "\n", encoding="utf-8")
    return folder


# ------------------------------------------------------------------------------------- claims' needs


def require_axes(probe_set: ProbeSet, axes: Iterable[str], claim_id: str) -> None:
    """Fail when a claim asks for a label axis the probe set does not vary (absent or a single value)."""
    present = set(probe_set.label_axes)
    problems = []
    for axis in axes:
        if axis in present:
            continue
        values = sorted({v for s in probe_set.samples if (v := s.label(axis)) is not None})
        known = axis in LABEL_AXES or any(axis in s.extra for s in probe_set.samples)
        if not values:
            why = "no sample carries it" if known else "it is neither a Sample field nor an extra label"
        else:
            why = f"it has only one value ({values[0]!r})"
        problems.append(f"axis {axis!r}: {why}")
    if problems:
        where = (
            f"probe set {probe_set.name!r} (profile {probe_set.profile}, {len(probe_set.samples)} samples)"
        )
        raise ProbeSetError(
            f"claim {claim_id!r} needs label axes the {where} lacks: "
            + "; ".join(problems)
            + f". Axes it has: {', '.join(sorted(present)) or 'none'}"
        )
