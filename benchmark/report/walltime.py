"""The nightly's plan: each matrix job's expected wall-clock and memory, and the split that keeps every job inside
its timeout.

Why here: the plan is what the nightly reports before it runs, from the same catalog, probe sets and claims the
run uses, with the memory planner of the engine (:mod:`benchmark.engine.memory`). ``scripts/nightly.sh plan``
prints it and hands GitHub the matrix (``lalm-bench nightly plan --github-output``).

Every number below is an assumption stated where it is used; the measured ones name their source:

- parameters: counted exactly from the model's config on the meta device when the config is in the local hub
  cache (the GPU runner's ``HF_HOME`` after a first download or ``lalm-bench lock``), else the published count in
  :data:`PUBLISHED_BILLIONS`; MoE models are planned at their total count (transformers' eager expert loop runs far
  below the dense matmul rate, so the active count would be optimistic); an unknown model at :data:`UNKNOWN_BILLIONS`.
- memory: weights in bf16 (2 bytes per parameter) plus activations from ``estimate_memory`` when the config is
  known, else :data:`ACTIVATION_FALLBACK_GIB` (twice the largest peak above the weights measured on the H200,
  1.98 GiB for Qwen2-Audio-7B at batch 64, reports/gpu/gpu_full_size.json); the pre-flight's float32 drift
  check holds a float32 copy (4 bytes per parameter). Usable: the engine's ``HEADROOM`` of one H200's 139 GiB;
  beyond it the job asks for a two-GPU runner and ``--device-map auto``. With a config at hand
  (:func:`size_from_config`) the activations are the engine's own estimate (``estimate_memory``, the audio
  encoder's padded window included).
- extraction: one H200 in bf16 at the measured engine rate of Ultravox-0.5-Llama-3.1-8B (95.4 inputs/s, 8.72 B
  parameters: reports/performance.md, "GPU"), the slower of the two measured models, scaled inversely with the
  parameter count and never faster than a 1 B model; a speech input counts twice (the measured mix was one third
  clips, whose 30-s encoder window costs about as much as their decoder pass); each template is a full pass
  (no encoder reuse across templates assumed).
- statistics: :data:`EVAL_SECONDS_FULL` CPU-seconds per claim evaluation (one template and variant) at the full
  profile and budget, scaled by the square of the probe set's size against text-parallel's (distance matrices),
  and :data:`EVAL_SECONDS_CI` at the ci budget; measured on this 2-core machine (see the module's constants).
- fixed: model load at :data:`LOAD_GIB_PER_S` from the runner's disk plus a minute's start; the pre-flight two
  minutes plus one more load (its float32 copy); the hub download is not counted (``HF_HOME`` persists).
- safety: a job is split when its expected time times :data:`SAFETY` exceeds :data:`JOB_TIMEOUT_MINUTES`; shards
  are the claim sections (``claims/test_<section>.py``), then the two templates, and the ci/ci-alt consistency
  runs in a job of its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Any

#: One H200 (reports/gpu): 139 GiB usable by torch, of which a run may plan the engine's HEADROOM.
GPU_GIB = 139.0
#: Engine rate measured on the H200 for Ultravox-0.5-Llama-3.1-8B (reports/gpu/gpu_full_size.json): inputs/s x B.
RATE_INPUTS_X_BILLIONS = 95.4 * 8.72
#: No model runs faster than a 1 B model per input (batching overheads dominate below).
RATE_FLOOR_BILLIONS = 1.0
SPEECH_WEIGHT = 2.0
ACTIVATION_FALLBACK_GIB = 2 * 1.98
LOAD_GIB_PER_S = 1.0
START_SECONDS = 60.0
CHECK_SECONDS = 120.0
#: Seconds per claim evaluation at the full budget on a probe set of text-parallel's full size (608 samples):
#: T3 on gemma-3-270m-q4km's full-profile latents took 145 and 245 s (304 samples after the variant selection,
#: 1000 permutations; this 2-core machine at load 12-17, 2026-12-05). Distance-only claims are far cheaper (T1: 2 s),
#: so this bounds the silhouette claims and overstates the rest.
EVAL_SECONDS_FULL = 200.0
#: Seconds per claim evaluation at the ci budget: gemma-3-270m-q4km's 23 applicable evaluations (of 50 records,
#: the rest n/a) took 155 s wall with warm latents (same machine and load).
EVAL_SECONDS_CI = 6.0
REFERENCE_SAMPLES = 608
SAFETY = 1.5
JOB_TIMEOUT_MINUTES = 240
UNKNOWN_BILLIONS = 35.0
SECTIONS: tuple[str, ...] = ("text", "speech", "demography", "crossmodal", "metrics")
TEMPLATES: tuple[str, ...] = ("bare", "shared-suffix")
#: The paper's models and the offline ones gate the nightly from their first run; every other LALM may fail
#: until its first accepted baseline.
GATED_FROM_THE_START: tuple[str, ...] = (
    "ultravox-0.5-llama-3.2-1b",
    "ultravox-0.5-llama-3.1-8b",
    "qwen2-audio-7b",
    "qwen2-audio-7b-instruct",
    "whisper-base-ct2",
    "gemma-3-270m-q4km",
)

#: Published parameter counts (billions, whole checkpoint the adapter loads), used when no config is cached.
PUBLISHED_BILLIONS: dict[str, float] = {
    "whisper-base-ct2": 0.074,
    "whisper-tiny.en-ct2": 0.039,
    "gemma-3-270m-q4km": 0.268,
    "smollm2-135m-q41": 0.135,
    "ultravox-0.5-llama-3.2-1b": 1.9,  # Llama-3.2-1B 1.24 + whisper-large-v3-turbo encoder 0.64 + projector
    "ultravox-0.5-llama-3.1-8b": 8.72,  # built at full size on the H200 (reports/gpu)
    "ultravox-0.6-llama-3.1-8b": 8.72,
    "ultravox-0.6-llama-3.3-70b": 71.3,
    "ultravox-0.6-gemma-3-27b": 28.1,
    "ultravox-0.6-qwen-3-32b": 33.4,
    "qwen2-audio-7b": 8.40,  # built at full size on the H200 (reports/gpu)
    "qwen2-audio-7b-instruct": 8.40,
    "qwen2.5-omni-7b": 8.9,  # thinker only: Qwen2.5-7B + audio and vision encoders
    "qwen3-omni-30b-a3b-instruct": 31.7,  # thinker (MoE, 3 B active) + audio encoder, planned at the total
    "qwen3-asr-1.7b": 2.0,
    "qwen3-asr-0.6b": 0.9,
    "voxtral-mini-3b": 4.7,
    "voxtral-mini-4b-realtime": 4.4,
    "voxtral-small-24b": 24.3,
    "granite-speech-3.3-2b": 3.0,
    "phi-4-multimodal": 5.6,
    "gemma-3n-e4b": 7.9,  # raw parameters (4 B effective)
    "audio-flamingo-3": 8.3,
}


@dataclass(frozen=True)
class ModelSize:
    billions: float
    source: str
    activation_gib: float


@dataclass
class Shard:
    """One matrix job: which claims of which model it runs, its plan and whether it may fail."""

    model: str
    shard: str
    sections: list[str]
    templates: list[str]
    consistency: bool
    expected_minutes: float
    timeout_minutes: int
    memory: str
    breakdown: dict[str, float]
    gpus: int
    allowed_to_fail: bool
    pytest_args: str = ""
    notes: list[str] = field(default_factory=list)

    def as_matrix_entry(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        parts = ", ".join(f"{k} {v:.0f} min" for k, v in self.breakdown.items())
        return (
            f"{self.model} [{self.shard}]: expected {self.expected_minutes:.0f} min ({parts}) of "
            f"{self.timeout_minutes} min; {self.memory}; {self.gpus} GPU(s)"
            + ("; allowed to fail until its first accepted baseline" if self.allowed_to_fail else "")
        )


def _whole_model_parameters(config: Any) -> int | None:
    """Parameters of the config's own architecture (``config.architectures[0]``) built on the meta device.

    Why not only the engine's ``count_parameters``: given a multimodal config it builds the causal-LM part and
    leaves the audio tower out (a tiny Qwen2-Audio: 107,968 of 124,672); hub configs name their architecture.
    """
    import torch
    import transformers

    names = getattr(config, "architectures", None) or []
    klass = getattr(transformers, names[0], None) if names else None
    if klass is None:
        return None
    with torch.device("meta"):
        model = klass(config)
    return sum(p.numel() for p in model.parameters())


def size_from_config(config: Any) -> ModelSize:
    """Parameters counted on the meta device and one batch's activations (64 x 256 tokens, bf16, the audio
    encoder's padded window where the config has one) from the engine's memory planner."""
    import torch

    from benchmark.engine.memory import EncoderShape, count_parameters, estimate_memory

    audio = getattr(config, "audio_config", None)
    encoder = None
    if audio is not None and all(
        hasattr(audio, k) for k in ("d_model", "encoder_ffn_dim", "max_source_positions")
    ):
        encoder = EncoderShape(
            width=int(audio.d_model),
            ffn=int(audio.encoder_ffn_dim),
            heads=int(getattr(audio, "encoder_attention_heads", 1)),
            frames=int(audio.max_source_positions),
            mel_bins=int(getattr(audio, "num_mel_bins", 128)),
        )
    count = _whole_model_parameters(config) or count_parameters(config)
    estimate = estimate_memory(
        config, batch_size=64, seq_len=256, dtype=torch.bfloat16, parameters=count, encoder=encoder
    )
    return ModelSize(count / 1e9, "counted from the config", estimate.activation_bytes / 2**30)


def model_size(name: str, hub_id: str | None) -> ModelSize:
    """Parameters and activations: from a config in the local hub cache when there is one, else the published
    count with the fallback activations."""
    if hub_id:
        try:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(hub_id, local_files_only=True, trust_remote_code=False)
        except Exception:  # no cached config (CI, a first night) or one transformers cannot read
            config = None
        if config is not None:
            try:
                return size_from_config(config)
            except Exception:  # a config the meta-device build does not take: fall back, said in the source
                pass
    if name in PUBLISHED_BILLIONS:
        return ModelSize(PUBLISHED_BILLIONS[name], "published count", ACTIVATION_FALLBACK_GIB)
    return ModelSize(UNKNOWN_BILLIONS, "unknown: planned at 35 B", ACTIVATION_FALLBACK_GIB)


@dataclass(frozen=True)
class Workload:
    """Inputs per profile (speech weighted) and claim evaluations per section for one model."""

    inputs: dict[str, dict[str, float]]  # section -> profile -> weighted inputs
    evaluations: dict[str, float]  # section -> CPU-seconds of statistics at full
    consistency_seconds: float


@cache
def workload(modalities: tuple[str, ...]) -> Workload:
    """What the claims ask of a model that takes ``modalities``: inputs of each probe set its applicable claims
    use (per section, per profile), and the statistics' CPU time (cached: models of one modality share it)."""
    from benchmark.claims.registry import all_claims
    from benchmark.probes.catalog import resolve_probes

    sizes: dict[tuple[str, str], tuple[float, int]] = {}

    def size(probe_set: str, profile: str) -> tuple[float, int]:
        if (probe_set, profile) not in sizes:
            samples = [s for s in resolve_probes(probe_set, profile).samples if s.modality in modalities]
            weighted = sum(SPEECH_WEIGHT if s.modality == "speech" else 1.0 for s in samples)
            sizes[(probe_set, profile)] = (weighted, len(samples))
        return sizes[(probe_set, profile)]

    inputs: dict[str, dict[str, float]] = {}
    evaluations: dict[str, float] = {}
    consistency = 0.0
    used: dict[str, set[str]] = {}
    for spec in all_claims():
        if spec.cross_model or any(m not in modalities for m in spec.requires.modalities):
            continue  # n/a claims cost nothing
        runs = sum(
            1 + (len(spec.select.secondary_variants) if t == "bare" else 0) for t in spec.templates.run
        )
        _, n_full = size(spec.probe_set, "full")
        evaluations[spec.section] = (
            evaluations.get(spec.section, 0.0) + runs * EVAL_SECONDS_FULL * (n_full / REFERENCE_SAMPLES) ** 2
        )
        consistency += 2 * runs * EVAL_SECONDS_CI
        used.setdefault(spec.section, set()).add(spec.probe_set)
    for section, sets in used.items():
        inputs[section] = {p: sum(size(s, p)[0] for s in sets) for p in ("full", "ci", "ci-alt")}
    return Workload(inputs, evaluations, consistency)


