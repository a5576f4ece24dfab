"""Adapters for the hub LALMs that transformers 5 runs natively, plus ``hf:<hub id>`` and the dispatcher.

One class, ``HubLALMAdapter``, driven by a per-model ``Recipe`` (hub id, model class, chat format, feature
keys). The model's own processor builds every input, so the audio placeholder is expanded to exactly the
number of audio embeddings the model will scatter; the adapter checks that the processor really used the
audio (features present, placeholders counted) because a processor that silently ignores an audio kwarg
makes every clip give the same latent (ANCHORS.md, lmms-eval PR #1081). Ultravox lives in
``benchmark.models.ultravox`` (its official code needs transformers 4).

Templates: the primary ``shared-suffix`` wraps the content in the model's chat turn and ends the user turn
with ``INSTRUCTION`` then the assistant header, so text and speech end on the same suffix tokens; ``bare``
is the content alone (BOS, where the model has one, then the text or the audio placeholder). The chat
strings are written out here (so they are known without loading anything) and checked against the
tokenizer's own chat template at load: a differing suffix is an error, not a silent change of "last token".
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from benchmark.core.audio import SAMPLE_RATE
from benchmark.core.errors import PipelineError, UnsupportedModelError
from benchmark.core.hashing import sha256_ints, sha256_json, sha256_waveform
from benchmark.core.schema import Sample
from benchmark.models.base import (
    Availability,
    Batch,
    LayerHandles,
    ModelAdapter,
    ModelSpec,
    PreparedInput,
)
from benchmark.models.chat_templates import AUDIO_MARK, ChatFormat, chat_templates
from benchmark.models.hf_common import (
    INSTRUCTION,
    GraniteLogMel,
    cached_availability,
    check_waveform,
    encode_with_specials,
    forward_accepts,
    last_real_positions,
    load_or_unavailable,
    pad_and_cat,
    revision_kwargs,
    right_pad,
)
from benchmark.models.lock import locked_revision


@dataclass(frozen=True)
class Recipe:
    """What differs between the native hub LALMs; the defaults are what most of them share."""

    name: str
    hub_id: str
    family: str  # also picks the adapter class (``_ADAPTER_CLASSES``), default ``HubLALMAdapter``
    description: str
    model_class: str
    chat: ChatFormat
    feature_keys: tuple[str, ...] = ("input_features", "input_features_mask")
    languages: tuple[str, ...] | None = None
    load_kwargs: dict[str, Any] = field(default_factory=dict)
    submodule: str | None = None  # e.g. "thinker" for Qwen2.5-Omni
    processor_kwargs: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


_QWEN_SYS = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
_OMNI_SYS = (
    "<|im_start|>system\nYou are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of "
    "perceiving auditory and visual inputs, as well as generating text and speech.<|im_end|>\n"
)
_QWEN_AUDIO = "<|audio_bos|><|AUDIO|><|audio_eos|>"
_QWEN_FEATURES = ("input_features", "feature_attention_mask")  # Qwen processors' name for the mel mask
_UNTESTED = "spec and loader only, not tiny-tested"


def _chatml(system: str, speech: str, note: str = "") -> ChatFormat:
    """ChatML (Qwen decoders): system turn, user turn, assistant header; only the system and audio differ."""
    return ChatFormat(
        prefix=system + "<|im_start|>user\n",
        speech=speech,
        suffix="<|im_end|>\n<|im_start|>assistant\n",
        note=note,
    )


# One entry per model: name, hub id, family, description, model class, chat format, then what differs
# from the defaults. Behaviour that data cannot express lives in the family's adapter subclass.
RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            "qwen2-audio-7b-instruct",
            "Qwen/Qwen2-Audio-7B-Instruct",
            "qwen2-audio",
            "Qwen2-Audio-7B-Instruct: Whisper-large-v3 encoder + Qwen-7B, chat-tuned",
            "Qwen2AudioForConditionalGeneration",
            _chatml(
                _QWEN_SYS,
                "Audio 1: " + _QWEN_AUDIO,
                "chat template of the processor; speech line as its template writes it ('Audio 1: ...')",
            ),
            _QWEN_FEATURES,
        ),
        Recipe(
            "qwen2-audio-7b",
            "Qwen/Qwen2-Audio-7B",
            "qwen2-audio",
            "Qwen2-Audio-7B base (pretrained, no chat turn)",
            "Qwen2AudioForConditionalGeneration",
            ChatFormat(
                "",
                _QWEN_AUDIO,
                "",
                note="base model has no chat template: content then the instruction, "
                "as in its model card prompts",
            ),
            _QWEN_FEATURES,
        ),
        Recipe(
            "qwen2.5-omni-7b",
            "Qwen/Qwen2.5-Omni-7B",
            "qwen2.5-omni",
            "Qwen2.5-Omni-7B thinker only (talker and token2wav are not loaded)",
            "Qwen2_5OmniForConditionalGeneration",
            _chatml(_OMNI_SYS, _QWEN_AUDIO, "default Omni system prompt of the model card"),
            _QWEN_FEATURES,
            load_kwargs={"enable_audio_output": False},
            submodule="thinker",
            notes=("falls back to an audio-only processor when the full one needs torchvision",),
        ),
        Recipe(
            "voxtral-mini-3b",
            "mistralai/Voxtral-Mini-3B-2507",
            "voxtral",
            "Voxtral-Mini-3B-2507: Whisper-style encoder + Ministral-3B decoder",
            "VoxtralForConditionalGeneration",
            ChatFormat(
                "<s>[INST]",
                "[BEGIN_AUDIO][AUDIO]",
                "[/INST]",
                bare_prefix="<s>",
                note="mistral-common instruct format; audio chunk precedes the text in the user turn",
            ),
            ("input_features",),
            notes=(
                "ids assembled by the adapter (VoxtralProcessor refuses [AUDIO] in text); loading the real "
                "tokenizer needs mistral-common (MistralCommonBackend), not installed here",
            ),
        ),
        Recipe(
            "granite-speech-3.3-2b",
            "ibm-granite/granite-speech-3.3-2b",
            "granite-speech",
            "Granite-Speech-3.3-2B: conformer encoder + Q-former projector + Granite-3.3-2B (LoRA merged at load)",
            "GraniteSpeechForConditionalGeneration",
            ChatFormat(
                "<|start_of_role|>user<|end_of_role|>",
                "<|audio|>",
                "<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>",
                note="no system turn: the tokenizer's default one inserts today's date, which would change "
                "the ids daily",
            ),
            notes=(
                "log-mel features computed in torch (GraniteLogMel; no torchaudio wheel for torch 2.13), "
                "audio encoded one clip at a time (the conformer has no padding mask)",
            ),
        ),
        Recipe(
            "phi-4-multimodal",
            "microsoft/Phi-4-multimodal-instruct",
            "phi4-multimodal",
            "Phi-4-multimodal-instruct (native transformers 5 port), speech LoRA path",
            "Phi4MultimodalForCausalLM",
            ChatFormat("<|user|>", "<|audio_1|>", "<|end|><|assistant|>"),
            ("audio_input_features",),
            notes=("the native port may need a converted revision of the hub repo; " + _UNTESTED,),
        ),
        Recipe(
            "gemma-3n-e4b",
            "google/gemma-3n-E4B-it",
            "gemma3n",
            "Gemma-3n-E4B-it: USM audio encoder + Gemma-3n decoder (per-layer embeddings)",
            "Gemma3nForConditionalGeneration",
            ChatFormat(
                "<bos><start_of_turn>user\n",
                "<audio_soft_token>",
                "<end_of_turn>\n<start_of_turn>model\n",
                bare_prefix="<bos>",
            ),
            notes=(_UNTESTED,),
        ),
        Recipe(
            "audio-flamingo-3",
            "nvidia/audio-flamingo-3-hf",
            "audioflamingo3",
            "Audio Flamingo 3 (transformers port): AF-Whisper encoder + Qwen2.5-7B",
            "AudioFlamingo3ForConditionalGeneration",
            _chatml(_QWEN_SYS, "<sound>"),
            notes=("hub id as in transformers' audioflamingo3 docs; " + _UNTESTED,),
        ),
    )
}


def find_decoder(model: torch.nn.Module) -> LayerHandles:
    """The decoder blocks and final norm, found from the model's own structure.

    Tries ``get_decoder()`` and the usual attribute names; raises ``UnsupportedModelError`` naming what is
    missing (no block list, or no final norm)."""
    candidates: list[torch.nn.Module] = []
    getter = getattr(model, "get_decoder", None)
    if callable(getter):
        try:
            dec = getter()
            if isinstance(dec, torch.nn.Module):
                candidates.append(dec)
        except Exception:  # some wrappers raise for "exotic" layouts; fall through to attributes
            pass
    for path in ("language_model", "model.language_model", "model", "thinker.model", "model.decoder"):
        obj: Any = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, torch.nn.Module):
            candidates.append(obj)
    seen: list[str] = []
    for cand in candidates:
        inner = getattr(cand, "model", None) if not hasattr(cand, "layers") else cand
        if inner is None or not isinstance(getattr(inner, "layers", None), torch.nn.ModuleList):
            seen.append(f"{type(cand).__name__} (no .layers ModuleList)")
            continue
        for norm_name in ("norm", "final_layernorm", "final_norm", "ln_f"):
            norm = getattr(inner, norm_name, None)
            if isinstance(norm, torch.nn.Module):
                return LayerHandles(blocks=list(inner.layers), final_norm=norm)
        seen.append(
            f"{type(inner).__name__} (layers but no final norm among norm/final_layernorm/final_norm/ln_f)"
        )
    raise UnsupportedModelError(
        f"{type(model).__name__}: cannot find the decoder blocks and final norm; looked at "
        f"{seen or ['get_decoder() and language_model/model/thinker.model attributes: none found']}"
    )


def find_audio_token(model: torch.nn.Module, processor: Any) -> tuple[str, int]:
    """The audio placeholder token (string and id) from the processor and the model config.

    Raises ``UnsupportedModelError`` naming which of the two could not be found, or disagreeing ids."""
    configs = [getattr(model, "config", None)]
    for sub in ("thinker_config", "text_config"):
        configs.append(getattr(configs[0], sub, None))
    config_id = None
    for cfg in configs:
        for attr in ("audio_token_id", "audio_token_index"):
            value = getattr(cfg, attr, None) if cfg is not None else None
            if isinstance(value, int):
                config_id = value
                break
        if config_id is not None:
            break
    token = getattr(processor, "audio_token", None)
    tokenizer = getattr(processor, "tokenizer", processor)
    if token is None:
        token = getattr(tokenizer, "audio_token", None)
    missing = []
    if token is None:
        missing.append("processor.audio_token / tokenizer.audio_token")
    if config_id is None:
        missing.append("config.audio_token_id / config.audio_token_index")
    if missing:
        raise UnsupportedModelError(
            f"{type(model).__name__}: no audio placeholder token found ({' and '.join(missing)} missing); "
            "this model does not look like an audio-language model transformers can merge audio into"
        )
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id != config_id:
        raise UnsupportedModelError(
            f"{type(model).__name__}: the processor's audio token {token!r} has id {token_id} but the config "
            f"says audio_token_id={config_id}"
        )
    return str(token), int(config_id)


def _placement_kwargs(device_map: object) -> dict[str, Any]:
    """``from_pretrained`` keywords for accelerate's placement; none without a device map."""
    return {"device_map": device_map} if device_map is not None else {}


