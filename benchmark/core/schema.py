"""The one data schema of the suite: samples, probe sets and the latents manifest.

Owned by the extraction engine (DESIGN.md, "Contracts"). Probe sets, claims and reports import these classes;
nobody redefines them. Every model is pydantic with ``extra="forbid"`` so that a misspelt field in a
user's manifest fails at load with the field's name instead of being silently ignored.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION = "1.0"

Modality = Literal["text", "speech"]

#: The eight languages of the paper (ISO 639-1). Other valid ISO codes are accepted by ``Sample`` too;
#: this tuple is what the shipped fixtures cover.
PAPER_LANGUAGES: tuple[str, ...] = ("en", "fr", "de", "zh", "ja", "id", "vi", "es")

#: ISO 639-1 codes accepted in a manifest. Kept explicit (no extra dependency) so an unknown code is an
#: error that names it rather than a silent new cluster.
ISO_639_1 = frozenset(
    [
        "aa",
        "ab",
        "af",
        "ak",
        "am",
        "an",
        "ar",
        "as",
        "av",
        "ay",
        "az",
        "ba",
        "be",
        "bg",
        "bh",
        "bi",
        "bm",
        "bn",
        "bo",
        "br",
        "bs",
        "ca",
        "ce",
        "ch",
        "co",
        "cr",
        "cs",
        "cu",
        "cv",
        "cy",
        "da",
        "de",
        "dv",
        "dz",
        "ee",
        "el",
        "en",
        "eo",
        "es",
        "et",
        "eu",
        "fa",
        "ff",
        "fi",
        "fj",
        "fo",
        "fr",
        "fy",
        "ga",
        "gd",
        "gl",
        "gn",
        "gu",
        "gv",
        "ha",
        "he",
        "hi",
        "ho",
        "hr",
        "ht",
        "hu",
        "hy",
        "hz",
        "ia",
        "id",
        "ie",
        "ig",
        "ii",
        "ik",
        "io",
        "is",
        "it",
        "iu",
        "ja",
        "jv",
        "ka",
        "kg",
        "ki",
        "kj",
        "kk",
        "kl",
        "km",
        "kn",
        "ko",
        "kr",
        "ks",
        "ku",
        "kv",
        "kw",
        "ky",
        "la",
        "lb",
        "lg",
        "li",
        "ln",
        "lo",
        "lt",
        "lu",
        "lv",
        "mg",
        "mh",
        "mi",
        "mk",
        "ml",
        "mn",
        "mr",
        "ms",
        "mt",
        "my",
        "na",
        "nb",
        "nd",
        "ne",
        "ng",
        "nl",
        "nn",
        "no",
        "nr",
        "nv",
        "ny",
        "oc",
        "oj",
        "om",
        "or",
        "os",
        "pa",
        "pi",
        "pl",
        "ps",
        "pt",
        "qu",
        "rm",
        "rn",
        "ro",
        "ru",
        "rw",
        "sa",
        "sc",
        "sd",
        "se",
        "sg",
        "si",
        "sk",
        "sl",
        "sm",
        "sn",
        "so",
        "sq",
        "sr",
        "ss",
        "st",
        "su",
        "sv",
        "sw",
        "ta",
        "te",
        "tg",
        "th",
        "ti",
        "tk",
        "tl",
        "tn",
        "to",
        "tr",
        "ts",
        "tt",
        "tw",
        "ty",
        "ug",
        "uk",
        "ur",
        "uz",
        "ve",
        "vi",
        "vo",
        "wa",
        "wo",
        "xh",
        "yi",
        "yo",
        "za",
        "zh",
        "zu",
    ]
)

#: Label axes a claim may ask for (``Sample`` fields plus ``extra`` keys are looked up by these names).
LABEL_AXES: tuple[str, ...] = (
    "modality",
    "language",
    "meaning_id",
    "group_id",
    "pair_id",
    "pair_role",
    "speaker",
    "gender",
    "age_group",
    "accent",
    "device",
    "variant",
    "voice_set",
    "normalisation",
)

#: Names of the token-identity control representations, in the order of ``controls``' second axis.
CONTROL_NAMES: tuple[str, ...] = ("tok_last", "tok_mean")


class Sample(BaseModel):
    """One labelled input: a sentence as text, or a clip of speech with its transcript."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, description="unique within the probe set")
    modality: Modality
    text: str = Field(description="the input text, or the transcript of the clip")
    audio_path: str | None = Field(default=None, description="relative to the probe-set folder")
    audio_sha256: str | None = None
    language: str = Field(description="ISO 639-1")
    meaning_id: str | None = Field(default=None, description="same meaning across languages and modalities")
    group_id: str | None = Field(default=None, description="design unit for resampling (e.g. a sentence)")
    pair_id: str | None = Field(default=None, description="paraphrase / translation pair")
    pair_role: str | None = Field(default=None, description="e.g. anchor, paraphrase, adversarial, other")
    speaker: str | None = None
    gender: str | None = None
    age_group: str | None = None
    accent: str | None = None
    device: str | None = None
    variant: str | None = Field(default=None, description="probe variant, e.g. punct / nopunct")
    voice_set: str | None = Field(default=None, description="single-voice or multi-voice subset")
    normalisation: str | None = Field(default=None, description="raw or peak-normalised audio")
    gain_db: float | None = None
    synthetic: bool = False
    preprocessing: tuple[str, ...] = Field(default=(), description="the audio chain applied, in order")
    extra: dict[str, str] = Field(default_factory=dict, description="further string labels")

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        if value not in ISO_639_1:
            raise ValueError(f"unknown ISO 639-1 language code {value!r}")
        return value

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is empty or whitespace only")
        return value

    @model_validator(mode="after")
    def _speech_has_audio(self) -> Sample:
        if self.modality == "speech" and not self.audio_path:
            raise ValueError(f"sample {self.id!r}: modality 'speech' needs an audio_path")
        if self.modality == "text" and self.audio_path:
            raise ValueError(f"sample {self.id!r}: modality 'text' must not carry an audio_path")
        return self

    def label(self, axis: str) -> str | None:
        """The value of one label axis (a field or an ``extra`` key), ``None`` when unset."""
        if axis in self.extra:
            return self.extra[axis]
        if axis in type(self).model_fields and axis not in {"extra", "preprocessing"}:
            value = getattr(self, axis)
            return None if value is None else str(value)
        return None


