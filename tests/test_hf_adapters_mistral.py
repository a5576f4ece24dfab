"""Voxtral with its real tokenizer library: mistral-common (the ``voxtral`` extra), on a ``tekken.json`` of the
format Voxtral's repositories ship, built from the tekken vocabulary mistral-common itself ships
(``tests/tiny_lalms_latest.write_tekken``). The adapter assembles ids itself (``VoxtralProcessor`` refuses the
audio token in text); these tests check they are exactly mistral-common's own encoding of the same request."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.core.schema import Sample
from benchmark.engine.extract import LastTokenCapture
from benchmark.models.catalog import get_adapter
from benchmark.models.hf_common import INSTRUCTION
from benchmark.models.hf_families import VoxtralAdapter
from tests.tiny_lalms import clip
from tests.tiny_lalms_latest import tiny_voxtral_mistral_common

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def voxtral(tmp_path_factory: pytest.TempPathFactory) -> VoxtralAdapter:
    model, processor = tiny_voxtral_mistral_common(tmp_path_factory.mktemp("voxtral"))
    adapter = get_adapter("voxtral-mini-3b")
    assert isinstance(adapter, VoxtralAdapter)
    adapter.attach(model, processor, device=CPU, dtype=torch.float32)
    return adapter


def _reference(adapter: VoxtralAdapter, content: list) -> list[int]:
    from mistral_common.protocol.instruct.messages import UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    request = ChatCompletionRequest(messages=[UserMessage(content=content)])
    return list(adapter.processor.tokenizer.tokenizer.encode_chat_completion(request).tokens)


def test_tokenizer_is_mistral_common_and_the_template_is_verified(voxtral: VoxtralAdapter) -> None:
    assert type(voxtral.processor.tokenizer).__name__ == "MistralCommonBackend"
    assert voxtral.check_chat_template() == "verified against mistral-common"


@pytest.mark.parametrize("seconds", [0.5, 1.3])
def test_speech_ids_equal_mistral_commons_own_encoding(voxtral: VoxtralAdapter, seconds: float) -> None:
    from mistral_common.protocol.instruct.chunk import RawAudio
    from mistral_common.protocol.instruct.messages import AudioChunk, TextChunk
    from mistral_common.tokens.tokenizers.audio import Audio

    wave = clip(7, seconds)
    sample = Sample(id="s", modality="speech", text="x", audio_path="s.wav", language="en")
    item = voxtral.prepare(sample, wave, "shared-suffix")
    audio = AudioChunk(
        input_audio=RawAudio.from_audio(Audio(audio_array=wave, sampling_rate=16_000, format="wav"))
    )
    reference = _reference(voxtral, [audio, TextChunk(text=INSTRUCTION)])
    assert item.tensors["input_ids"].tolist() == reference
    start, end = item.content_span
    assert end - start == reference.count(24) == 12 * int(np.ceil(seconds / 0.96))
    with LastTokenCapture(voxtral) as capture:
        assert torch.isfinite(capture.run(voxtral.collate([item]))).all()


def test_text_ids_equal_mistral_commons_own_encoding(voxtral: VoxtralAdapter) -> None:
    from mistral_common.protocol.instruct.messages import TextChunk

    sample = Sample(id="t", modality="text", text="Bonjour tout le monde.", language="fr")
    item = voxtral.prepare(sample, None, "shared-suffix")
    assert item.tensors["input_ids"].tolist() == _reference(
        voxtral, [TextChunk(text=sample.text + INSTRUCTION)]
    )
    start, end = item.content_span
    inside = voxtral.processor.tokenizer.decode(item.tensors["input_ids"][start:end].tolist())
    # tekken joins the final "." with the instruction's newline: that one token is left out of the span
    assert sample.text.startswith(inside) and sample.text[len(inside) :] == "."
    bare = voxtral.prepare(sample, None, "bare")
    assert (
        bare.content_span[1] == bare.length
        and voxtral.processor.tokenizer.decode(bare.tensors["input_ids"][bare.content_span[0] :].tolist())
        == sample.text
    )


def test_voxtral_is_unavailable_without_mistral_common(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mistral_common" else real(name, *a)
    )
    for name in ("voxtral-mini-3b", "voxtral-small-24b"):
        availability = get_adapter(name).availability()
        assert not availability.available and "lalm-bench[voxtral]" in availability.detail


def test_extra_declares_mistral_common() -> None:
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    assert any(r.startswith("mistral-common") for r in project["optional-dependencies"]["voxtral"])
    assert any(r.startswith("peft") for r in project["optional-dependencies"]["lora"])
