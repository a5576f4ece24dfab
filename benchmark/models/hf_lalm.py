"""The transformers-5-native hub LALMs: one adapter class driven by a per-model ``Recipe``, plus ``hf:<hub id>``.

The model's own processor builds every input, so the audio placeholder is expanded to exactly the number of
audio embeddings the model will scatter; the adapter checks that the processor really used the audio (features
present, placeholders counted) because a processor that silently ignores an audio kwarg makes every clip give
the same latent (ANCHORS.md, lmms-eval PR #1081). Families whose inputs or hook points need more than data live in
``benchmark.models.hf_families``; the catalogue's recipes in ``benchmark.models.hf_recipes``; Ultravox in
``benchmark.models.ultravox`` (its official code needs transformers 4).

Templates (``benchmark.models.chat_templates``): ``shared-suffix`` wraps the content in the model's chat turn and
ends the user turn with ``INSTRUCTION`` then the assistant header; ``bare`` is the family's reading of the paper's
template (the chat turn up to the input, or the input alone) and ends on the input's literal last token. Every
prepared input carries ``content_span``, the positions of its own text tokens or of its expanded audio
placeholder, for the token-identity controls.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from benchmark.core.audio import SAMPLE_RATE
from benchmark.core.errors import PipelineError, UnsupportedModelError
from benchmark.core.hashing import sha256_ints, sha256_json, sha256_waveform
from benchmark.core.schema import Modality, Sample
from benchmark.models.base import (
    Availability,
    Batch,
    LayerHandles,
    ModelAdapter,
    ModelSpec,
    PreparedInput,
    Template,
)
from benchmark.models.chat_templates import AUDIO_MARK, ChatFormat, chat_templates, render_user_turn
from benchmark.models.hf_common import (
    INSTRUCTION,
    cached_availability,
    check_waveform,
    forward_accepts,
    last_real_positions,
    load_or_unavailable,
    pad_and_cat,
    revision_kwargs,
    right_pad,
)
from benchmark.models.lock import locked_revision


@dataclass(frozen=True)
class LoraSpec:
    """Where a family's speech LoRA lives: ``subfolder`` of the hub repo (``None``: the repo root, which
    transformers loads by itself when peft is installed) and the adapter's name once loaded."""

    adapter_name: str
    subfolder: str | None = None


@dataclass(frozen=True)
class Recipe:
    """What differs between the native hub LALMs; the defaults are what most of them share."""

    name: str
    hub_id: str
    family: str  # also picks the adapter class (``hub_factory``), default ``HubLALMAdapter``
    description: str
    model_class: str
    chat: ChatFormat
    feature_keys: tuple[str, ...] = ("input_features", "input_features_mask")
    languages: tuple[str, ...] | None = None
    load_kwargs: dict[str, Any] = field(default_factory=dict)
    submodule: str | None = None  # e.g. "thinker" for the Qwen Omni models
    processor_kwargs: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    modalities: tuple[Modality, ...] = ("text", "speech")
    #: the speech LoRA that must be merged for the speech path (peft, ``lora`` extra)
    lora: LoraSpec | None = None
    #: import names the adapter needs beyond the default install, and the pyproject extra that brings them
    needs: tuple[str, ...] = ()
    extra: str | None = None
    #: the transformers release that brings ``model_class``, said when the installed one lacks it
    since: str | None = None
    #: the user-turn instruction after the audio for ``transcribe`` (the pre-flight's generation step)
    asr_prompt: str = "Transcribe the audio."


