"""Ultravox (0.5 and 0.6) on transformers 5, built from the official checkpoint layout.

Why not ``trust_remote_code``: the official ``ultravox_model.py`` imports transformers-4 internals and does
not run on transformers 5, which the rest of the suite needs. So this module rebuilds the model from its
parts, following the official code (fixie-ai/ultravox, ``ultravox/model/ultravox_model.py`` and
``ultravox_processing.py``), written anew here:

- audio tower: a Whisper encoder, run on unpadded mel features (``padding="longest"``) with position embeddings
  sliced to the length and self-attention keys masked beyond the chunk's frames, as the official modified
  encoder does. v0.5 and v0.6 fine-tune it with a LoRA merged before saving, so its weights come from the
  checkpoint (``audio_model_id`` is null in their configs); a checkpoint that should hold them and does not is
  an error, never a silent fall-back to the untuned base encoder;
- clips longer than the encoder's context (3000 mel frames, 30 s) are cut into chunks of that size, the last
  continuation chunk zero-padded to the full context, each chunk encoded alone; the placeholder runs of the
  chunks follow one another (the official processor's ``_chunk_and_pad_audio``);
- projector (``multi_modal_projector.*``): stack ``stack_factor`` frames (zero-pad to a multiple),
  RMSNorm(``norm_init``) -> Linear(no bias) -> SwiGLU (``silu(gate) * x``, gate = second half) -> RMSNorm
  (``projector_ln_mid``, v0.5+) -> Linear(no bias); v0.4-style ``ln_post`` is supported too;
- language model: ``config.text_model_id`` through ``AutoModelForCausalLM`` (Llama 3.x, Qwen3, and Gemma 3,
  whose text decoder sits inside its multimodal class); frozen in 0.5/0.6, so not in the checkpoint;
- placeholder: ``<|audio|>`` in the prompt is replaced by ``ceil(frames / (2 * stack_factor))`` copies of the
  tokenizer's eos id per chunk, and the projected audio embeddings overwrite those positions;
- prompt: the tokenizer's own chat template (a user message holding the content), rendered with the date
  pinned (``PINNED_DATE``: the Llama 3.2 template inserts today's date) and checked against the catalogue's
  declared strings at load.

Checkpoints may be one ``model.safetensors`` or shards listed in ``model.safetensors.index.json``. Each clip is
encoded alone (keyed by its audio hash in the encoder cache), so a latent never depends on its batch neighbours.

``parity_check`` compares this implementation with the official code's hidden states, saved by
``PARITY_REFERENCE_SCRIPT`` in a transformers-4 environment where the official code runs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

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
    Template,
)
from benchmark.models.chat_templates import PINNED_DATE, ChatFormat, chat_templates, render_user_turn
from benchmark.models.hf_common import (
    INSTRUCTION,
    cached_availability,
    check_waveform,
    last_real_positions,
    load_or_unavailable,
    revision_kwargs,
    right_pad,
)
from benchmark.models.lock import locked_revision

PLACEHOLDER = "<|audio|>"
AUDIO_MODEL_ID = "openai/whisper-large-v3-turbo"

_LLAMA_SYS = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
    f"Cutting Knowledge Date: December 2023\nToday Date: {PINNED_DATE}\n\n<|eot_id|>"
)
#: The user turn each backbone's own chat template renders (no system message given), as declared for
#: ``lalm-bench models``; ``attach`` renders the tokenizer's template and fails when it differs.
BACKBONE_CHATS: dict[str, ChatFormat] = {
    "llama3": ChatFormat(
        prefix=_LLAMA_SYS + "<|start_header_id|>user<|end_header_id|>\n\n",
        speech=PLACEHOLDER,
        suffix="<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        bare_prefix="<|begin_of_text|>",
        note=f"Llama 3.x chat template with its default system block, date pinned to {PINNED_DATE}",
        bare="turn",
    ),
    "qwen3": ChatFormat(
        prefix="<|im_start|>user\n",
        speech=PLACEHOLDER,
        suffix="<|im_end|>\n<|im_start|>assistant\n",
        note="Qwen3 chat template, no system turn",
        bare="turn",
    ),
    "gemma3": ChatFormat(
        prefix="<bos><start_of_turn>user\n",
        speech=PLACEHOLDER,
        suffix="<end_of_turn>\n<start_of_turn>model\n",
        bare_prefix="<bos>",
        note="Gemma 3 chat template",
        bare="turn",
    ),
}
LLAMA3_CHAT = BACKBONE_CHATS["llama3"]


@dataclass(frozen=True)
class UltravoxVariant:
    """One Ultravox release: its hub id, the text model it was trained on and that model's chat family."""

    hub_id: str
    text_model_id: str
    backbone: str
    version: str


