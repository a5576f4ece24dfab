"""A tiny audio-language model adapter for fast engine tests. SYNTHETIC: random weights, byte tokenizer, and an
"audio encoder" that is a fixed random projection of 20-ms frames (not speech processing).

It has what the engine must handle: two templates (``bare`` and ``shared-suffix``), text and speech, audio
embeddings merged over a run of placeholder tokens (so speech has a content span), an encoder behind the
adapter's ``encoder_cache`` that counts its runs, both padding sides, and switches to give no content span
(``give_spans``) or no batch spans (``batch_spans``), as a hub adapter not yet given spans would.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

from benchmark.core.hashing import sha256_waveform
from benchmark.core.schema import ProbeSet, Sample
from benchmark.models.base import (
    Availability,
    Batch,
    LayerHandles,
    ModelAdapter,
    ModelSpec,
    PreparedInput,
    Template,
)
from benchmark.models.padding import pad_rows

VOCAB = 300
BOS, PAD, AUDIO, COLON = 1, 0, 2, 3 + ord(":")
FRAME = 320  # 20 ms at 16 kHz
HIDDEN = 32


class TinyAudioLM(ModelAdapter):
    """A 2-block random Llama over byte ids with placeholder-merged audio. SYNTHETIC (seed 0)."""

    prepares_without_weights = True

    def __init__(
        self, *, give_spans: bool = True, batch_spans: bool = True, padding_side: str = "right"
    ) -> None:
        super().__init__()
        self.give_spans, self.batch_spans, self.padding_side = give_spans, batch_spans, padding_side
        self.spec = ModelSpec(
            name="tiny-audio-lm-test",
            kind="lalm",
            family="test",
            hub_id=None,
            revision="seed0",
            modalities=("text", "speech"),
            languages=None,
            weights_source="random",
            description="test only (SYNTHETIC)",
        )
        self.templates = {
            "bare": {
                "text": Template("bare", "text", "", "", "<bos>{text}"),
                "speech": Template("bare", "speech", "", "", "<bos>{audio}"),
            },
            "shared-suffix": {
                "text": Template("shared-suffix", "text", "", ":", "<bos>{text}:"),
                "speech": Template("shared-suffix", "speech", "", ":", "<bos>{audio}:"),
            },
        }
        self.model: Any = None
        self.projection: torch.Tensor | None = None
        self.encoder_runs: list[str] = []

    def availability(self) -> Availability:
        return Availability(True, "random weights")

    @property
    def num_blocks(self) -> int:
        return 2

    def load(self, device: torch.device, dtype: torch.dtype) -> None:
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(0)
        config = LlamaConfig(
            vocab_size=VOCAB,
            hidden_size=HIDDEN,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
        )
        self.model = LlamaForCausalLM(config).to(device=device, dtype=dtype).eval()
        self.projection = torch.randn(FRAME, HIDDEN, generator=torch.Generator().manual_seed(1)).to(
            device, dtype
        )
        self.device, self.dtype = torch.device(device), dtype

    def encoder_fingerprint(self) -> str | None:
        """The projection's seed, dtype and device type decide the "encoder" output."""
        if self.dtype is None or self.device is None:
            return None
        return hashlib.sha256(f"seed1-{self.dtype}-{self.device.type}".encode()).hexdigest()

    def layer_handles(self) -> LayerHandles:
        return LayerHandles(blocks=list(self.model.model.layers), final_norm=self.model.model.norm)

    def prepare(self, sample: Sample, waveform: np.ndarray | None, template: str) -> PreparedInput:
        self.template(template, sample.modality)
        suffix = [COLON] if template == "shared-suffix" else []
        if sample.modality == "speech":
            assert waveform is not None
            frames = len(waveform) // FRAME
            content = [AUDIO] * frames
            audio_key = sha256_waveform(waveform)
            tensors: dict[str, Any] = {"waveform": waveform}
        else:
            content = [b + 3 for b in sample.text.encode()]
            audio_key, tensors = None, {}
        ids = [BOS, *content, *suffix]
        tensors["input_ids"] = ids
        return PreparedInput(
            sample.id,
            sample.modality,
            len(ids),
            ids[-1],
            tensors,
            {"ids": ",".join(map(str, ids)), "audio": str(audio_key), "template": template},
            audio_key=audio_key,
            content_span=(1, 1 + len(content)) if self.give_spans else None,
        )

    def collate(self, items: list[PreparedInput]) -> Batch:
        rows = pad_rows(items, PAD, self.padding_side, model=self.spec.name)
        audio = []
        for row, item in enumerate(items):
            if item.audio_key is not None:
                start = int(rows.attention_mask[row].argmax()) + 1  # first real token is <bos>
                audio.append((row, item.audio_key, item.tensors["waveform"], start))
        return Batch(
            {
                "input_ids": rows.input_ids,
                "attention_mask": rows.attention_mask,
                "position_ids": rows.position_ids,
            },
            rows.last_positions,
            [item.sample_id for item in items],
            extras={"audio": audio},
            content_spans=rows.content_spans if self.batch_spans else None,
        )

    def _encode(self, key: str, waveform: np.ndarray) -> torch.Tensor:
        self.encoder_runs.append(key)
        frames = torch.as_tensor(waveform[: len(waveform) // FRAME * FRAME]).view(-1, FRAME)
        return torch.tanh(frames.to(self.device, self.dtype) @ self.projection)

    def forward(self, batch: Batch) -> None:
        inner = self.model.model
        embeds = inner.embed_tokens(batch.model_kwargs["input_ids"])
        for row, key, waveform, start in batch.extras["audio"]:
            audio = self.encoder_cache.get_or_compute(
                f"tiny:{key}",
                lambda key=key, waveform=waveform: self.encoder_cache.stored(
                    f"tiny:{key}", lambda: self._encode(key, waveform)
                ),
            )
            embeds[row, start : start + audio.shape[0]] = audio
        inner(
            inputs_embeds=embeds,
            attention_mask=batch.model_kwargs["attention_mask"],
            position_ids=batch.model_kwargs["position_ids"],
            use_cache=False,
        )


def tone(seed: int, seconds: float) -> np.ndarray:
    """A SYNTHETIC noisy tone (not speech) at 16 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(16_000 * seconds)) / 16_000
    return (0.3 * np.sin(2 * np.pi * (200 + 40 * seed) * t) + 0.05 * rng.standard_normal(t.size)).astype(
        np.float32
    )


def tiny_probe_set(folder: Any, n_text: int = 6, n_speech: int = 5) -> ProbeSet:
    """Texts of different lengths and tone clips of different lengths, written as WAV files under ``folder``."""
    from benchmark.core.audio import write_float_wav

    words = ["cat", "a long sentence here", "hi", "the quick brown fox", "rain", "more words now", "x"]
    samples = [
        Sample(id=f"t{i}", modality="text", text=f"{words[i % len(words)]} {i}", language="en")
        for i in range(n_text)
    ]
    for i in range(n_speech):
        path = write_float_wav(folder / f"tone{i}.wav", tone(i, 0.1 + 0.04 * i), 16_000)
        samples.append(
            Sample(
                id=f"s{i}",
                modality="speech",
                text=f"tone {i}",
                audio_path=str(path),
                language="en",
                synthetic=True,
            )
        )
    return ProbeSet(name="tiny-engine", samples=samples)
