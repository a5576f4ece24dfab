"""Hub LALM families whose inputs, weights or hook points need more than a ``Recipe``.

- ``VoxtralAdapter``: ids assembled from mistral-common's instruct layout (the processor refuses ``[AUDIO]``).
- ``VoxtralRealtimeAdapter``: speech only; audio frames are added to the decoder's token embeddings.
- ``GraniteSpeechAdapter``: torch-only features, audio encoded per clip, speech LoRA merged (peft).
- ``Phi4MultimodalAdapter``: the ``speech-lora`` adapter loaded, activated and merged (peft).
- ``QwenOmniThinkerAdapter``: the thinker of Qwen2.5-Omni / Qwen3-Omni, audio-only processor fallback.
- ``Qwen3ASRAdapter``: transcripts parsed after ``<asr_text>``.
- ``Gemma3nAdapter``: blocks carry a stack of AltUp streams; identity "tap" modules give the engine
  ``[batch, seq, d]`` hook points (see its docstring for which reading of the streams is captured and why).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPooling

from benchmark.core.errors import PipelineError, UnsupportedModelError
from benchmark.core.schema import Sample
from benchmark.models.base import Batch, LayerHandles, PreparedInput, Template
from benchmark.models.hf_common import (
    INSTRUCTION,
    GraniteLogMel,
    encode_with_specials,
    load_or_unavailable,
)
from benchmark.models.hf_lalm import (
    HubLALMAdapter,
    audio_only_processor,
    content_span,
    find_decoder,
    load_audio_processor,
)
from benchmark.models.lora import adapters_not_autoloaded, load_and_merge, require_peft


# ---- Voxtral ------------------------------------------------------------------------------------------------
class VoxtralAdapter(HubLALMAdapter):
    """Voxtral: ids assembled here, features from the processor's Whisper feature extractor.

    Why not the processor: ``VoxtralProcessor.__call__`` refuses the audio token in text and its
    ``apply_chat_template`` needs a file/URL/base64 audio. The layout is the one mistral-common's instruct
    encoding produces for ``[audio chunk, text chunk]``: ``<s> [INST] [BEGIN_AUDIO] [AUDIO]*n <instruction>
    [/INST]``. Each clip is padded to whole encoder windows (30 s for the real model) and every window gives a
    fixed number of audio embeddings, so ``n`` follows from the clip length and the config. Content and
    instruction are tokenised separately, so the suffix ids are identical in both modalities."""

    _SPECIALS = ("<s>", "[INST]", "[/INST]", "[BEGIN_AUDIO]", "[AUDIO]")

    def attach(
        self, model: torch.nn.Module, processor: Any, *, device: torch.device, dtype: torch.dtype
    ) -> None:
        super().attach(model, processor, device=device, dtype=dtype)
        audio_cfg = model.config.audio_config
        tower = model.model.audio_tower  # VoxtralForConditionalGeneration -> VoxtralModel -> encoder
        strides = int(tower.conv1.stride[0]) * int(tower.conv2.stride[0])
        self.window_frames = int(audio_cfg.max_source_positions) * strides
        per_window, rem = divmod(
            int(audio_cfg.max_source_positions) * int(audio_cfg.hidden_size), int(audio_cfg.intermediate_size)
        )
        if rem:
            raise UnsupportedModelError(
                f"{self.recipe.name}: encoder windows of {audio_cfg.max_source_positions} "
                f"frames do not group into whole audio embeddings"
            )
        self.embeddings_per_window = per_window

    def _ids(self, *parts: str) -> list[int]:  # type: ignore[override]
        tok = self.processor.tokenizer
        return [i for part in parts for i in encode_with_specials(tok, part, self._SPECIALS)]

    def windows(self, sample: Sample, wave: np.ndarray) -> torch.Tensor:
        """``[k, n_mels, window_frames]`` mel windows of one clip (zero-padded to whole windows)."""
        fe = self.processor.feature_extractor
        window = self.window_frames * int(fe.hop_length)
        feats = fe(
            wave,
            sampling_rate=16_000,
            padding="longest",
            pad_to_multiple_of=window,
            truncation=False,
            return_tensors="pt",
        )["input_features"]  # [1, n_mels, k * window_frames]
        n_mels, frames = int(feats.shape[1]), int(feats.shape[2])
        if frames % self.window_frames:
            raise PipelineError(
                f"sample {sample.id!r}: {frames} mel frames are not whole encoder windows of "
                f"{self.window_frames}"
            )
        return feats.reshape(n_mels, -1, self.window_frames).transpose(0, 1).contiguous()

    def encode(self, sample: Sample, wave: np.ndarray | None, tpl: Template) -> Any:
        if wave is None:  # text and instruction in one chunk, as mistral-common encodes a text-only user turn
            return {"input_ids": torch.tensor([self._ids(tpl.prefix, sample.text + tpl.suffix)])}
        windows = self.windows(sample, wave)
        audio = self.recipe.chat.speech.replace(
            str(self.audio_token), str(self.audio_token) * (windows.shape[0] * self.embeddings_per_window)
        )
        return {
            "input_ids": torch.tensor([self._ids(tpl.prefix, audio, tpl.suffix)]),
            "input_features": windows,
        }

    def text_span(self, sample: Sample, tpl: Template, ids: torch.Tensor) -> tuple[int, int]:
        return content_span(
            sample, tpl, self._ids(tpl.prefix), self._ids(tpl.prefix, sample.text), ids.tolist()
        )

    def check_chat_template(self) -> str:
        """With mistral-common's tokenizer: its own text-turn ids must start with our prefix and end with
        ``[/INST]``; other tokenizers (synthetic tests) have no template to compare with."""
        tok = self.processor.tokenizer
        if type(tok).__name__ != "MistralCommonBackend":
            self.template_check = "no chat template (not mistral-common's tokenizer)"
            return self.template_check
        content = "HELLO" + INSTRUCTION
        ref = tok.apply_chat_template([{"role": "user", "content": content}], tokenize=True)
        ref = list(ref["input_ids"] if hasattr(ref, "keys") else ref)  # a BatchEncoding in transformers 5
        prefix = self._ids(self.recipe.chat.prefix)
        suffix = self._ids(self.recipe.chat.suffix)
        if ref[: len(prefix)] != prefix or ref[-len(suffix) :] != suffix:
            raise PipelineError(
                f"{self.recipe.name}: mistral-common encodes a user turn as {ref}, the adapter "
                f"declares prefix {prefix} and suffix {suffix}"
            )
        self.template_check = "verified against mistral-common"
        return self.template_check

    def generation_inputs(self, batch: Batch) -> dict[str, Any]:
        return {k: v for k, v in batch.model_kwargs.items() if k != "use_cache"}


# ---- Voxtral Realtime -----------------------------------------------------------------------------------------
class VoxtralRealtimeAdapter(HubLALMAdapter):
    """Voxtral Realtime: listed, loadable, and refused for latents, with the reason.

    Its processor encodes mistral-common's offline transcription request (BOS, left padding, delay tokens) and
    the model *adds* one projected audio frame to each position's token embedding; ``generate`` then feeds the
    remaining frames one per generated token. The request's ids cover only the left padding and the delay (about
    0.5 s of the clip), so no single forward sees the whole clip: a last-token latent of the prompt would describe
    silence plus half a second, and teacher-forcing invented text for the rest would not be the model's own
    reading. Extracting it needs generation-time capture, which this suite does not do; ``prepare`` says so with
    the numbers."""

    def attach(
        self, model: torch.nn.Module, processor: Any, *, device: torch.device, dtype: torch.dtype
    ) -> None:
        model.eval()
        self._handles = find_decoder(model)
        tok = processor.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.pad_id = int(pad if pad is not None else 0)
        self.audio_token, self.audio_token_id = None, None
        self.model, self.processor, self.device, self.dtype = model, processor, device, dtype

    def check_chat_template(self) -> str:
        self.template_check = "no chat template (transcription request of mistral-common)"
        return self.template_check

    def prepare_with(self, sample: Sample, waveform: np.ndarray | None, tpl: Template) -> PreparedInput:
        if waveform is None:
            raise PipelineError(f"sample {sample.id!r}: {self.recipe.name} takes speech only")
        if self.processor is None:
            raise PipelineError(f"model {self.recipe.name!r} is not loaded; call load() first")
        out = self.processor(audio=waveform, return_tensors="pt")
        ids = int(out["input_ids"].shape[-1])
        frames = int(out["input_features"].shape[-1]) // int(self.processor.audio_length_per_tok)
        raise UnsupportedModelError(
            f"{self.recipe.name}: a streaming transcriber; for sample {sample.id!r} its request's {ids} prompt ids "
            f"carry {ids} of the clip's {frames} audio frames and generate() feeds the rest one per generated "
            "token, so no single forward sees the clip (generation-time extraction is not implemented)"
        )


# ---- Granite Speech -------------------------------------------------------------------------------------------
class GraniteSpeechInputs:
    """Granite Speech's processor without torchaudio: the tokenizer plus ``GraniteLogMel``.

    Does what ``GraniteSpeechProcessor`` does for one clip: writes the audio token once per projector output,
    then tokenises; returns ``input_features`` ``[1, frames, 2 * n_mels]`` and ``input_features_mask``."""

    def __init__(self, tokenizer: Any, features: GraniteLogMel, audio_token: str = "<|audio|>") -> None:
        self.tokenizer = tokenizer
        self.feature_extractor = features
        self.audio_token = getattr(tokenizer, "audio_token", None) or audio_token
        self.chat_template = getattr(tokenizer, "chat_template", None)

    def __call__(
        self, text: list[str], audio: list[np.ndarray] | None = None, **_: Any
    ) -> dict[str, torch.Tensor]:
        if len(text) != 1 or (audio is not None and len(audio) != 1):
            raise PipelineError("GraniteSpeechInputs encodes one prompt (and at most one clip) at a time")
        prompt = text[0]
        out: dict[str, torch.Tensor] = {}
        if audio is not None:
            if prompt.count(self.audio_token) != 1:
                raise PipelineError(f"Granite prompt must hold exactly one {self.audio_token!r}: {prompt!r}")
            n = self.feature_extractor.num_embeddings(len(audio[0]))
            prompt = prompt.replace(self.audio_token, self.audio_token * n)
            out["input_features"] = self.feature_extractor(audio[0])
            out["input_features_mask"] = torch.ones((1, n), dtype=torch.bool)
        enc = self.tokenizer([prompt], return_tensors="pt", add_special_tokens=False)
        out["input_ids"] = enc["input_ids"]
        return out


class GraniteSpeechAdapter(HubLALMAdapter):
    """Granite Speech: torch-only features, the audio encoded one clip at a time, the speech LoRA merged.

    Why per clip: the conformer has no padding mask (block attention and depthwise convolutions), so a clip
    padded to a longer one's length gets different embeddings for its real frames; its batched latents
    would depend on the batch. Each clip is encoded alone (cached by waveform hash) and written over its
    placeholder run with the model's own ``get_merged_audio_embeddings``.

    Why the LoRA: the checkpoint's decoder was fine-tuned for speech with a LoRA kept beside it
    (``config.has_lora_adapter``). transformers loads it only when peft is installed and otherwise merely warns
    that audio inputs "will be handled incorrectly"; this adapter refuses to load without peft and merges the
    loaded adapter into the decoder, so it applies to every input (text ones too: one decoder for both
    modalities, where Granite's own ``generate`` switches it off for text-only prompts)."""

    def load(self, device: torch.device, dtype: torch.dtype) -> None:
        require_peft(self.recipe.name)
        with adapters_not_autoloaded():
            super().load(device, dtype)

    def prepare_loaded(self, model: torch.nn.Module, kwargs: dict[str, Any]) -> torch.nn.Module:
        if not getattr(model.config, "has_lora_adapter", False):
            return model
        lora = self.recipe.lora
        assert lora is not None
        merged, _ = load_and_merge(
            model,
            self.recipe.hub_id,
            adapter_name=lora.adapter_name,
            owner=f"{self.recipe.name} (config.has_lora_adapter)",
            subfolder=lora.subfolder,
            load_kwargs=kwargs,
        )
        return merged

    def load_processor(self, kwargs: dict[str, Any]) -> Any:
        import transformers
        from transformers.feature_extraction_utils import FeatureExtractionMixin

        hub_id = self.recipe.hub_id
        tok = load_or_unavailable(
            hub_id, lambda: transformers.AutoTokenizer.from_pretrained(hub_id, **kwargs)
        )
        cfg, _ = load_or_unavailable(
            hub_id, lambda: FeatureExtractionMixin.get_feature_extractor_dict(hub_id, **kwargs)
        )
        return GraniteSpeechInputs(tok, GraniteLogMel.from_dict(cfg))

    def attach(
        self, model: torch.nn.Module, processor: Any, *, device: torch.device, dtype: torch.dtype
    ) -> None:
        fe = getattr(processor, "feature_extractor", None)
        if not isinstance(fe, GraniteLogMel):
            raise UnsupportedModelError(
                f"{self.recipe.name}: expected GraniteSpeechInputs (torch-only features), "
                f"got {type(processor).__name__}"
            )
        cfg = model.config
        if (fe.projector_window_size, fe.projector_downsample_rate) != (cfg.window_size, cfg.downsample_rate):
            raise UnsupportedModelError(
                f"{self.recipe.name}: feature extractor counts projector windows of {fe.projector_window_size}/"
                f"{fe.projector_downsample_rate}, the model uses {cfg.window_size}/{cfg.downsample_rate}"
            )
        super().attach(model, processor, device=device, dtype=dtype)

    def collate(self, items: list[PreparedInput]) -> Batch:
        batch = super().collate([self._without_features(it) for it in items])
        device = self.device or torch.device("cpu")
        batch.extras["clips"] = [
            (
                it.audio_key,
                it.tensors["input_features"].to(device, self.dtype or torch.float32),
                int(it.tensors["input_features_mask"].sum()),
            )
            for it in items
            if it.modality == "speech"
        ]
        return batch

    @staticmethod
    def _without_features(item: PreparedInput) -> PreparedInput:
        tensors = {"input_ids": item.tensors["input_ids"]}
        return PreparedInput(
            item.sample_id,
            "text",
            item.length,
            item.last_token_id,
            tensors,
            item.key_material,
            content_span=item.content_span,
        )

    def merged_embeddings(self, batch: Batch) -> torch.Tensor:
        """Token embeddings with each clip's own audio embeddings over its placeholder run."""
        assert self.model is not None
        inner = self.model.model
        ids = batch.model_kwargs["input_ids"]
        clips = batch.extras.get("clips", [])
        if not clips:
            return inner.get_input_embeddings()(ids)
        parts = []
        for key, feats, n in clips:
            audio = self.encoder_cache.get_or_compute(
                f"{key}:{self.spec.name}:{self.dtype}",
                lambda feats=feats: inner.get_audio_features(feats, return_dict=True).pooler_output[0],
            )
            if audio.shape[0] != n:
                raise PipelineError(
                    f"{self.recipe.name}: the projector gave {audio.shape[0]} audio embeddings, "
                    f"the prompt holds {n} placeholders"
                )
            parts.append(audio)
        return inner.get_merged_audio_embeddings(input_ids=ids, audio_features=torch.cat(parts))

    def call_model(self, batch: Batch, kwargs: dict[str, Any]) -> None:
        assert self.model is not None
        kwargs = dict(kwargs)
        kwargs.pop("input_ids")
        self.model(inputs_embeds=self.merged_embeddings(batch), **kwargs)

    def generation_inputs(self, batch: Batch) -> dict[str, Any]:
        (_key, feats, n), *_ = batch.extras["clips"]
        return {
            **batch.model_kwargs,
            "input_features": feats,
            "input_features_mask": torch.ones((1, n), dtype=torch.bool, device=feats.device),
        }


# ---- Phi-4-multimodal -----------------------------------------------------------------------------------------
class Phi4MultimodalAdapter(HubLALMAdapter):
    """Phi-4-multimodal's native port with its speech LoRA.

    The checkpoint's speech path is the base model *plus* the ``speech-lora`` adapter (the original code switches
    it on for audio inputs; the native port leaves loading it to the user). Without it the latents would come
    from the base language model. This adapter needs peft, loads the adapter from the same repository and
    revision, activates it and merges it into the decoder at load: it then applies to every input, text ones
    too (one set of decoder weights for both modalities, where the original runs text-only prompts without
    it)."""

    def load(self, device: torch.device, dtype: torch.dtype) -> None:
        require_peft(self.recipe.name)
        with adapters_not_autoloaded():
            super().load(device, dtype)

    def attach(
        self, model: torch.nn.Module, processor: Any, *, device: torch.device, dtype: torch.dtype
    ) -> None:
        super().attach(model, processor, device=device, dtype=dtype)
        if self.recipe.chat.speech != self.audio_token:  # the processor expands its own audio token
            self.recipe = replace(self.recipe, chat=replace(self.recipe.chat, speech=str(self.audio_token)))

    def collate(self, items: list[PreparedInput]) -> Batch:
        """Pads the clips' frames and adds the ``audio_attention_mask`` the processor gives only for batches."""
        batch = super().collate(items)
        frames = [int(it.tensors["audio_input_features"].shape[1]) for it in items if it.modality == "speech"]
        if frames:
            mask = torch.zeros((len(frames), max(frames)), dtype=torch.bool)
            for row, n in enumerate(frames):
                mask[row, :n] = True
            batch.model_kwargs["audio_attention_mask"] = mask.to(self.device or torch.device("cpu"))
        return batch

    def load_processor(self, kwargs: dict[str, Any]) -> Any:
        """The model's processor, audio-only when its image processor cannot be built (needs torchvision)."""
        return load_audio_processor(self.recipe.name, self.recipe.hub_id, "Phi4MultimodalProcessor", kwargs)

    def prepare_loaded(self, model: torch.nn.Module, kwargs: dict[str, Any]) -> torch.nn.Module:
        lora = self.recipe.lora
        assert lora is not None
        merged, _ = load_and_merge(
            model,
            self.recipe.hub_id,
            adapter_name=lora.adapter_name,
            owner=self.recipe.name,
            subfolder=lora.subfolder,
            load_kwargs=kwargs,
        )
        return merged


# ---- Qwen Omni thinkers and Qwen3-ASR -------------------------------------------------------------------------
_OMNI_PROCESSORS = {
    "Qwen2_5OmniForConditionalGeneration": "Qwen2_5OmniProcessor",
    "Qwen3OmniMoeForConditionalGeneration": "Qwen3OmniMoeProcessor",
}


class QwenOmniThinkerAdapter(HubLALMAdapter):
    """The thinker of Qwen2.5-Omni / Qwen3-Omni (talker never built: ``enable_audio_output=False``); the processor
    falls back to audio-only when the full one cannot be built (its video part needs torchvision).

    The audio is encoded one clip at a time: the thinker's batched audio path pads every clip's 1 s conv chunks to
    the batch's longest chunk, and the zero padding passes through three strided convolutions with biases, so a
    short clip's last embedding would depend on its batch neighbours (seen on Qwen3-Omni: 1e-2 relative at
    ``final_norm``). Each clip's features, trimmed to its own frames, go through the model's own
    ``get_audio_features`` alone (cached by waveform hash); the merge is the model's."""

    def load_processor(self, kwargs: dict[str, Any]) -> Any:
        return load_audio_processor(
            self.recipe.name, self.recipe.hub_id, _OMNI_PROCESSORS.get(self.recipe.model_class), kwargs
        )

    def collate(self, items: list[PreparedInput]) -> Batch:
        batch = super().collate(items)
        batch.extras["audio_keys"] = [it.audio_key for it in items if it.modality == "speech"]
        return batch

    def call_model(self, batch: Batch, kwargs: dict[str, Any]) -> None:
        assert self.model is not None
        inner = self.model.model
        batched = inner.get_audio_features
        keys = iter(batch.extras.get("audio_keys", []))

        def per_clip(
            input_features: torch.Tensor,
            feature_attention_mask: torch.Tensor | None = None,
            audio_feature_lengths: torch.Tensor | None = None,
            **kw: Any,
        ) -> Any:
            if feature_attention_mask is None:
                raise PipelineError(
                    f"{self.recipe.name}: the thinker was called without feature_attention_mask"
                )
            parts = []
            for row in range(input_features.shape[0]):
                n = int(feature_attention_mask[row].sum())

                def encode(row: int = row, n: int = n) -> torch.Tensor:
                    return batched(
                        input_features[row : row + 1, :, :n],
                        feature_attention_mask[row : row + 1, :n],
                        None,
                        **{**kw, "return_dict": True},
                    ).last_hidden_state

                key = next(keys, None)
                parts.append(
                    self.encoder_cache.get_or_compute(f"{key}:{self.spec.name}:{self.dtype}", encode)
                    if key
                    else encode()
                )
            merged = torch.cat(parts)
            return BaseModelOutputWithPooling(last_hidden_state=merged, pooler_output=merged)

        inner.get_audio_features = per_clip
        try:
            self.model(**kwargs)
        finally:
            del inner.get_audio_features


def audio_only_omni_processor(
    feature_extractor: Any, tokenizer: Any, chat_template: str | None = None
) -> Any:
    """A real ``Qwen2_5OmniProcessor`` without image and video processors (tests and the fallback)."""
    from transformers import Qwen2_5OmniProcessor

    return audio_only_processor(Qwen2_5OmniProcessor, feature_extractor, tokenizer, chat_template)


class Qwen3ASRAdapter(HubLALMAdapter):
    """Qwen3-ASR: the transcript is what follows ``<asr_text>`` (the model first names the language)."""

    def parse_transcript(self, text: str) -> str:
        return text.split("<asr_text>", 1)[-1].strip()

    def transcribe(self, waveform: np.ndarray, language: str = "en", max_new_tokens: int = 64) -> str:
        if self.model is None:
            raise PipelineError(f"model {self.recipe.name!r} is not loaded; call load() first")
        sample = Sample(id="transcribe", modality="speech", text="-", audio_path="-", language=language)
        batch = self.collate([self.prepare_with(sample, waveform, self.asr_template())])
        prompt = batch.model_kwargs["input_ids"]
        with torch.no_grad():
            out = self.model.generate(
                **self.generation_inputs(batch), max_new_tokens=max_new_tokens, do_sample=False
            )
        text = self.processor.tokenizer.decode(out[0, prompt.shape[1] :].tolist(), skip_special_tokens=False)
        cleaned = text.replace(str(self.processor.tokenizer.eos_token), "")
        return self.parse_transcript(cleaned)


# ---- Gemma 3n -------------------------------------------------------------------------------------------------
class StreamTap(nn.Module):
    """An identity module the engine hooks in place of a decoder block whose own output is not
    ``[batch, seq, d]``: called once per block with the block's input (stream 0) and its collapsed output."""

    def forward(self, block_input: torch.Tensor, block_output: torch.Tensor) -> torch.Tensor:
        return block_output


def collapse_altup(streams: torch.Tensor, unembed: nn.ModuleList) -> torch.Tensor:
    """One ``[batch, seq, d]`` residual stream from Gemma 3n's ``[altup, batch, seq, d]`` stack, computed as the
    model itself computes it before its final norm: stream 0 kept, every other stream mapped back by its
    ``altup_unembed_projections`` and rescaled to stream 0's RMS magnitude, then the mean over streams."""
    base = streams[0]
    target = torch.mean(base**2, dim=-1, keepdim=True) ** 0.5
    parts = [base]
    for i in range(1, streams.shape[0]):
        mapped = unembed[i - 1](streams[i]).to(dtype=base.dtype, device=target.device)
        magnitude = torch.sqrt(torch.mean(mapped**2, dim=-1, keepdim=True).clamp(min=1e-5))
        parts.append(mapped * target / magnitude)
    return torch.stack(parts).mean(dim=0)


class Gemma3nAdapter(HubLALMAdapter):
    """Gemma 3n: its decoder blocks pass ``[altup, batch, seq, d]``, a stack of parallel (AltUp) streams.

    Which reading is captured: at ``block{i}`` the mean the model itself takes before its final norm (stream 0
    plus the other streams mapped back and rescaled, ``collapse_altup``), not stream 0 alone. Why: it is the only
    reading under which ``final_norm`` is the final norm of the last block's capture, as for every other model
    (CLAIMS.md's layer names); stream 0 alone is what the next block predicts from, but the model's output
    reads all streams. ``emb`` is stream 0 of the first block's input, which is exactly the (audio-merged)
    input embedding. Identity ``StreamTap`` modules carry these ``[batch, seq, d]`` tensors to the engine's
    hooks; the real blocks are untouched."""

    def find_layers(self, model: torch.nn.Module) -> LayerHandles:
        handles = find_decoder(model)
        owner = next(
            (
                m
                for m in model.modules()
                if isinstance(getattr(m, "layers", None), nn.ModuleList) and list(m.layers) == handles.blocks
            ),
            None,
        )
        unembed = getattr(owner, "altup_unembed_projections", None)
        if owner is None or not isinstance(unembed, nn.ModuleList):
            raise UnsupportedModelError(
                f"{self.recipe.name}: found no decoder with altup_unembed_projections in {type(model).__name__}"
            )
        for hook in getattr(self, "_tap_hooks", []):
            hook.remove()
        self._taps = [StreamTap() for _ in handles.blocks]
        self._unembed = unembed

        def tap(index: int):
            def hook(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
                streams_in = args[0] if args else kwargs["hidden_states"]
                streams_out = output[0] if isinstance(output, tuple) else output
                if streams_out.dim() != 4:
                    raise PipelineError(
                        f"{self.recipe.name}: block {index} returned shape {tuple(streams_out.shape)}, "
                        "expected [altup, batch, seq, d]"
                    )
                self._taps[index](streams_in[0], collapse_altup(streams_out, self._unembed))

            return hook

        self._tap_hooks = [
            block.register_forward_hook(tap(i), with_kwargs=True) for i, block in enumerate(handles.blocks)
        ]
        return LayerHandles(blocks=list(self._taps), final_norm=handles.final_norm)

    def unload(self) -> None:
        for hook in getattr(self, "_tap_hooks", []):
            hook.remove()
        self._tap_hooks = []
        super().unload()

    def hidden_states(self, batch: Batch) -> tuple[torch.Tensor, ...]:
        """transformers' ``hidden_states`` read as the taps read them (for ``lalm-bench check``). Gemma 3n returns
        the AltUp stacks themselves, the last one before the final norm: stream 0 of the embedding stack, each
        block's collapsed stack, then the final norm of the last one's collapse."""
        assert self.model is not None
        kwargs = {**batch.model_kwargs, "use_cache": False, "output_hidden_states": True}
        with torch.no_grad():
            states = list(self.model(**kwargs).hidden_states)
        if any(s.dim() != 4 for s in states):
            raise PipelineError(
                f"{self.recipe.name}: expected AltUp stacks in hidden_states, got "
                f"{[tuple(s.shape) for s in states]}"
            )
        blocks = [collapse_altup(s, self._unembed) for s in states[1:]]
        return (states[0][0], *blocks[:-1], self.layer_handles().final_norm(blocks[-1]))