def _placed(model: torch.nn.Module, device: torch.device, device_map: object) -> torch.nn.Module:
    """The model on ``device``; with a ``device_map`` accelerate has placed it already (and its dispatch hooks
    move each block's inputs), so it is left where it is: inputs go to ``device``, the engine's hooks copy
    only last-token rows to the CPU."""
    return model if device_map is not None else model.to(device)


class HubLALMAdapter(ModelAdapter):
    """A transformers-5-native LALM, loaded from the hub at the locked revision."""

    def __init__(self, recipe: Recipe, revision: str | None = None) -> None:
        super().__init__()
        self.recipe = recipe
        rev = revision if revision is not None else locked_revision(recipe.hub_id)
        self.spec = ModelSpec(
            name=recipe.name,
            kind="lalm",
            family=recipe.family,
            hub_id=recipe.hub_id,
            revision=rev,
            modalities=("text", "speech"),
            languages=recipe.languages,
            weights_source=f"hub:{recipe.hub_id}",
            description=recipe.description,
            notes=(f"template instruction {INSTRUCTION!r}", *recipe.notes),
        )
        self.templates = chat_templates(recipe.name, recipe.chat)
        self.model: torch.nn.Module | None = None
        self.processor: Any = None
        self._handles: LayerHandles | None = None
        self.audio_token: str | None = None
        self.audio_token_id: int | None = None
        self.pad_id: int = 0

    # ---- description -------------------------------------------------------------------------
    def availability(self) -> Availability:
        return cached_availability(self.recipe.hub_id, self.spec.revision)

    def processor_config(self) -> dict[str, Any]:
        if self.processor is None:
            return {"hub_id": self.recipe.hub_id, "revision": self.spec.revision}
        fe = getattr(self.processor, "feature_extractor", None) or getattr(
            self.processor, "audio_processor", None
        )
        fe_dict = fe.to_dict() if fe is not None and hasattr(fe, "to_dict") else {}
        fe_dict = {k: v for k, v in fe_dict.items() if not k.startswith("mel_filters")}
        tok = getattr(self.processor, "tokenizer", None)
        return {
            "processor": type(self.processor).__name__,
            "feature_extractor": fe_dict,
            "tokenizer": type(tok).__name__,
            "vocab_size": len(tok) if tok is not None else None,
            "audio_token": self.audio_token,
            "processor_kwargs": self.recipe.processor_kwargs,
        }

    # ---- loading -----------------------------------------------------------------------------
    def load(self, device: torch.device, dtype: torch.dtype) -> None:
        import transformers

        model_cls = getattr(transformers, self.recipe.model_class, None)
        if model_cls is None:
            raise UnsupportedModelError(
                f"transformers {transformers.__version__} has no class {self.recipe.model_class} "
                f"(needed by {self.recipe.name!r})"
            )
        kwargs = revision_kwargs(self.spec.revision)
        hub_id = self.recipe.hub_id
        processor = self.load_processor(kwargs)
        placement = _placement_kwargs(self.device_map)
        model = load_or_unavailable(
            hub_id,
            lambda: model_cls.from_pretrained(
                hub_id, dtype=dtype, **kwargs, **self.recipe.load_kwargs, **placement
            ),
        )
        if self.recipe.submodule:
            model = getattr(model, self.recipe.submodule)
        self.attach(_placed(model, device, self.device_map), processor, device=device, dtype=dtype)
        self.check_chat_template()

    def load_processor(self, kwargs: dict[str, Any]) -> Any:
        """The model's own processor from the hub (subclasses build one where that needs missing packages)."""
        import transformers

        hub_id = self.recipe.hub_id
        return load_or_unavailable(
            hub_id, lambda: transformers.AutoProcessor.from_pretrained(hub_id, **kwargs)
        )

    def attach(
        self, model: torch.nn.Module, processor: Any, *, device: torch.device, dtype: torch.dtype
    ) -> None:
        """Use an already built model and processor (``load`` and the synthetic tests both come here)."""
        model.eval()
        self._handles = find_decoder(model)
        self.audio_token, self.audio_token_id = find_audio_token(model, processor)
        tok = processor.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        if pad is None:
            raise UnsupportedModelError(f"{self.recipe.name}: tokenizer has neither a pad nor an eos token")
        self.pad_id = int(pad)
        self.model, self.processor, self.device, self.dtype = model, processor, device, dtype

    def check_chat_template(self) -> str:
        """Render the tokenizer's chat template for one text turn and check it ends on our suffix.

        Returns "verified", or "no chat template" when the model has none (base models, Voxtral's
        mistral-common tokenizer); a different suffix raises ``PipelineError``."""
        suffix = self.recipe.chat.suffix
        tok = getattr(self.processor, "tokenizer", None)
        template = getattr(tok, "chat_template", None) or getattr(self.processor, "chat_template", None)
        if not suffix or not template:
            return "no chat template"
        content = "HELLO" + INSTRUCTION
        rendered = tok.apply_chat_template(
            [{"role": "user", "content": content}],
            tokenize=False,
            add_generation_prompt=True,
            chat_template=template,
        )
        if not rendered.endswith(content + suffix):
            raise PipelineError(
                f"{self.recipe.name}: the model's chat template ends a user turn with "
                f"{rendered[rendered.find(content) + len(content) :]!r}, the adapter declares {suffix!r}"
            )
        return "verified"

    def unload(self) -> None:
        self.model = None
        self._handles = None

    @property
    def num_blocks(self) -> int:
        return len(self.layer_handles().blocks)

    def layer_handles(self) -> LayerHandles:
        if self._handles is None:
            raise PipelineError(f"model {self.recipe.name!r} is not loaded; call load() first")
        return self._handles

    # ---- inputs ------------------------------------------------------------------------------
    def render(self, sample: Sample, template: str) -> str:
        """The prompt string before the processor expands the audio placeholder."""
        tpl = self.template(template, sample.modality)
        content = sample.text if sample.modality == "text" else self.recipe.chat.speech
        return tpl.prefix + content + tpl.suffix

    def encode_speech(self, sample: Sample, wave: np.ndarray, template: str) -> Any:
        """``input_ids`` ``[1, seq]`` (placeholder expanded) plus the recipe's feature keys, for one clip."""
        prompt = self.render(sample, template)
        return self.processor(
            text=[prompt],
            audio=[wave],
            sampling_rate=SAMPLE_RATE,
            return_tensors="pt",
            **self.recipe.processor_kwargs,
        )

    def encode_text(self, sample: Sample, template: str) -> Any:
        """``input_ids`` ``[1, seq]`` of a text sample."""
        prompt = self.render(sample, template)
        return self.processor(text=[prompt], return_tensors="pt", **self.recipe.processor_kwargs)

    def prepare(self, sample: Sample, waveform: np.ndarray | None, template: str) -> PreparedInput:
        if self.processor is None:
            raise PipelineError(f"model {self.recipe.name!r} is not loaded; call load() first")
        tensors: dict[str, Any] = {}
        audio_key = None
        if sample.modality == "speech":
            wave = check_waveform(sample.id, waveform)
            out = self.encode_speech(sample, wave, template)
            missing = [k for k in self.recipe.feature_keys if k not in out]
            if missing:
                raise PipelineError(
                    f"sample {sample.id!r}: {type(self.processor).__name__} returned no {missing} for the audio "
                    f"passed as audio=; it ignored the audio (returned keys: {sorted(out.keys())})"
                )
            for key in self.recipe.feature_keys:
                tensors[key] = out[key]
            audio_key = sha256_waveform(wave)
        else:
            if waveform is not None:
                raise PipelineError(f"sample {sample.id!r}: modality 'text' but a waveform was given")
            out = self.encode_text(sample, template)
        ids = torch.as_tensor(out["input_ids"])[0].to(torch.long)
        n_audio = int((ids == self.audio_token_id).sum())
        if sample.modality == "speech" and n_audio < 1:
            raise PipelineError(
                f"sample {sample.id!r}: no audio placeholder {self.audio_token!r} in the input ids"
            )
        if sample.modality == "text" and n_audio:
            raise PipelineError(
                f"sample {sample.id!r}: text input contains {n_audio} audio placeholder tokens"
            )
        tensors["input_ids"] = ids
        tpl = self.template(template, sample.modality)
        key_material = {
            "input_ids": sha256_ints(ids),
            "processor_config": sha256_json(self.processor_config()),
            "template": sha256_json(
                {
                    "name": tpl.name,
                    "prefix": tpl.prefix,
                    "suffix": tpl.suffix,
                    "speech": self.recipe.chat.speech,
                }
            ),
        }
        if audio_key is not None:
            key_material["waveform"] = audio_key
        return PreparedInput(
            sample_id=sample.id,
            modality=sample.modality,
            length=int(ids.shape[0]),
            last_token_id=int(ids[-1]),
            tensors=tensors,
            key_material=key_material,
            audio_key=audio_key,
        )

    def collate(self, items: list[PreparedInput]) -> Batch:
        if not items:
            raise ValueError("collate: empty list of prepared inputs")
        ids, mask = right_pad([it.tensors["input_ids"] for it in items], self.pad_id)
        kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        speech = [it for it in items if it.modality == "speech"]
        for key in self.recipe.feature_keys:
            if speech:
                feats = pad_and_cat([it.tensors[key] for it in speech])
                if feats.is_floating_point() and self.dtype is not None:
                    feats = feats.to(self.dtype)
                kwargs[key] = feats
        device = self.device or torch.device("cpu")
        kwargs = {k: v.to(device) for k, v in kwargs.items()}
        return Batch(
            model_kwargs=kwargs,
            last_positions=last_real_positions(mask).to(device),
            sample_ids=[it.sample_id for it in items],
        )

    def forward(self, batch: Batch) -> None:
        if self.model is None:
            raise PipelineError(f"model {self.recipe.name!r} is not loaded; call load() first")
        kwargs = dict(batch.model_kwargs)
        kwargs["use_cache"] = False
        if forward_accepts(self.model, "logits_to_keep"):
            kwargs["logits_to_keep"] = 1  # in case nothing stops the forward: one position of logits only
        seq_len = int(kwargs["input_ids"].shape[1])

        def _guard(_module: torch.nn.Module, args: tuple[Any, ...], kw: dict[str, Any]) -> None:
            hidden = args[0] if args else kw.get("hidden_states")
            if hidden is not None and hidden.shape[1] != seq_len:
                raise PipelineError(
                    f"{self.recipe.name}: the decoder sees {hidden.shape[1]} positions but input_ids has {seq_len}; "
                    "the model expanded the audio placeholder itself, so last-token positions would be wrong"
                )

        handle = self.layer_handles().blocks[0].register_forward_pre_hook(_guard, with_kwargs=True)
        try:
            with torch.no_grad():
                self.call_model(batch, kwargs)
        finally:
            handle.remove()

    def call_model(self, batch: Batch, kwargs: dict[str, Any]) -> None:
        """Run the model on the batch's kwargs (subclasses that encode audio per clip replace this)."""
        assert self.model is not None
        self.model(**kwargs)