VARIANTS: dict[str, UltravoxVariant] = {
    "ultravox-0.5-llama-3.2-1b": UltravoxVariant(
        "fixie-ai/ultravox-v0_5-llama-3_2-1b", "meta-llama/Llama-3.2-1B-Instruct", "llama3", "0.5"
    ),
    "ultravox-0.5-llama-3.1-8b": UltravoxVariant(
        "fixie-ai/ultravox-v0_5-llama-3_1-8b", "meta-llama/Llama-3.1-8B-Instruct", "llama3", "0.5"
    ),
    # the newest upstream release (ultravox/training/configs/v0.6_config_*.yaml): every backbone it was trained
    # on builds here (LlamaForCausalLM, Qwen3ForCausalLM, Gemma3ForConditionalGeneration's text decoder)
    "ultravox-0.6-llama-3.1-8b": UltravoxVariant(
        "fixie-ai/ultravox-v0_6-llama-3_1-8b", "meta-llama/Llama-3.1-8B-Instruct", "llama3", "0.6"
    ),
    "ultravox-0.6-llama-3.3-70b": UltravoxVariant(
        "fixie-ai/ultravox-v0_6-llama-3_3-70b", "meta-llama/Llama-3.3-70B-Instruct", "llama3", "0.6"
    ),
    "ultravox-0.6-gemma-3-27b": UltravoxVariant(
        "fixie-ai/ultravox-v0_6-gemma-3-27b", "google/gemma-3-27b-it", "gemma3", "0.6"
    ),
    "ultravox-0.6-qwen-3-32b": UltravoxVariant(
        "fixie-ai/ultravox-v0_6-qwen-3-32b", "Qwen/Qwen3-32B", "qwen3", "0.6"
    ),
}


