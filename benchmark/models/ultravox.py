"""Ultravox 0.5 on transformers 5, built from the official checkpoint layout.

Why not ``trust_remote_code``: the official ``ultravox_model.py`` imports transformers-4 internals and does
not run on transformers 5, which the rest of the suite needs. So this module rebuilds the model from its
parts, following the official code (fixie-ai/ultravox, ``ultravox/model/ultravox_model.py`` and
``ultravox_processing.py``), written anew here:

- audio tower: the Whisper encoder of ``config.audio_model_id`` (whisper-large-v3-turbo for 0.5), run on
  unpadded mel features (``padding="longest"``, at most 3000 frames) with position embeddings sliced to the
  length and self-attention masked beyond the clip's frames, as the official modified encoder does;
- projector (``multi_modal_projector.*`` in the checkpoint): stack ``stack_factor`` frames (zero-pad to a
  multiple), RMSNorm(``norm_init``) -> Linear(no bias) -> SwiGLU (``silu(gate) * x``, gate = second half)
  -> RMSNorm (``projector_ln_mid``, v0.5) -> Linear(no bias); v0.4-style ``ln_post`` is supported too;
- language model: the Llama of ``config.text_model_id``;
- placeholder: ``<|audio|>`` in the prompt is replaced by ``ceil(frames / (2 * stack_factor))`` copies of the
  tokenizer's eos id, and the projected audio embeddings overwrite those positions.

The checkpoint's ``model.safetensors`` may also hold ``audio_tower.*`` / ``language_model.*`` (merged LoRA);
they override the base weights, and unknown keys are an error. Each clip is encoded alone (keyed by its
audio hash in the encoder cache), so a latent never depends on its batch neighbours.

``parity_check`` compares this implementation with the official remote code. It cannot run here (no hub,
no transformers 4); on a machine with both, produce the reference with ``PARITY_REFERENCE_SCRIPT`` in a
transformers-4 environment, then call ``parity_check`` in this one.
"""

from __future__ import annotations

import json
import math
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
)
from benchmark.models.chat_templates import ChatFormat, chat_templates
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

_LLAMA_SYS = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
    "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
)
LLAMA3_CHAT = ChatFormat(
    prefix=_LLAMA_SYS + "<|start_header_id|>user<|end_header_id|>\n\n",
    speech=PLACEHOLDER,
    suffix="<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    bare_prefix="<|begin_of_text|>",
    note="Llama-3.1 chat format with its default system block and a fixed date (3.2's template would insert today's)",
)

VARIANTS = {
    "ultravox-0.5-llama-3.2-1b": ("fixie-ai/ultravox-v0_5-llama-3_2-1b", "meta-llama/Llama-3.2-1B-Instruct"),
    "ultravox-0.5-llama-3.1-8b": ("fixie-ai/ultravox-v0_5-llama-3_1-8b", "meta-llama/Llama-3.1-8B-Instruct"),
}
AUDIO_MODEL_ID = "openai/whisper-large-v3-turbo"


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


