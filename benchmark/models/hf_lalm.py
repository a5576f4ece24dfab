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

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from benchmark.errors import PipelineError, UnsupportedModelError
from benchmark.models.base import (
    SAMPLE_RATE,
    Availability,
    Batch,
    LayerHandles,
    ModelAdapter,
    ModelSpec,
    PreparedInput,
    Template,
)
from benchmark.models.hf_common import (
    INSTRUCTION,
    cached_availability,
    check_waveform,
    forward_accepts,
    ids_sha256,
    last_real_positions,
    load_or_unavailable,
    pad_and_cat,
    revision_kwargs,
    right_pad,
    sha256_json,
    waveform_sha256,
)
from benchmark.models.lock import locked_revision
from benchmark.schema import Modality, Sample

_AUDIO = "{audio}"  # marks where the audio placeholder goes in a rendered template


@dataclass(frozen=True)
class ChatFormat:
    """Literal strings around the content. ``speech`` is the audio placeholder as the prompt spells it
    (before the processor expands it); ``suffix`` follows ``INSTRUCTION`` in ``shared-suffix``."""

    prefix: str
    speech: str
    suffix: str
    bare_prefix: str = ""
    note: str = ""


@dataclass(frozen=True)
class Recipe:
    """What differs between the native hub LALMs."""

    name: str
    hub_id: str
    family: str
    description: str
    model_class: str
    chat: ChatFormat
    feature_keys: tuple[str, ...]
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
_QWEN_END = "<|im_end|>\n<|im_start|>assistant\n"

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            name="qwen2-audio-7b-instruct",
            hub_id="Qwen/Qwen2-Audio-7B-Instruct",
            family="qwen2-audio",
            description="Qwen2-Audio-7B-Instruct: Whisper-large-v3 encoder + Qwen-7B, chat-tuned",
            model_class="Qwen2AudioForConditionalGeneration",
            chat=ChatFormat(
                prefix=_QWEN_SYS + "<|im_start|>user\n",
                speech="Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>",
                suffix=_QWEN_END,
                note="chat template of the processor; speech line as its template writes it ('Audio 1: ...')",
            ),
            feature_keys=("input_features", "feature_attention_mask"),
        ),
        Recipe(
            name="qwen2-audio-7b",
            hub_id="Qwen/Qwen2-Audio-7B",
            family="qwen2-audio",
            description="Qwen2-Audio-7B base (pretrained, no chat turn)",
            model_class="Qwen2AudioForConditionalGeneration",
            chat=ChatFormat(
                prefix="",
                speech="<|audio_bos|><|AUDIO|><|audio_eos|>",
                suffix="",
                note="base model has no chat template: content then the instruction, as in its model card prompts",
            ),
            feature_keys=("input_features", "feature_attention_mask"),
        ),
        Recipe(
            name="qwen2.5-omni-7b",
            hub_id="Qwen/Qwen2.5-Omni-7B",
            family="qwen2.5-omni",
            description="Qwen2.5-Omni-7B thinker only (talker and token2wav are not loaded)",
            model_class="Qwen2_5OmniForConditionalGeneration",
            chat=ChatFormat(
                prefix=_OMNI_SYS + "<|im_start|>user\n",
                speech="<|audio_bos|><|AUDIO|><|audio_eos|>",
                suffix=_QWEN_END,
                note="default Omni system prompt of the model card",
            ),
            feature_keys=("input_features", "feature_attention_mask"),
            load_kwargs={"enable_audio_output": False},
            submodule="thinker",
        ),
        Recipe(
            name="voxtral-mini-3b",
            hub_id="mistralai/Voxtral-Mini-3B-2507",
            family="voxtral",
            description="Voxtral-Mini-3B-2507: Whisper-style encoder + Ministral-3B decoder",
            model_class="VoxtralForConditionalGeneration",
            chat=ChatFormat(
                prefix="<s>[INST]",
                speech="[BEGIN_AUDIO][AUDIO]",
                suffix="[/INST]",
                bare_prefix="<s>",
                note="mistral-common instruct format; audio chunk precedes the text in the user turn",
            ),
            feature_keys=("input_features",),
            notes=("the official processor needs the mistral-common package (tokenizer = MistralCommonBackend)",),
        ),
        Recipe(
            name="granite-speech-3.3-2b",
            hub_id="ibm-granite/granite-speech-3.3-2b",
            family="granite-speech",
            description="Granite-Speech-3.3-2B: conformer encoder + Q-former projector + Granite-3.3-2B (LoRA merged at load)",
            model_class="GraniteSpeechForConditionalGeneration",
            chat=ChatFormat(
                prefix="<|start_of_role|>user<|end_of_role|>",
                speech="<|audio|>",
                suffix="<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>",
                note="no system turn: the tokenizer's default one inserts today's date, which would change the ids daily",
            ),
            feature_keys=("input_features", "input_features_mask"),
            notes=("the feature extractor needs torchaudio",),
        ),
        Recipe(
            name="phi-4-multimodal",
            hub_id="microsoft/Phi-4-multimodal-instruct",
            family="phi4-multimodal",
            description="Phi-4-multimodal-instruct (native transformers 5 port), speech LoRA path",
            model_class="Phi4MultimodalForCausalLM",
            chat=ChatFormat(prefix="<|user|>", speech="<|audio_1|>", suffix="<|end|><|assistant|>"),
            feature_keys=("audio_input_features",),
            notes=("the native port may need a converted revision of the hub repo; spec and loader only, not tiny-tested",),
        ),
        Recipe(
            name="gemma-3n-e4b",
            hub_id="google/gemma-3n-E4B-it",
            family="gemma3n",
            description="Gemma-3n-E4B-it: USM audio encoder + Gemma-3n decoder (per-layer embeddings)",
            model_class="Gemma3nForConditionalGeneration",
            chat=ChatFormat(
                prefix="<bos><start_of_turn>user\n",
                speech="<audio_soft_token>",
                suffix="<end_of_turn>\n<start_of_turn>model\n",
                bare_prefix="<bos>",
            ),
            feature_keys=("input_features", "input_features_mask"),
            notes=("spec and loader only, not tiny-tested",),
        ),
        Recipe(
            name="audio-flamingo-3",
            hub_id="nvidia/audio-flamingo-3-hf",
            family="audioflamingo3",
            description="Audio Flamingo 3 (transformers port): AF-Whisper encoder + Qwen2.5-7B",
            model_class="AudioFlamingo3ForConditionalGeneration",
            chat=ChatFormat(prefix=_QWEN_SYS + "<|im_start|>user\n", speech="<sound>", suffix=_QWEN_END),
            feature_keys=("input_features", "input_features_mask"),
            notes=("hub id as in transformers' audioflamingo3 docs; spec and loader only, not tiny-tested",),
        ),
    )
}


