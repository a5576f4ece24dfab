"""The families whose real classes the old adapters got wrong: Gemma 3n's AltUp streams, Phi-4's and Granite's
speech LoRAs, and the generic ``hf:`` loader on Qwen3-Omni. Tiny random builds of the REAL classes
(``tests/tiny_lalms*.py``), SYNTHETIC tokenizers; the LoRA adapters are random ones written by peft in the
checkpoint layout each family uses (Phi-4: ``speech-lora/`` subfolder; Granite: repository root)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmark.core.errors import PipelineError, UnsupportedModelError
from benchmark.core.schema import Sample
from benchmark.engine.extract import LastTokenCapture
from benchmark.models import lora
from benchmark.models.base import ModelAdapter
from benchmark.models.catalog import get_adapter
from benchmark.models.hf_families import Gemma3nAdapter, GraniteSpeechAdapter, Phi4MultimodalAdapter
from benchmark.models.hf_lalm import AUTO_CLASSES, HubLALMAdapter, auto_model_class
from benchmark.models.hf_recipes import RECIPES
from tests.tiny_lalms import clip
from tests.tiny_lalms_latest import tiny_gemma3n, tiny_phi4_multimodal, tiny_qwen3_omni_thinker
from tests.tiny_lalms_more import tiny_granite_speech

CPU = torch.device("cpu")
SPEECH = Sample(id="s", modality="speech", text="x", audio_path="s.wav", language="en")
TEXT = Sample(id="t", modality="text", text="A sentence of text.", language="en")


def _latents(
    adapter: ModelAdapter, inputs: list[tuple[Sample, Any]], template: str = "shared-suffix"
) -> torch.Tensor:
    batch = adapter.collate([adapter.prepare(s, w, template) for s, w in inputs])
    with LastTokenCapture(adapter) as capture:
        return capture.run(batch)


# ---- Gemma 3n ---------------------------------------------------------------------------------------------------
def test_gemma3n_plain_decoder_hooks_see_altup_stacks() -> None:
    """What the old adapter did: hook the decoder blocks directly. They pass [altup, batch, seq, d]."""
    model, processor = tiny_gemma3n()
    plain = HubLALMAdapter(RECIPES["gemma-3n-e4b"])
    plain.attach(model, processor, device=CPU, dtype=torch.float32)
    with pytest.raises(PipelineError, match=r"expected a \[batch, seq, d\] tensor"):
        _latents(plain, [(TEXT, None)])


def test_gemma3n_capture_is_the_models_own_collapse_of_the_streams() -> None:
    """``final_norm`` of the last block's capture is the final norm's capture, which is the model's own final
    output; ``emb`` is the (audio-merged) input embedding."""
    model, processor = tiny_gemma3n()
    adapter = get_adapter("gemma-3n-e4b")
    assert isinstance(adapter, Gemma3nAdapter)
    adapter.attach(model, processor, device=CPU, dtype=torch.float32)
    inputs = [(SPEECH, clip(1, 0.6)), (TEXT, None)]
    items = [adapter.prepare(s, w, "shared-suffix") for s, w in inputs]
    batch = adapter.collate(items)
    with LastTokenCapture(adapter) as capture:
        lat = capture.run(batch)
    rows, pos = torch.arange(2), batch.last_positions
    norm = adapter.layer_handles().final_norm
    with torch.no_grad():
        renormed = norm(lat[:, -2])
        out = model.model(**batch.model_kwargs, use_cache=False, output_hidden_states=True)
    torch.testing.assert_close(renormed, lat[:, -1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lat[:, -1], out.last_hidden_state[rows, pos], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lat[:, 0], out.hidden_states[0][0][rows, pos])  # stream 0 = inputs_embeds
    assert not torch.allclose(lat[:, -2], out.hidden_states[-1][0][rows, pos])  # not stream 0 alone
    states = adapter.hidden_states(batch)  # what lalm-bench check compares the hooks with
    assert len(states) == adapter.num_blocks + 1
    torch.testing.assert_close(states[-1][rows, pos], lat[:, -1], rtol=1e-5, atol=1e-5)


# ---- speech LoRAs -----------------------------------------------------------------------------------------------
PHI4_TARGETS = r".*model\.layers\.\d+\.(self_attn\.(qkv_proj|o_proj)|mlp\.(gate_up_proj|down_proj))"
GRANITE_TARGETS = r".*language_model\.layers\.\d+\.self_attn\.(q_proj|v_proj)"


def _write_lora(model: torch.nn.Module, folder: Path, targets: str) -> None:
    """A random (non-zero) LoRA adapter for ``model`` saved by peft at ``folder``."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    peft_model = get_peft_model(
        copy.deepcopy(model), LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False)
    )
    peft_model.save_pretrained(folder)


