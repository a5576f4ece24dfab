"""Voxtral, Granite Speech and Qwen2.5-Omni (thinker) adapters on tiny random-weight models.

Models, tokenizers and processors are SYNTHETIC (``tests/tiny_lalms_more.py``); nothing is downloaded. Latents
are taken with the engine's own ``LastTokenCapture``, so what is checked is what extraction would store.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from benchmark.core.errors import UnsupportedModelError
from benchmark.core.schema import Sample
from benchmark.engine.extract import LastTokenCapture
from benchmark.models.base import Batch
from benchmark.models.hf_common import GraniteLogMel, encode_with_specials, pad_and_cat
from benchmark.models.hf_families import GraniteSpeechAdapter, QwenOmniThinkerAdapter, VoxtralAdapter
from benchmark.models.hf_lalm import HubLALMAdapter
from benchmark.models.hub_factory import build_adapter
from tests.tiny_lalms import clip
from tests.tiny_lalms_more import tiny_granite_speech, tiny_qwen_omni_thinker, tiny_voxtral

CPU = torch.device("cpu")
BUILDERS = {
    "voxtral-mini-3b": tiny_voxtral,
    "granite-speech-3.3-2b": tiny_granite_speech,
    "qwen2.5-omni-7b": tiny_qwen_omni_thinker,
}
#: clip lengths kept under the tiny Whisper extractors' 1 s window (Qwen2.5-Omni truncates there); Voxtral
#: gets a 1.5 s clip too, which spans two encoder windows.
SHORT, LONG = 0.3, 0.8


def _speech(i: int) -> Sample:
    return Sample(id=f"s{i}", modality="speech", text="x", audio_path=f"{i}.wav", language="en")


def _text(i: int, text: str) -> Sample:
    return Sample(id=f"t{i}", modality="text", text=text, language="en")


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def adapter(request: pytest.FixtureRequest) -> HubLALMAdapter:
    model, processor = BUILDERS[request.param]()
    built = build_adapter(request.param)
    assert isinstance(built, HubLALMAdapter)
    built.attach(model, processor, device=CPU, dtype=torch.float32)
    assert built.check_chat_template().startswith(("verified", "suffix verified", "no chat template"))
    return built


def _latents(adapter: HubLALMAdapter, batch: Batch) -> torch.Tensor:
    with LastTokenCapture(adapter) as capture:
        return capture.run(batch)  # [batch, layers, d]


def _run(adapter: HubLALMAdapter, samples: list[tuple[Sample, Any]], template: str = "shared-suffix"):
    items = [adapter.prepare(s, w, template) for s, w in samples]
    batch = adapter.collate(items)
    return items, batch, _latents(adapter, batch)


def _audio_embeddings(adapter: HubLALMAdapter, tensors: dict[str, torch.Tensor]) -> int:
    """Number of audio embeddings the model itself produces for one prepared clip."""
    model = adapter.model
    with torch.no_grad():
        if isinstance(adapter, VoxtralAdapter):
            return int(model.get_audio_features(tensors["input_features"]).pooler_output.shape[0])
        if isinstance(adapter, GraniteSpeechAdapter):
            return int(model.get_audio_features(tensors["input_features"]).pooler_output.shape[1])
        out = model.get_audio_features(
            tensors["input_features"], feature_attention_mask=tensors["feature_attention_mask"]
        )
        return int(out.last_hidden_state.shape[0])


def _reference_hidden(adapter: HubLALMAdapter, batch: Batch) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        if isinstance(adapter, GraniteSpeechAdapter):
            return adapter.model(
                inputs_embeds=adapter.merged_embeddings(batch),
                use_cache=False,
                output_hidden_states=True,
                attention_mask=batch.model_kwargs["attention_mask"],
            ).hidden_states
        return adapter.model(**batch.model_kwargs, output_hidden_states=True, use_cache=False).hidden_states


def test_adapter_classes() -> None:
    assert isinstance(build_adapter("voxtral-mini-3b"), VoxtralAdapter)
    assert isinstance(build_adapter("granite-speech-3.3-2b"), GraniteSpeechAdapter)
    assert isinstance(build_adapter("qwen2.5-omni-7b"), QwenOmniThinkerAdapter)


def test_shapes_and_shared_suffix(adapter: HubLALMAdapter) -> None:
    items, _batch, lat = _run(adapter, [(_speech(1), clip(1, LONG)), (_text(1, "Hello there."), None)])
    assert adapter.num_blocks == 2 and lat.shape == (2, len(adapter.layer_names()), 64) == (2, 4, 64)
    assert torch.isfinite(lat).all()
    tail = 6  # "[/INST]" or the assistant header, preceded by the instruction's last bytes
    assert torch.equal(items[0].tensors["input_ids"][-tail:], items[1].tensors["input_ids"][-tail:])
    assert items[0].last_token_id == items[1].last_token_id
    assert {"input_ids", "waveform", "processor_config", "template"} <= set(items[0].key_material)
    assert "waveform" not in items[1].key_material


@pytest.mark.parametrize("seconds", [SHORT, LONG, 1.5])
def test_placeholders_equal_audio_embeddings(adapter: HubLALMAdapter, seconds: float) -> None:
    item = adapter.prepare(_speech(2), clip(2, seconds), "bare")
    n_placeholders = int((item.tensors["input_ids"] == adapter.audio_token_id).sum())
    assert n_placeholders == _audio_embeddings(adapter, item.tensors) > 1
    if isinstance(adapter, VoxtralAdapter):  # 0.96 s windows of 12 embeddings each
        assert n_placeholders == 12 * int(np.ceil(seconds * 16_000 / 15_360))
        # "bare" is the chat turn up to the input: <s> [INST] [BEGIN_AUDIO] [AUDIO] ...
        assert item.tensors["input_ids"][:4].tolist() == [1, 3, 25, 24]
    if isinstance(adapter, GraniteSpeechAdapter):
        assert n_placeholders == adapter.processor.feature_extractor.num_embeddings(len(clip(2, seconds)))


def test_last_positions_right_padded(adapter: HubLALMAdapter) -> None:
    items = [adapter.prepare(_text(i, "a" * (3 + 5 * i)), None, "bare") for i in range(3)]
    items.append(adapter.prepare(_speech(4), clip(4, SHORT), "bare"))
    batch = adapter.collate(items)
    assert batch.last_positions.tolist() == [it.length - 1 for it in items]
    mask = batch.model_kwargs["attention_mask"]
    assert (mask[:, 0] == 1).all() and mask.sum(1).tolist() == [it.length for it in items]


def test_distinct_clips_distinct_latents_same_clip_same(adapter: HubLALMAdapter) -> None:
    _, _, lat = _run(
        adapter, [(_speech(1), clip(1, LONG)), (_speech(2), clip(2, LONG)), (_speech(3), clip(1, LONG))]
    )
    for layer in range(1, lat.shape[1]):  # emb (layer 0) at the last token is the suffix token's embedding
        assert not torch.allclose(lat[0, layer], lat[1, layer], atol=1e-5), layer
        torch.testing.assert_close(lat[0, layer], lat[2, layer], rtol=1e-5, atol=1e-6)


def test_hooks_match_output_hidden_states(adapter: HubLALMAdapter) -> None:
    _, batch, lat = _run(adapter, [(_speech(1), clip(1, LONG)), (_text(1, "Short."), None)])
    hs = _reference_hidden(adapter, batch)
    rows, pos = torch.arange(2), batch.last_positions
    n = adapter.num_blocks
    assert len(hs) == n + 1
    torch.testing.assert_close(lat[:, 0], hs[0][rows, pos].float())
    for i in range(n - 1):
        torch.testing.assert_close(lat[:, i + 1], hs[i + 1][rows, pos].float())
    torch.testing.assert_close(lat[:, -1], hs[-1][rows, pos].float())
    assert not torch.allclose(lat[:, n], lat[:, -1])  # last block output is not the final norm's


def test_batch1_equals_batch4(adapter: HubLALMAdapter) -> None:
    long_clip = 1.5 if isinstance(adapter, VoxtralAdapter) else LONG
    samples = [
        (_speech(1), clip(1, SHORT)),
        (_text(1, "A much longer sentence here."), None),
        (_speech(2), clip(2, long_clip)),
        (_text(2, "Hi."), None),
    ]
    _, _, together = _run(adapter, samples)
    for i, sample in enumerate(samples):
        _, _, alone = _run(adapter, [sample])
        torch.testing.assert_close(alone[0], together[i], rtol=1e-4, atol=1e-5)


# ---- Granite Speech specifics --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def granite() -> GraniteSpeechAdapter:
    model, processor = tiny_granite_speech()
    built = build_adapter("granite-speech-3.3-2b")
    assert isinstance(built, GraniteSpeechAdapter)
    built.attach(model, processor, device=CPU, dtype=torch.float32)
    return built


def test_granite_per_clip_path_equals_native_single_clip(granite: GraniteSpeechAdapter) -> None:
    """The adapter's own merge gives what the model's forward gives for one clip (nothing padded)."""
    item = granite.prepare(_speech(5), clip(5, LONG), "shared-suffix")
    batch = granite.collate([item])
    with torch.no_grad():
        native = granite.model(
            input_ids=batch.model_kwargs["input_ids"],
            input_features=item.tensors["input_features"],
            input_features_mask=item.tensors["input_features_mask"],
            use_cache=False,
            output_hidden_states=True,
        ).hidden_states
    ours = _reference_hidden(granite, batch)
    for a, b in zip(native, ours, strict=True):
        torch.testing.assert_close(a, b)


def test_granite_native_batching_would_leak_padding(granite: GraniteSpeechAdapter) -> None:
    """Why the adapter encodes per clip: padded to a longer clip, a short clip's conformer output changes
    (no padding mask; a few percent here, far above the 1e-4 batch-independence tolerance)."""
    short, long = (granite.prepare(_speech(i), clip(i, s), "bare") for i, s in ((1, 0.5), (2, LONG)))
    encoder = granite.model.model.encoder
    with torch.no_grad():
        alone = encoder(short.tensors["input_features"]).last_hidden_state[0]
        padded = pad_and_cat([short.tensors["input_features"], long.tensors["input_features"]])
        batched = encoder(padded).last_hidden_state[0, : alone.shape[0]]
    assert float((alone - batched).abs().max()) > 1e-2 * float(alone.abs().max())


@pytest.mark.parametrize("n_samples", [800, 4_801, 9_600, 12_345, 16_000])
def test_granite_features_documented_shapes(n_samples: int) -> None:
    """Shapes and counts as ``GraniteSpeechFeatureExtractor`` documents them: centred STFT gives
    n // hop + 1 frames, odd counts drop one, pairs are stacked; 3 projector outputs per 15 encoder frames."""
    fe = GraniteLogMel()
    feats = fe(clip(7, n_samples / 16_000))
    frames = n_samples // 160 + 1
    assert feats.shape == (1, frames // 2, 160) and feats.dtype == torch.float32
    assert fe.num_embeddings(n_samples) == 3 * int(np.ceil((frames // 2) / 15))
    assert float(feats.max() - feats.min()) <= 2.0 + 1e-5  # floor at (max - 8) before the /4


@pytest.mark.optin
def test_granite_features_match_the_extractor_when_torchaudio_imports() -> None:
    """Against transformers' own extractor. Opt-in: it needs torchaudio, which the default install does not
    bring (no torchaudio release matches the pinned CPU torch); run with --optin where it is installed."""
    pytest.importorskip("torchaudio")
    from transformers import GraniteSpeechFeatureExtractor

    ref = GraniteSpeechFeatureExtractor()
    ours = GraniteLogMel.from_dict(ref.to_dict() | ref.melspec_kwargs)
    for n_samples in (800, 9_601, 16_000):
        wave = clip(3, n_samples / 16_000)
        expected = ref([wave])
        torch.testing.assert_close(ours(wave), expected["input_features"], rtol=0, atol=1e-5)
        assert ours.num_embeddings(n_samples) == expected["audio_embed_sizes"][0]


def test_unknown_special_token_is_named() -> None:
    _, processor = tiny_voxtral()
    tok = processor.tokenizer
    assert encode_with_specials(tok, "<s>[INST]hi[/INST]", ("<s>", "[INST]", "[/INST]")) == [
        1,
        3,
        *tok.encode("hi", add_special_tokens=False),
        4,
    ]
    with pytest.raises(UnsupportedModelError, match="NOT_A_TOKEN"):
        encode_with_specials(tok, "a[NOT_A_TOKEN]", ("[NOT_A_TOKEN]",))