def _rate(billions: float) -> float:
    return RATE_INPUTS_X_BILLIONS / max(billions, RATE_FLOOR_BILLIONS)


def _job(
    model: str,
    shard: str,
    sections: list[str],
    templates: list[str],
    consistency: bool,
    size: ModelSize,
    work: Workload,
    allowed_to_fail: bool,
) -> Shard:
    weights_gib = size.billions * 1e9 * 2 / 2**30
    check_gib = size.billions * 1e9 * 4 / 2**30
    from benchmark.engine.memory import HEADROOM

    usable = GPU_GIB * HEADROOM
    gpus = 1 if max(weights_gib + size.activation_gib, check_gib) <= usable else 2
    load = START_SECONDS + weights_gib / LOAD_GIB_PER_S
    check = CHECK_SECONDS + load * 2  # the check reloads in float32 and back
    rate = _rate(size.billions)
    if consistency:
        extract = (
            sum(work.inputs[s]["ci"] + work.inputs[s]["ci-alt"] for s in work.inputs) * len(TEMPLATES) / rate
        )
        stats = work.consistency_seconds
    else:
        extract = sum(work.inputs.get(s, {}).get("full", 0.0) for s in sections) * len(templates) / rate
        stats = sum(work.evaluations.get(s, 0.0) for s in sections) * len(templates) / len(TEMPLATES)
    breakdown = {
        "load": load / 60,
        "pre-flight": check / 60,
        "extraction": extract / 60,
        "statistics": stats / 60,
    }
    total = sum(breakdown.values())
    memory = (
        f"weights {weights_gib:.1f} GiB + activations {size.activation_gib:.1f} GiB (bf16, batch 64); pre-flight "
        f"float32 copy {check_gib:.1f} GiB; usable {usable:.0f} GiB per H200 ({size.source}, "
        f"{size.billions:.2f} B)"
    )
    args = " ".join(f"claims/test_{s}.py" for s in sections)
    if len(templates) == 1:
        args += f" --template {templates[0]}"
    notes = [] if gpus == 1 else ["needs two H200 (--device-map auto); the pre-flight's float32 copy as well"]
    return Shard(
        model,
        shard,
        sections,
        templates,
        consistency,
        round(total, 1),
        JOB_TIMEOUT_MINUTES,
        memory,
        {k: round(v, 1) for k, v in breakdown.items()},
        gpus,
        allowed_to_fail,
        "" if consistency else args,
        notes,
    )