def _phi4_checkpoint(folder: Path) -> tuple[torch.nn.Module, Any]:
    model, processor = tiny_phi4_multimodal()
    model.save_pretrained(folder)
    processor.tokenizer.save_pretrained(folder)
    processor.audio_processor.save_pretrained(folder)
    _write_lora(model, folder / "speech-lora", PHI4_TARGETS)
    return model, processor


def test_phi4_speech_lora_is_loaded_merged_and_changes_the_latents(tmp_path: Path) -> None:
    base_model, processor = _phi4_checkpoint(tmp_path)
    adapter = get_adapter("phi-4-multimodal")
    assert isinstance(adapter, Phi4MultimodalAdapter)
    adapter.recipe = adapter.recipe.__class__(**{**adapter.recipe.__dict__, "hub_id": str(tmp_path)})
    adapter.load(CPU, torch.float32)
    assert not lora.lora_layers(adapter.model, "speech")  # merged and unloaded: plain modules are hooked
    inputs = [(SPEECH, clip(2, 0.6)), (TEXT, None)]
    with_lora = _latents(adapter, inputs)
    base = get_adapter("phi-4-multimodal")
    base.attach(copy.deepcopy(base_model), processor, device=CPU, dtype=torch.float32)  # the base LM alone
    without = _latents(base, inputs)
    torch.testing.assert_close(with_lora[:, 0], without[:, 0])  # embeddings are not adapted
    assert (with_lora[:, 1:] - without[:, 1:]).abs().max() > 1e-3
    _assert_equals_active_adapter(
        base_model, processor, tmp_path, "speech-lora", "phi-4-multimodal", inputs, with_lora
    )


def test_lora_families_refuse_to_load_without_peft(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(lora, "peft_available", lambda: False)
    for name in ("phi-4-multimodal", "granite-speech-3.3-2b"):
        adapter = get_adapter(name)
        assert not adapter.availability().available
        with pytest.raises(UnsupportedModelError, match=r"lalm-bench\[lora\]"):
            adapter.load(CPU, torch.float32)


def test_an_adapter_for_another_model_class_is_an_error(tmp_path: Path) -> None:
    granite, _ = tiny_granite_speech()
    _write_lora(granite, tmp_path / "speech-lora", GRANITE_TARGETS)
    phi4, _ = tiny_phi4_multimodal()
    with pytest.raises(UnsupportedModelError, match="does not fit"):
        lora.load_and_merge(phi4, str(tmp_path), adapter_name="speech", owner="t", subfolder="speech-lora")


def _assert_equals_active_adapter(
    base_model: torch.nn.Module,
    processor: Any,
    folder: Path,
    subfolder: str | None,
    name: str,
    inputs: list[tuple[Sample, Any]],
    merged: torch.Tensor,
) -> None:
    """Merged weights give what peft's own forward gives with the adapter active and unmerged."""
    from peft import PeftModel

    kwargs = {"subfolder": subfolder} if subfolder else {}
    active = PeftModel.from_pretrained(copy.deepcopy(base_model), str(folder), **kwargs).base_model.model
    assert lora.lora_layers(active, "default")
    adapter = get_adapter(name)
    adapter.attach(active, processor, device=CPU, dtype=torch.float32)
    torch.testing.assert_close(_latents(adapter, inputs), merged, rtol=1e-4, atol=1e-5)


def _granite_checkpoint(folder: Path) -> tuple[torch.nn.Module, Any]:
    model, processor = tiny_granite_speech()
    model.config.has_lora_adapter = True
    model.save_pretrained(folder)
    processor.tokenizer.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(processor.feature_extractor.to_dict()))
    _write_lora(model, folder, GRANITE_TARGETS)  # Granite keeps its adapter at the repository root
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(
        json.dumps({**config, "base_model_name_or_path": str(folder)})
    )
    return model, processor


