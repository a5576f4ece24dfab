"""Every LALM in the catalogue, on a tiny random build of its REAL transformers class, through the conformance kit.

One parametrised test per catalogue name (``test_conformance[<name>]``): the adapter the catalogue builds for that
name is attached to a tiny model of the same architecture (``tests/tiny_lalms*.py``: real model, processor and
feature-extractor classes; SYNTHETIC tokenizers, except the Mistral models' tekken file built from mistral-common's
shipped vocabulary) and ``benchmark.engine.conformance`` checks layers, placeholder expansion, that the audio
reaches the model (and that the pipeline gate trips on zeroed audio), batch 1 = batch N with mixed lengths,
content spans and the ``bare`` template's last token. A catalogue LALM without a tiny build here fails
``test_every_lalm_entry_has_a_tiny_build``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from benchmark.core.errors import UnsupportedModelError
from benchmark.core.schema import Sample
from benchmark.engine.conformance import ConformanceResult, run_conformance
from benchmark.models.base import ModelAdapter
from benchmark.models.catalog import MODELS, get_adapter
from benchmark.models.hf_lalm import HubLALMAdapter
from benchmark.models.ultravox import VARIANTS, UltravoxAdapter
from benchmark.stats.gate import check_latents
from tests import tiny_lalms, tiny_lalms_latest, tiny_lalms_more
from tests.tiny_lalms import clip

CPU = torch.device("cpu")

#: catalogue name -> tiny (model, processor) builder of the same architecture
HUB_BUILDERS: dict[str, Callable[[], tuple[torch.nn.Module, Any]]] = {
    "qwen2-audio-7b": tiny_lalms.tiny_qwen2_audio,
    "qwen2-audio-7b-instruct": tiny_lalms.tiny_qwen2_audio,
    "qwen2.5-omni-7b": tiny_lalms_more.tiny_qwen_omni_thinker,
    "qwen3-omni-30b-a3b-instruct": tiny_lalms_latest.tiny_qwen3_omni_thinker,
    "qwen3-asr-1.7b": tiny_lalms_latest.tiny_qwen3_asr,
    "qwen3-asr-0.6b": tiny_lalms_latest.tiny_qwen3_asr,
    "voxtral-mini-3b": tiny_lalms_more.tiny_voxtral,
    "voxtral-small-24b": tiny_lalms_more.tiny_voxtral,
    "granite-speech-3.3-2b": tiny_lalms_more.tiny_granite_speech,
    "phi-4-multimodal": tiny_lalms_latest.tiny_phi4_multimodal,
    "gemma-3n-e4b": tiny_lalms_latest.tiny_gemma3n,
    "audio-flamingo-3": tiny_lalms_latest.tiny_audio_flamingo_3,
    "glm-asr-nano": tiny_lalms_latest.tiny_glm_asr,
}
#: catalogue LALMs whose class the installed transformers lacks: checked to be listed as unavailable instead
UNAVAILABLE = {"audio-flamingo-next"}
#: catalogue LALMs built on their real class but refused for latents, with the reason (test below)
REFUSED = {"voxtral-mini-4b-realtime"}

TEXTS = [
    Sample(id="t0", modality="text", text="Hello there.", language="en"),
    Sample(
        id="t1", modality="text", text="A much longer sentence, with commas and more words.", language="en"
    ),
]
CLIPS = [
    (Sample(id="s0", modality="speech", text="x", audio_path="0.wav", language="en"), clip(10, 0.35)),
    (Sample(id="s1", modality="speech", text="x", audio_path="1.wav", language="en"), clip(11, 0.8)),
]


def lalm_names() -> list[str]:
    """Every catalogue entry whose kind is ``lalm`` (built without loading weights)."""
    return [name for name in MODELS.names() if get_adapter(name).spec.kind == "lalm"]


def build(name: str) -> tuple[ModelAdapter, int]:
    """The catalogue's adapter for ``name`` attached to its tiny build; and the config's decoder depth."""
    adapter = get_adapter(name)
    if isinstance(adapter, UltravoxAdapter):
        model, tok, fe = tiny_lalms.tiny_ultravox(adapter.variant.backbone)
        adapter.attach(model, tok, fe, stack_factor=2, device=CPU, dtype=torch.float32)
        config = model.language_model.config
        return adapter, int(getattr(config, "text_config", config).num_hidden_layers)
    assert isinstance(adapter, HubLALMAdapter), type(adapter)
    model, processor = HUB_BUILDERS[name]()
    adapter.attach(model, processor, device=CPU, dtype=torch.float32)
    config = model.config
    text = getattr(config, "text_config", None) or getattr(config, "thinker_config", config)
    return adapter, int(getattr(text, "num_hidden_layers", None) or config.num_hidden_layers)


ULTRAVOX = sorted(VARIANTS)


def test_every_lalm_entry_has_a_tiny_build() -> None:
    covered = set(HUB_BUILDERS) | UNAVAILABLE | REFUSED | set(ULTRAVOX)
    assert set(lalm_names()) <= covered, sorted(set(lalm_names()) - covered)
    assert {"qwen3-omni", "qwen3-asr", "audio-flamingo-next", "voxtral-small", "glm-asr"} <= {
        prefix
        for prefix in ("qwen3-omni", "qwen3-asr", "audio-flamingo-next", "voxtral-small", "glm-asr")
        if any(n.startswith(prefix) for n in lalm_names())
    }


@pytest.mark.parametrize("name", sorted(HUB_BUILDERS) + ULTRAVOX)
def test_conformance(name: str) -> None:
    adapter, blocks = build(name)
    results = run_conformance(adapter, expected_blocks=blocks, texts=TEXTS, clips=CLIPS)
    failed = [f"{r.name}: {r.detail}" for r in results if not r.passed]
    assert not failed, failed
    assert {r.name for r in results} >= {"layers", "placeholders", "audio_reaches_model", "batch_invariance"}
    _gate_trips_on_zeroed_audio(adapter, next(r for r in results if r.name == "audio_reaches_model"))


def _gate_trips_on_zeroed_audio(adapter: ModelAdapter, result: ConformanceResult) -> None:
    """The suite's own pipeline gate passes the real clips and reports identical latents once they are zeros."""
    names = adapter.layer_names()
    ids = ["clip-a", "clip-b"]
    assert check_latents(result.numbers["real"], layer_names=names, input_ids=ids) == []
    codes = {p.code for p in check_latents(result.numbers["zeroed"], layer_names=names, input_ids=ids)}
    assert "identical_latents" in codes or "collapsed_layer" in codes, codes