class ProbeSet(BaseModel):
    """A named, hashed collection of samples plus what it cannot stand for."""

    model_config = ConfigDict(extra="forbid")

    schema_version: str = SCHEMA_VERSION
    name: str
    version: str = "1"
    #: One of benchmark.core.profiles.PROFILE_CHOICES (a test keeps the two in step).
    profile: Literal["ci", "ci-alt", "full", "pool", "custom"] = "custom"
    description: str = ""
    caveats: list[str] = Field(default_factory=list)
    samples: list[Sample]
    root: str | None = Field(
        default=None, exclude=True, description="folder that audio paths are relative to"
    )

    @model_validator(mode="after")
    def _unique_ids(self) -> ProbeSet:
        seen: dict[str, int] = {}
        for row, sample in enumerate(self.samples):
            if sample.id in seen:
                raise ValueError(
                    f"probe set {self.name!r}: duplicate sample id {sample.id!r} in rows {seen[sample.id]} and {row}"
                )
            seen[sample.id] = row
        if not self.samples:
            raise ValueError(f"probe set {self.name!r} has no samples")
        return self

    @property
    def label_axes(self) -> list[str]:
        """Axes that carry at least two distinct values in this set."""
        axes = []
        extra_keys = sorted({k for s in self.samples for k in s.extra})
        for axis in (*LABEL_AXES, *extra_keys):
            values = {s.label(axis) for s in self.samples} - {None}
            if len(values) >= 2:
                axes.append(axis)
        return axes

    def content_hash(self) -> str:
        """sha256 over the samples' fields and their audio hashes: what the probe set *is*."""
        digest = hashlib.sha256()
        digest.update(SCHEMA_VERSION.encode())
        for sample in self.samples:
            digest.update(json.dumps(sample.model_dump(mode="json"), sort_keys=True).encode())
        return digest.hexdigest()

    def audio_file(self, sample: Sample) -> Path:
        if sample.audio_path is None:
            raise ValueError(f"sample {sample.id!r} has no audio")
        base = Path(self.root) if self.root else Path.cwd()
        return base / sample.audio_path

    def subset(self, predicate: Any, *, name: str | None = None) -> ProbeSet:
        """A new probe set with the samples for which ``predicate(sample)`` is true."""
        chosen = [s for s in self.samples if predicate(s)]
        return ProbeSet(
            name=name or self.name,
            version=self.version,
            profile=self.profile,
            description=self.description,
            caveats=list(self.caveats),
            samples=chosen,
            root=self.root,
        )