def plan_model(
    model: str, hub_id: str | None, modalities: Sequence[str], *, allowed_to_fail: bool
) -> list[Shard]:
    """One job when it fits the timeout with the safety factor; else one per section, then per section and
    template; the consistency run always apart."""
    size = model_size(model, hub_id)
    work = workload(tuple(sorted(modalities)))
    sections = [s for s in SECTIONS if s in work.inputs]
    consistency = _job(model, "consistency", [], list(TEMPLATES), True, size, work, allowed_to_fail)
    whole = _job(model, "all", sections, list(TEMPLATES), False, size, work, allowed_to_fail)
    limit = JOB_TIMEOUT_MINUTES / SAFETY
    if whole.expected_minutes <= limit:
        return [whole, consistency]
    shards = []
    for section in sections:
        job = _job(model, section, [section], list(TEMPLATES), False, size, work, allowed_to_fail)
        if job.expected_minutes <= limit:
            shards.append(job)
            continue
        for template in TEMPLATES:
            split = _job(
                model, f"{section}-{template}", [section], [template], False, size, work, allowed_to_fail
            )
            if split.expected_minutes > limit:
                split.notes.append(
                    f"expected {split.expected_minutes:.0f} min exceeds {limit:.0f} min even alone: raise the "
                    "timeout or split the probe sets"
                )
            shards.append(split)
    return [*shards, consistency]


