"""How much memory an extraction needs, and the batch size that fits: estimates printed before a run.

Why here, apart from sharding (``benchmark.engine.scale``): ``benchmark.engine.extract`` plans every run with these
functions, and the sharding module imports the extractor, so the estimate lives in a module of its own.
Weights are counted exactly (parameters built on the ``meta`` device, no allocation); activations are bounded
for one layer at a time (decoder, or an LALM's audio encoder), since the engine keeps only last-token rows and
never computes logits.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmark.core.errors import OutOfMemoryError

_GIB = 1024**3
#: Allocator fragmentation and framework buffers on top of the counted activations.
ACTIVATION_OVERHEAD = 1.25
#: Share of the free memory a run may plan to use.
HEADROOM = 0.85
#: Batch size on the CPU when none is given: batching past a few inputs gains little there and costs resident
#: memory (reports/performance.md).
CPU_BATCH = 8


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a run needs: ``weights`` (exact) plus ``activations`` (upper bound of one layer's transients)."""

    weights_bytes: int
    activation_bytes: int
    batch_size: int
    seq_len: int
    dtype: str

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.activation_bytes

    def describe(self) -> str:
        return (
            f"memory estimate: {self.total_bytes / _GIB:.2f} GiB = weights {self.weights_bytes / _GIB:.2f} GiB "
            f"+ activations {self.activation_bytes / _GIB:.2f} GiB (batch {self.batch_size} x {self.seq_len} "
            f"tokens, {self.dtype})"
        )


def _text_config(config: Any) -> Any:
    """The language model's config of a multimodal config (``text_config``), else the config itself."""
    getter = getattr(config, "get_text_config", None)
    return getter() if callable(getter) else config


def count_parameters(config_or_model: Any) -> int:
    """Parameters of a loaded model, or of a config's model built on the ``meta`` device (no memory)."""
    if isinstance(config_or_model, torch.nn.Module):
        return sum(p.numel() for p in config_or_model.parameters())
    from transformers import AutoModel, AutoModelForCausalLM

    with torch.device("meta"):
        try:
            model = AutoModelForCausalLM.from_config(config_or_model)
        except ValueError:
            model = AutoModel.from_config(config_or_model)
    return sum(p.numel() for p in model.parameters())