class VoxtralAdapter(HubLALMAdapter):
    """Voxtral: ids assembled here, features from the processor's Whisper feature extractor.

    Why not the processor: ``VoxtralProcessor.__call__`` refuses the audio token in text and its
    ``apply_chat_template`` needs mistral-common plus a file/URL/base64 audio. The layout is the one
    mistral-common's instruct encoding produces for ``[audio chunk, text chunk]``: ``<s> [INST] [BEGIN_AUDIO]
    [AUDIO]*n <instruction> [/INST]``. Each clip is padded to whole encoder windows (30 s for the real model)
    and every window gives a fixed number of audio embeddings, so ``n`` follows from the clip length and
    the config. Content and instruction are tokenised separately, so the suffix ids are identical in both
    modalities."""

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

    def _ids(self, *parts: str) -> list[int]:
        tok = self.processor.tokenizer
        return [i for part in parts for i in encode_with_specials(tok, part, self._SPECIALS)]

    def encode_text(self, sample: Sample, template: str) -> Any:
        tpl = self.template(template, "text")
        return {"input_ids": torch.tensor([self._ids(tpl.prefix, sample.text, tpl.suffix)])}

    def encode_speech(self, sample: Sample, wave: np.ndarray, template: str) -> Any:
        fe = self.processor.feature_extractor
        window = self.window_frames * int(fe.hop_length)
        feats = fe(
            wave,
            sampling_rate=SAMPLE_RATE,
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
        windows = feats.reshape(n_mels, -1, self.window_frames).transpose(0, 1).contiguous()
        tpl = self.template(template, "speech")
        audio = self.recipe.chat.speech.replace(
            str(self.audio_token), str(self.audio_token) * (windows.shape[0] * self.embeddings_per_window)
        )
        return {
            "input_ids": torch.tensor([self._ids(tpl.prefix, audio, tpl.suffix)]),
            "input_features": windows,
        }

    def check_chat_template(self) -> str:
        """With mistral-common's tokenizer: its own text-turn ids must start with our prefix and end with
        ``[/INST]``; other tokenizers (synthetic tests) have no template to compare with."""
        tok = self.processor.tokenizer
        if type(tok).__name__ != "MistralCommonBackend":
            return "no chat template"
        content = "HELLO" + INSTRUCTION
        ref = tok.apply_chat_template([{"role": "user", "content": content}], tokenize=True)
        ref = list(ref["input_ids"] if isinstance(ref, dict) else ref)
        prefix = self._ids(self.recipe.chat.prefix)
        suffix = self._ids(self.recipe.chat.suffix)
        if ref[: len(prefix)] != prefix or ref[-len(suffix) :] != suffix:
            raise PipelineError(
                f"{self.recipe.name}: mistral-common encodes a user turn as {ref}, the adapter "
                f"declares prefix {prefix} and suffix {suffix}"
            )
        return "verified"


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
    """Granite Speech: torch-only features, and the audio encoded one clip at a time.

    Why per clip: the conformer has no padding mask (block attention and depthwise convolutions), so a clip
    padded to a longer one's length gets different embeddings for its real frames; its batched latents
    would depend on the batch. Each clip is encoded alone (cached by waveform hash) and written over its
    placeholder run with the model's own ``get_merged_audio_embeddings``."""

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
            item.sample_id, "text", item.length, item.last_token_id, tensors, item.key_material
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


_OMNI_PROCESSOR: type | None = None


def audio_only_omni_processor(
    feature_extractor: Any, tokenizer: Any, chat_template: str | None = None
) -> Any:
    """A real ``Qwen2_5OmniProcessor`` without image and video processors.

    Why: its video processor needs torchvision, and this benchmark sends no images or videos. The subclass
    only lets those two be ``None``; audio featurisation and placeholder expansion are the processor's own."""
    global _OMNI_PROCESSOR
    if _OMNI_PROCESSOR is None:
        from transformers import Qwen2_5OmniProcessor

        class AudioOnlyQwen2_5OmniProcessor(Qwen2_5OmniProcessor):
            def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> Any:
                if argument is None and argument_name in ("image_processor", "video_processor"):
                    return None
                return super().check_argument_for_proper_class(argument_name, argument)

        _OMNI_PROCESSOR = AudioOnlyQwen2_5OmniProcessor
    return _OMNI_PROCESSOR(
        image_processor=None,
        video_processor=None,
        feature_extractor=feature_extractor,
        tokenizer=tokenizer,
        chat_template=chat_template,
    )


class QwenOmniThinkerAdapter(HubLALMAdapter):
    """Qwen2.5-Omni's thinker; the processor falls back to audio-only when the full one cannot be built."""

    def load_processor(self, kwargs: dict[str, Any]) -> Any:
        import transformers

        hub_id = self.recipe.hub_id
        try:
            return transformers.AutoProcessor.from_pretrained(hub_id, **kwargs)
        except (ImportError, TypeError, ValueError, AttributeError) as exc:  # torchvision missing, typically
            full_error = f"{type(exc).__name__}: {exc}"
        fe = load_or_unavailable(
            hub_id, lambda: transformers.WhisperFeatureExtractor.from_pretrained(hub_id, **kwargs)
        )
        tok = load_or_unavailable(
            hub_id, lambda: transformers.AutoTokenizer.from_pretrained(hub_id, **kwargs)
        )
        try:
            return audio_only_omni_processor(fe, tok, getattr(tok, "chat_template", None))
        except Exception as exc:
            raise UnsupportedModelError(
                f"{self.recipe.name}: cannot build its processor: full one failed with "
                f"{full_error}; audio-only one with {type(exc).__name__}: {exc}"
            ) from exc


_ADAPTER_CLASSES: dict[str, type[HubLALMAdapter]] = {
    "voxtral": VoxtralAdapter,
    "granite-speech": GraniteSpeechAdapter,
    "qwen2.5-omni": QwenOmniThinkerAdapter,
}


class GenericHubAdapter(HubLALMAdapter):
    """``hf:<hub id>``: any hub LALM whose classes expose a decoder and an audio placeholder.

    Nothing is known before loading, so the chat strings are taken at load from the processor (audio token)
    and the tokenizer's chat template (prefix and suffix around a marker); the templates are re-rendered
    then. ``load`` raises ``UnsupportedModelError`` naming exactly what the model lacks."""

    def __init__(self, hub_id: str) -> None:
        if not hub_id or "/" not in hub_id:
            raise UnsupportedModelError(f"'hf:{hub_id}': expected hf:<owner>/<name>, got {hub_id!r}")
        super().__init__(
            Recipe(
                f"hf:{hub_id}",
                hub_id,
                "hf-generic",
                f"generic hub LALM {hub_id}",
                "AutoModelForImageTextToText",
                ChatFormat("", AUDIO_MARK, "", note="resolved from the chat template at load"),
                (),
                notes=(
                    "generic adapter: decoder, audio token and chat format found from the model's own classes",
                ),
            )
        )

    def load(self, device: torch.device, dtype: torch.dtype) -> None:
        import transformers

        kwargs = revision_kwargs(self.spec.revision)
        hub_id = self.recipe.hub_id
        processor = load_or_unavailable(
            hub_id, lambda: transformers.AutoProcessor.from_pretrained(hub_id, **kwargs)
        )
        model = None
        errors = []
        placement = _placement_kwargs(self.device_map)
        for cls_name in ("AutoModelForImageTextToText", "AutoModelForSeq2SeqLM", "AutoModelForCausalLM"):
            cls = getattr(transformers, cls_name)
            try:
                model = load_or_unavailable(
                    hub_id, lambda cls=cls: cls.from_pretrained(hub_id, dtype=dtype, **kwargs, **placement)
                )
                break
            except ValueError as exc:  # "Unrecognized configuration class" for this auto class
                errors.append(f"{cls_name}: {exc}")
        if model is None:
            raise UnsupportedModelError(f"hf:{hub_id}: no auto class loads it: {errors}")
        self.attach(_placed(model, device, self.device_map), processor, device=device, dtype=dtype)

    def attach(
        self, model: torch.nn.Module, processor: Any, *, device: torch.device, dtype: torch.dtype
    ) -> None:
        super().attach(model, processor, device=device, dtype=dtype)
        self.recipe = self._resolved_recipe(model, processor)
        self.templates = chat_templates(self.recipe.name, self.recipe.chat)

    def _resolved_recipe(self, model: torch.nn.Module, processor: Any) -> Recipe:
        marker = "\x00CONTENT\x00"
        tok = processor.tokenizer
        template = getattr(tok, "chat_template", None) or getattr(processor, "chat_template", None)
        prefix = suffix = ""
        if template:
            rendered = tok.apply_chat_template(
                [{"role": "user", "content": marker}],
                tokenize=False,
                add_generation_prompt=True,
                chat_template=template,
            )
            prefix, _, suffix = rendered.partition(marker)
        fe = getattr(processor, "feature_extractor", None) or getattr(processor, "audio_processor", None)
        keys = tuple(getattr(fe, "model_input_names", ()) or ())
        if not keys:
            raise UnsupportedModelError(
                f"hf:{self.recipe.hub_id}: the processor has no audio feature extractor"
            )
        extra = tuple(
            k
            for k in ("feature_attention_mask", "input_features_mask")
            if k in getattr(processor, "model_input_names", ())
        )
        return replace(
            self.recipe,
            model_class=type(model).__name__,
            feature_keys=keys + extra,
            chat=ChatFormat(
                prefix=prefix,
                speech=str(self.audio_token),
                suffix=suffix,
                bare_prefix=tok.bos_token or "",
                note="resolved from the model's chat template",
            ),
        )
