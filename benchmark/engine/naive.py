"""The naive extractor: the baseline the engine is measured and checked against.

It is what a careful person would write without an engine: one input at a time under ``torch.no_grad()``,
the *full* model (LM head and logits included) with ``output_hidden_states=True`` in float32, keeping the
last position of every hidden state. Inputs are prepared by the same adapter code as the engine's, so both
see identical token ids and features; only the forward differs. It exists for two reasons: the performance
benchmarks (``benchmarks/``) need a baseline on the same model, probe set and thread count, and the
equality tests need latents computed by a path that shares no hooks with ``benchmark.engine.extract``.

transformers' ``hidden_states`` hold ``emb``, the outputs of blocks ``0..L-2`` and the *normed* output of
the last block (the engine's ``final_norm``); the raw ``block{L-1}`` has no counterpart here, so
:func:`naive_layer_names` lists the ``L + 1`` layers the naive path yields and :func:`common_layers` pairs
them with the engine's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from benchmark.core.audio import SAMPLE_RATE
from benchmark.core.schema import ProbeSet, Sample, layer_names
from benchmark.engine.extract import prepare_samples
from benchmark.models.base import EncoderCache, ModelAdapter, PreparedInput


@dataclass
class NaiveResult:
    """Latents ``[n, L + 1, d]`` of the naive path, in sample order, plus what the benchmarks count."""

    latents: np.ndarray
    layers: list[str]
    sample_ids: list[str]
    real_tokens: int
    seconds: float


def naive_layer_names(num_blocks: int) -> list[str]:
    """Layers of transformers' ``hidden_states``: the engine's list without the raw last block."""
    names = layer_names(num_blocks)
    return [name for name in names if name != f"block{num_blocks - 1}"]


def common_layers(engine_layers: list[str], naive_layers: list[str]) -> tuple[list[int], list[int]]:
    """Index pairs ``(engine, naive)`` of the layers both paths produce, in engine order."""
    shared = [name for name in engine_layers if name in naive_layers]
    return [engine_layers.index(n) for n in shared], [naive_layers.index(n) for n in shared]


def _whisper_inputs(adapter: ModelAdapter, item: PreparedInput) -> dict[str, torch.Tensor]:
    """Log-mel features of the clip (30 s of silence for text) and the decoder prompt, batch of one."""
    from benchmark.models.whisper_ct2 import WINDOW_SECONDS

    wave = item.tensors.get("waveform")
    if wave is None:
        wave = np.zeros(WINDOW_SECONDS * SAMPLE_RATE, dtype=np.float32)
    features = adapter.feature_extractor(  # type: ignore[attr-defined]
        wave, sampling_rate=SAMPLE_RATE, return_tensors="pt"
    ).input_features
    return {
        "input_features": features.to(torch.float32),
        "decoder_input_ids": torch.as_tensor([item.tensors["input_ids"]], dtype=torch.long),
    }


def _causal_lm_inputs(item: PreparedInput) -> dict[str, torch.Tensor]:
    return {"input_ids": torch.as_tensor([item.tensors["input_ids"]], dtype=torch.long)}


def _is_whisper(adapter: ModelAdapter) -> bool:
    return adapter.spec.family == "whisper"


def _lalm_output(adapter: ModelAdapter, item: PreparedInput) -> Any:
    """Full forward of an audio-language model on one input, the LM head included.

    The batch of one comes from the adapter's own ``collate`` (same ids and features as the engine). Adapters
    that merge audio embeddings themselves (Ultravox's composite model) give the merged embeddings to their
    causal LM; the others call the model class with the processor's tensors. Encoder caching is switched off
    so that every clip is encoded, as a plain loop would."""
    batch = adapter.collate([item])
    model = adapter.model  # type: ignore[attr-defined]
    if hasattr(adapter, "merged_embeddings"):
        language_model = getattr(model, "language_model", None)
        if language_model is None or not hasattr(language_model, "lm_head"):
            raise NotImplementedError(
                f"the naive baseline needs {adapter.spec.name!r}'s causal LM with its head"
            )
        saved, adapter.encoder_cache = adapter.encoder_cache, EncoderCache()
        try:
            embeds = adapter.merged_embeddings(batch)  # type: ignore[attr-defined]
        finally:
            adapter.encoder_cache = saved
        return language_model(
            inputs_embeds=embeds,
            attention_mask=batch.model_kwargs["attention_mask"],
            output_hidden_states=True,
        )
    return model(**batch.model_kwargs, output_hidden_states=True)


def naive_forward(adapter: ModelAdapter, item: PreparedInput) -> np.ndarray:
    """Last-position vectors ``[L + 1, d]`` of one input through the full model (logits computed)."""
    model = getattr(adapter, "model", None)
    if model is None:
        raise RuntimeError(
            f"model {adapter.spec.name!r} is not loaded; call adapter.load(device, dtype) first"
        )
    device = adapter.device or torch.device("cpu")
    with torch.no_grad():
        if _is_whisper(adapter):
            inputs = {k: v.to(device) for k, v in _whisper_inputs(adapter, item).items()}
            output = model(**inputs, output_hidden_states=True)
        elif adapter.spec.modalities == ("text",):
            output = model(
                **{k: v.to(device) for k, v in _causal_lm_inputs(item).items()}, output_hidden_states=True
            )
        else:
            output = _lalm_output(adapter, item)
    hidden = output.decoder_hidden_states if _is_whisper(adapter) else output.hidden_states
    if output.logits is None:  # the point of the baseline is that the LM head runs
        raise RuntimeError("the full model returned no logits; the naive baseline must run the LM head")
    return torch.stack([state[0, -1] for state in hidden]).float().cpu().numpy()


def naive_extract(
    adapter: ModelAdapter,
    probe_set: ProbeSet,
    *,
    template: str = "shared-suffix",
    samples: list[Sample] | None = None,
) -> NaiveResult:
    """Latents of ``samples`` (default: every sample the model accepts) the naive way.

    The adapter must be loaded in float32; its own engine hooks are not used.
    """
    if adapter.dtype is not None and adapter.dtype != torch.float32:
        raise ValueError(f"the naive baseline runs float32; the adapter is loaded in {adapter.dtype}")
    started = time.perf_counter()
    chosen = samples if samples is not None else probe_set.samples
    accepted = [s for s in chosen if adapter.accepts(s.modality, s.language)]
    prepared, _ = prepare_samples(adapter, probe_set, accepted, template)
    rows = [naive_forward(adapter, item) for item in prepared]
    return NaiveResult(
        latents=np.stack(rows).astype(np.float32, copy=False),
        layers=naive_layer_names(adapter.num_blocks),
        sample_ids=[item.sample_id for item in prepared],
        real_tokens=sum(item.length for item in prepared),
        seconds=time.perf_counter() - started,
    )
