"""The Ultravox re-implementation: chunking of long clips, the prompt from the chat template with a pinned date,
loud checkpoint loading (audio tower, shards), the 0.6 backbones, and the parity machinery.

Models are tiny random builds of the real Whisper encoder and backbone classes (``tests/tiny_lalms.py``, SYNTHETIC
tokenizers whose chat templates copy the logic of Llama 3.2's, Qwen3's and Gemma 3's). The tiny encoder's context is
1 s (100 mel frames), so a 2.3 s clip is chunked exactly as a 70 s clip is for the real 30 s encoder.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from benchmark.core.errors import PipelineError, UnsupportedModelError
from benchmark.core.schema import Sample
from benchmark.engine.extract import LastTokenCapture
from benchmark.models.chat_templates import PINNED_DATE, render_user_turn
from benchmark.models.hub_factory import build_adapter
from benchmark.models.ultravox import (
    VARIANTS,
    UltravoxAdapter,
    load_checkpoint,
    parity_check,
)
from tests.tiny_lalms import LLAMA3_CHAT_TEMPLATE, LLAMA_SPECIALS, synthetic_tokenizer, tiny_ultravox
from tests.tiny_lalms import clip as make_clip

CPU = torch.device("cpu")


def _speech(i: int) -> Sample:
    return Sample(id=f"s{i}", modality="speech", text="x", audio_path=f"{i}.wav", language="en")


def _adapter(name: str = "ultravox-0.5-llama-3.2-1b") -> UltravoxAdapter:
    adapter = build_adapter(name)
    assert isinstance(adapter, UltravoxAdapter)
    model, tok, fe = tiny_ultravox(adapter.variant.backbone)
    adapter.attach(model, tok, fe, stack_factor=2, device=CPU, dtype=torch.float32)
    return adapter


def _latents(adapter: UltravoxAdapter, items: list) -> torch.Tensor:
    with LastTokenCapture(adapter) as capture:
        return capture.run(adapter.collate(items))


# ---- chunking -------------------------------------------------------------------------------------------------
def test_long_clip_is_chunked_as_the_official_processor_does() -> None:
    """2.3 s = 230 mel frames over a 100-frame context: chunks of 100, 100 and 30 frames, the last zero-padded to
    100, ceil(frames / (2 * stack_factor)) placeholders each; the old code raised on any clip over the context."""
    adapter = _adapter()
    wave = make_clip(3, 2.3)
    item = adapter.prepare(_speech(3), wave, "shared-suffix")
    chunks = item.tensors["chunks"]
    assert [frames for _, frames, _ in chunks] == [100, 100, 30]
    assert [feats.shape[-1] for feats, _, _ in chunks] == [100, 100, 100]
    assert torch.count_nonzero(chunks[2][0][..., 30:]) == 0  # continuation padding is zeros
    assert [tokens for _, _, tokens in chunks] == [math.ceil(n / 4) for n in (100, 100, 30)]
    start, end = item.content_span
    assert end - start == item.tensors["n_audio_tokens"] == 25 + 25 + 8
    assert (item.tensors["input_ids"][start:end] == adapter.placeholder_id).all()
    # each chunk is encoded alone and written in order: the clip's embeddings are the chunks' concatenated
    whole = adapter.clip_embeddings(chunks, CPU)
    first = adapter.model.encode(chunks[0][0], 100)[:25]
    torch.testing.assert_close(whole[:25], first)
    assert not torch.allclose(whole[:25], whole[25:50])
    lat = _latents(adapter, [item, adapter.prepare(_speech(4), make_clip(4, 0.4), "shared-suffix")])
    assert torch.isfinite(lat).all()


def test_chunked_clip_batch_invariant() -> None:
    adapter = _adapter()
    items = [adapter.prepare(_speech(i), make_clip(i, s), "shared-suffix") for i, s in ((5, 2.3), (6, 0.3))]
    together = _latents(adapter, items)
    for row, item in enumerate(items):
        torch.testing.assert_close(_latents(adapter, [item])[0], together[row], rtol=1e-4, atol=1e-5)


# ---- prompt from the chat template, date pinned ----------------------------------------------------------------
def test_prompt_comes_from_the_chat_template_with_the_date_pinned() -> None:
    """The Llama 3.2 template inserts today's date unless ``date_string`` is given: unpinned, the ids (and every
    cache key and baseline) would change daily. The adapter renders it with ``PINNED_DATE``."""
    adapter = _adapter()
    tok = adapter.tokenizer
    prefix, _ = render_user_turn(tok, date_string=PINNED_DATE)
    assert f"Today Date: {PINNED_DATE}" in prefix and adapter.template("bare", "text").prefix == prefix
    today = tok.apply_chat_template(
        [{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True
    )
    assert PINNED_DATE not in today  # what an unpinned rendering gives today
    item = adapter.prepare(Sample(id="t", modality="text", text="Hi.", language="en"), None, "shared-suffix")
    assert PINNED_DATE in tok.decode(item.tensors["input_ids"].tolist())


def test_a_template_that_differs_from_the_catalogue_is_an_error() -> None:
    adapter = build_adapter("ultravox-0.5-llama-3.2-1b")
    model, _, fe = tiny_ultravox("llama3")
    other = LLAMA3_CHAT_TEMPLATE.replace("Cutting Knowledge Date: December 2023", "Knowledge: 2024")
    tok = synthetic_tokenizer(LLAMA_SPECIALS, eos="<|eot_id|>", bos="<|begin_of_text|>", chat_template=other)
    with pytest.raises(PipelineError, match="catalogue declares"):
        adapter.attach(model, tok, fe, stack_factor=2, device=CPU, dtype=torch.float32)
    bare = synthetic_tokenizer(LLAMA_SPECIALS, eos="<|eot_id|>", bos="<|begin_of_text|>")
    with pytest.raises(UnsupportedModelError, match="no chat template"):
        adapter.attach(model, bare, fe, stack_factor=2, device=CPU, dtype=torch.float32)


# ---- 0.6 backbones ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(n for n in VARIANTS if n.startswith("ultravox-0.6")))
def test_every_0_6_backbone_builds_and_hooks_its_text_decoder(name: str) -> None:
    adapter = _adapter(name)
    text_config = adapter.model.language_model.config
    depth = getattr(text_config, "text_config", text_config).num_hidden_layers
    assert adapter.layer_names() == ["emb", *[f"block{i}" for i in range(depth)], "final_norm"]
    items = [adapter.prepare(_speech(1), make_clip(1, 0.5), "shared-suffix")]
    items.append(
        adapter.prepare(Sample(id="t", modality="text", text="Hi there.", language="en"), None, "bare")
    )
    assert torch.isfinite(_latents(adapter, items)).all()


# ---- checkpoint loading ------------------------------------------------------------------------------------------
def _state(model: torch.nn.Module, *prefixes: str) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if k.startswith(prefixes)}


def test_checkpoint_without_its_audio_tower_is_refused() -> None:
    """0.5/0.6 configs name no audio model: the fine-tuned (LoRA-merged) tower lives in the checkpoint. Without
    it the old loader silently kept the untuned base encoder."""
    model, _, _ = tiny_ultravox()
    projector_only = _state(model, "multi_modal_projector.")
    with pytest.raises(UnsupportedModelError, match="audio_tower"):
        load_checkpoint(model, projector_only, audio_in_checkpoint=True)
    partial = {**projector_only, **dict(list(_state(model, "audio_tower.").items())[:3])}
    with pytest.raises(UnsupportedModelError, match="partial"):
        load_checkpoint(model, partial, audio_in_checkpoint=False)
    with pytest.raises(UnsupportedModelError, match="does not know"):
        load_checkpoint(
            model, {**projector_only, "audio_tower.lora_A.weight": torch.zeros(1)}, audio_in_checkpoint=False
        )
    load_checkpoint(model, projector_only, audio_in_checkpoint=False)  # a frozen-encoder release (v0.4)


def _save_checkpoint_folder(folder: Path, model: torch.nn.Module, tok, fe, *, shards: int) -> None:
    """An Ultravox checkpoint laid out as the official ones: config.json (no audio_model_id: the tower is in the
    weights; text_model_id: a local folder holding the backbone), tokenizer, and the weights in ``shards`` files."""
    backbone = folder / "backbone"
    model.language_model.save_pretrained(backbone)
    fe.save_pretrained(folder)  # the feature extractor is read from the audio config's _name_or_path
    tok.save_pretrained(folder)
    audio_config = model.audio_tower.config.to_dict() | {"_name_or_path": str(folder)}
    config = {
        "model_type": "ultravox",
        "audio_model_id": None,
        "text_model_id": str(backbone),
        "audio_config": audio_config,
        "hidden_size": 64,
        "stack_factor": 2,
        "norm_init": 0.4,
        "projector_act": "swiglu",
        "projector_ln_mid": True,
    }
    (folder / "config.json").write_text(json.dumps(config))
    state = _state(model, "multi_modal_projector.", "audio_tower.")
    keys = sorted(state)
    if shards == 1:
        save_file(state, str(folder / "model.safetensors"))
        return
    weight_map = {}
    for index in range(shards):
        name = f"model-{index + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: state[k].contiguous() for k in keys[index::shards]}
        save_file(part, str(folder / name))
        weight_map.update(dict.fromkeys(part, name))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))


@pytest.mark.parametrize("shards", [1, 3])
def test_load_from_a_checkpoint_folder_single_or_sharded(tmp_path: Path, shards: int) -> None:
    """``load`` on a folder in the official layout gives the latents of the model it was saved from."""
    reference = _adapter()
    _save_checkpoint_folder(
        tmp_path, reference.model, reference.tokenizer, reference.feature_extractor, shards=shards
    )
    loaded = UltravoxAdapter("ultravox-0.5-llama-3.2-1b", VARIANTS["ultravox-0.5-llama-3.2-1b"])
    loaded.hub_id = str(tmp_path)
    loaded.load(CPU, torch.float32)
    loaded.stack_factor = 2
    samples = [
        (_speech(1), make_clip(1, 1.7)),
        (Sample(id="t", modality="text", text="Hi.", language="en"), None),
    ]
    ours = _latents(loaded, [loaded.prepare(s, w, "shared-suffix") for s, w in samples])
    theirs = _latents(reference, [reference.prepare(s, w, "shared-suffix") for s, w in samples])
    torch.testing.assert_close(ours, theirs)


def test_sharded_index_naming_a_missing_tensor_is_an_error(tmp_path: Path) -> None:
    reference = _adapter()
    _save_checkpoint_folder(
        tmp_path, reference.model, reference.tokenizer, reference.feature_extractor, shards=2
    )
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    index["weight_map"]["audio_tower.ghost.weight"] = "model-00001-of-00002.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    loaded = UltravoxAdapter("ultravox-0.5-llama-3.2-1b", VARIANTS["ultravox-0.5-llama-3.2-1b"])
    loaded.hub_id = str(tmp_path)
    with pytest.raises(UnsupportedModelError, match="no shard holds"):
        loaded.load(CPU, torch.float32)


# ---- parity machinery -------------------------------------------------------------------------------------------
def test_parity_check_compares_ids_and_every_layer(tmp_path: Path) -> None:
    """The comparison itself (the reference here is this implementation's own output, saved as the official
    script saves it, then perturbed): equal passes, a changed layer or changed ids fail."""
    adapter = _adapter()
    sample, wave = _speech(2), make_clip(2, 1.4)
    item = adapter.prepare(sample, wave, "shared-suffix")
    states = adapter.hidden_states(adapter.collate([item]))
    arrays = {f"h{i}": h[0].float().numpy() for i, h in enumerate(states)}
    good = tmp_path / "good.npz"
    np.savez(good, input_ids=item.tensors["input_ids"].numpy()[None], **arrays)
    errors = parity_check(adapter, good, sample, wave)
    assert len(errors) == adapter.num_blocks + 1 and max(errors.values()) < 1e-6
    bad = tmp_path / "bad.npz"
    np.savez(bad, input_ids=item.tensors["input_ids"].numpy()[None], **{**arrays, "h1": arrays["h1"] * 1.1})
    with pytest.raises(PipelineError, match="h1"):
        parity_check(adapter, bad, sample, wave)
    ids = item.tensors["input_ids"].numpy().copy()
    ids[3] += 1
    shifted = tmp_path / "ids.npz"
    np.savez(shifted, input_ids=ids[None], **arrays)
    with pytest.raises(PipelineError, match="first difference at 3"):
        parity_check(adapter, shifted, sample, wave)


@pytest.mark.optin
def test_parity_with_the_official_code_on_tiny_weights(tmp_path: Path) -> None:
    """``scripts/ultravox_parity.py`` end to end. Opt-in: it needs a checkout of fixie-ai/ultravox
    (``LALM_BENCH_ULTRAVOX_CHECKOUT``) and transformers 4.x installed with ``pip install --target``
    (``LALM_BENCH_TRANSFORMERS4``), neither of which the default install or the repository provides."""
    import os
    import subprocess
    import sys

    checkout, tf4 = os.environ.get("LALM_BENCH_ULTRAVOX_CHECKOUT"), os.environ.get("LALM_BENCH_TRANSFORMERS4")
    if not checkout or not tf4:
        pytest.skip("set LALM_BENCH_ULTRAVOX_CHECKOUT and LALM_BENCH_TRANSFORMERS4")
    script = str(Path(__file__).resolve().parents[1] / "scripts" / "ultravox_parity.py")
    root = str(Path(__file__).resolve().parents[1])
    for step, path in (("prepare", root), ("official", f"{tf4}:{checkout}"), ("compare", root)):
        env = {**os.environ, "PYTHONPATH": path}
        run = subprocess.run(
            [sys.executable, script, step, str(tmp_path)], env=env, capture_output=True, text=True
        )
        assert run.returncode == 0, run.stderr[-2000:]
    errors = json.loads(run.stdout[run.stdout.rindex("{") :])
    assert max(errors.values()) < 1e-5, errors