def _dtype_bytes(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


@dataclass(frozen=True)
class EncoderShape:
    """A Whisper-style audio encoder's sizes: every clip is padded to ``frames`` positions (1500 for 30 s)."""

    width: int
    ffn: int
    heads: int
    frames: int
    mel_bins: int


def audio_encoder_shape(model: torch.nn.Module | None) -> EncoderShape | None:
    """The audio encoder's sizes of an LALM: ``config.audio_config`` (Qwen2-Audio and most transformers LALMs)
    or the first submodule config that describes a Whisper-style encoder (Ultravox's); None for a text model."""
    if model is None:
        return None
    candidates = [getattr(getattr(model, "config", None), "audio_config", None)]
    candidates += [getattr(m, "config", None) for m in model.modules()]
    for config in candidates:
        if config is not None and all(
            hasattr(config, k) for k in ("d_model", "encoder_ffn_dim", "max_source_positions")
        ):
            return EncoderShape(
                width=int(config.d_model),
                ffn=int(config.encoder_ffn_dim),
                heads=int(getattr(config, "encoder_attention_heads", 1)),
                frames=int(config.max_source_positions),
                mel_bins=int(getattr(config, "num_mel_bins", 128)),
            )
    return None


def _scores_materialised(config: Any) -> bool:
    """Eager attention writes ``heads x seq x seq`` scores; sdpa and flash kernels do not (unknown counts)."""
    return getattr(config, "_attn_implementation", None) in (None, "eager")


def _layer_elements(tokens: int, batch: int, seq: int, width: int, ffn: int, heads: int, scores: bool) -> int:
    """Transient elements of one transformer layer: residual in and out, q/k/v and attention output, the MLP's
    gate, up and activation (``3 x ffn``), and the attention scores where they are materialised."""
    return tokens * (6 * width + 3 * ffn) + (batch * heads * seq * seq if scores else 0)


def estimate_memory(
    config_or_model: Any,
    *,
    batch_size: int,
    seq_len: int,
    dtype: torch.dtype = torch.float32,
    parameters: int | None = None,
    encoder: EncoderShape | None = None,
) -> MemoryEstimate:
    """Weights plus activations of one engine batch (LM head skipped, last tokens kept): an upper bound.

    Activations: the widest layer of the decoder or, for an LALM (``encoder``, found on a model by
    :func:`audio_encoder_shape`), of its audio encoder with every input of the batch a padded clip, times
    :data:`ACTIVATION_OVERHEAD`; plus the encoder's input features and output, and the captured last-token rows
    in float32. Why the encoder counts: with 1500 positions per clip it outweighs a decoder on short prompts
    (measured on an H200, reports/gpu: 1.98 GiB above the weights for Qwen2-Audio-7B at batch 64, which the
    decoder alone put at 1.17). ``parameters`` overrides the count (e.g. a quantised checkpoint).
    """
    if batch_size < 1 or seq_len < 1:
        raise ValueError(f"batch_size and seq_len must be >= 1; got {batch_size}, {seq_len}")
    model = config_or_model if isinstance(config_or_model, torch.nn.Module) else None
    config = decoder_config(model) if model is not None else _text_config(config_or_model)
    if encoder is None:
        encoder = audio_encoder_shape(model)
    width = _dtype_bytes(dtype)
    n_params = parameters if parameters is not None else count_parameters(config_or_model)
    d = int(config.hidden_size)
    ff = int(getattr(config, "intermediate_size", 4 * d))
    heads = int(config.num_attention_heads)
    layers = int(config.num_hidden_layers)
    scores = _scores_materialised(config)
    widest = _layer_elements(batch_size * seq_len, batch_size, seq_len, d, ff, heads, scores)
    held = 0
    if encoder is not None:
        frames = encoder.frames
        widest = max(
            widest,
            _layer_elements(
                batch_size * frames, batch_size, frames, encoder.width, encoder.ffn, encoder.heads, scores
            ),
        )
        # log-mel input (2 x frames, float32) and the encoder's output, alive while the decoder runs
        held = batch_size * (encoder.mel_bins * 2 * frames * 4 + frames * encoder.width * width)
    captured = batch_size * (layers + 2) * d * 4
    activations = int(widest * width * ACTIVATION_OVERHEAD) + held + captured
    return MemoryEstimate(
        n_params * width, activations, batch_size, seq_len, str(dtype).removeprefix("torch.")
    )


def free_memory(device: torch.device | str) -> int:
    """Free bytes on ``device``: ``cudaMemGetInfo`` on a GPU, ``MemAvailable`` on the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def check_fits(estimate: MemoryEstimate, free_bytes: int, *, device: str = "the device") -> None:
    """Raise ``OutOfMemoryError`` with the numbers and the remedies when the estimate exceeds the budget."""
    budget = int(free_bytes * HEADROOM)
    if estimate.total_bytes <= budget:
        return
    if estimate.weights_bytes > budget:
        advice = (
            "the weights alone do not fit: use a lower-precision --dtype (bfloat16 halves float32), or spread "
            "the model over several GPUs with device_map='auto' (benchmark.engine.scale docs)"
        )
    else:
        advice = (
            f"lower --batch-size (try {max(1, estimate.batch_size // 2)}) or use a lower-precision --dtype"
        )
    raise OutOfMemoryError(
        f"{estimate.describe()} does not fit {device}: {free_bytes / _GIB:.2f} GiB free, "
        f"{budget / _GIB:.2f} GiB usable ({HEADROOM:.0%}); short by {(estimate.total_bytes - budget) / _GIB:.2f} "
        f"GiB. {advice}."
    )


def choose_batch_size(
    estimate: Callable[[int], MemoryEstimate], free_bytes: int, *, max_batch: int = 64
) -> int:
    """Largest power of two ``<= max_batch`` whose estimate fits the free memory; raises if 1 does not."""
    check_fits(estimate(1), free_bytes)
    batch = 1
    while batch * 2 <= max_batch and estimate(batch * 2).total_bytes <= free_bytes * HEADROOM:
        batch *= 2
    return batch


def decoder_config(model: torch.nn.Module) -> Any:
    """The config of the model's language decoder: its own (``text_config`` of a multimodal one), else the
    first submodule's config that names a hidden size and a layer count (composite models such as Ultravox)."""
    own = getattr(model, "config", None)
    if own is not None:
        return _text_config(own)
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "hidden_size") and hasattr(config, "num_hidden_layers"):
            return _text_config(config)
    raise ValueError(f"{type(model).__name__} has no config with hidden_size and num_hidden_layers")


@dataclass(frozen=True)
class BatchPlan:
    """The batch size an extraction will use, the estimate behind it, and the free memory it was checked on."""

    batch_size: int
    estimate: MemoryEstimate
    free_bytes: int
    device: str
    chosen: bool

    def describe(self) -> str:
        how = (
            "as asked"
            if not self.chosen
            else ("chosen from free memory" if self.device.startswith("cuda") else "the CPU default")
        )
        return (
            f"{self.estimate.describe()}; batch size {self.batch_size} ({how}); "
            f"{self.free_bytes / _GIB:.2f} GiB free on {self.device}"
        )


def plan_batches(
    model: torch.nn.Module,
    longest: int,
    *,
    batch_size: int | None,
    device: torch.device,
    dtype: torch.dtype,
    max_batch: int = 64,
    cpu_batch: int = CPU_BATCH,
) -> BatchPlan:
    """Check that the run fits before its first batch, and choose the batch size where none was given.

    The weights are already resident when this runs, so only the activations are compared with the free
    memory (``OutOfMemoryError`` with the numbers when they do not fit). ``batch_size=None`` means: on a GPU
    the largest power of two that fits (:func:`choose_batch_size`), on the CPU ``cpu_batch``.
    """
    config = decoder_config(model)
    params = count_parameters(model)
    encoder = audio_encoder_shape(model)
    free = free_memory(device)

    def estimate(batch: int) -> MemoryEstimate:
        return estimate_memory(
            config, batch_size=batch, seq_len=max(1, longest), dtype=dtype, parameters=params, encoder=encoder
        )

    def activations_only(batch: int) -> MemoryEstimate:
        full = estimate(batch)
        return MemoryEstimate(0, full.activation_bytes, full.batch_size, full.seq_len, full.dtype)

    chosen = batch_size is None
    if batch_size is None:
        batch_size = (
            choose_batch_size(activations_only, free, max_batch=max_batch)
            if device.type == "cuda"
            else cpu_batch
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 or None (auto); got {batch_size}")
    check_fits(activations_only(batch_size), free, device=str(device))
    return BatchPlan(batch_size, estimate(batch_size), free, str(device), chosen)