def catalog_rows(names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Name, hub id and modalities of catalog entries (``lalm-bench models --json`` minus what the plan does not
    read: no weight availability, no layer names, so nothing is scanned or loaded)."""
    from benchmark.models.catalog import get_adapter, list_models

    rows = []
    for name in names or list_models():
        spec = get_adapter(name).spec
        rows.append({"name": spec.name, "hub_id": spec.hub_id, "modalities": list(spec.modalities)})
    return rows


def plan_nightly(
    catalog: Iterable[dict[str, Any]],
    *,
    models: Sequence[str] | None = None,
    gated: Iterable[str] = (),
) -> list[Shard]:
    """The matrix for ``models`` (default: every catalog entry except the small offline text LMs not in the
    nightly) from ``lalm-bench models --json`` rows. ``gated``: models with an accepted baseline (never allowed
    to fail); the paper's and offline models are gated from the start."""
    rows = {str(r["name"]): r for r in catalog}
    chosen = (
        list(models) if models else [n for n in rows if n not in ("whisper-tiny.en-ct2", "smollm2-135m-q41")]
    )
    unknown = [m for m in chosen if m not in rows]
    if unknown:
        raise ValueError(f"models not in the catalog: {unknown}; `lalm-bench models --json` lists it")
    gated = set(gated) | set(GATED_FROM_THE_START)
    out = []
    for name in chosen:
        row = rows[name]
        modalities = list(row.get("modalities") or ["text"])
        out += plan_model(name, row.get("hub_id"), modalities, allowed_to_fail=name not in gated)
    return out


def longest(shards: Sequence[Shard]) -> float:
    return max((s.expected_minutes for s in shards), default=math.nan)