@pytest.mark.parametrize("name", sorted(UNAVAILABLE))
def test_missing_class_is_unavailable_with_the_version_it_needs(name: str) -> None:
    adapter = get_adapter(name)
    availability = adapter.availability()
    assert not availability.available
    assert "has no class" in availability.detail and "needs" in availability.detail, availability.detail
    with pytest.raises(Exception, match="has no class"):
        adapter.load(CPU, torch.float32)


def test_zeroed_audio_would_pass_unnoticed_without_the_audio_check() -> None:
    """Sanity of the kit itself: an adapter whose audio never reaches the model fails audio_reaches_model."""
    adapter, blocks = build("qwen2-audio-7b-instruct")
    original = adapter.encode

    def deaf(sample: Sample, wave: np.ndarray | None, tpl: Any) -> Any:
        return original(sample, None if wave is None else np.zeros_like(wave), tpl)

    adapter.encode = deaf  # type: ignore[method-assign]
    results = {r.name: r for r in run_conformance(adapter, expected_blocks=blocks, texts=TEXTS, clips=CLIPS)}
    assert not results["audio_reaches_model"].passed
    assert results["layers"].passed and results["batch_invariance"].passed


def test_voxtral_realtime_real_class_is_refused_with_the_reason(tmp_path: Path) -> None:
    """Voxtral Realtime adds one audio frame to each position; its prompt covers only the first frames and
    ``generate`` feeds the rest. The adapter refuses to make a latent of that prompt; the model's own single
    forward over the whole clip is impossible (the shapes below)."""
    model, processor = tiny_lalms_latest.tiny_voxtral_realtime(tmp_path)
    adapter = get_adapter("voxtral-mini-4b-realtime")
    adapter.attach(model, processor, device=CPU, dtype=torch.float32)
    assert adapter.spec.modalities == ("speech",)
    with pytest.raises(
        UnsupportedModelError, match=r"streaming transcriber.*39 prompt ids carry 39 of the clip's"
    ):
        adapter.prepare(CLIPS[1][0], clip(12, 1.0), "bare")
    out = processor(audio=clip(12, 1.0), return_tensors="pt")
    with torch.no_grad(), pytest.raises(RuntimeError, match="must match the size"):
        model(**out)