class _RMSNorm(nn.Module):
    """RMSNorm with a constant initial weight (``norm_init``), computed in float32 like Llama's."""

    def __init__(self, dim: int, init: float = 1.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((dim,), float(init)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


class UltravoxProjector(nn.Module):
    """Frame stacking + norms + SwiGLU MLP; parameter names match ``multi_modal_projector.*``."""

    def __init__(
        self,
        *,
        audio_dim: int,
        text_dim: int,
        hidden_size: int,
        stack_factor: int,
        norm_init: float,
        act: str,
        ln_mid: bool,
    ) -> None:
        super().__init__()
        if act != "swiglu":
            raise UnsupportedModelError(
                f"Ultravox projector_act {act!r}: only 'swiglu' (v0.5) is implemented"
            )
        self.stack_factor = stack_factor
        dim_in = audio_dim * stack_factor
        dim_mid = hidden_size // 2
        self.ln_pre = _RMSNorm(dim_in, init=norm_init)
        self.linear_1 = nn.Linear(dim_in, hidden_size, bias=False)
        self.ln_mid: nn.Module = _RMSNorm(dim_mid, init=norm_init) if ln_mid else nn.Identity()
        self.linear_2 = nn.Linear(dim_mid, text_dim, bias=False)
        self.ln_post: nn.Module = nn.Identity() if ln_mid else _RMSNorm(text_dim, init=norm_init)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b, t, c = frames.shape
        pad = (-t) % self.stack_factor
        x = F.pad(frames, (0, 0, 0, pad)).reshape(b, (t + pad) // self.stack_factor, c * self.stack_factor)
        h = self.linear_1(self.ln_pre(x))
        x_half, gate = h.chunk(2, dim=-1)
        h = F.silu(gate) * x_half
        return self.ln_post(self.linear_2(self.ln_mid(h)))


def projector_from_config(cfg: dict[str, Any], *, audio_dim: int, text_dim: int) -> UltravoxProjector:
    """Projector sized from an Ultravox ``config.json`` (defaults as in the official config class)."""
    return UltravoxProjector(
        audio_dim=audio_dim,
        text_dim=text_dim,
        hidden_size=int(cfg.get("hidden_size", 4096)),
        stack_factor=int(cfg.get("stack_factor", 8)),
        norm_init=float(cfg.get("norm_init", 0.4)),
        act=str(cfg.get("projector_act", "swiglu")),
        ln_mid=bool(cfg.get("projector_ln_mid", False)),
    )


def text_decoder(language_model: nn.Module) -> nn.Module:
    """The text decoder (``layers``, ``norm``, ``embed_tokens``) of a causal LM: ``model`` for Llama and Qwen3,
    the text model inside Gemma 3's multimodal class."""
    getter = getattr(language_model, "get_decoder", None)
    candidates = [getter() if callable(getter) else None, getattr(language_model, "model", None)]
    for cand in candidates:
        for module in (cand, getattr(cand, "language_model", None)):
            if (
                isinstance(module, nn.Module)
                and isinstance(getattr(module, "layers", None), nn.ModuleList)
                and isinstance(getattr(module, "norm", None), nn.Module)
                and isinstance(getattr(module, "embed_tokens", None), nn.Module)
            ):
                return module
    raise UnsupportedModelError(
        f"{type(language_model).__name__}: no text decoder with layers, norm and embed_tokens found"
    )


class UltravoxLM(nn.Module):
    """Whisper encoder + projector + causal LM, with the official placeholder merge."""

    def __init__(
        self, audio_tower: nn.Module, projector: UltravoxProjector, language_model: nn.Module
    ) -> None:
        super().__init__()
        self.audio_tower = audio_tower
        self.multi_modal_projector = projector
        self.language_model = language_model

    @property
    def decoder(self) -> nn.Module:
        return text_decoder(self.language_model)

    @property
    def context_frames(self) -> int:
        """Mel frames the encoder takes at once (3000, 30 s, for Whisper)."""
        enc = self.audio_tower
        return int(enc.config.max_source_positions) * int(enc.conv1.stride[0]) * int(enc.conv2.stride[0])

    def encode(self, features: torch.Tensor, n_frames: int) -> torch.Tensor:
        """Audio embeddings of one chunk: ``features`` [1, mels, T <= context], ``n_frames`` real mel frames."""
        enc = self.audio_tower
        if features.shape[-1] > self.context_frames:
            raise PipelineError(
                f"Ultravox: a chunk of {features.shape[-1]} mel frames exceeds the encoder's {self.context_frames}"
            )
        features = features.to(enc.conv1.weight.dtype)
        h = F.gelu(enc.conv1(features))
        h = F.gelu(enc.conv2(h)).permute(0, 2, 1)
        h = h + enc.embed_positions.weight[: h.shape[1]]
        valid = (n_frames - 1) // 2 + 1
        keep = torch.arange(h.shape[1], device=h.device) < valid
        mask = torch.zeros((1, 1, h.shape[1], h.shape[1]), dtype=h.dtype, device=h.device)
        mask[..., ~keep] = torch.finfo(h.dtype).min
        for layer in enc.layers:
            out = layer(h, mask)
            h = out[0] if isinstance(out, tuple) else out
        h = enc.layer_norm(h)
        return self.multi_modal_projector(h)[0]


def chunk_features(
    features: torch.Tensor, n_frames: int, context: int, tokens_per_frame: int
) -> list[tuple[torch.Tensor, int, int]]:
    """``(features, real frames, placeholder tokens)`` per chunk of at most ``context`` mel frames, as the official
    processor cuts them: continuation chunks zero-padded to the full context, ``ceil(frames / tokens_per_frame)``
    tokens each."""
    chunks = []
    for offset in range(0, n_frames, context):
        chunk = features[..., offset : offset + context]
        if offset and chunk.shape[-1] < context:
            chunk = F.pad(chunk, (0, context - chunk.shape[-1]))
        frames = min(n_frames - offset, context)
        chunks.append((chunk, frames, math.ceil(frames / tokens_per_frame)))
    return chunks


class UltravoxAdapter(ModelAdapter):
    """Ultravox (Whisper encoder + projector + Llama / Qwen3 / Gemma 3) for latent extraction."""

    def __init__(self, name: str, variant: UltravoxVariant) -> None:
        super().__init__()
        self.variant = variant
        self.hub_id, self.text_model_id = variant.hub_id, variant.text_model_id
        self.spec = ModelSpec(
            name=name,
            kind="lalm",
            family="ultravox",
            hub_id=variant.hub_id,
            revision=locked_revision(variant.hub_id),
            modalities=("text", "speech"),
            languages=None,
            weights_source=f"hub:{variant.hub_id}",
            description=f"Ultravox v{variant.version}: Whisper encoder (fine-tuned, in the checkpoint) + projector "
            f"+ {variant.text_model_id}",
            notes=(
                f"template instruction {INSTRUCTION!r}",
                "re-implemented on transformers 5 from the official layout; parity_check() compares it with the "
                "official code",
                f"also loads {variant.text_model_id} and {AUDIO_MODEL_ID}'s feature extractor (locked separately)",
            ),
        )
        self.chat = BACKBONE_CHATS[variant.backbone]
        self.templates = chat_templates(name, self.chat)
        self.model: UltravoxLM | None = None
        self.tokenizer: Any = None
        self.feature_extractor: Any = None
        self.stack_factor = 8
        self.encoder_ds = 2
        self.template_check = "not loaded"

    def availability(self) -> Availability:
        if self.model is not None:  # attached in this process (built or loaded already): nothing to fetch
            return Availability(True, f"{self.spec.name} is attached in this process")
        for repo in (self.hub_id, AUDIO_MODEL_ID, self.text_model_id):
            found = cached_availability(repo, locked_revision(repo))
            if not found.available:
                return found
        return Availability(True, f"{self.hub_id} and its encoder and LLM are in the local HF cache")

    def processor_config(self) -> dict[str, Any]:
        fe = self.feature_extractor.to_dict() if self.feature_extractor is not None else {}
        return {
            "feature_extractor": {k: v for k, v in fe.items() if not k.startswith("mel_filters")},
            "stack_factor": self.stack_factor,
            "encoder_ds": self.encoder_ds,
            "placeholder": PLACEHOLDER,
            "chunking": "official: context-size chunks, continuation zero-padded",
            "vocab_size": len(self.tokenizer) if self.tokenizer is not None else None,
        }

    # ---- loading -----------------------------------------------------------------------------
    def load(self, device: torch.device, dtype: torch.dtype) -> None:
        import transformers

        kw = revision_kwargs(self.spec.revision)
        cfg_path = load_or_unavailable(self.hub_id, lambda: fetch_file(self.hub_id, "config.json", kw))
        cfg = json.loads(Path(cfg_path).read_text())
        if cfg.get("audio_latency_block_size"):
            raise UnsupportedModelError(
                f"{self.spec.name}: audio_latency_block_size={cfg['audio_latency_block_size']} (streaming mask) "
                "is not re-implemented"
            )
        audio_id = cfg.get("audio_model_id")
        audio_cfg = dict(cfg.get("audio_config") or {})
        fe_id = audio_id or audio_cfg.get("_name_or_path") or AUDIO_MODEL_ID
        fkw = revision_kwargs(locked_revision(fe_id))
        if audio_id:
            whisper = load_or_unavailable(
                audio_id, lambda: transformers.WhisperModel.from_pretrained(audio_id, dtype=dtype, **fkw)
            )
            tower = whisper.encoder
        else:
            from transformers.models.whisper.modeling_whisper import WhisperEncoder

            tower = WhisperEncoder(transformers.WhisperConfig(**_config_fields(audio_cfg, "model_type")))
        text_id = cfg.get("text_model_id")
        if text_id:
            tkw = revision_kwargs(locked_revision(text_id))
            llm = load_or_unavailable(
                text_id,
                lambda: transformers.AutoModelForCausalLM.from_pretrained(text_id, dtype=dtype, **tkw),
            )
        else:
            text_cfg = dict(cfg.get("text_config") or {})
            model_type = text_cfg.get("model_type", "llama")
            llm = transformers.AutoModelForCausalLM.from_config(
                transformers.AutoConfig.for_model(model_type, **_config_fields(text_cfg, "model_type"))
            )
        fe = load_or_unavailable(
            fe_id, lambda: transformers.WhisperFeatureExtractor.from_pretrained(fe_id, **fkw)
        )
        tok = load_or_unavailable(
            self.hub_id, lambda: transformers.AutoTokenizer.from_pretrained(self.hub_id, **kw)
        )
        text_dim = int(text_decoder(llm).embed_tokens.weight.shape[1])
        projector = projector_from_config(cfg, audio_dim=int(tower.config.d_model), text_dim=text_dim)
        model = UltravoxLM(tower, projector, llm)
        state = read_checkpoint(self.hub_id, kw)
        load_checkpoint(model, state, audio_in_checkpoint=not audio_id, text_in_checkpoint=not text_id)
        self.attach(
            model.to(device=device, dtype=dtype),
            tok,
            fe,
            stack_factor=int(cfg.get("stack_factor", 8)),
            device=device,
            dtype=dtype,
        )

    def attach(
        self,
        model: UltravoxLM,
        tokenizer: Any,
        feature_extractor: Any,
        *,
        stack_factor: int,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        """Use a built model; the prompt strings come from ``tokenizer``'s own chat template (date pinned) and
        must equal the catalogue's declared ones."""
        if tokenizer.eos_token_id is None:
            raise UnsupportedModelError(
                f"{self.spec.name}: tokenizer has no eos token (the audio placeholder id)"
            )
        prefix, suffix = render_user_turn(tokenizer, owner=self.spec.name, date_string=PINNED_DATE)
        if (prefix, suffix) != (self.chat.prefix, self.chat.suffix):
            raise PipelineError(
                f"{self.spec.name}: the tokenizer's chat template renders a user turn as {prefix!r} + content + "
                f"{suffix!r}; the catalogue declares {self.chat.prefix!r} + content + {self.chat.suffix!r}"
            )
        self.template_check = f"verified: rendered from the tokenizer's chat template (date {PINNED_DATE})"
        self.model, self.tokenizer, self.feature_extractor = model.eval(), tokenizer, feature_extractor
        self.stack_factor, self.device, self.dtype = stack_factor, device, dtype

    def unload(self) -> None:
        self.model = None

    @property
    def num_blocks(self) -> int:
        return len(self.layer_handles().blocks)

    def layer_handles(self) -> LayerHandles:
        if self.model is None:
            raise PipelineError(f"model {self.spec.name!r} is not loaded; call load() first")
        dec = self.model.decoder
        return LayerHandles(blocks=list(dec.layers), final_norm=dec.norm)

    # ---- inputs ------------------------------------------------------------------------------
    @property
    def placeholder_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    def _tokens(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def asr_template(self) -> Template:
        suffix = "\nTranscribe the audio." + self.chat.suffix
        return Template("asr", "speech", self.chat.prefix, suffix, self.chat.prefix + "{audio}" + suffix)

    def prepare(self, sample: Sample, waveform: np.ndarray | None, template: str) -> PreparedInput:
        return self.prepare_with(sample, waveform, self.template(template, sample.modality))

    def prepare_with(self, sample: Sample, waveform: np.ndarray | None, tpl: Template) -> PreparedInput:
        if self.tokenizer is None or self.model is None:
            raise PipelineError(f"model {self.spec.name!r} is not loaded; call load() first")
        tensors: dict[str, Any] = {}
        audio_key = None
        if sample.modality == "speech":
            wave = check_waveform(sample.id, waveform)
            hop = self.feature_extractor.hop_length
            if wave.shape[0] < 2 * hop:  # the official processor pads to two hops minimum
                wave = np.pad(wave, (0, 2 * hop - wave.shape[0]))
            feats = self.feature_extractor(
                wave,
                sampling_rate=SAMPLE_RATE,
                padding="longest",
                pad_to_multiple_of=hop,
                truncation=False,
                return_attention_mask=True,
                return_tensors="pt",
            )
            if "input_features" not in feats:
                raise PipelineError(f"sample {sample.id!r}: feature extractor returned no input_features")
            n_frames = int(feats["attention_mask"].sum())
            chunks = chunk_features(
                feats["input_features"],
                n_frames,
                self.model.context_frames,
                self.encoder_ds * self.stack_factor,
            )
            n_tokens = sum(tokens for _, _, tokens in chunks)
            head = self._tokens(tpl.prefix)
            ids = [*head, *([self.placeholder_id] * n_tokens), *self._tokens(tpl.suffix)]
            tensors.update(chunks=chunks, audio_start=len(head), n_audio_tokens=n_tokens)
            span = (len(head), len(head) + n_tokens)
            audio_key = sha256_waveform(wave)
        else:
            if waveform is not None:
                raise PipelineError(f"sample {sample.id!r}: modality 'text' but a waveform was given")
            if PLACEHOLDER in sample.text:
                raise PipelineError(
                    f"sample {sample.id!r}: text contains the audio placeholder {PLACEHOLDER!r}"
                )
            ids = self._tokens(tpl.prefix + sample.text + tpl.suffix)
            span = self._text_span(sample, tpl, ids)
        id_tensor = torch.tensor(ids, dtype=torch.long)
        key_material = {
            "input_ids": sha256_ints(id_tensor),
            "processor_config": sha256_json(self.processor_config()),
            "template": sha256_json({"name": tpl.name, "prefix": tpl.prefix, "suffix": tpl.suffix}),
        }
        if audio_key:
            key_material["waveform"] = audio_key
        tensors["input_ids"] = id_tensor
        return PreparedInput(
            sample_id=sample.id,
            modality=sample.modality,
            length=len(ids),
            last_token_id=ids[-1],
            tensors=tensors,
            key_material=key_material,
            audio_key=audio_key,
            content_span=span,
        )

    def _text_span(self, sample: Sample, tpl: Template, ids: list[int]) -> tuple[int, int]:
        head, upto = self._tokens(tpl.prefix), self._tokens(tpl.prefix + sample.text)
        if ids[: len(head)] != head or ids[: len(upto)] != upto or len(upto) <= len(head):
            raise PipelineError(
                f"sample {sample.id!r}: the text's tokens merge with the {tpl.name!r} template's around them"
            )
        if tpl.name == "bare" and len(upto) != len(ids):
            raise PipelineError(
                f"sample {sample.id!r}: under 'bare' the input must end on the text's last token"
            )
        return len(head), len(upto)

    def audio_embedding_counts(self, item: PreparedInput) -> tuple[int, int]:
        """(placeholders, audio embeddings written over them) for one prepared clip (``lalm-bench check``)."""
        assert self.model is not None
        written = 0
        with torch.no_grad():
            for feats, frames, tokens in item.tensors["chunks"]:
                written += min(
                    tokens, int(self.model.encode(feats.to(self.device or "cpu"), frames).shape[0])
                )
        return int(item.tensors["n_audio_tokens"]), written

    def collate(self, items: list[PreparedInput]) -> Batch:
        if not items:
            raise ValueError("collate: empty list of prepared inputs")
        ids, mask = right_pad([it.tensors["input_ids"] for it in items], self.placeholder_id)
        device = self.device or torch.device("cpu")
        audio = [
            (row, it.audio_key, it.tensors["chunks"], it.tensors["audio_start"], it.tensors["n_audio_tokens"])
            for row, it in enumerate(items)
            if it.modality == "speech"
        ]
        return Batch(
            model_kwargs={"input_ids": ids.to(device), "attention_mask": mask.to(device)},
            last_positions=last_real_positions(mask).to(device),
            sample_ids=[it.sample_id for it in items],
            extras={"audio": audio},
            content_spans=[it.content_span for it in items],
        )

    def clip_embeddings(
        self, chunks: list[tuple[torch.Tensor, int, int]], device: torch.device
    ) -> torch.Tensor:
        """One clip's audio embeddings: each chunk encoded alone, its first ``tokens`` rows, concatenated."""
        assert self.model is not None
        parts = []
        for feats, frames, tokens in chunks:
            out = self.model.encode(feats.to(device), frames)
            if out.shape[0] < tokens:
                raise PipelineError(f"Ultravox: {out.shape[0]} audio embeddings for {tokens} placeholders")
            parts.append(out[:tokens])
        return torch.cat(parts)

    def merged_embeddings(self, batch: Batch) -> torch.Tensor:
        """Token embeddings with each clip's projected audio written over its placeholder run."""
        assert self.model is not None
        embeds = self.model.decoder.embed_tokens(batch.model_kwargs["input_ids"])
        for row, key, chunks, start, n_tokens in batch.extras.get("audio", []):
            audio = self.encoder_cache.get_or_compute(
                f"{key}:{self.spec.name}",
                lambda chunks=chunks: self.clip_embeddings(chunks, embeds.device),
            )
            if audio.shape[0] != n_tokens:
                raise PipelineError(
                    f"Ultravox: {audio.shape[0]} audio embeddings for {n_tokens} placeholders"
                )
            embeds[row, start : start + n_tokens] = audio.to(embeds.dtype)
        return embeds

    def forward(self, batch: Batch) -> None:
        if self.model is None:
            raise PipelineError(f"model {self.spec.name!r} is not loaded; call load() first")
        with torch.no_grad():
            embeds = self.merged_embeddings(batch)
            self.model.decoder(
                inputs_embeds=embeds, attention_mask=batch.model_kwargs["attention_mask"], use_cache=False
            )

    def hidden_states(self, batch: Batch) -> tuple[torch.Tensor, ...]:
        """transformers' ``hidden_states`` of the text decoder on the merged embeddings (``lalm-bench check``)."""
        assert self.model is not None
        with torch.no_grad():
            out = self.model.decoder(
                inputs_embeds=self.merged_embeddings(batch),
                attention_mask=batch.model_kwargs["attention_mask"],
                output_hidden_states=True,
                use_cache=False,
            )
        return tuple(out.hidden_states)

    def transcribe(self, waveform: np.ndarray, language: str = "en", max_new_tokens: int = 64) -> str:
        """Greedy transcript of one clip (the LM head runs: pre-flight only)."""
        if self.model is None:
            raise PipelineError(f"model {self.spec.name!r} is not loaded; call load() first")
        sample = Sample(id="transcribe", modality="speech", text="-", audio_path="-", language=language)
        batch = self.collate([self.prepare_with(sample, waveform, self.asr_template())])
        with torch.no_grad():
            out = self.model.language_model.generate(
                inputs_embeds=self.merged_embeddings(batch),
                attention_mask=batch.model_kwargs["attention_mask"],
                max_new_tokens=max_new_tokens,
                do_sample=False,
            )
        return str(self.tokenizer.decode(out[0].tolist(), skip_special_tokens=True)).strip()


def _config_fields(config: dict[str, Any], *drop: str) -> dict[str, Any]:
    """A saved sub-config without the bookkeeping keys transformers rejects when rebuilding it."""
    skip = {"transformers_version", *drop}
    return {k: v for k, v in config.items() if not k.startswith("_") and k not in skip}


def fetch_file(repo: str, filename: str, kwargs: dict[str, Any]) -> str:
    """Path of ``filename`` in a hub repo (through the HF cache) or in a local checkpoint folder."""
    from huggingface_hub import hf_hub_download

    folder = Path(repo)
    if folder.is_dir():
        path = folder / filename
        if not path.is_file():
            raise OSError(f"{filename} not found in the local checkpoint folder {folder}")
        return str(path)
    return str(hf_hub_download(repo, filename, **kwargs))


def read_checkpoint(hub_id: str, kwargs: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Every tensor of an Ultravox checkpoint: ``model.safetensors``, or the shards its
    ``model.safetensors.index.json`` lists (all of them, each once)."""
    from safetensors.torch import load_file

    try:
        index_path: str | None = fetch_file(hub_id, "model.safetensors.index.json", kwargs)
    except Exception:  # no index: a single-file checkpoint (a missing repo fails below with a clear message)
        index_path = None
    if index_path is None:
        single = load_or_unavailable(hub_id, lambda: fetch_file(hub_id, "model.safetensors", kwargs))
        return load_file(single)
    weight_map = json.loads(Path(index_path).read_text()).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise UnsupportedModelError(f"{hub_id}: model.safetensors.index.json has no weight_map")
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        path = load_or_unavailable(hub_id, lambda shard=shard: fetch_file(hub_id, shard, kwargs))
        state.update(load_file(path))
    missing = sorted(set(weight_map) - set(state))
    if missing:
        raise UnsupportedModelError(f"{hub_id}: the index lists tensors no shard holds: {missing[:8]}")
    return state


def load_checkpoint(
    model: UltravoxLM,
    state: dict[str, torch.Tensor],
    *,
    audio_in_checkpoint: bool,
    text_in_checkpoint: bool = False,
) -> None:
    """Copy an official checkpoint's tensors in, loudly.

    Unknown keys are an error (an unmerged LoRA, another layout); the projector must be complete; the audio tower
    must be complete when the config says it lives in the checkpoint (``audio_model_id`` null: its LoRA was merged
    before saving, as in 0.5 and 0.6) or when the checkpoint holds any of it (a partial tower would mix tuned and
    untuned weights); the same for the language model."""
    own = model.state_dict()
    unknown = sorted(k for k in state if k not in own)
    if unknown:
        raise UnsupportedModelError(f"Ultravox checkpoint has keys this layout does not know: {unknown[:8]}")
    for part, required in (
        ("multi_modal_projector.", True),
        ("audio_tower.", audio_in_checkpoint),
        ("language_model.", text_in_checkpoint),
    ):
        expected = {k for k in own if k.startswith(part)}
        present = {k for k in state if k.startswith(part)}
        if (required or present) and expected - present:
            missing = sorted(expected - present)
            why = "the config says they live in the checkpoint" if required and not present else "partial"
            raise UnsupportedModelError(
                f"Ultravox checkpoint lacks {len(missing)} of {len(expected)} {part}* weights ({why}), e.g. "
                f"{missing[:4]}; refusing to run those parts untuned"
            )
    model.load_state_dict(state, strict=False)


PARITY_REFERENCE_SCRIPT = """\
# The official Ultravox code path, run where it runs (transformers 4.x, with hub access or the checkpoint cached):
#   python reference.py HUB_ID REVISION CONTENT AUDIO.npy DATE OUT.npz
import sys

import numpy as np
import torch
import transformers

hub_id, revision, content, audio, date, out = sys.argv[1:7]
kwargs = {"trust_remote_code": True} | ({} if revision == "unresolved" else {"revision": revision})
model = transformers.AutoModel.from_pretrained(hub_id, **kwargs).eval()
processor = transformers.AutoProcessor.from_pretrained(hub_id, **kwargs)
turns = [{"role": "user", "content": content}]
prompt = processor.tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=False, date_string=date)
inputs = processor(text=prompt, audio=np.load(audio), sampling_rate=16000)
with torch.no_grad():
    result = model(**inputs, output_hidden_states=True)
np.savez(out, input_ids=inputs["input_ids"].numpy(),
         **{f"h{i}": h[0].float().numpy() for i, h in enumerate(result.hidden_states)})
"""


def parity_check(
    adapter: UltravoxAdapter,
    reference: Path,
    prompt_sample: Sample,
    waveform: np.ndarray | None,
    *,
    template: str = "shared-suffix",
    rtol: float = 1e-2,
) -> dict[str, float]:
    """Compare our hidden states with the official code's (saved by ``PARITY_REFERENCE_SCRIPT``, or by any
    run of the official ``UltravoxModel`` as an ``.npz`` of ``input_ids`` and ``h0..hL``).

    Returns the max relative error per layer; raises ``PipelineError`` when the input ids differ or any layer
    exceeds ``rtol``."""
    ref = np.load(reference)
    item = adapter.prepare(prompt_sample, waveform, template)
    ours_ids = item.tensors["input_ids"].numpy()
    theirs_ids = ref["input_ids"].reshape(-1)
    if not np.array_equal(theirs_ids, ours_ids):
        raise PipelineError(
            f"Ultravox parity: input ids differ from the official processor's ({len(theirs_ids)} vs "
            f"{len(ours_ids)} ids; first difference at {_first_difference(theirs_ids, ours_ids)})"
        )
    states = adapter.hidden_states(adapter.collate([item]))
    errors = {}
    for i, h in enumerate(states):
        ours, theirs = h[0].float().cpu().numpy(), ref[f"h{i}"]
        errors[f"h{i}"] = float(np.abs(ours - theirs).max() / (np.abs(theirs).max() + 1e-12))
    bad = {k: v for k, v in errors.items() if v > rtol}
    if bad:
        raise PipelineError(f"Ultravox parity failed (relative error > {rtol}): {bad}")
    return errors


def _first_difference(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if diff.size else n


def build_ultravox(name: str) -> UltravoxAdapter:
    try:
        variant = VARIANTS[name]
    except KeyError:
        raise UnsupportedModelError(f"no Ultravox variant {name!r}; known: {sorted(VARIANTS)}") from None
    return UltravoxAdapter(name, variant)