class UltravoxLM(nn.Module):
    """Whisper encoder + projector + Llama, with the official placeholder merge."""

    def __init__(
        self, audio_tower: nn.Module, projector: UltravoxProjector, language_model: nn.Module
    ) -> None:
        super().__init__()
        self.audio_tower = audio_tower
        self.multi_modal_projector = projector
        self.language_model = language_model

    @property
    def decoder(self) -> nn.Module:
        return self.language_model.model

    def encode(self, features: torch.Tensor, n_frames: int) -> torch.Tensor:
        """Audio embeddings of one clip: ``features`` [1, mels, T], ``n_frames`` real mel frames."""
        enc = self.audio_tower
        max_frames = enc.config.max_source_positions * enc.conv1.stride[0] * enc.conv2.stride[0]
        if features.shape[-1] > max_frames:
            raise PipelineError(
                f"Ultravox: clip has {features.shape[-1]} mel frames, the encoder takes at most "
                f"{max_frames} (30 s); longer clips are not supported by this adapter"
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


class UltravoxAdapter(ModelAdapter):
    """Ultravox 0.5 (Whisper-large-v3-turbo + Llama-3.x) for latent extraction."""

    def __init__(self, name: str, hub_id: str, text_model_id: str) -> None:
        super().__init__()
        self.hub_id, self.text_model_id = hub_id, text_model_id
        self.spec = ModelSpec(
            name=name,
            kind="lalm",
            family="ultravox",
            hub_id=hub_id,
            revision=locked_revision(hub_id),
            modalities=("text", "speech"),
            languages=None,
            weights_source=f"hub:{hub_id}",
            description=f"Ultravox v0.5: {AUDIO_MODEL_ID} encoder + projector + {text_model_id}",
            notes=(
                f"template instruction {INSTRUCTION!r}",
                "reimplemented on transformers 5 from the official layout; parity_check() needs hub + transformers 4",
                f"also loads {AUDIO_MODEL_ID} and {text_model_id} (locked separately)",
            ),
        )
        self.templates = chat_templates(name, LLAMA3_CHAT)
        self.model: UltravoxLM | None = None
        self.tokenizer: Any = None
        self.feature_extractor: Any = None
        self.stack_factor = 8
        self.encoder_ds = 2

    def availability(self) -> Availability:
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
            "vocab_size": len(self.tokenizer) if self.tokenizer is not None else None,
        }

    # ---- loading -----------------------------------------------------------------------------
    def load(self, device: torch.device, dtype: torch.dtype) -> None:
        import transformers
        from huggingface_hub import hf_hub_download
        from safetensors.torch import load_file

        kw = revision_kwargs(self.spec.revision)
        cfg_path = load_or_unavailable(self.hub_id, lambda: hf_hub_download(self.hub_id, "config.json", **kw))
        cfg = json.loads(Path(cfg_path).read_text())
        audio_id = cfg.get("audio_model_id") or AUDIO_MODEL_ID
        text_id = cfg.get("text_model_id") or self.text_model_id
        akw, tkw = revision_kwargs(locked_revision(audio_id)), revision_kwargs(locked_revision(text_id))
        whisper = load_or_unavailable(
            audio_id, lambda: transformers.WhisperModel.from_pretrained(audio_id, dtype=dtype, **akw)
        )
        llm = load_or_unavailable(
            text_id, lambda: transformers.AutoModelForCausalLM.from_pretrained(text_id, dtype=dtype, **tkw)
        )
        fe = load_or_unavailable(
            audio_id, lambda: transformers.WhisperFeatureExtractor.from_pretrained(audio_id, **akw)
        )
        tok = load_or_unavailable(
            self.hub_id, lambda: transformers.AutoTokenizer.from_pretrained(self.hub_id, **kw)
        )
        projector = projector_from_config(
            cfg, audio_dim=whisper.config.d_model, text_dim=llm.config.hidden_size
        )
        model = UltravoxLM(whisper.encoder, projector, llm)
        weights = load_or_unavailable(
            self.hub_id, lambda: hf_hub_download(self.hub_id, "model.safetensors", **kw)
        )
        load_checkpoint(model, load_file(weights))
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
        if tokenizer.eos_token_id is None:
            raise UnsupportedModelError(
                f"{self.spec.name}: tokenizer has no eos token (the audio placeholder id)"
            )
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
    def _tokens(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prepare(self, sample: Sample, waveform: np.ndarray | None, template: str) -> PreparedInput:
        if self.tokenizer is None:
            raise PipelineError(f"model {self.spec.name!r} is not loaded; call load() first")
        tpl = self.template(template, sample.modality)
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
            n_tokens = math.ceil(n_frames / (self.encoder_ds * self.stack_factor))
            head = self._tokens(tpl.prefix)
            ids = [*head, *([self.tokenizer.eos_token_id] * n_tokens), *self._tokens(tpl.suffix)]
            tensors.update(
                input_features=feats["input_features"],
                n_frames=n_frames,
                audio_start=len(head),
                n_audio_tokens=n_tokens,
            )
            audio_key = sha256_waveform(wave)
        else:
            if waveform is not None:
                raise PipelineError(f"sample {sample.id!r}: modality 'text' but a waveform was given")
            if PLACEHOLDER in sample.text:
                raise PipelineError(
                    f"sample {sample.id!r}: text contains the audio placeholder {PLACEHOLDER!r}"
                )
            ids = self._tokens(tpl.prefix + sample.text + tpl.suffix)
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
        )

    def collate(self, items: list[PreparedInput]) -> Batch:
        if not items:
            raise ValueError("collate: empty list of prepared inputs")
        ids, mask = right_pad([it.tensors["input_ids"] for it in items], int(self.tokenizer.eos_token_id))
        device = self.device or torch.device("cpu")
        audio = [
            (
                row,
                it.audio_key,
                it.tensors["input_features"],
                it.tensors["n_frames"],
                it.tensors["audio_start"],
                it.tensors["n_audio_tokens"],
            )
            for row, it in enumerate(items)
            if it.modality == "speech"
        ]
        return Batch(
            model_kwargs={"input_ids": ids.to(device), "attention_mask": mask.to(device)},
            last_positions=last_real_positions(mask).to(device),
            sample_ids=[it.sample_id for it in items],
            extras={"audio": audio},
        )

    def merged_embeddings(self, batch: Batch) -> torch.Tensor:
        """Token embeddings with each clip's projected audio written over its placeholder run."""
        assert self.model is not None
        embeds = self.model.decoder.embed_tokens(batch.model_kwargs["input_ids"])
        for row, key, feats, n_frames, start, n_tokens in batch.extras.get("audio", []):
            audio = self.encoder_cache.get_or_compute(
                f"{key}:{self.spec.name}",
                lambda feats=feats, n_frames=n_frames: self.model.encode(feats.to(embeds.device), n_frames),
            )
            if audio.shape[0] < n_tokens:
                raise PipelineError(
                    f"Ultravox: {audio.shape[0]} audio embeddings for {n_tokens} placeholders"
                )
            embeds[row, start : start + n_tokens] = audio[:n_tokens].to(embeds.dtype)
        return embeds

    def forward(self, batch: Batch) -> None:
        if self.model is None:
            raise PipelineError(f"model {self.spec.name!r} is not loaded; call load() first")
        with torch.no_grad():
            embeds = self.merged_embeddings(batch)
            self.model.decoder(
                inputs_embeds=embeds, attention_mask=batch.model_kwargs["attention_mask"], use_cache=False
            )


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