def _templates(name: str, chat: ChatFormat) -> dict[str, dict[Modality, Template]]:
    """``shared-suffix`` and ``bare`` for both modalities, from the chat strings."""
    shared_suffix = INSTRUCTION + chat.suffix
    out: dict[str, dict[Modality, Template]] = {"shared-suffix": {}, "bare": {}}
    for modality, content in (("text", "{text}"), ("speech", _AUDIO)):
        out["shared-suffix"][modality] = Template(
            name="shared-suffix",
            modality=modality,
            prefix=chat.prefix,
            suffix=shared_suffix,
            rendered=chat.prefix + content + shared_suffix,
            note=chat.note,
        )
        out["bare"][modality] = Template(
            name="bare",
            modality=modality,
            prefix=chat.bare_prefix,
            suffix="",
            rendered=chat.bare_prefix + content,
            note="content alone",
        )
    return out


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
        seen.append(f"{type(inner).__name__} (layers but no final norm among norm/final_layernorm/final_norm/ln_f)")
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
        self.templates = _templates(recipe.name, recipe.chat)
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
        fe = getattr(self.processor, "feature_extractor", None) or getattr(self.processor, "audio_processor", None)
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
        processor = load_or_unavailable(
            hub_id, lambda: transformers.AutoProcessor.from_pretrained(hub_id, **kwargs)
        )
        model = load_or_unavailable(
            hub_id,
            lambda: model_cls.from_pretrained(hub_id, dtype=dtype, **kwargs, **self.recipe.load_kwargs),
        )
        if self.recipe.submodule:
            model = getattr(model, self.recipe.submodule)
        self.attach(model.to(device), processor, device=device, dtype=dtype)
        self.check_chat_template()

    def attach(self, model: torch.nn.Module, processor: Any, *, device: torch.device, dtype: torch.dtype) -> None:
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
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True,
            chat_template=template,
        )
        if not rendered.endswith(content + suffix):
            raise PipelineError(
                f"{self.recipe.name}: the model's chat template ends a user turn with "
                f"{rendered[rendered.find(content) + len(content):]!r}, the adapter declares {suffix!r}"
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

    def prepare(self, sample: Sample, waveform: np.ndarray | None, template: str) -> PreparedInput:
        if self.processor is None:
            raise PipelineError(f"model {self.recipe.name!r} is not loaded; call load() first")
        prompt = self.render(sample, template)
        tensors: dict[str, Any] = {}
        audio_key = None
        if sample.modality == "speech":
            wave = check_waveform(sample.id, waveform)
            out = self.processor(
                text=[prompt], audio=[wave], sampling_rate=SAMPLE_RATE, return_tensors="pt",
                **self.recipe.processor_kwargs,
            )
            missing = [k for k in self.recipe.feature_keys if k not in out]
            if missing:
                raise PipelineError(
                    f"sample {sample.id!r}: {type(self.processor).__name__} returned no {missing} for the audio "
                    f"passed as audio=; it ignored the audio (returned keys: {sorted(out.keys())})"
                )
            for key in self.recipe.feature_keys:
                tensors[key] = out[key]
            audio_key = waveform_sha256(wave)
        else:
            if waveform is not None:
                raise PipelineError(f"sample {sample.id!r}: modality 'text' but a waveform was given")
            out = self.processor(text=[prompt], return_tensors="pt", **self.recipe.processor_kwargs)
        ids = out["input_ids"][0].to(torch.long)
        n_audio = int((ids == self.audio_token_id).sum())
        if sample.modality == "speech" and n_audio < 1:
            raise PipelineError(f"sample {sample.id!r}: no audio placeholder {self.audio_token!r} in the input ids")
        if sample.modality == "text" and n_audio:
            raise PipelineError(f"sample {sample.id!r}: text input contains {n_audio} audio placeholder tokens")
        tensors["input_ids"] = ids
        tpl = self.template(template, sample.modality)
        key_material = {
            "input_ids": ids_sha256(ids),
            "processor_config": sha256_json(self.processor_config()),
            "template": sha256_json({"name": tpl.name, "prefix": tpl.prefix, "suffix": tpl.suffix,
                                     "speech": self.recipe.chat.speech}),
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
                self.model(**kwargs)
        finally:
            handle.remove()


class GenericHubAdapter(HubLALMAdapter):
    """``hf:<hub id>``: any hub LALM whose classes expose a decoder and an audio placeholder.

    Nothing is known before loading, so the chat strings are taken at load from the processor (audio token)
    and the tokenizer's chat template (prefix and suffix around a marker); the templates are re-rendered
    then. ``load`` raises ``UnsupportedModelError`` naming exactly what the model lacks."""

    def __init__(self, hub_id: str) -> None:
        if not hub_id or "/" not in hub_id:
            raise UnsupportedModelError(f"'hf:{hub_id}': expected hf:<owner>/<name>, got {hub_id!r}")
        recipe = Recipe(
            name=f"hf:{hub_id}",
            hub_id=hub_id,
            family="hf-generic",
            description=f"generic hub LALM {hub_id}",
            model_class="AutoModelForImageTextToText",
            chat=ChatFormat(prefix="", speech=_AUDIO, suffix="", note="resolved from the chat template at load"),
            feature_keys=(),
            notes=("generic adapter: decoder, audio token and chat format found from the model's own classes",),
        )
        super().__init__(recipe)

    def load(self, device: torch.device, dtype: torch.dtype) -> None:
        import transformers

        kwargs = revision_kwargs(self.spec.revision)
        hub_id = self.recipe.hub_id
        processor = load_or_unavailable(hub_id, lambda: transformers.AutoProcessor.from_pretrained(hub_id, **kwargs))
        model = None
        errors = []
        for cls_name in ("AutoModelForImageTextToText", "AutoModelForSeq2SeqLM", "AutoModelForCausalLM"):
            cls = getattr(transformers, cls_name)
            try:
                model = load_or_unavailable(hub_id, lambda cls=cls: cls.from_pretrained(hub_id, dtype=dtype, **kwargs))
                break
            except ValueError as exc:  # "Unrecognized configuration class" for this auto class
                errors.append(f"{cls_name}: {exc}")
        if model is None:
            raise UnsupportedModelError(f"hf:{hub_id}: no auto class loads it: {errors}")
        self.attach(model.to(device), processor, device=device, dtype=dtype)

    def attach(self, model: torch.nn.Module, processor: Any, *, device: torch.device, dtype: torch.dtype) -> None:
        super().attach(model, processor, device=device, dtype=dtype)
        self.recipe = self._resolved_recipe(model, processor)
        self.templates = _templates(self.recipe.name, self.recipe.chat)

    def _resolved_recipe(self, model: torch.nn.Module, processor: Any) -> Recipe:
        marker = "\x00CONTENT\x00"
        tok = processor.tokenizer
        template = getattr(tok, "chat_template", None) or getattr(processor, "chat_template", None)
        prefix = suffix = ""
        if template:
            rendered = tok.apply_chat_template([{"role": "user", "content": marker}], tokenize=False,
                                               add_generation_prompt=True, chat_template=template)
            prefix, _, suffix = rendered.partition(marker)
        fe = getattr(processor, "feature_extractor", None) or getattr(processor, "audio_processor", None)
        keys = tuple(getattr(fe, "model_input_names", ()) or ())
        if not keys:
            raise UnsupportedModelError(f"hf:{self.recipe.hub_id}: the processor has no audio feature extractor")
        extra = tuple(k for k in ("feature_attention_mask", "input_features_mask") if k in getattr(processor, "model_input_names", ()))
        return Recipe(
            name=self.recipe.name, hub_id=self.recipe.hub_id, family=self.recipe.family,
            description=self.recipe.description, model_class=type(model).__name__,
            chat=ChatFormat(prefix=prefix, speech=str(self.audio_token), suffix=suffix,
                            bare_prefix=tok.bos_token or "", note="resolved from the model's chat template"),
            feature_keys=keys + extra, notes=self.recipe.notes,
        )


def build_adapter(name: str) -> ModelAdapter:
    """Catalogue factory for the hub entries and ``hf:<hub id>``."""
    if name.startswith("hf:"):
        return GenericHubAdapter(name[3:])
    if name.startswith("ultravox-"):
        from benchmark.models.ultravox import build_ultravox

        return build_ultravox(name)
    try:
        recipe = RECIPES[name]
    except KeyError:
        raise UnsupportedModelError(
            f"no hub adapter named {name!r}; known: {sorted([*RECIPES, 'ultravox-0.5-llama-3.2-1b', 'ultravox-0.5-llama-3.1-8b'])} "
            "or hf:<hub id>"
        ) from None
    return HubLALMAdapter(recipe)