def test_granite_speech_lora_is_merged_and_changes_the_latents(tmp_path: Path) -> None:
    base_model, processor = _granite_checkpoint(tmp_path)
    adapter = get_adapter("granite-speech-3.3-2b")
    assert isinstance(adapter, GraniteSpeechAdapter)
    adapter.recipe = adapter.recipe.__class__(**{**adapter.recipe.__dict__, "hub_id": str(tmp_path)})
    adapter.load(CPU, torch.float32)
    assert not lora.lora_layers(adapter.model, "default")
    inputs = [(SPEECH, clip(3, 0.7)), (TEXT, None)]
    with_lora = _latents(adapter, inputs)
    base = get_adapter("granite-speech-3.3-2b")
    base.attach(copy.deepcopy(base_model), processor, device=CPU, dtype=torch.float32)
    assert (with_lora[:, 1:] - _latents(base, inputs)[:, 1:]).abs().max() > 1e-3
    _assert_equals_active_adapter(
        base_model, processor, tmp_path, None, "granite-speech-3.3-2b", inputs, with_lora
    )


def test_granite_config_with_lora_but_no_adapter_files_is_refused(tmp_path: Path) -> None:
    model, processor = tiny_granite_speech()
    model.config.has_lora_adapter = True
    model.save_pretrained(tmp_path)
    processor.tokenizer.save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(processor.feature_extractor.to_dict()))
    adapter = get_adapter("granite-speech-3.3-2b")
    adapter.recipe = adapter.recipe.__class__(**{**adapter.recipe.__dict__, "hub_id": str(tmp_path)})
    with pytest.raises(UnsupportedModelError, match=r"has_lora_adapter.*no LoRA adapter"):
        adapter.load(CPU, torch.float32)


# ---- hf: on Qwen3-Omni ------------------------------------------------------------------------------------------
def test_hf_generic_reaches_the_qwen3_omni_thinker(tmp_path: Path) -> None:
    """The old ``hf:`` tried ImageTextToText, Seq2SeqLM and CausalLM: none maps Qwen3-Omni's config. The auto
    classes of transformers 5 for audio-text models do (MultimodalLM), and the thinker is what gets hooked."""
    from transformers import Qwen3OmniMoeConfig, Qwen3OmniMoeForConditionalGeneration

    thinker, processor = tiny_qwen3_omni_thinker()
    config = Qwen3OmniMoeConfig(thinker_config=thinker.config.to_dict(), enable_audio_output=False)
    full = Qwen3OmniMoeForConditionalGeneration(config).eval()
    full.thinker.load_state_dict(thinker.state_dict())
    full.save_pretrained(tmp_path)
    processor.tokenizer.save_pretrained(tmp_path)
    processor.feature_extractor.save_pretrained(tmp_path)

    import transformers

    old = ("AutoModelForImageTextToText", "AutoModelForSeq2SeqLM", "AutoModelForCausalLM")
    assert all(type(config) not in getattr(transformers, name)._model_mapping for name in old)
    assert auto_model_class(config)[0] in AUTO_CLASSES

    adapter = get_adapter(f"hf:{tmp_path}")
    adapter.load(CPU, torch.float32)
    assert isinstance(adapter, HubLALMAdapter) and adapter.recipe.submodule == "thinker"
    assert type(adapter.model).__name__ == "Qwen3OmniMoeThinkerForConditionalGeneration"
    assert adapter.num_blocks == thinker.config.text_config.num_hidden_layers
    lat = _latents(adapter, [(SPEECH, clip(4, 0.5)), (TEXT, None)])
    assert torch.isfinite(lat).all() and lat.shape[1] == adapter.num_blocks + 2