def pad_token_id(owner: str, tokenizer: Any, avoid: int | None = None) -> int:
    """The id right padding uses: the tokenizer's pad, else its eos, never ``avoid`` (the audio placeholder:
    GLM-ASR's placeholder is named ``<|pad|>``, and padding with it would read as audio to the merge)."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None and candidate != avoid:
            return int(candidate)
    raise UnsupportedModelError(
        f"{owner}: the tokenizer has no pad or eos token other than the audio placeholder {avoid}"
    )


def _common_length(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def content_span(
    sample: Sample, tpl: Template, head: list[int], upto: list[int], full: list[int]
) -> tuple[int, int]:
    """``[start, end)`` of a text's own tokens in ``full`` from the ids of the template's prefix alone (``head``) and
    of prefix + text (``upto``): the tokens the three tokenisations share, minus the prefix's. A token that merges
    the text with the template around it is left out of the span."""
    start = _common_length(head, full)
    end = _common_length(upto, full)
    if end <= start:
        raise PipelineError(
            f"sample {sample.id!r}: no token of the text stands apart from the {tpl.name!r} template's "
            f"(prefix ids {head[-4:]}, prefix+text ids {upto[-4:]}, full ids {full[: len(upto) + 2][-6:]})"
        )
    return start, end


def missing_packages(needs: tuple[str, ...]) -> list[str]:
    return [name for name in needs if importlib.util.find_spec(name) is None]


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
    for sub in ("thinker_config", "text_config", "audio_config"):
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
            modalities=recipe.modalities,
            languages=recipe.languages,
            weights_source=f"hub:{recipe.hub_id}",
            description=recipe.description,
            notes=(
                f"template instruction {INSTRUCTION!r}",
                f"native class {recipe.model_class}",
                *recipe.notes,
            ),
        )
        self.templates = chat_templates(recipe.name, recipe.chat)
        self.model: torch.nn.Module | None = None
        self.processor: Any = None
        self._handles: LayerHandles | None = None
        self.audio_token: str | None = None
        self.audio_token_id: int | None = None
        self.pad_id: int = 0
        #: what ``check_chat_template`` found at load ("verified", "no chat template", or what differs)
        self.template_check: str = "not loaded"

    # ---- description -------------------------------------------------------------------------
    def class_availability(self) -> Availability | None:
        """Unavailable when the installed transformers lacks the class or an extra package is missing."""
        import transformers

        if getattr(transformers, self.recipe.model_class, None) is None:
            needs = f"; needs {self.recipe.since}" if self.recipe.since else ""
            return Availability(
                False,
                f"transformers {transformers.__version__} has no class {self.recipe.model_class}{needs}",
            )
        missing = missing_packages(self.recipe.needs)
        if missing:
            return Availability(
                False,
                f"needs {missing} (pip install 'lalm-bench[{self.recipe.extra}]'), not installed here",
            )
        return None

    def availability(self) -> Availability:
        if self.model is not None:  # attached in this process (built or loaded already): nothing to fetch
            return Availability(True, f"{self.spec.name} is attached in this process")
        return self.class_availability() or cached_availability(self.recipe.hub_id, self.spec.revision)

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
            "lora": None if self.recipe.lora is None else self.recipe.lora.adapter_name,
        }

    # ---- loading -----------------------------------------------------------------------------
    def load(self, device: torch.device, dtype: torch.dtype) -> None:
        import transformers

        unavailable = self.class_availability()
        if unavailable is not None:
            raise UnsupportedModelError(f"{self.recipe.name}: {unavailable.detail}")
        model_cls = getattr(transformers, self.recipe.model_class)
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
        model = self.prepare_loaded(model, kwargs)
        if self.recipe.submodule:
            model = getattr(model, self.recipe.submodule)
        self.attach(_placed(model, device, self.device_map), processor, device=device, dtype=dtype)
        self.check_chat_template()

    def prepare_loaded(self, model: torch.nn.Module, kwargs: dict[str, Any]) -> torch.nn.Module:
        """Family hook between ``from_pretrained`` and ``attach`` (the LoRA families merge here)."""
        return model

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
        self._handles = self.find_layers(model)
        self.audio_token, self.audio_token_id = find_audio_token(model, processor)
        self.pad_id = pad_token_id(self.recipe.name, processor.tokenizer, avoid=self.audio_token_id)
        self.model, self.processor, self.device, self.dtype = model, processor, device, dtype

    def find_layers(self, model: torch.nn.Module) -> LayerHandles:
        """The hook points (families whose blocks pass more than ``[batch, seq, d]`` replace this)."""
        return find_decoder(model)

    def check_chat_template(self) -> str:
        """Render the tokenizer's chat template for one text turn: the user turn must end on our suffix (an
        error otherwise: "last token" would change meaning); a differing prefix is recorded, not raised (the
        tokenizers of some families insert a dated system turn that the recipe leaves out on purpose)."""
        suffix = self.recipe.chat.suffix
        tok = getattr(self.processor, "tokenizer", None)
        template = getattr(tok, "chat_template", None) or getattr(self.processor, "chat_template", None)
        if not suffix or not template:
            self.template_check = "no chat template"
            return self.template_check
        prefix, rendered_suffix = render_user_turn(tok, chat_template=template, owner=self.recipe.name)
        if rendered_suffix != suffix:
            raise PipelineError(
                f"{self.recipe.name}: the model's chat template ends a user turn with {rendered_suffix!r}, "
                f"the adapter declares {suffix!r}"
            )
        declared = self.recipe.chat.prefix
        self.template_check = (
            "verified"
            if prefix == declared
            else f"suffix verified; the template's default prefix {prefix!r} differs from {declared!r}"
        )
        return self.template_check

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
    def asr_template(self) -> Template:
        """The transcription prompt of ``transcribe``: the chat turn, the audio, ``recipe.asr_prompt``."""
        chat = self.recipe.chat
        instruction = f"\n{self.recipe.asr_prompt}" if self.recipe.asr_prompt else ""
        return Template(
            name="asr",
            modality="speech",
            prefix=chat.prefix,
            suffix=instruction + chat.suffix,
            rendered=chat.prefix + AUDIO_MARK + instruction + chat.suffix,
            note="transcription prompt of the pre-flight's generation step (never a latent)",
        )

    def content_string(self, sample: Sample) -> str:
        return sample.text if sample.modality == "text" else self.recipe.chat.speech

    def encode_prompt(self, prompt: str, wave: np.ndarray | None) -> Any:
        """``input_ids`` ``[1, seq]`` (placeholder expanded) plus the recipe's feature keys for one prompt."""
        if wave is None:
            return self.processor(
                text=[prompt], audio=None, return_tensors="pt", **self.recipe.processor_kwargs
            )
        return self.processor(
            text=[prompt],
            audio=[wave],
            sampling_rate=SAMPLE_RATE,
            return_tensors="pt",
            **self.recipe.processor_kwargs,
        )

    def encode(self, sample: Sample, wave: np.ndarray | None, tpl: Template) -> Any:
        """The processor's output for one sample under ``tpl``."""
        return self.encode_prompt(tpl.prefix + self.content_string(sample) + tpl.suffix, wave)

    def text_span(self, sample: Sample, tpl: Template, ids: torch.Tensor) -> tuple[int, int]:
        """``[start, end)`` of the tokens wholly inside the sample's text: the processor's ids of ``prefix`` and of
        ``prefix + text`` (same path) are compared with ``ids``; a token merging the text's last characters with
        the template's suffix (tiktoken-style BPE joins "." and "\n") is left out. No token of the text at all
        is an error naming the sample."""
        return content_span(
            sample,
            tpl,
            self._prefix_ids(tpl.prefix),
            self._ids(self.encode_prompt(tpl.prefix + sample.text, None)),
            ids.tolist(),
        )

    def _prefix_ids(self, prefix: str) -> list[int]:
        """Ids the processor gives ``prefix`` alone (BOS included where it adds one; [] where it refuses "")."""
        try:
            return self._ids(self.encode_prompt(prefix, None))
        except (ValueError, IndexError, TypeError):
            if prefix:
                raise
            return []

    @staticmethod
    def _ids(out: Any) -> list[int]:
        return [int(i) for i in torch.as_tensor(out["input_ids"])[0].tolist()]

    def audio_span(self, sample: Sample, ids: torch.Tensor) -> tuple[int, int]:
        """``[start, end)`` of the expanded audio placeholder: one contiguous run of the audio token."""
        where = (ids == self.audio_token_id).nonzero().flatten()
        if where.numel() == 0:
            raise PipelineError(
                f"sample {sample.id!r}: no audio placeholder {self.audio_token!r} in the input ids"
            )
        start, end = int(where[0]), int(where[-1]) + 1
        if end - start != where.numel():
            raise PipelineError(
                f"sample {sample.id!r}: the audio placeholder {self.audio_token!r} is not one contiguous run "
                f"({where.numel()} tokens over positions {start}..{end - 1})"
            )
        return start, end

    def prepare(self, sample: Sample, waveform: np.ndarray | None, template: str) -> PreparedInput:
        return self.prepare_with(sample, waveform, self.template(template, sample.modality))

    def prepare_with(self, sample: Sample, waveform: np.ndarray | None, tpl: Template) -> PreparedInput:
        """``prepare`` under an explicit ``Template`` (the declared ones, or ``asr_template``)."""
        if self.processor is None:
            raise PipelineError(f"model {self.recipe.name!r} is not loaded; call load() first")
        if sample.modality not in self.spec.modalities:
            raise PipelineError(
                f"sample {sample.id!r}: {self.recipe.name} takes {self.spec.modalities}, not {sample.modality!r}"
            )
        tensors: dict[str, Any] = {}
        audio_key = None
        if sample.modality == "speech":
            wave = check_waveform(sample.id, waveform)
            out = self.encode(sample, wave, tpl)
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
            out = self.encode(sample, None, tpl)
        ids = torch.as_tensor(out["input_ids"])[0].to(torch.long)
        self.check_placeholders(sample, ids)
        span = (
            self.audio_span(sample, ids) if sample.modality == "speech" else self.text_span(sample, tpl, ids)
        )
        if tpl.name == "bare" and sample.modality == "text" and span[1] != ids.shape[0]:
            raise PipelineError(
                f"sample {sample.id!r}: under 'bare' the input must end on the text's last token, but "
                f"{ids.shape[0] - span[1]} token(s) follow it"
            )
        tensors["input_ids"] = ids
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
            content_span=span,
        )

    def check_placeholders(self, sample: Sample, ids: torch.Tensor) -> None:
        n_audio = int((ids == self.audio_token_id).sum())
        if sample.modality == "speech" and n_audio < 1:
            raise PipelineError(
                f"sample {sample.id!r}: no audio placeholder {self.audio_token!r} in the input ids"
            )
        if sample.modality == "text" and n_audio:
            raise PipelineError(
                f"sample {sample.id!r}: text input contains {n_audio} audio placeholder tokens"
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
            content_spans=[it.content_span for it in items],  # right padding: unpadded coordinates hold
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
            if hidden is not None and hidden.shape[-2] != seq_len:
                raise PipelineError(
                    f"{self.recipe.name}: the decoder sees {hidden.shape[-2]} positions but input_ids has {seq_len}; "
                    "the model expanded the audio placeholder itself, so last-token positions would be wrong"
                )

        handle = self.guard_module().register_forward_pre_hook(_guard, with_kwargs=True)
        try:
            with torch.no_grad():
                self.call_model(batch, kwargs)
        finally:
            handle.remove()

    def guard_module(self) -> torch.nn.Module:
        """The first decoder block, whose input length the forward guard checks."""
        return self.layer_handles().blocks[0]

    def call_model(self, batch: Batch, kwargs: dict[str, Any]) -> None:
        """Run the model on the batch's kwargs (subclasses that encode audio per clip replace this)."""
        assert self.model is not None
        self.model(**kwargs)

    # ---- generation (pre-flight only) ----------------------------------------------------------
    def generation_inputs(self, batch: Batch) -> dict[str, Any]:
        """``generate`` keywords for a one-item batch (families that merge audio themselves replace this)."""
        return dict(batch.model_kwargs)

    def transcribe(self, waveform: np.ndarray, language: str = "en", max_new_tokens: int = 64) -> str:
        """Greedy transcript of one clip under ``asr_template`` (the LM head runs: pre-flight only)."""
        if self.model is None:
            raise PipelineError(f"model {self.recipe.name!r} is not loaded; call load() first")
        sample = Sample(id="transcribe", modality="speech", text="-", audio_path="-", language=language)
        batch = self.collate([self.prepare_with(sample, waveform, self.asr_template())])
        inputs = self.generation_inputs(batch)
        prompt = batch.model_kwargs["input_ids"]
        with torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        out = out.sequences if hasattr(out, "sequences") else out
        new = out[0, prompt.shape[1] :] if out.shape[1] > prompt.shape[1] else out[0]
        text = self.processor.tokenizer.decode(new.tolist(), skip_special_tokens=True)
        return self.parse_transcript(str(text))

    def parse_transcript(self, text: str) -> str:
        return text.strip()


#: The auto classes transformers 5 offers for models that take audio and text and produce text, tried in this
#: order by the model's config: the first whose mapping holds the config's class loads it.
AUTO_CLASSES: tuple[str, ...] = (
    "AutoModelForMultimodalLM",
    "AutoModelForImageTextToText",
    "AutoModelForSpeechSeq2Seq",
    "AutoModelForSeq2SeqLM",
    "AutoModelForCausalLM",
    "AutoModelForPreTraining",
)


def auto_model_class(config: Any) -> tuple[str, type]:
    """``(auto class name, model class)`` that loads ``config``; ``UnsupportedModelError`` listing the classes
    tried when none maps it."""
    import transformers

    for name in AUTO_CLASSES:
        auto = getattr(transformers, name, None)
        mapping = getattr(auto, "_model_mapping", None)
        if mapping is not None and type(config) in mapping:
            return name, mapping[type(config)]
    raise UnsupportedModelError(
        f"{type(config).__name__} (model_type {getattr(config, 'model_type', '?')!r}) is in none of "
        f"transformers' auto classes for audio-text models: {list(AUTO_CLASSES)}"
    )


def audio_only_processor_class(processor_cls: type) -> type:
    """A subclass of an omni processor that accepts no image or video processor (this suite sends neither;
    their loaders need torchvision). Audio featurisation and placeholder expansion stay the processor's own."""

    class AudioOnly(processor_cls):  # type: ignore[misc, valid-type]
        def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> Any:
            if argument is None and argument_name in ("image_processor", "video_processor"):
                return None
            return super().check_argument_for_proper_class(argument_name, argument)

    AudioOnly.__name__ = AudioOnly.__qualname__ = f"AudioOnly{processor_cls.__name__}"
    return AudioOnly


def audio_only_processor(
    processor_cls: type, feature_extractor: Any, tokenizer: Any, chat_template: Any
) -> Any:
    """An instance of ``audio_only_processor_class(processor_cls)`` (the feature extractor is passed under the
    name the class takes it by: ``feature_extractor`` or ``audio_processor``)."""
    import inspect

    params = inspect.signature(processor_cls.__init__).parameters
    kwargs: dict[str, Any] = {"tokenizer": tokenizer}
    kwargs["audio_processor" if "audio_processor" in params else "feature_extractor"] = feature_extractor
    for name in ("image_processor", "video_processor"):
        if name in params:
            kwargs[name] = None
    if "chat_template" in params:
        kwargs["chat_template"] = chat_template
    return audio_only_processor_class(processor_cls)(**kwargs)


def load_audio_processor(
    owner: str, hub_id: str, processor_cls_name: str | None, kwargs: dict[str, Any]
) -> Any:
    """``AutoProcessor`` for ``hub_id``; when that fails (an omni processor's video part needs torchvision),
    the same processor class built audio-only from the repo's feature extractor and tokenizer."""
    import transformers

    try:
        return transformers.AutoProcessor.from_pretrained(hub_id, **kwargs)
    except (ImportError, TypeError, ValueError, AttributeError) as exc:
        full_error = f"{type(exc).__name__}: {exc}"
    processor_cls = getattr(transformers, processor_cls_name or "", None)
    if processor_cls is None:
        raise UnsupportedModelError(f"{owner}: cannot build its processor: {full_error}")
    fe = load_or_unavailable(
        hub_id, lambda: transformers.AutoFeatureExtractor.from_pretrained(hub_id, **kwargs)
    )
    tok = load_or_unavailable(hub_id, lambda: transformers.AutoTokenizer.from_pretrained(hub_id, **kwargs))
    try:
        return audio_only_processor(processor_cls, fe, tok, getattr(tok, "chat_template", None))
    except Exception as exc:
        raise UnsupportedModelError(
            f"{owner}: cannot build its processor: the full one failed with {full_error}; the audio-only "
            f"{processor_cls.__name__} with {type(exc).__name__}: {exc}"
        ) from exc


class GenericHubAdapter(HubLALMAdapter):
    """``hf:<hub id>``: any hub LALM whose classes expose a decoder and an audio placeholder.

    Nothing is known before loading: the model class comes from the config through ``AUTO_CLASSES`` (an omni
    model's ``thinker`` is taken, its talker never built), the audio token from the processor and config, the
    chat strings from the tokenizer's chat template; the templates are re-rendered then. ``load`` raises
    ``UnsupportedModelError`` naming exactly what the model lacks."""

    def __init__(self, hub_id: str) -> None:
        if not hub_id or "/" not in hub_id:
            raise UnsupportedModelError(f"'hf:{hub_id}': expected hf:<owner>/<name>, got {hub_id!r}")
        super().__init__(
            Recipe(
                f"hf:{hub_id}",
                hub_id,
                "hf-generic",
                f"generic hub LALM {hub_id}",
                "(resolved at load from the config)",
                ChatFormat("", AUDIO_MARK, "", note="resolved from the chat template at load"),
                (),
                notes=(
                    "generic adapter: model class, decoder, audio token and chat format found from the "
                    "model's own classes and chat template",
                ),
            )
        )

    def class_availability(self) -> Availability | None:
        return None  # the class is known only from the config, at load

    def load(self, device: torch.device, dtype: torch.dtype) -> None:
        import transformers
        from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

        kwargs = revision_kwargs(self.spec.revision)
        hub_id = self.recipe.hub_id
        config = load_or_unavailable(
            hub_id, lambda: transformers.AutoConfig.from_pretrained(hub_id, **kwargs)
        )
        auto_name, model_cls = auto_model_class(config)
        load_kwargs: dict[str, Any] = {}
        if hasattr(config, "enable_audio_output"):
            load_kwargs["enable_audio_output"] = False  # omni models: the thinker only, no talker
        processor = load_audio_processor(
            self.recipe.name, hub_id, PROCESSOR_MAPPING_NAMES.get(config.model_type), kwargs
        )
        model = load_or_unavailable(
            hub_id,
            lambda: model_cls.from_pretrained(
                hub_id, dtype=dtype, **kwargs, **load_kwargs, **_placement_kwargs(self.device_map)
            ),
        )
        submodule = "thinker" if isinstance(getattr(model, "thinker", None), torch.nn.Module) else None
        if submodule:
            model = model.thinker
        self.recipe = replace(self.recipe, model_class=model_cls.__name__, submodule=submodule)
        self.spec = replace(self.spec, notes=(*self.spec.notes, f"loaded through {auto_name}"))
        self.attach(_placed(model, device, self.device_map), processor, device=device, dtype=dtype)

    def attach(
        self, model: torch.nn.Module, processor: Any, *, device: torch.device, dtype: torch.dtype
    ) -> None:
        super().attach(model, processor, device=device, dtype=dtype)
        self.recipe = self._resolved_recipe(model, processor)
        self.templates = chat_templates(self.recipe.name, self.recipe.chat)

    def _audio_feature_keys(self, processor: Any) -> tuple[str, ...]:
        """The tensors the processor returns for audio beside the ids: found by running it on 0.5 s of silence
        (feature extractors do not all list their masks in ``model_input_names``)."""
        fe = getattr(processor, "feature_extractor", None) or getattr(processor, "audio_processor", None)
        if fe is None:
            raise UnsupportedModelError(f"{self.recipe.name}: the processor has no audio feature extractor")
        try:
            out = processor(
                text=[str(self.audio_token)],
                audio=[np.zeros(SAMPLE_RATE // 2, dtype=np.float32)],
                sampling_rate=SAMPLE_RATE,
                return_tensors="pt",
            )
        except Exception as exc:
            raise UnsupportedModelError(
                f"{self.recipe.name}: its processor cannot encode one audio placeholder with a clip: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        ignore = {"input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids", "num_audio_tokens"}
        keys = tuple(k for k in out if k not in ignore)
        if not keys:
            raise UnsupportedModelError(f"{self.recipe.name}: the processor returned no audio features")
        return keys

    def _resolved_recipe(self, model: torch.nn.Module, processor: Any) -> Recipe:
        tok = processor.tokenizer
        template = getattr(tok, "chat_template", None) or getattr(processor, "chat_template", None)
        prefix = suffix = ""
        if template:
            prefix, suffix = render_user_turn(tok, chat_template=template, owner=self.recipe.name)
        keys = self._audio_feature_keys(processor)
        return replace(
            self.recipe,
            model_class=type(model).__name__,
            feature_keys=keys,
            chat=ChatFormat(
                prefix=prefix,
                speech=str(self.audio_token),
                suffix=suffix,
                bare_prefix=tok.bos_token or "",
                note="resolved from the model's chat template",
                bare="turn" if template else "input",
            ),
        )