def load_checkpoint(model: UltravoxLM, state: dict[str, torch.Tensor]) -> None:
    """Copy an official checkpoint's tensors in; the projector must be complete, unknown keys are an error."""
    own = model.state_dict()
    unknown = sorted(k for k in state if k not in own)
    if unknown:
        raise UnsupportedModelError(f"Ultravox checkpoint has keys this layout does not know: {unknown[:8]}")
    proj = {k for k in own if k.startswith("multi_modal_projector.")}
    missing = sorted(proj - set(state))
    if missing:
        raise UnsupportedModelError(f"Ultravox checkpoint lacks projector weights {missing}")
    model.load_state_dict(state, strict=False)


PARITY_REFERENCE_SCRIPT = """\
# run in a transformers 4.x environment with hub access
import numpy as np, torch, transformers
pipe = transformers.pipeline(model=HUB_ID, trust_remote_code=True, revision=REVISION)
inputs = pipe.processor(text=PROMPT, audio=AUDIO, sampling_rate=16000)
with torch.no_grad():
    out = pipe.model(**{k: v.to(pipe.model.device) for k, v in inputs.items()}, output_hidden_states=True)
np.savez(OUT, input_ids=inputs["input_ids"].numpy(), **{f"h{i}": h[0].float().cpu().numpy() for i, h in enumerate(out.hidden_states)})
"""


def parity_check(
    adapter: UltravoxAdapter,
    reference: Path,
    prompt_sample: Sample,
    waveform: np.ndarray,
    *,
    rtol: float = 1e-2,
) -> dict[str, float]:
    """Compare our hidden states with the official remote code's (saved by ``PARITY_REFERENCE_SCRIPT``).

    Cannot run on this machine (no hub, no transformers 4). Returns the max relative error per layer and
    raises ``PipelineError`` when the input ids differ or any layer exceeds ``rtol``."""
    ref = np.load(reference)
    item = adapter.prepare(prompt_sample, waveform, "shared-suffix")
    if not np.array_equal(ref["input_ids"].reshape(-1), item.tensors["input_ids"].numpy()):
        raise PipelineError("Ultravox parity: input ids differ from the official processor's")
    batch = adapter.collate([item])
    assert adapter.model is not None
    with torch.no_grad():
        out = adapter.model.decoder(
            inputs_embeds=adapter.merged_embeddings(batch),
            attention_mask=batch.model_kwargs["attention_mask"],
            output_hidden_states=True,
        )
    errors = {}
    for i, h in enumerate(out.hidden_states):
        ours, theirs = h[0].float().cpu().numpy(), ref[f"h{i}"]
        errors[f"h{i}"] = float(np.abs(ours - theirs).max() / (np.abs(theirs).max() + 1e-12))
    bad = {k: v for k, v in errors.items() if v > rtol}
    if bad:
        raise PipelineError(f"Ultravox parity failed (relative error > {rtol}): {bad}")
    return errors


def build_ultravox(name: str) -> UltravoxAdapter:
    try:
        hub_id, text_id = VARIANTS[name]
    except KeyError:
        raise UnsupportedModelError(f"no Ultravox variant {name!r}; known: {sorted(VARIANTS)}") from None
    return UltravoxAdapter(name, hub_id, text_id)