class Provenance(BaseModel):
    """Everything that produced a latents file or a result record."""

    model_config = ConfigDict(extra="forbid")

    model: str
    hub_id: str | None = None
    revision: str = Field(description="weights sha256 for offline entries, hub commit, or 'unresolved'")
    adapter_source_sha256: str
    kind: str = Field(description="lalm, asr-proxy or text-lm")
    dtype: str
    device: str
    templates: dict[str, dict[str, str]] = Field(description="template name -> modality -> rendered form")
    probe_set: str
    probe_set_hash: str
    versions: dict[str, str]
    git_commit: str | None = None
    created: str
    cpu_model: str | None = Field(
        default=None, description="/proc/cpuinfo 'model name' (or the platform's processor string)"
    )
    cpu_bf16: dict[str, bool] = Field(
        default_factory=dict,
        description="CPU flags that make bfloat16 fast: amx_bf16, avx512_bf16 (absent: not read)",
    )
    accelerator: str | None = Field(default=None, description="GPU name when the device is one, else None")
    torch_threads: int | None = Field(default=None, description="torch intra-op threads of the run")


class LatentsManifest(BaseModel):
    """Sidecar of a latents safetensors file: which rows and columns the tensor holds and who made it."""

    model_config = ConfigDict(extra="forbid")

    schema_version: str = SCHEMA_VERSION
    provenance: Provenance
    template: str
    layers: list[str] = Field(description="emb, block0..block{L-1}, final_norm, in tensor order")
    sample_ids: list[str]
    modalities: list[Modality]
    last_token_ids: list[int] = Field(description="decoder token id at the position the latent was taken")
    positions: list[int] = Field(
        description="index of the last real token in the sample's own token sequence"
    )
    shape: list[int]
    tensor_sha256: str
    #: The token-identity controls stored beside the latents (``controls`` ``[n, 2, d]``), CLAIMS.md: taken from
    #: ``emb`` over the input's content span. ``control_available`` is ``None`` in files written before
    #: controls were recorded; then the controls are NaN and ``control_reason`` says so.
    control_layers: list[str] = Field(
        default_factory=lambda: list(CONTROL_NAMES),
        description="tok_last: emb at the content's last position; tok_mean: mean of emb over the content",
    )
    control_available: list[bool] | None = Field(
        default=None, description="per sample: controls computed (False: NaN rows, see control_reason)"
    )
    control_reason: str = Field(
        default="", description="why some or all samples have no controls ('' when every sample has them)"
    )
    content_spans: list[list[int] | None] | None = Field(
        default=None, description="per sample: [start, end) of the content in its own token sequence"
    )
    controls_sha256: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> LatentsManifest:
        n = len(self.sample_ids)
        if not (len(self.modalities) == len(self.last_token_ids) == len(self.positions) == n):
            raise ValueError("latents manifest: per-sample lists differ in length")
        if self.shape and (self.shape[0] != n or self.shape[1] != len(self.layers)):
            raise ValueError(
                f"latents manifest: shape {self.shape} does not match {n} samples x {len(self.layers)} layers"
            )
        for name in ("control_available", "content_spans"):
            values = getattr(self, name)
            if values is not None and len(values) != n:
                raise ValueError(f"latents manifest: {name} has {len(values)} entries for {n} samples")
        if self.control_available is not None and not all(self.control_available) and not self.control_reason:
            raise ValueError("latents manifest: some samples have no controls but control_reason is empty")
        return self


def layer_names(num_blocks: int) -> list[str]:
    """The suite's layer naming: ``emb``, ``block0..block{L-1}``, ``final_norm``."""
    return ["emb", *[f"block{i}" for i in range(num_blocks)], "final_norm"]
